"""Log lines: one per event, a fixed event name and ``key=value`` fields.

Code logs ``log.info("poll.ok source=%s entries=%d", name, n)``. Two renderings:

- ``text`` (the default): ``2026-11-28 09:00:00,123 INFO monitor.pipeline poll.ok
  source=Wire entries=3``;
- ``json``: one object per line for log collectors, ``{"time", "level", "logger",
  "event", ...the fields}``, with ``%d``/``%f`` fields kept as numbers.

Every line, in both renderings, passes through one redaction filter that replaces the
config's substituted secrets (``${SMTP_PASSWORD}`` …) with ``***``, whichever library
logged it. ``set_secrets`` updates the set when the config is reloaded.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["JSONFormatter", "set_secrets", "setup_logging", "split_event"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_EVENT = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-+ #0]*(?:\d+|\*)?(?:\.\d+)?([diouxXeEfFgGcrsa%])")
_FIELD = re.compile(r"(?:^|\s)([A-Za-z_][\w.]*)=")
_secrets: tuple[str, ...] = ()
_lock = threading.Lock()


def set_secrets(secrets: Iterable[str]) -> None:
    """Redact these values (longest first) from every log line from now on."""
    global _secrets
    with _lock:
        _secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))


def _redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send log records of ``level`` and above to standard error, as ``text`` or ``json``.

    Calling it again replaces the handler it installed before (and only that one).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else _TextFormatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    for noisy in ("apscheduler", "httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, so a progress bar
    that redirects standard error keeps log lines above the bar."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _redact(super().format(record))


def split_event(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """The event name and the fields of a record logged as ``"event key=%s …"``.

    Fields come from the format string and its arguments, so a value with spaces stays
    whole and numbers stay numbers. A record in another shape (a library's message)
    becomes the event ``log`` with the whole text as ``message``.
    """
    template = str(record.msg)
    head, _, rest = template.partition(" ")
    args = record.args if isinstance(record.args, tuple) else (record.args,) if record.args else ()
    used = len([p for p in _PLACEHOLDER.finditer(head) if p.group(2) != "%"])
    if used:  # "digest.%s target=…": the event name carries a value
        try:
            head, args = head % args[:used], args[used:]
        except (TypeError, ValueError):
            return "log", {"message": record.getMessage()}
    if not _EVENT.match(head):
        return "log", {"message": record.getMessage()}
    fields = _fields_from_template(rest, args)
    if fields is None:  # e.g. "cycle.done %s" with pre-joined pairs: read the message
        fields = _fields_from_text(record.getMessage().partition(" ")[2])
    return head, fields


def _fields_from_template(rest: str, values: tuple[Any, ...]) -> dict[str, Any] | None:
    found = list(_PLACEHOLDER.finditer(rest))
    if "%" in rest and len([p for p in found if p.group(2) != "%"]) != len(values):
        return None
    fields: dict[str, Any] = {}
    keys = list(_FIELD.finditer(rest))
    i = 0
    for n, key in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(rest)
        chunk = rest[key.end():end].rstrip()
        holders = [p for p in _PLACEHOLDER.finditer(chunk) if p.group(2) != "%"]
        if not holders:
            fields[key.group(1)] = chunk
            continue
        if len(holders) > 1 or holders[0].start() != 0:
            return None
        spec = holders[0]
        suffix = chunk[spec.end():]
        fields[key.group(1)] = _typed(spec.group(0), spec.group(2), values[i], suffix)
        i += 1
    return fields if i == len(values) else None


def _typed(spec: str, conv: str, value: Any, suffix: str) -> Any:
    text = spec % value
    if suffix:  # ``in=%.0fs``: keep the text as written
        return text + suffix.replace("%%", "%")
    if conv in "diouxX" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if conv in "eEfFgG" and isinstance(value, int | float):
        return float(text)
    if conv == "s" and (value is None or isinstance(value, bool | int | float)):
        return value
    return text


def _fields_from_text(text: str) -> dict[str, Any]:
    keys = list(_FIELD.finditer(text))
    fields: dict[str, Any] = {}
    for n, key in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(text)
        value = text[key.end():end].strip()
        fields[key.group(1)] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return fields


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            event, fields = split_event(record)
        except Exception:  # a malformed call must still leave a line behind
            event, fields = "log", {"message": str(record.msg)}
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "event": event,
        }  # fmt: skip
        for key, value in fields.items():
            out[key if key not in out else f"field_{key}"] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _redact(json.dumps(out, ensure_ascii=False, default=str))
