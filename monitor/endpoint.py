"""The operations endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` over HTTP.

Off unless the config has ``http: {listen: HOST:PORT}``. A stdlib threading server in a
daemon thread of the daemon process; answers are small and built on request:

- ``/healthz``: 200 ``ok`` while the scheduler runs and the database answers a query;
  503 with the reason otherwise (a liveness probe: restart me).
- ``/readyz``: 200 once the first poll cycle has finished and while the daemon is not
  stopping; 503 otherwise (a readiness probe: do not count on me yet).
- ``/metrics``: the Prometheus text format (see ``monitor.metrics``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import HttpConfig
from .errors import MonitorError

__all__ = ["Check", "Endpoint"]

log = logging.getLogger("monitor.endpoint")

Check = Callable[[], str | None]  # None when fine, else the reason it is not


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Without TCP_NODELAY a keep-alive answer waits ~40 ms (Nagle + delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http.client_error client=%s", client_address[0], exc_info=True)


class Endpoint:
    """Serves the three paths from a background thread until ``close``.

    Args:
        config: where to listen.
        health: the liveness check.
        ready: the readiness check.
        metrics: returns ``(content type, body)`` of the metrics page.

    Raises:
        MonitorError: the address cannot be listened on (in use, not local …).
    """

    def __init__(self, config: HttpConfig, *, health: Check, ready: Check,
                 metrics: Callable[[], tuple[str, bytes]]) -> None:  # fmt: skip
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/healthz": lambda: _probe(health),
            "/readyz": lambda: _probe(ready),
            "/metrics": lambda: (200, *metrics()),
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "news-monitor"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                try:
                    status, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                except Exception as exc:  # an answer, never a dropped connection
                    log.exception("http.failed path=%s", self.path)
                    status, ctype, body = 500, "text/plain", f"{type(exc).__name__}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_GET

        try:
            self._server = _Server((config.host, config.port), Handler)
        except OSError as exc:
            raise MonitorError(f"http.listen: cannot listen on {config.listen}: "
                               f"{exc.strerror or exc}") from None  # fmt: skip
        self._thread = threading.Thread(target=self._server.serve_forever, name="http",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        log.info("http.listening address=%s", self.address)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _probe(check: Check) -> tuple[int, str, bytes]:
    reason = check()
    if reason is None:
        return 200, "text/plain; charset=utf-8", b"ok\n"
    return 503, "text/plain; charset=utf-8", (reason + "\n").encode()
