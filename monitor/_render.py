"""Rendering alerts and digests into text for one channel (used by ``notify``).

Templates are Jinja2 files shipped in ``monitor/templates/``; a ``templates_dir`` holding a
file of the same name overrides it. They run in a ``SandboxedEnvironment`` and receive feed
text only as values, already cleaned and cut, and escaped when printed:

- ``html``: autoescape (the email body);
- ``markdown``: every printed value goes through :func:`escape_markdown` (chat), links
  through the ``mdurl`` filter;
- ``text``: printed as is (console, email subject).

Cleaning removes NUL and other control characters, lone surrogates and bidi overrides,
and turns every kind of line break inside a field into a space, so a title can never add
a header line or a Markdown block. Fields are cut at a character boundary (never between
a letter and its combining mark) with ``…``; whole messages are cut to the channel's
limit the same way (:data:`SUBJECT_LIMIT`, :data:`CHAT_LIMIT`, :data:`MATTERMOST_LIMIT`).
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .types import Alert

__all__ = [
    "CHAT_LIMIT",
    "Format",
    "MATTERMOST_LIMIT",
    "SUBJECT_LIMIT",
    "alert_context",
    "chat_title",
    "clean_line",
    "cut",
    "email_subject",
    "escape_markdown",
    "neutralise_mentions",
    "render_alert",
    "render_digest",
    "render_subject",
]

Format = Literal["html", "markdown", "text"]

SUBJECT_LIMIT = 200  # email subject, chat titles
_SUBJECT_MAX_ENCODED = 900  # bytes of encoded subject; the SMTP line limit is 1000
_Q_PLAIN = frozenset(string.ascii_letters + string.digits + "!*+-/ ")
CHAT_LIMIT = 4000  # a chat message (JSON webhooks, other apprise chat services)
MATTERMOST_LIMIT = 16383  # Mattermost's post size

# Per-field caps, applied before escaping so an escape is never cut in half.
_FIELD_LIMITS = {"title": 300, "source": 120, "watchlist": 120, "term": 80, "snippet": 700}
_MAX_TERMS = 20
_MAX_SOURCES = 20
_ELLIPSIS = "…"

_TEMPLATES: dict[tuple[str, str], str] = {
    ("alert", "html"): "alert_email.html",
    ("alert", "markdown"): "alert_chat.md",
    ("alert", "text"): "alert_text.txt",
    ("digest", "html"): "digest_email.html",
    ("digest", "markdown"): "digest_chat.md",
    ("digest", "text"): "digest_text.txt",
}
_SUBJECT_TEMPLATE = "alert_subject.txt"

# C0/C1 controls except \t \n \r, DEL, lone surrogates, BOM, bidi marks and overrides.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_SPACES = re.compile(r"\s+")
_MD_META = re.compile(r"([\\`*_\[\]()#<>|~&])")
_MD_LINE_START = re.compile(r"^([-+=])|^(\d+)(?=[.)])", re.MULTILINE)
_ZWSP = "\u200b"


# -- cleaning and cutting ------------------------------------------------------------------


def clean_line(text: str | None) -> str:
    """Feed text as one safe line: no control characters, every line break a space."""
    return _SPACES.sub(" ", _UNSAFE.sub("", text or "")).strip()


def _clean_inline(text: str) -> str:
    """Like :func:`clean_line` but keeps one edge space (for snippet segments)."""
    return _SPACES.sub(" ", _UNSAFE.sub("", text))


def _continues(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (mark, joiner, selector)."""
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch == "\u200d"
        or "\ufe00" <= ch <= "\ufe0f"
        or "\U0001f3fb" <= ch <= "\U0001f3ff"
    )


