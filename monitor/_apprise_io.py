"""What the senders read from and tell apprise: a URL's privacy form and the secrets in
it, and what apprise logs during a send (redacted and captured per send, through a
filter on its logger; see ``monitor._senders``), classified as RETRY or PERMANENT."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import apprise

from ._render import clean_line
from .types import Delivery, DeliveryOutcome

_MIN_SECRET = 3  # shorter pieces of a URL are not redacted (they would mangle every text)
RETRY = DeliveryOutcome.RETRY
PERMANENT = DeliveryOutcome.PERMANENT


# -- privacy -------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret substring of ``text`` with ``***`` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].strip().lower() if "://" in url else ""


def _url_pieces(url: str) -> set[str]:
    """Every part of a URL that could be a credential: password, path segments, values."""
    try:
        parts = urlsplit(url)
        password = parts.password or ""
    except ValueError:
        return {url}
    pieces = {password, *parts.path.split("/")}
    for pair in parts.query.split("&"):
        pieces.add(pair.partition("=")[2])
    pieces |= {unquote(p) for p in pieces}
    return {p for p in pieces if len(p) >= _MIN_SECRET}


def _mask(segment: str) -> str:
    return f"{segment[0]}...{segment[-1]}" if len(segment) > 2 else "***"


def fallback_privacy(url: str) -> str:
    """A URL apprise cannot load: scheme, user and host only."""
    scheme = scheme_of(url) or "unknown"
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{scheme}://…"
    user = f"{quote(parts.username or '', safe='')}:****@" if parts.password else ""
    path = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{scheme}://{user}{parts.hostname or ''}{port}{path}"


def _mask_path(url: str) -> str:
    """apprise shows a JSON webhook's path in clear; a token often lives there."""
    head, sep, query = url.partition("?")
    scheme, _, rest = head.partition("://")
    host, slash, path = rest.partition("/")
    masked = "/".join(_mask(s) if s else s for s in path.split("/"))
    return f"{scheme}://{host}{slash}{masked}{sep}{query}"


def privacy_url(url: str) -> str:
    """apprise's privacy form of ``url`` (passwords and tokens masked), for logs and status.

    JSON webhook paths are masked too; a URL apprise cannot load keeps only its scheme,
    user and host.
    """
    if scheme_of(url) == "console":
        return "console://"
    plugin = instantiate(url, _url_pieces(url))
    if plugin is None:
        return fallback_privacy(url)
    text = _trim_defaults(str(plugin.url(privacy=True)))
    return _mask_path(text) if scheme_of(url) in ("json", "jsons") else text


# Options apprise spells out in every URL it prints, at their default values.
_NOISE = {
    "overflow=upstream",
    "retry=0",
    "wait=0.5",
    "optional=no",
    "cto=15",
    "rto=4",
    "method=POST",
    "image=yes",
    "format=text",
}


def _trim_defaults(url: str) -> str:
    head, sep, query = url.partition("?")
    kept = [pair for pair in query.split("&") if pair and pair not in _NOISE]
    if not sep:
        return url
    return head.rstrip("/") + ("?" + "&".join(kept) if kept else "")


def url_secrets(url: str) -> tuple[str, ...]:
    """The substrings of ``url`` to redact: the whole URL and what its privacy form hides."""
    shown = privacy_url(url)
    hidden = {p for p in _url_pieces(url) if p not in shown and quote(p, safe="") not in shown}
    return (url, *sorted(hidden, key=len, reverse=True))


# -- apprise log tap -----------------------------------------------------------------------


@dataclass
class _Capture:
    secrets: Sequence[str]
    lines: list[str] = field(default_factory=list)


_CAPTURE: ContextVar[_Capture | None] = ContextVar("monitor_notify_capture", default=None)


class _AppriseTap(logging.Filter):
    """Copies apprise records into the current send's capture, redacted."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        capture = _CAPTURE.get()
        if capture is not None:
            with contextlib.suppress(Exception):
                text = redact(record.getMessage(), capture.secrets)
                record.msg, record.args = text, ()
                capture.lines.append(text)
        return record.levelno >= self.threshold


class _Tap:
    """Installs the filters while sends run: apprise's (at DEBUG), and httpx's.

    httpx logs each request's full URL at INFO, token included; its filter only redacts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._apprise = _AppriseTap(logging.NOTSET)
        self._httpx = _AppriseTap(logging.NOTSET)
        self._saved_level = logging.NOTSET

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                logger = logging.getLogger("apprise")
                self._saved_level = logger.level
                self._apprise.threshold = logger.getEffectiveLevel()
                logger.addFilter(self._apprise)
                logging.getLogger("httpx").addFilter(self._httpx)
                if self._apprise.threshold > logging.DEBUG:
                    logger.setLevel(logging.DEBUG)
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                logger = logging.getLogger("apprise")
                logger.removeFilter(self._apprise)
                logging.getLogger("httpx").removeFilter(self._httpx)
                if logger.level == logging.DEBUG and self._apprise.threshold > logging.DEBUG:
                    logger.setLevel(self._saved_level)


_TAP = _Tap()


@contextlib.contextmanager
def tapped(secrets: Iterable[str]) -> Iterator[_Capture]:
    capture = _Capture(tuple(secrets))
    _TAP.acquire()
    token = _CAPTURE.set(capture)
    try:
        yield capture
    finally:
        _CAPTURE.reset(token)
        _TAP.release()


def instantiate(url: str, secrets: Iterable[str]) -> Any:
    """apprise's plugin object for ``url``, or None; its logs redacted."""
    with tapped(secrets):
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)


# -- classifying ---------------------------------------------------------------------------

_SMTP_REPLY = re.compile(r"\((\d{3}), b(['\"])(.*?)\2|refused: (\d{3}) (.*)")
_HTTP_ERROR = re.compile(r"error=(\d{3})\b")


def _smtp_detail(line: str) -> tuple[int, str] | None:
    found = _SMTP_REPLY.search(line)
    if not found:
        return None
    code, text = int(found[1] or found[4]), clean_line(found[3] or found[5])
    if text[:2] in ("b'", 'b"'):  # a reply logged as bytes
        text = text[2:-1]
    return code, f"SMTP {code} {text}"


def classify(lines: Sequence[str], where: str) -> Delivery:
    """RETRY or PERMANENT from what apprise logged during a failed send."""
    for line in lines:
        smtp = _smtp_detail(line)
        if smtp is not None:
            outcome = PERMANENT if smtp[0] >= 500 else RETRY
            return Delivery(outcome, f"{where}: {smtp[1]}")
    for line in lines:
        http = _HTTP_ERROR.search(line)
        if http is not None:
            status = int(http[1])
            permanent = 400 <= status < 500 and status not in (408, 429)
            return Delivery(PERMANENT if permanent else RETRY, f"{where}: {clean_line(line)}")
    cause = next((ln for ln in lines if "Exception:" in ln), None)  # e.g. Errno 111
    cause = cause or next((ln for ln in reversed(lines) if "fail" in ln or "error" in ln), None)
    return Delivery(RETRY, f"{where}: {clean_line(cause or 'apprise reported a failure')}")
