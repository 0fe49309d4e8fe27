"""The notify edge against real servers on 127.0.0.1: aiosmtpd for email, HTTP for chat."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from monitor import _render, _senders, notify
from monitor._render import CHAT_LIMIT, MATTERMOST_LIMIT, SUBJECT_LIMIT, cut, escape_markdown
from monitor.errors import ConfigError
from monitor.notify import (
    Notifier,
    make_notifier,
    privacy_url,
    redact,
    render_alert,
    render_digest,
)
from monitor.types import Alert, Delivery, DeliveryOutcome
from tests.servers import HTTPServer, Request, Response, WebhookReceiver
from tests.smtp import SMTPServer

SMTP_USER = "monitor"
SMTP_PASSWORD = "s3cret@pass/word"  # '@' and '/' must survive URL quoting
HOOK_TOKEN = "hooktoken9f8e7d6c5b4a"
JSON_PASSWORD = "jsonpw-71c3a9"

SENT = DeliveryOutcome.SENT
RETRY = DeliveryOutcome.RETRY
PERMANENT = DeliveryOutcome.PERMANENT

SNIPPET = (
    "Officials said US Forces Japan will be upgraded to a joint force headquarters "
    "by March, in step with Japan's new Joint Operations Command."
)


def span(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, start + len(part)


def make_alert(**changes: Any) -> Alert:
    alert = Alert(
        key="alert-7f3a",
        watchlist="usfj",
        target="desk",
        story_id=7,
        title="US Forces Japan to become a joint force headquarters",
        source="DoD News",
        link="https://example.org/news/usfj-jfhq?id=1&ref=rss",
        published=datetime(2024, 7, 28, 9, 30, tzinfo=UTC),
        snippet=SNIPPET,
        terms=('"US Forces Japan"', '"joint force headquarters"'),
        fields=("title", "body"),
        highlights=(
            span(SNIPPET, "US Forces Japan"),
            span(SNIPPET, "joint force headquarters"),
        ),
    )
    return replace(alert, **changes)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer(credentials=(SMTP_USER, SMTP_PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    # Mattermost posts to /hooks/TOKEN, our JSON tests to /hooks/TOKEN/json.
    server.routes[f"/hooks/{HOOK_TOKEN}"] = server.routes["/hook"]
    server.routes[f"/hooks/{HOOK_TOKEN}/json"] = server.routes["/hook"]
    with server:
        yield server


@pytest.fixture
def hook(receiver: WebhookReceiver) -> WebhookReceiver:
    """The webhook receiver, emptied (stopping a server per test costs half a second)."""
    receiver.script.clear()
    receiver.received.clear()
    receiver.requests.clear()
    return receiver


def email_notifier(smtp: SMTPServer, **kw: Any) -> Notifier:
    return make_notifier("desk-email", smtp.apprise_url(), timeout=5, **kw)


def json_url(server: HTTPServer) -> str:
    return f"json://bot:{JSON_PASSWORD}@127.0.0.1:{server.port}/hooks/{HOOK_TOKEN}/json"


def mmost_url(server: HTTPServer, query: str = "") -> str:
    return f"mmost://127.0.0.1:{server.port}/{HOOK_TOKEN}{query}"


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


# -- email ---------------------------------------------------------------------------------


def test_email_has_subject_both_parts_link_and_alert_id(smtp: SMTPServer) -> None:
    alert = make_alert(follows="Japan sets up Joint Operations Command", sources=("Kyodo",))

    delivery = email_notifier(smtp).send(alert)

    assert delivery == Delivery(SENT)
    [msg] = smtp.messages
    assert msg["Subject"] == alert.title
    assert msg["X-Monitor-Alert-Id"] == "alert-7f3a"
    assert smtp.envelopes == [("monitor@example.org", ["desk@example.org"])]
    plain, html = parts(msg)
    assert 'href="https://example.org/news/usfj-jfhq?id=1&amp;ref=rss"' in html
    assert "<b>US Forces Japan</b>" in html and "<b>joint force headquarters</b>" in html
    assert "2024-07-28 09:30 UTC" in html and "DoD News" in html and "usfj" in html
    assert "Follows: Japan sets up Joint Operations Command" in html
    assert "<li>DoD News</li>" in html and "<li>Kyodo</li>" in html
    # The plain part apprise derives reads on its own: labels, link, why, no markup.
    assert "https://example.org/news/usfj-jfhq?id=1&ref=rss" in plain
    assert "Source: DoD News" in plain and "Watchlist: usfj" in plain
    assert 'Why this fired: matched "US Forces Japan", "joint force headquarters"' in plain
    assert "in title, body" in plain
    assert "<" not in plain and "&amp;" not in plain


def test_email_without_link_or_date_still_reads(smtp: SMTPServer) -> None:
    email_notifier(smtp).send(make_alert(link="javascript:alert(1)", published=None))

    plain, html = parts(smtp.messages[0])
    assert "javascript" not in html
    assert "Link: none" in plain and "date unknown" in plain


@pytest.mark.parametrize(
    ("knob", "outcome", "code"),
    [
        ("refuse_recipients", PERMANENT, "SMTP 550"),
        ("refuse_sender", PERMANENT, "SMTP 553"),
        ("defer_recipients", RETRY, "SMTP 451"),
    ],
)
def test_email_refusals(smtp: SMTPServer, knob: str, outcome: DeliveryOutcome, code: str) -> None:
    setattr(smtp, knob, True)

    delivery = email_notifier(smtp).send(make_alert())

    assert delivery.outcome is outcome
    assert delivery.error is not None and code in delivery.error
    assert smtp.messages == []


def test_email_wrong_password_is_permanent(smtp: SMTPServer) -> None:
    url = smtp.apprise_url().replace(quote(SMTP_PASSWORD, safe=""), "wrong-password")

    delivery = make_notifier("desk-email", url, timeout=5).send(make_alert())

    assert delivery.outcome is PERMANENT
    assert delivery.error is not None and "SMTP 535" in delivery.error
    assert "wrong-password" not in delivery.error


def test_email_server_down_is_retry_then_delivered_once(smtp: SMTPServer) -> None:
    notifier = email_notifier(smtp)
    smtp.down()

    down = notifier.send(make_alert())
    smtp.up()
    up = notifier.send(make_alert())

    assert down.outcome is RETRY and down.error is not None
    assert "127.0.0.1" in down.error
    assert up == Delivery(SENT)
    assert len(smtp.messages) == 1


def test_each_send_is_classified_on_its_own(smtp: SMTPServer) -> None:
    """Two targets sending at once: one refuses, the other's outcome is not affected."""
    with SMTPServer(credentials=(SMTP_USER, SMTP_PASSWORD)) as refusing:
        refusing.refuse_recipients = True
        results: dict[str, Delivery] = {}

        def send(name: str, server: SMTPServer) -> None:
            results[name] = email_notifier(server).send(make_alert())

        threads = [
            threading.Thread(target=send, args=(name, server))
            for name, server in [("ok", smtp), ("refused", refusing)] * 3
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results["ok"] == Delivery(SENT)
    assert results["refused"].outcome is PERMANENT
    assert logging.getLogger("apprise").level == logging.NOTSET  # put back after the sends


# -- chat ----------------------------------------------------------------------------------


def test_json_payload_carries_markdown_and_alert_id(hook: WebhookReceiver) -> None:
    notifier = make_notifier("ops-json", json_url(hook) + "?:source=news-monitor", timeout=5)

    delivery = notifier.send(make_alert())

    assert delivery == Delivery(SENT)
    [payload] = hook.received
    assert payload["alert_id"] == "alert-7f3a"
    assert payload["title"] == make_alert().title
    assert payload["source"] == "news-monitor"  # apprise's :key=value payload extras
    assert payload["version"] == "1.0" and payload["type"] == "info"
    message = payload["message"]
    assert "[US Forces Japan to become a joint force headquarters]" in message
    assert "(https://example.org/news/usfj-jfhq?id=1&ref=rss)" in message
    assert "**US Forces Japan**" in message and "**joint force headquarters**" in message
    assert "DoD News" in message and "usfj" in message
    [request] = hook.requests_to(f"/hooks/{HOOK_TOKEN}/json")
    assert request.headers["Idempotency-Key"] == "alert-7f3a"
    assert request.headers["Authorization"] == httpx.BasicAuth("bot", JSON_PASSWORD)._auth_header


def test_mattermost_payload(hook: WebhookReceiver) -> None:
    notifier = make_notifier("ops-chat", mmost_url(hook, "?channel=ops&botname=Monitor"))

    delivery = notifier.send(make_alert(follows="Japan sets up a joint command"))

    assert delivery == Delivery(SENT)
    [payload] = hook.received
    assert payload["channel"] == "ops"
    assert payload["username"] == "Monitor"
    assert payload["props"] == {"monitor_alert_id": "alert-7f3a"}
    assert "Follows: Japan sets up a joint command" in payload["text"]
    assert "Why this fired" in payload["text"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (500, RETRY),
        (502, RETRY),
        (503, RETRY),
        (408, RETRY),
        (400, PERMANENT),
        (401, PERMANENT),
        (404, PERMANENT),
        (301, PERMANENT),
    ],
)
@pytest.mark.parametrize("scheme", ["json", "mmost"])
def test_webhook_status(
    hook: WebhookReceiver, scheme: str, status: int, outcome: DeliveryOutcome
) -> None:
    hook.script = [status]
    url = json_url(hook) if scheme == "json" else mmost_url(hook)

    delivery = make_notifier("chat", url, timeout=5).send(make_alert())

    assert delivery.outcome is outcome
    assert delivery.error is not None and f"HTTP {status}" in delivery.error
    assert delivery.retry_after is None
    assert hook.received == []


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_webhook_429_retry_after(form: str) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=121), usegmt=True)
    retry_after = "120" if form == "seconds" else later
    with HTTPServer() as server:
        server.routes[f"/hooks/{HOOK_TOKEN}"] = Response(
            429, b"slow down", {"Retry-After": retry_after}
        )
        delivery = make_notifier("chat", mmost_url(server)).send(make_alert())

    assert delivery.outcome is RETRY
    assert delivery.retry_after is not None and 100 <= delivery.retry_after <= 121


