"""Sending one rendered message to one target, and telling how it went (used by ``notify``).

Who sends what:

- ``console://`` (ours): the text form on standard output.
- ``json://``, ``jsons://`` (ours, httpx): apprise's JSON payload (``version``, ``title``,
  ``message``, ``attachments``, ``type``, with the URL's ``:key=value`` extras) plus
  ``alert_id`` (and ``alert_ids`` for a digest), and an ``Idempotency-Key`` header.
- ``mmost://``, ``mmosts://`` in webhook mode (ours, httpx): ``{"text", "username",
  "channel", "props": {"monitor_alert_id"}}`` posted to ``/hooks/TOKEN``.
- Everything else (``mailto://``, ``mailtos://``, ``ntfy://``, Mattermost bot mode, …):
  apprise, with a fresh ``Apprise`` object per send, so each target's outcome is its own
  and apprise's per-object throttle never delays a retry.

Our senders parse the URL with apprise's own plugin, so a URL means the same to both; we
send ourselves only where we need the HTTP status and ``Retry-After`` to tell RETRY from
PERMANENT.

apprise's ``notify()`` only says True/False. To classify its failures we read what it
logs during the call: a filter on the ``apprise`` logger copies each record into the
capture of the send it belongs to (a ``ContextVar``; apprise runs plugins in worker
threads with a copy of the caller's context). The SMTP reply is logged at DEBUG
(``Socket Exception: {'rcpt': (550, b'…')}``, ``(553, b'…', 'sender')``, or ``SMTP
recipient … was refused: 550 …``), so while a send is under way the logger is lowered
to DEBUG and the filter drops, for everyone else, whatever the previous level would have
dropped. Apprise's HTTP plugins log ``error=NNN``. A 5xx SMTP reply (recipient, sender,
data or authentication refused) or an HTTP 4xx other than 408/429 is PERMANENT;
everything else (connection refused, timeouts, 4xx SMTP replies, no code found) is RETRY.
The same filter masks the target's secrets in every apprise record of the send
(``_apprise_io`` holds the filter, the classification and the URLs' privacy forms).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import apprise
import httpx

from ._apprise_io import (
    classify,
    fallback_privacy,
    instantiate,
    privacy_url,
    redact,
    scheme_of,
    tapped,
    url_secrets,
)
from ._render import CHAT_LIMIT, MATTERMOST_LIMIT, Format, clean_line, cut
from .types import Delivery, DeliveryOutcome

__all__ = [
    "Message",
    "Sender",
    "digest_id",
    "make_sender",
    "parse_retry_after",
    "privacy_url",
    "redact",
    "url_secrets",
]

_log = logging.getLogger(__name__)
_USER_AGENT = "news-monitor"

SENT = DeliveryOutcome.SENT
RETRY = DeliveryOutcome.RETRY
PERMANENT = DeliveryOutcome.PERMANENT


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered message for one target; ``alert_ids`` lists a digest's alerts."""

    title: str
    body: str
    alert_id: str
    alert_ids: tuple[str, ...] = ()


class Sender(Protocol):
    """Delivers a rendered message; ``fmt`` and ``limit`` say how to render it."""

    fmt: Format
    limit: int | None
    privacy_url: str

    def deliver(self, message: Message) -> Delivery: ...


def digest_id(keys: Sequence[str]) -> str:
    """A stable idempotency key for a digest: the same alerts give the same key."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8", "replace"))
    return "digest-" + digest.hexdigest()[:24]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _from_response(response: httpx.Response, where: str, secrets: Sequence[str]) -> Delivery:
    status = response.status_code
    if 200 <= status < 300:
        return Delivery(SENT)
    detail = cut(clean_line(response.text), 200)
    error = redact(f"{where}: HTTP {status} {response.reason_phrase}: {detail}", secrets)
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Delivery(RETRY, error.rstrip(": "), retry_after)
    return Delivery(PERMANENT, error.rstrip(": "))  # other 4xx, and 3xx: we never follow


_TRANSIENT = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def _from_exception(exc: Exception, where: str, secrets: Sequence[str]) -> Delivery:
    """Every httpx failure as a Delivery: network trouble RETRY, the rest PERMANENT."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
    error = redact(f"{where}: {kind}: {clean_line(str(exc))}", secrets).rstrip(": ")
    return Delivery(RETRY if isinstance(exc, _TRANSIENT) else PERMANENT, error)


# -- senders -------------------------------------------------------------------------------


