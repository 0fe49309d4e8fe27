"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the tests.

Usage::

    with SMTPServer(credentials=("monitor", "s3cret")) as smtp:
        url = smtp.apprise_url(to="desk@example.org")   # mailto://…@127.0.0.1:PORT?…
        ...                                               # send through apprise
        msg = smtp.messages[0]                            # an email.message.EmailMessage
        assert msg["Subject"] == "…"

Knobs, all plain attributes read at each SMTP command (flip them at any time):

- ``refuse_recipients``: answer ``550`` to every ``RCPT TO`` (an address refused for good);
- ``refuse_sender``: answer ``553`` to ``MAIL FROM``;
- ``defer_recipients``: answer ``451`` to every ``RCPT TO`` (a transient refusal).

``down()`` closes the listening socket (clients then get "connection refused") and
``up()`` listens again on the same port, so a URL built before ``down()`` works again.
``messages`` holds every accepted message parsed with ``email.policy.default``;
``envelopes`` the matching ``(mail_from, rcpt_tos)`` pairs, to check who really got it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import Awaitable
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, urlencode

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["SMTPServer"]


class _Controller(Controller):
    """An aiosmtpd controller that binds its own socket, so port 0 works and is race-free."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.hostname, self.port))
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock)


class SMTPServer:
    """An SMTP server on 127.0.0.1 that records what it accepts.

    Args:
        credentials: ``(user, password)`` to offer AUTH PLAIN/LOGIN (over plain TCP, as a
            local test server may; a wrong password gets ``535``); None offers no AUTH.
    """

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse_recipients = False
        self.refuse_sender = False
        self.defer_recipients = False
        self.port = 0
        self._lock = threading.Lock()
        self._controller: _Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SMTPServer:
        """Listen on 127.0.0.1 (a free port the first time, the same port after)."""
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        controller.start()
        self.port = controller.port
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def down(self) -> None:
        """Simulate an unreachable server: connections are refused until ``up()``."""
        self.stop()

    def up(self) -> None:
        """Listen again on the same port after ``down()``."""
        if self._controller is None:
            self.start()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------

    def apprise_url(self, to: str = "desk@example.org", sender: str = "monitor@example.org") -> str:
        """An apprise ``mailto://`` URL aimed at this server, without TLS.

        The host is 127.0.0.1 (apprise accepts an IP host); ``from=`` is needed because
        ``user@127.0.0.1`` is not an address apprise accepts; ``mode=insecure`` keeps
        apprise from trying STARTTLS.
        """
        auth = ""
        if self.credentials is not None:
            user, password = self.credentials
            auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        query = urlencode({"from": sender, "to": to, "mode": "insecure"})
        return f"mailto://{auth}127.0.0.1:{self.port}?{query}"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.credentials is not None
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        # handled=False: aiosmtpd then answers 535 itself (True would leave the client hanging).
        return AuthResult(success=ok, handled=False)

    def _record(self, envelope: Envelope) -> None:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))


class _Handler:
    """aiosmtpd hooks that consult the server's knobs."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.server.refuse_sender:
            return "553 5.7.1 Sender address rejected"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.server.refuse_recipients:
            return "550 5.1.1 Recipient address rejected: User unknown"
        if self.server.defer_recipients:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.server._record(envelope)
        return "250 Message accepted for delivery"
