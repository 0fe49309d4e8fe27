"""Real servers on 127.0.0.1 for the tests: an HTTP server with routes, a webhook receiver."""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HTTPServer", "Request", "Response", "WebhookReceiver"]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response | None]


class _NoDelayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Without TCP_NODELAY every keep-alive answer stalls ~40 ms (Nagle + delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (size caps, deadlines) are part of the tests.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class HTTPServer:
    """A threaded HTTP server on 127.0.0.1:0.

    Routes map a path (without query) to either a ``Response`` or a handler
    ``(Request) -> Response | None``; a handler returning None has written the answer
    itself through ``request.handler`` (for drips, hangs and other misbehaviour).
    Every request is recorded in ``requests``. With ``ssl_context`` it serves HTTPS.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Response | Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, dict(self.headers.items()), body)
                req.handler = self  # type: ignore[attr-defined]
                with outer._lock:
                    outer.requests.append(req)
                route = outer.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    resp: Response | None = Response(404, b"not found")
                elif isinstance(route, Response):
                    resp = route
                else:
                    resp = route(req)
                if resp is None:
                    return
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(resp.body)

            do_GET = do_POST = do_HEAD = do_PUT = _handle

        self._server = _NoDelayServer(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if ssl_context is not None:  # HTTPS with the caller's certificate
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> HTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def __enter__(self) -> HTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebhookReceiver(HTTPServer):
    """An HTTP server that records JSON posts to ``/hook`` (chat webhooks).

    ``script`` is a list of statuses to answer in turn (then 200 forever).
    """

    def __init__(self, script: list[int] | None = None) -> None:
        super().__init__()
        self.script = list(script or [])
        self.received: list[dict[str, Any]] = []
        self.routes["/hook"] = self._hook

    def _hook(self, req: Request) -> Response:
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            try:
                payload = json.loads(req.body or b"{}")
            except ValueError:
                payload = {"raw": req.body.decode("utf-8", "replace")}
            with self._lock:
                self.received.append(payload)
        return Response(status, b"{}", {"Content-Type": "application/json"})
