r"""How fetch failures become ``FetchError``\ s, and the Retry-After rules.

``map_errors`` is the one place where httpx, httpcore, decoder and guard exceptions are
translated (like httpx's ``map_httpcore_exceptions``); ``RetryLater`` and
``parse_retry_after`` carry a server's request to come back later (issue 6: seconds or
an HTTP date, clamped, garbage ignored).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpcore
import httpx

from monitor._fetch_decode import DECODE_ERRORS, UnsupportedEncoding
from monitor._fetch_guard import redact
from monitor._fetch_transport import Refused
from monitor.errors import FetchError, FetchRefused, FetchTimeout, HTTPStatusError

__all__ = ["MAX_RETRY_AFTER", "RetryLater", "map_errors", "parse_retry_after"]

MAX_RETRY_AFTER = 7 * 86400.0


class RetryLater(HTTPStatusError):
    """A 429 or 503: the server asks us to come back later.

    Attributes:
        retry_after: Seconds from now the server asked for (clamped to [0, 7 days]),
            or None when it sent no usable Retry-After.
        retry_after_raw: The Retry-After header as sent, or None.
    """

    def __init__(
        self, message: str, status: int, retry_after: float | None, retry_after_raw: str | None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after
        self.retry_after_raw = retry_after_raw


def parse_retry_after(
    value: str | None, *, now: datetime, minimum: float, maximum: float = MAX_RETRY_AFTER
) -> float | None:
    """Turn a Retry-After header into seconds to wait, clamped to [minimum, maximum].

    Args:
        value: The header: delay-seconds (``"120"``) or an HTTP date.
        now: The current time (aware; a naive one is taken as UTC).
        minimum: The least wait, usually the source's poll interval.
        maximum: The longest wait (7 days by default).

    Returns:
        Seconds, or None when the header is absent or not a valid Retry-After.
    """
    seconds = _retry_after_seconds((value or "").strip(), now)
    if seconds is None:
        return None
    return float(min(max(seconds, minimum), maximum))


def _retry_after_seconds(value: str, now: datetime) -> float | None:
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(min(int(value[:12]), 10**12))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    return (when - now).total_seconds()


_ERROR_MAP: tuple[tuple[tuple[type[BaseException], ...], type[FetchError], str], ...] = (
    ((Refused,), FetchRefused, "refused"),
    ((UnsupportedEncoding,), FetchError, "cannot decode the body"),
    ((httpx.TimeoutException, httpcore.TimeoutException), FetchTimeout, "timed out"),
    ((httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol), FetchRefused, "unsupported URL"),
    ((httpx.InvalidURL, UnicodeError), FetchRefused, "invalid URL"),
    ((httpx.ProxyError, httpcore.ProxyError), FetchError, "proxy failed"),
    ((httpx.ConnectError, httpcore.ConnectError), FetchError, "could not connect"),
    ((httpx.NetworkError, httpcore.NetworkError), FetchError, "connection failed"),
    ((httpx.RemoteProtocolError, httpcore.RemoteProtocolError), FetchError, "bad HTTP answer"),
    ((httpx.ProtocolError, httpcore.ProtocolError), FetchError, "HTTP protocol error"),
    ((httpx.DecodingError, *DECODE_ERRORS), FetchError, "corrupt compressed body"),
    ((httpx.TooManyRedirects,), FetchError, "too many redirects"),
    ((httpcore.ConnectionNotAvailable,), FetchError, "no connection available"),
    ((httpx.HTTPError, httpx.StreamError, httpx.CookieConflict), FetchError, "HTTP error"),
    ((OSError,), FetchError, "network error"),
)


@contextmanager
def map_errors(source: str, url: str, deadline: float | None = None) -> Iterator[None]:
    """Translate httpx, httpcore, decoder and guard exceptions into ``FetchError``\\ s.

    The one place foreign exceptions become ours (like httpx's
    ``map_httpcore_exceptions``); the original is chained as ``__cause__``.

    Args:
        source: The source name, first in every message.
        url: The URL being fetched (redacted before it reaches a message).
        deadline: The fetch's ``time.monotonic()`` deadline, to tell a total-deadline
            timeout from a connect or read timeout.
    """
    try:
        yield
    except FetchError:
        raise
    except Exception as exc:
        mapped = _map_one(exc, source, url, deadline)
        if mapped is None:
            raise
        raise mapped from exc


def _map_one(exc: Exception, source: str, url: str, deadline: float | None) -> FetchError | None:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return HTTPStatusError(f"{source}: HTTP {status} ({redact(url)})", status)
    for classes, target, problem in _ERROR_MAP:
        if isinstance(exc, classes):
            if target is FetchTimeout and deadline is not None and time.monotonic() >= deadline:
                problem = "total deadline passed"
            detail = f": {exc}" if target is FetchRefused and str(exc) else ""
            return target(f"{source}: {problem}{detail} ({redact(url)})")
    return None
