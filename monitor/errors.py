"""The exceptions the monitor raises.

::

    MonitorError
    ├── ConfigError (also ValueError)      a bad config; lists every problem by path
    ├── QueryError (also ValueError)       a watchlist query that does not parse
    ├── FetchError                         a source could not be fetched
    │   ├── FetchTimeout
    │   ├── FetchTooLarge
    │   ├── FetchRefused                   the URL or address is not allowed (SSRF guard)
    │   └── HTTPStatusError                a status we do not accept (with .status)
    ├── ParseError (also ValueError)       the document is not a usable feed or page
    ├── StorageError                       the database failed or is of a newer schema
    │   └── ConcurrentWriteError           another daemon stored the same item first
    └── NotifyError                        a channel could not be reached or refused

``str(err)`` always includes the cause, so a stored ``last_error`` reads on its own.
Messages never contain secrets: callers pass redacted URLs.
"""

from __future__ import annotations

__all__ = [
    "ConcurrentWriteError",
    "ConfigError",
    "FetchError",
    "FetchRefused",
    "FetchTimeout",
    "FetchTooLarge",
    "HTTPStatusError",
    "MonitorError",
    "NotifyError",
    "ParseError",
    "QueryError",
    "StorageError",
]


class MonitorError(Exception):
    """The root of every error the monitor raises on purpose."""

    def __str__(self) -> str:
        text = super().__str__()
        cause = self.__cause__
        if cause is not None and str(cause) and str(cause) not in text:
            return f"{text}: {type(cause).__name__}: {cause}"
        return text


class ConfigError(MonitorError, ValueError):
    """The config is invalid. ``problems`` holds one ``path: reason`` line per problem."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid config:\n" + "\n".join(f"  {p}" for p in self.problems))


class QueryError(MonitorError, ValueError):
    """A query that does not parse. ``column`` is 1-based, or None when unknown."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        where = f" at column {column}" if column is not None else ""
        super().__init__(f"{message}{where}")


class FetchError(MonitorError):
    """A source could not be fetched; the poll records it and goes on."""


class FetchTimeout(FetchError):
    """The connect, read or total deadline passed."""


class FetchTooLarge(FetchError):
    """The (decompressed) body went past the size cap."""


class FetchRefused(FetchError):
    """The URL, scheme or connected address is not allowed."""


class HTTPStatusError(FetchError):
    """The server answered with a status we do not accept."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class ParseError(MonitorError, ValueError):
    """The document is not a feed (or page) we can read."""


class StorageError(MonitorError):
    """The database failed, or its schema is newer than this code."""


class ConcurrentWriteError(StorageError):
    """Another process stored an article with the same key (GUID, URL, text) after this
    one's dedupe candidates were read: nothing was written; decide again."""


class NotifyError(MonitorError):
    """A notification channel could not be reached or refused the message."""