def test_webhook_unreachable_and_slow_are_retry() -> None:
    server = HTTPServer().start()
    url = json_url(server)
    server.stop()  # nothing listens on that port any more

    refused = make_notifier("chat", url, timeout=2).send(make_alert())

    def hang(req: Request) -> Response:
        time.sleep(1.5)
        return Response(200)

    with HTTPServer() as slow:
        slow.routes[f"/hooks/{HOOK_TOKEN}/json"] = hang
        timed_out = make_notifier("chat", json_url(slow), timeout=0.3).send(make_alert())

    assert refused.outcome is RETRY and "ConnectError" in str(refused.error)
    assert timed_out.outcome is RETRY and "timed out" in str(timed_out.error)


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, SENT), (400, PERMANENT), (500, RETRY), (429, RETRY)]
)
def test_other_apprise_services_are_classified_from_apprise_logs(
    hook: WebhookReceiver, status: int, outcome: DeliveryOutcome
) -> None:
    """ntfy goes through apprise: the status comes from its log record, the text is plain."""
    hook.routes["/"] = Response(status, b"{}", {"Content-Type": "application/json"})
    url = f"ntfy://bot:{JSON_PASSWORD}@127.0.0.1:{hook.port}/alerts"

    delivery = make_notifier("phone", url, timeout=5).send(make_alert(title="*Drill* @all"))

    assert delivery.outcome is outcome
    [request] = hook.requests_to("/")
    payload = json.loads(request.body)
    assert payload["topic"] == "alerts" and payload["title"] == "*Drill* @all"
    assert "Source:    DoD News" in payload["message"]  # the text form, not Markdown
    if status != 200:
        assert delivery.error is not None and f"error={status}" in delivery.error
        assert JSON_PASSWORD not in delivery.error


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (httpx.ConnectError("refused"), RETRY),
        (httpx.ConnectTimeout("slow"), RETRY),
        (httpx.ReadTimeout("slow"), RETRY),
        (httpx.WriteTimeout("slow"), RETRY),
        (httpx.PoolTimeout("slow"), RETRY),
        (httpx.ReadError("reset"), RETRY),
        (httpx.WriteError("reset"), RETRY),
        (httpx.CloseError("reset"), RETRY),
        (httpx.RemoteProtocolError("garbage"), RETRY),
        (httpx.ProxyError("proxy"), RETRY),
        (httpx.LocalProtocolError("bad header"), PERMANENT),
        (httpx.UnsupportedProtocol("ftp"), PERMANENT),
        (httpx.InvalidURL("bad"), PERMANENT),
        (httpx.TooManyRedirects("loop"), PERMANENT),
        (httpx.DecodingError("gzip"), PERMANENT),
    ],
)
def test_every_httpx_error_is_mapped(exc: Exception, outcome: DeliveryOutcome) -> None:
    assert _senders._from_exception(exc, "json://h", ()).outcome is outcome