def cut(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending in ``…`` when cut.

    Never separates a letter from its combining marks or an emoji from its modifiers.
    """
    if len(text) <= limit:
        return text
    end = max(limit - len(_ELLIPSIS), 0)
    while 0 < end < len(text) and (_continues(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    return text[:end].rstrip() + _ELLIPSIS


# -- escaping ------------------------------------------------------------------------------


def neutralise_mentions(text: str) -> str:
    """Break @everyone, @here, <@id>, <!here> and the like with a zero-width space."""
    return text.replace("@", "@" + _ZWSP).replace("<!", "<" + _ZWSP + "!")


def escape_markdown(text: str) -> str:
    """Escape Markdown metacharacters and neutralise mentions in plain ``text``."""
    text = _MD_META.sub(r"\\\1", neutralise_mentions(text))
    return _MD_LINE_START.sub(lambda m: "\\" + m[0] if m[1] else m[0] + "\\", text)


class _Safe(str):
    """Markdown built by this module (a link target): printed without escaping."""


def _md_url(url: str | None) -> _Safe:
    """A URL for a Markdown link target or a bare link line."""
    return _Safe(quote(url or "", safe="/:?&=%#~+,;!$'*-._"))


def _md_finalize(value: Any) -> str:
    if isinstance(value, _Safe):
        return value
    return escape_markdown("" if value is None else str(value))


def _plain_finalize(value: Any) -> Any:
    return "" if value is None else value


# -- template context ----------------------------------------------------------------------


def _field(text: str | None, kind: str) -> str:
    return cut(clean_line(text), _FIELD_LIMITS[kind])


def _safe_link(link: str | None) -> str | None:
    """The link if it is an http(s) URL (no javascript:, data:, …), cleaned."""
    link = clean_line(link).replace(" ", "%20")
    try:
        scheme = urlsplit(link).scheme.lower()
    except ValueError:
        return None
    return link if scheme in ("http", "https") and len(link) <= 2000 else None


def _when(published: datetime | None) -> str:
    if published is None:
        return "date unknown"
    if published.tzinfo is not None:
        published = published.astimezone(UTC)
    return published.strftime("%Y-%m-%d %H:%M UTC")


def _snippet_parts(snippet: str, spans: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Split the snippet at the highlight spans, then clean and cut each part."""
    parts: list[tuple[str, bool]] = []
    pos = 0
    for start, end in sorted(spans):
        start, end = max(start, pos), min(end, len(snippet))
        if start >= end:
            continue
        parts += [(snippet[pos:start], False), (snippet[start:end], True)]
        pos = end
    parts.append((snippet[pos:], False))
    return _cap_parts([(_clean_inline(t), hit) for t, hit in parts if t])


def _unpad(parts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Move a hit's edge spaces out of it (``**x **`` is not bold in Markdown)."""
    out: list[tuple[str, bool]] = []
    for text, hit in parts:
        core = text.strip() if hit else text
        if hit and core != text:
            out += [(" ", False)] if text[:1].isspace() else []
            out.append((core, True))
            out += [(" ", False)] if text[-1:].isspace() else []
        else:
            out.append((text, hit))
    return out


def _cap_parts(parts: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    room, out = _FIELD_LIMITS["snippet"], []
    parts = _unpad(parts)
    for i, (text, hit) in enumerate(parts):
        text = text.lstrip() if i == 0 else text
        text = text.rstrip() if i == len(parts) - 1 else text
        if len(text) >= room:
            out.append({"text": cut(text, room), "hit": hit})
            break
        room -= len(text)
        out.append({"text": text, "hit": hit})
    return [p for p in out if p["text"]]


def alert_context(alert: Alert) -> dict[str, Any]:
    """The values a template sees as ``alert``: cleaned, cut, not yet escaped."""
    outlets = dict.fromkeys(_field(s, "source") for s in (alert.source, *alert.sources))
    return {
        "key": clean_line(alert.key),
        "title": _field(alert.title, "title") or "(untitled)",
        "source": _field(alert.source, "source"),
        "sources": [s for s in outlets if s][:_MAX_SOURCES],  # every outlet, first the source
        "link": _safe_link(alert.link),
        "published": _when(alert.published),
        "watchlist": _field(alert.watchlist, "watchlist"),
        "terms": [_field(t, "term") for t in alert.terms[:_MAX_TERMS]],
        "fields": [_field(f, "term") for f in dict.fromkeys(alert.fields)],
        "snippet": _snippet_parts(alert.snippet or "", alert.highlights),
        "follows": _field(alert.follows, "title") if alert.follows else None,
    }


# -- environments --------------------------------------------------------------------------

_FINALIZE: dict[str, Callable[[Any], Any]] = {
    "html": _plain_finalize,
    "markdown": _md_finalize,
    "text": _plain_finalize,
}


@functools.lru_cache(maxsize=32)
def _environment(fmt: str, templates_dir: Path | None) -> SandboxedEnvironment:
    loaders: list[Any] = [FileSystemLoader(str(templates_dir))] if templates_dir else []
    loaders.append(PackageLoader("monitor", "templates"))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=fmt == "html",
        finalize=_FINALIZE[fmt],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mdurl"] = _md_url
    return env


def _render(kind: str, fmt: str, templates_dir: Path | None, **values: Any) -> str:
    template = _environment(fmt, templates_dir).get_template(_TEMPLATES[(kind, fmt)])
    body = template.render(**values).strip() + "\n"
    return _UNSAFE.sub("", body)


def _fit(text: str, limit: int | None) -> str:
    """Cut a rendered message; a trailing backslash would escape the ellipsis."""
    if limit is None or len(text) <= limit:
        return text
    return cut(text.rstrip(), limit)[:-1].rstrip("\\").rstrip() + _ELLIPSIS


# -- titles --------------------------------------------------------------------------------


def _encoded_len(ch: str) -> int:
    """Bytes ``ch`` takes in a Q-encoded header word (the worst case of Q and B)."""
    return 1 if ch in _Q_PLAIN else 3 * len(ch.encode("utf-8", "replace"))


def email_subject(text: str) -> str:
    """One line, at most :data:`SUBJECT_LIMIT` characters and ~900 bytes once encoded.

    apprise writes a non-ASCII subject as one unfolded encoded word, and SMTP servers
    refuse lines over 1000 bytes ("500 Line too long"): 200 CJK characters would be 1800.
    """
    text = cut(clean_line(text), SUBJECT_LIMIT)
    used = 0
    for i, ch in enumerate(text):
        used += _encoded_len(ch)
        if used > _SUBJECT_MAX_ENCODED:
            return cut(text, i)
    return text


def render_subject(alert: Alert, *, templates_dir: Path | None = None) -> str:
    """The email subject from the ``alert_subject.txt`` template (see :func:`email_subject`)."""
    template = _environment("text", templates_dir).get_template(_SUBJECT_TEMPLATE)
    return email_subject(template.render(alert=alert_context(alert)))


def chat_title(text: str) -> str:
    """A plain-text title for a chat payload: one line, mentions broken, cut."""
    return cut(neutralise_mentions(clean_line(text)), SUBJECT_LIMIT)


def _title(text: str, fmt: Format) -> str:
    if fmt == "html":
        return email_subject(text)
    if fmt == "markdown":
        return chat_title(text)
    return cut(clean_line(text), SUBJECT_LIMIT)


# -- messages ------------------------------------------------------------------------------


def render_alert(
    alert: Alert,
    fmt: Format,
    *,
    templates_dir: Path | None = None,
    limit: int | None = None,
) -> tuple[str, str]:
    """Render one alert for a channel.

    Args:
        alert: The alert.
        fmt: ``html`` (email: subject and HTML body), ``markdown`` (chat) or ``text``.
        templates_dir: A directory whose files override the shipped templates.
        limit: Cut the body to this many characters; defaults to :data:`CHAT_LIMIT`
            for ``markdown`` and no limit otherwise.

    Returns:
        ``(title, body)``: the title is one plain line (the email subject for ``html``).

    Raises:
        jinja2.TemplateError: An override template is broken.
    """
    if fmt == "html":
        title = render_subject(alert, templates_dir=templates_dir)
    else:
        title = _title(alert.title, fmt)
    limit = CHAT_LIMIT if limit is None and fmt == "markdown" else limit
    body = _render("alert", fmt, templates_dir, alert=alert_context(alert))
    return title, _fit(body, limit)


def render_digest(
    alerts: Sequence[Alert],
    fmt: Format,
    *,
    title: str,
    templates_dir: Path | None = None,
    limit: int | None = None,
) -> tuple[str, str]:
    """Render several alerts as one message; drops the last ones ("…and N more") to fit.

    Args and Returns as :func:`render_alert`; ``title`` is the digest's title/subject.
    """
    plain, subject = cut(clean_line(title), SUBJECT_LIMIT), _title(title, fmt)
    limit = CHAT_LIMIT if limit is None and fmt == "markdown" else limit
    items = [alert_context(a) for a in alerts]
    shown = len(items)
    while True:
        digest = {
            "title": plain,
            "count": len(items),
            "alerts": items[:shown],
            "more": len(items) - shown,
        }
        body = _render("digest", fmt, templates_dir, digest=digest)
        if limit is None or len(body) <= limit or shown <= 1:
            return subject, _fit(body, limit)
        shown = min(shown - 1, max(1, int(shown * limit / len(body)) - 1))