class ConsoleSender:
    """``console://``: prints the text form to standard output."""

    fmt: Format = "text"
    limit: int | None = None
    privacy_url = "console://"

    def deliver(self, message: Message) -> Delivery:
        try:
            sys.stdout.write(message.body + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as exc:
            return Delivery(RETRY, f"console://: {type(exc).__name__}: {exc}")
        return Delivery(SENT)


def _native_format(plugin: Any) -> Format:
    """The format to render for an apprise plugin: what it sends, Markdown if it can.

    Chat services that render Markdown (Discord, Slack, …) get escaped Markdown, so text
    from feeds is never formatting; text-only services get plain text.
    """
    resolve = getattr(plugin, "resolve_format", None)  # apprise 2: a list of formats
    native = resolve(apprise.NotifyFormat.MARKDOWN) if callable(resolve) else plugin.notify_format
    value = str(getattr(native, "value", native))
    return "html" if value == "html" else "markdown" if value == "markdown" else "text"


class AppriseSender:
    """Any apprise URL, in the plugin's own format; email also gets ``X-Monitor-Alert-Id``."""

    def __init__(self, plugin: Any, url: str, *, timeout: float, secrets: Sequence[str]):
        self._url = url
        self._timeout = timeout
        self._secrets = secrets
        self._email = scheme_of(url) in ("mailto", "mailtos")
        self.fmt: Format = "html" if self._email else _native_format(plugin)
        self.limit: int | None = None if self._email else CHAT_LIMIT
        self.privacy_url = privacy_url(url)

    def _url_for(self, message: Message) -> str:
        params = {} if "cto=" in self._url else {"cto": f"{self._timeout:g}"}
        if "rto=" not in self._url:
            params["rto"] = f"{self._timeout:g}"
        if self._email:
            params["+X-Monitor-Alert-Id"] = clean_line(message.alert_id)
        sep = "&" if "?" in self._url else "?"
        return f"{self._url}{sep}{urlencode(params)}"

    def deliver(self, message: Message) -> Delivery:
        fmt = apprise.NotifyFormat(self.fmt)
        with tapped(self._secrets) as capture:
            target = apprise.Apprise()
            if not target.add(self._url_for(message)):
                return Delivery(PERMANENT, f"{self.privacy_url}: apprise cannot load the URL")
            ok = bool(target.notify(body=message.body, title=message.title, body_format=fmt))
        return Delivery(SENT) if ok else classify(capture.lines, self.privacy_url)


class _HTTPSender:
    """Shared by our JSON and Mattermost senders: one POST, classified by status."""

    fmt: Format = "markdown"
    limit: int | None = CHAT_LIMIT

    def __init__(self, plugin: Any, url: str, *, timeout: float, secrets: Sequence[str]):
        self._plugin = plugin
        self._timeout = timeout
        self._secrets = secrets
        self.privacy_url = privacy_url(url)

    def _base(self) -> str:
        plugin = self._plugin
        host = f"[{plugin.host}]" if ":" in plugin.host else plugin.host
        port = f":{plugin.port}" if plugin.port else ""
        return f"{'https' if plugin.secure else 'http'}://{host}{port}"

    def _request(self, method: str, url: str, payload: dict[str, Any], **kw: Any) -> Delivery:
        headers = {"User-Agent": _USER_AGENT, "Content-Type": "application/json"}
        headers.update(kw.pop("headers", {}))
        try:
            with (
                tapped(self._secrets),
                httpx.Client(
                    timeout=self._timeout, verify=bool(self._plugin.verify_certificate)
                ) as client,
            ):
                response = client.request(
                    method, url, content=json.dumps(payload), headers=headers, **kw
                )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _from_exception(exc, self.privacy_url, self._secrets)
        return _from_response(response, self.privacy_url, self._secrets)


class JSONSender(_HTTPSender):
    """``json://`` and ``jsons://``: apprise's payload plus the idempotency key."""

    def _payload(self, message: Message) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "version": "1.0",
            "title": message.title,
            "message": message.body,
            "attachments": [],
            "type": "info",
        }
        for key, value in self._plugin.payload_extras.items():  # apprise's :key=value
            if key in payload:
                renamed = payload.pop(key)
                if value:
                    payload[value] = renamed
            else:
                payload[key] = value
        payload["alert_id"] = message.alert_id
        if message.alert_ids:
            payload["alert_ids"] = list(message.alert_ids)
        return payload

    def deliver(self, message: Message) -> Delivery:
        plugin = self._plugin
        auth = (plugin.user, plugin.password or "") if plugin.user else None
        return self._request(
            plugin.method,
            self._base() + (plugin.fullpath or ""),
            self._payload(message),
            headers={**plugin.headers, "Idempotency-Key": clean_line(message.alert_id)},
            params=plugin.params,
            auth=auth,
        )


class MattermostSender(_HTTPSender):
    """``mmost://`` and ``mmosts://`` incoming webhooks: one post per channel."""

    limit: int | None = MATTERMOST_LIMIT

    def deliver(self, message: Message) -> Delivery:
        plugin = self._plugin
        url = f"{self._base()}{plugin.fullpath.rstrip('/')}/hooks/{plugin.token}"
        payload: dict[str, Any] = {
            "text": message.body,
            "username": plugin.user or "News monitor",
            "props": {"monitor_alert_id": message.alert_id},
        }
        if plugin.icon_url:
            payload["icon_url"] = plugin.icon_url
        for channel in [name for _, name in plugin.targets] or [None]:
            one = payload if channel is None else {**payload, "channel": channel}
            delivery = self._request("POST", url, one)
            if delivery.outcome is not SENT:
                return delivery
        return Delivery(SENT)


def make_sender(url: str, *, timeout: float) -> Sender:
    """The sender for an apprise URL (see the module docstring for who sends what).

    Raises:
        ValueError: apprise cannot load the URL; the message shows its privacy form only.
    """
    scheme = scheme_of(url)
    if scheme == "console":
        return ConsoleSender()
    secrets = url_secrets(url)
    plugin = instantiate(url, secrets)
    if plugin is None:
        raise ValueError(f"apprise cannot load {fallback_privacy(url)}")
    if scheme in ("json", "jsons"):
        return JSONSender(plugin, url, timeout=timeout, secrets=secrets)
    if scheme in ("mmost", "mmosts") and getattr(plugin, "mode", "webhook") == "webhook":
        return MattermostSender(plugin, url, timeout=timeout, secrets=secrets)
    return AppriseSender(plugin, url, timeout=timeout, secrets=secrets)
