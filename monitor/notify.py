"""The notify edge: one alert (or a digest of several) to one target, with a precise outcome.

::

    Alert ─► render (Jinja2 templates, escaped for the format) ─► send ─► Delivery
             monitor/_render.py                                  monitor/_senders.py

``make_notifier(name, url)`` builds a :class:`Notifier` for one configured target from its
apprise URL (``${ENV}`` already substituted, so it holds secrets). The outbox, retries and
the delivery loop live in the pipeline and storage; they call ``send`` / ``send_digest``
and store the returned :class:`~monitor.types.Delivery`:

- ``SENT``;
- ``RETRY``: timeouts, connection refused, HTTP 408/429/5xx (``retry_after`` from
  ``Retry-After``), SMTP 4xx, any failure we cannot classify;
- ``PERMANENT``: HTTP 4xx other than 408/429 (and 3xx: webhooks are never redirected),
  an SMTP 5xx reply (recipient, sender or login refused), a broken template.

Who sends what: ``console://`` (ours, the default when no notifier is configured) prints
the text form; ``json://``/``jsons://`` and Mattermost webhooks (``mmost://``/
``mmosts://``) are posted by our own thin httpx sender, because we need the status code
and ``Retry-After``; email (``mailto://``/``mailtos://``) and every other scheme go
through apprise, whose failures are classified from its log records. Details, and how
that works, in ``monitor/_senders.py``.

Idempotency: every email carries ``X-Monitor-Alert-Id: <alert.key>``; JSON payloads an
``alert_id`` field (and an ``Idempotency-Key`` header); Mattermost posts
``props.monitor_alert_id``. A digest's key is derived from its alerts' keys.

Secrets: ``Delivery.error``, our logs and apprise's records during a send show only the
privacy form of the URL (:func:`privacy_url`) and pass through :func:`redact`.

Notifiers keep no state between sends and may be used from several threads at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from jinja2 import TemplateError

from ._render import render_alert, render_digest
from ._senders import Message, Sender, digest_id, make_sender, privacy_url, redact
from .errors import ConfigError
from .types import Alert, Delivery, DeliveryOutcome

__all__ = [
    "Notifier",
    "make_notifier",
    "privacy_url",
    "redact",
    "render_alert",
    "render_digest",
]

_log = logging.getLogger(__name__)

_SAMPLE = Alert(
    key="sample",
    watchlist="sample",
    target="sample",
    story_id=0,
    title="Sample title",
    source="Sample source",
    link="https://example.org/a",
    published=datetime(2024, 7, 28, tzinfo=UTC),
    snippet="a sample snippet",
    terms=("sample",),
    fields=("body",),
    highlights=((2, 8),),
    follows="An earlier story",
    sources=("Sample source", "Another outlet"),
)


class Notifier(Protocol):
    """One configured target (an email address, a chat channel, the console)."""

    name: str

    def send(self, alert: Alert) -> Delivery:
        """Render and send one alert.

        Args:
            alert: The alert; ``alert.key`` goes along as the idempotency key.

        Returns:
            The outcome; ``error`` is redacted. Never raises for a channel failure.
        """
        ...

    def send_digest(self, alerts: Sequence[Alert], *, title: str) -> Delivery:
        """Render several alerts as one message and send it.

        Args:
            alerts: The alerts, in the order to list them (at least one).
            title: The digest's title (email subject).

        Returns:
            The outcome, as for :meth:`send`.

        Raises:
            ValueError: ``alerts`` is empty.
        """
        ...


class _Notifier:
    """A :class:`Notifier`: renders for its sender's format, then delivers."""

    def __init__(self, name: str, sender: Sender, templates_dir: Path | None) -> None:
        self.name = name
        self.privacy_url = sender.privacy_url
        self._sender = sender
        self._templates_dir = templates_dir

    def __repr__(self) -> str:
        return f"<Notifier {self.name} {self.privacy_url}>"

    def render(self, alerts: Sequence[Alert], title: str | None = None) -> tuple[str, str]:
        """The (title, body) this notifier would send: one alert, or a digest if titled."""
        fmt, limit, where = self._sender.fmt, self._sender.limit, self._templates_dir
        if title is None:
            return render_alert(alerts[0], fmt, templates_dir=where, limit=limit)
        return render_digest(alerts, fmt, title=title, templates_dir=where, limit=limit)

    def send(self, alert: Alert) -> Delivery:
        return self._deliver([alert], None, alert.key)

    def send_digest(self, alerts: Sequence[Alert], *, title: str) -> Delivery:
        if not alerts:
            raise ValueError("a digest needs at least one alert")
        return self._deliver(alerts, title, digest_id([a.key for a in alerts]))

    def _deliver(self, alerts: Sequence[Alert], title: str | None, key: str) -> Delivery:
        try:
            subject, body = self.render(alerts, title)
        except TemplateError as exc:
            delivery = Delivery(DeliveryOutcome.PERMANENT, f"template error: {exc}")
        else:
            ids = tuple(a.key for a in alerts) if title is not None else ()
            delivery = self._sender.deliver(Message(subject, body, key, ids))
        self._log(key, delivery)
        return delivery

    def _log(self, key: str, delivery: Delivery) -> None:
        level = logging.INFO if delivery.outcome is DeliveryOutcome.SENT else logging.WARNING
        _log.log(
            level,
            "notify target=%s alert_id=%s outcome=%s error=%s",
            self.name,
            key,
            delivery.outcome.value,
            delivery.error,
        )


def make_notifier(
    name: str,
    url: str,
    *,
    templates_dir: Path | None = None,
    timeout: float = 30.0,
) -> Notifier:
    """Build the notifier for one ``notifiers:`` entry.

    Args:
        name: The notifier's name in the config (used in logs and errors).
        url: Its apprise URL with ``${ENV}`` substituted, or ``console://``.
        templates_dir: A directory whose templates override the shipped ones.
        timeout: Seconds allowed for connecting and for each network operation.

    Returns:
        The notifier.

    Raises:
        ConfigError: apprise cannot load the URL, or an override template is broken;
            the message names ``notifiers.<name>`` and shows no secret.
    """
    try:
        sender = make_sender(url.strip(), timeout=timeout)
    except ValueError as exc:
        raise ConfigError(f"notifiers.{name}: {exc}") from exc
    notifier = _Notifier(name, sender, templates_dir)
    try:
        notifier.render([_SAMPLE])
        notifier.render([_SAMPLE], "Sample digest")
    except (TemplateError, OSError) as exc:
        where = f"templates_dir {templates_dir}" if templates_dir else "the shipped templates"
        raise ConfigError(f"notifiers.{name}: {where}: {type(exc).__name__}: {exc}") from exc
    return notifier