def test_every_httpx_transport_error_is_in_the_table() -> None:
    """A new httpx transport error fails here until it is classified above."""
    known = {
        httpx.TransportError,
        httpx.TimeoutException,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.NetworkError,
        httpx.ConnectError,
        httpx.ReadError,
        httpx.WriteError,
        httpx.CloseError,
        httpx.ProtocolError,
        httpx.LocalProtocolError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
        httpx.UnsupportedProtocol,
    }

    def subclasses(cls: type[Exception]) -> set[type[Exception]]:
        found = {cls}
        for sub in cls.__subclasses__():
            found |= subclasses(sub)
        return found

    assert subclasses(httpx.TransportError) == known


# -- hostile text --------------------------------------------------------------------------

HOSTILE = {
    "crlf": "Breaking\r\nBcc: victim@example.net\r\n\r\nInjected body",
    "script": "<script>alert(1)</script> drill",
    "img": '<img src=x onerror="alert(1)"> exercise',
    "mentions": "@everyone @here @channel @all <@U123> <!here> alert",
    "markdown": "**bold** _it_ [x](https://evil.example) `code` # head > quote | t ~ s",
    "line-start": "- 1. + item",
    "long": "日本" * 5000,
    "nul": "nul\x00byte and lone \ud800 surrogate \udfff end",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_title_in_email_is_harmless(smtp: SMTPServer, kind: str) -> None:
    title = HOSTILE[kind]

    delivery = email_notifier(smtp).send(make_alert(title=title, snippet=title, highlights=()))

    assert delivery == Delivery(SENT)
    [msg] = smtp.messages
    assert smtp.envelopes[0][1] == ["desk@example.org"]
    assert msg["Bcc"] is None
    subject = str(msg["Subject"])
    assert "\r" not in subject and "\n" not in subject and len(subject) <= SUBJECT_LIMIT
    plain, html = parts(msg)
    assert "<script" not in html and "<img" not in html
    assert "\x00" not in plain + html + subject
    # CR/LF never reach a header: the text stays inside the one-line Subject.
    assert not [name for name, value in msg.items() if "victim" in value and name != "Subject"]
    if kind == "long":
        assert subject.endswith("…") and len(html) < 5000
    if kind == "nul":
        assert subject == "nulbyte and lone surrogate end"


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("scheme", ["json", "mmost"])
def test_hostile_title_in_chat_is_harmless(hook: WebhookReceiver, kind: str, scheme: str) -> None:
    title = HOSTILE[kind]
    url = json_url(hook) if scheme == "json" else mmost_url(hook)

    delivery = make_notifier("chat", url).send(
        make_alert(title=title, snippet=title, highlights=())
    )

    assert delivery == Delivery(SENT)
    [payload] = hook.received
    text = payload["message"] if scheme == "json" else payload["text"]
    limit = CHAT_LIMIT if scheme == "json" else MATTERMOST_LIMIT
    assert len(text) <= limit
    for mention in ("@everyone", "@here", "@channel", "@all", "<@U123>", "<!here>"):
        assert mention not in text and mention not in payload.get("title", "")
    assert "**bold**" not in text and "[x](https://evil" not in text and "`code`" not in text
    assert not re.search(r"(?<!\\)<(script|img)", text)
    assert "\x00" not in text and "\r" not in text
    assert not any(line.startswith(("- 1", "#", ">  ")) for line in text.splitlines())
    if kind == "markdown":
        assert r"\*\*bold\*\* \_it\_ \[x\]\(https://evil.example\) \`code\` \#" in text
    if kind == "long":
        assert "…" in text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a*b_c", r"a\*b\_c"),
        ("[x](y)", r"\[x\]\(y\)"),
        ("# h", r"\# h"),
        ("- item", r"\- item"),
        ("+ item", r"\+ item"),
        ("12. item", r"12\. item"),
        ("3) item", r"3\) item"),
        ("a - b 1. c", "a - b 1. c"),
        ("x\n- y", "x\n\\- y"),
        ("`t` ~s~ |p| > q", r"\`t\` \~s\~ \|p\| \> q"),
        ("back\\slash", r"back\\slash"),
        ("@here", "@\u200bhere"),
        ("<!channel>", "\\<\u200b!channel\\>"),
        ("&#64;all", "\\&\\#64;all"),
    ],
)
def test_escape_markdown(raw: str, escaped: str) -> None:
    assert escape_markdown(raw) == escaped


def test_cut_keeps_characters_whole() -> None:
    assert cut("abc", 3) == "abc"
    assert cut("abcdef", 4) == "abc…"
    assert cut("cafe\u0301s", 5) == "caf…"  # never between 'e' and its accent
    assert cut("ok 👍🏽 fine", 5) == "ok…"  # nor between an emoji and its skin tone


# -- secrets -------------------------------------------------------------------------------


def secrets_absent(records: list[logging.LogRecord], *texts: str | None) -> None:
    seen = [r.getMessage() for r in records] + [t or "" for t in texts]
    for secret in (SMTP_PASSWORD, "s3cret%40pass", HOOK_TOKEN, JSON_PASSWORD):
        assert not [line for line in seen if secret in line], secret


def test_no_secret_in_logs_or_errors(
    smtp: SMTPServer, hook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    email = email_notifier(smtp)
    errors = [email.send(make_alert()).error]
    smtp.refuse_recipients = True
    errors.append(email.send(make_alert()).error)
    smtp.down()
    errors.append(email.send(make_alert()).error)
    for url in (json_url(hook), mmost_url(hook)):
        hook.script = [400]
        errors.append(make_notifier("chat", url).send(make_alert()).error)
    with pytest.raises(ConfigError) as bad:
        make_notifier("broken", f"mmost://{HOOK_TOKEN}@/?mode=nonsense")

    assert len(caplog.records) > 20  # apprise's DEBUG records were captured too
    assert any(r.name == "apprise" and r.levelno == logging.DEBUG for r in caplog.records)
    secrets_absent(caplog.records, *errors, str(bad.value))


def test_redact_and_privacy_url() -> None:
    assert redact("token abc and abcdef", ["abc", "abcdef", ""]) == "token *** and ***"
    email = privacy_url(f"mailtos://user:{quote(SMTP_PASSWORD, safe='')}@smtp.example.org")
    assert email.startswith("mailtos://user:****@smtp.example.org")
    assert "s3cret" not in email
    assert HOOK_TOKEN not in privacy_url(f"mmosts://chat.example.org/{HOOK_TOKEN}")
    assert HOOK_TOKEN not in privacy_url(f"json://hooks.example.org/x/{HOOK_TOKEN}")
    assert privacy_url("console://") == "console://"
    assert privacy_url(f"nosuch://u:{JSON_PASSWORD}@h.example.org/{HOOK_TOKEN}") == (
        "nosuch://u:****@h.example.org/…"
    )


def test_unloadable_url_is_a_redacted_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        make_notifier("desk", f"mailto://user:{JSON_PASSWORD}@?to=not-an-address")

    assert isinstance(error.value, ValueError)
    assert "notifiers.desk" in str(error.value)
    assert JSON_PASSWORD not in str(error.value)


# -- digests, templates, console -----------------------------------------------------------


def digest_alerts(n: int) -> list[Alert]:
    return [
        make_alert(key=f"alert-{i}", title=f"Story number {i}", link=f"https://example.org/{i}")
        for i in range(n)
    ]


def test_digest_email_and_chat(smtp: SMTPServer, hook: WebhookReceiver) -> None:
    alerts = digest_alerts(3)

    by_email = email_notifier(smtp).send_digest(alerts, title="Hourly digest: usfj")
    by_chat = make_notifier("chat", json_url(hook)).send_digest(alerts, title="Hourly digest")

    assert by_email == by_chat == Delivery(SENT)
    [msg] = smtp.messages
    assert msg["Subject"] == "Hourly digest: usfj"
    assert msg["X-Monitor-Alert-Id"].startswith("digest-")
    plain, html = parts(msg)
    for i in range(3):
        assert f"Story number {i}" in plain and f"https://example.org/{i}" in plain
    assert "3 stories" in plain
    [payload] = hook.received
    assert payload["alert_ids"] == ["alert-0", "alert-1", "alert-2"]
    assert payload["alert_id"] == msg["X-Monitor-Alert-Id"]  # same alerts, same key
    assert payload["message"].count("Story number") == 3


def test_digest_fits_the_channel_limit() -> None:
    title, body = render_digest(digest_alerts(200), "markdown", title="Daily", limit=CHAT_LIMIT)

    assert len(body) <= CHAT_LIMIT
    assert "200 stories" in body and "more." in body
    assert title == "Daily"
    with pytest.raises(ValueError):
        make_notifier("c", "console://").send_digest([], title="empty")


def test_templates_dir_overrides_one_template(tmp_path: Path, hook: WebhookReceiver) -> None:
    (tmp_path / "alert_chat.md").write_text("Custom: {{ alert.title }} via {{ alert.source }}\n")
    alert = make_alert(title="A *starred* title")

    make_notifier("chat", json_url(hook), templates_dir=tmp_path).send(alert)
    _, html = render_alert(alert, "html", templates_dir=tmp_path)  # not overridden

    assert hook.received[0]["message"] == "Custom: A \\*starred\\* title via DoD News\n"
    assert "Why this fired" in html


@pytest.mark.parametrize(
    "template",
    ["{{ alert.nosuch }}", "{{ alert.__class__.__mro__ }}", "{% for %}", "{{ ''.__class__ }}"],
)
def test_broken_or_unsafe_override_is_a_config_error(tmp_path: Path, template: str) -> None:
    (tmp_path / "alert_email.html").write_text(template)

    with pytest.raises(ConfigError, match="notifiers.desk: templates_dir"):
        make_notifier("desk", "mailto://u:p@example.org", templates_dir=tmp_path)


def test_console_prints_text(capsys: pytest.CaptureFixture[str]) -> None:
    delivery = make_notifier("console", "console://").send(make_alert(title="A\x1b[31m red"))

    out = capsys.readouterr().out
    assert delivery == Delivery(SENT)
    assert "A[31m red" in out and "\x1b" not in out
    assert "https://example.org/news/usfj-jfhq?id=1&ref=rss" in out
    assert "[US Forces Japan]" in out


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert _senders.parse_retry_after(header) == seconds


def test_digest_id_is_stable() -> None:
    assert _senders.digest_id(["b", "a"]) == _senders.digest_id(["a", "b"])
    assert _senders.digest_id(["a"]) != _senders.digest_id(["a", "b"])


def test_json_payload_is_json(hook: WebhookReceiver) -> None:
    """The body is valid JSON even with hostile text (no hand-built strings)."""
    make_notifier("chat", json_url(hook)).send(make_alert(title='"}, {"x": 1'))

    [request] = hook.requests_to(f"/hooks/{HOOK_TOKEN}/json")
    assert json.loads(request.body)["title"] == '"}, {"x": 1'


@pytest.mark.parametrize("module", [notify, _render, _senders])
def test_exports_are_sorted_and_exist(module: Any) -> None:
    assert module.__all__ == sorted(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
