"""The network layer under the fetcher: an httpx transport over httpcore's public API.

Two things httpx does not do on its own, both done here at the socket level:

- **Total deadline.** The fetcher sets ``DEADLINE`` (a ``time.monotonic()`` instant) for
  the thread doing a fetch; every DNS lookup, connect, TLS handshake, read and write is
  given at most the time left, so a server dripping one byte a second (in the headers or
  the body) still ends at the deadline.
- **Connected-address check (SSRF, issue 6).** A guarded backend resolves the host
  itself, refuses forbidden addresses, connects to a vetted IP literal (no second DNS
  lookup to rebind), and checks ``getpeername()`` of the socket it got.

Guarded and unguarded requests use separate transports, so a pooled connection opened
for a configured source is never reused for an untrusted URL.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from monitor._fetch_guard import AddressPolicy

__all__ = ["DEADLINE", "CoreTransport", "GuardedBackend", "Refused", "make_transport"]

DEADLINE: ContextVar[float | None] = ContextVar("monitor_fetch_deadline", default=None)

_Resolved = list[tuple[int, str]]  # (address family, IP literal)


class Refused(Exception):
    """An address or URL the guard refuses; the fetcher maps it to ``FetchRefused``."""


def bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    """The timeout for one blocking step: at most the time left before ``DEADLINE``.

    Raises:
        exc: The deadline has already passed.
    """
    deadline = DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("total deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read and write respects ``DEADLINE``."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        limit = bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, limit))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, vet (when ``policy`` is set), connect to the vetted IP, check the peer.

    Args:
        policy: The SSRF policy, or None to connect anywhere (configured sources).
        executor: Runs ``getaddrinfo`` so a hanging resolver cannot outlast the deadline.
    """

    def __init__(self, policy: AddressPolicy | None, executor: Executor) -> None:
        self._policy = policy
        self._executor = executor
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.vet(host, resolve(self._executor, host, port, timeout))
        error: Exception = httpcore.ConnectError(f"no address for {host}")
        for _family, ip in addresses:
            limit = bounded(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(ip, port, limit, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
                continue
            self._check_peer(host, stream)
            return DeadlineStream(stream)
        raise error

    def vet(self, host: str, addresses: _Resolved) -> _Resolved:
        if self._policy is None:
            return addresses
        reasons = [self._policy.refusal(host, ipaddress.ip_address(ip)) for _, ip in addresses]
        allowed = [addr for addr, reason in zip(addresses, reasons, strict=True) if not reason]
        if not allowed:
            raise Refused(next(r for r in reasons if r))
        return allowed

    def _check_peer(self, host: str, stream: httpcore.NetworkStream) -> None:
        if self._policy is None:
            return
        peer = stream.get_extra_info("server_addr")
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
        reason = self._policy.refusal(host, ip)
        if reason:
            stream.close()
            raise Refused(f"connected to {reason}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise Refused("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def resolve(executor: Executor, host: str, port: int, timeout: float | None) -> _Resolved:
    """Resolve ``host`` to (family, IP) pairs within the deadline.

    Raises:
        httpcore.ConnectTimeout: The lookup outlasted the time left.
        httpcore.ConnectError: The name does not resolve.
    """
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))]
    future = executor.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=bounded(timeout, httpcore.ConnectTimeout))
    except FutureTimeout as exc:
        raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys((info[0], str(info[4][0])) for info in infos))


class _BodyStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class CoreTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool (httpcore exceptions pass through).

    Args:
        pool: The httpcore connection pool or proxy.
        precheck: Called with each request's host and port before sending (used to
            vet the target when a proxy, not this process, connects to it).
    """

    def __init__(
        self,
        pool: httpcore.ConnectionPool | httpcore.HTTPProxy,
        precheck: Callable[[str, int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._precheck = precheck

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if self._precheck is not None:
            self._precheck(url.host, url.port or (443 if url.scheme == "https" else 80))
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream if isinstance(request.stream, Iterable) else None,
            extensions=request.extensions,
        )
        resp = self._pool.handle_request(core)
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_BodyStream(resp.stream),
            extensions=resp.extensions,
            request=request,
        )

    def close(self) -> None:
        self._pool.close()


def make_transport(
    *,
    policy: AddressPolicy | None,
    verify: bool,
    proxy: str | None,
    executor: Executor,
) -> CoreTransport:
    """Build one transport: guarded when ``policy`` is set, TLS verified when ``verify``.

    With a proxy the proxy connects to the target, so a guarded transport vets the
    target's DNS answers before each request instead (best effort: the proxy resolves
    again).
    """
    context = httpx.create_ssl_context(verify=verify, trust_env=False)
    limits: dict[str, Any] = {"max_connections": 64, "keepalive_expiry": 30.0}
    if proxy is None:
        backend = GuardedBackend(policy, executor)
        return CoreTransport(
            httpcore.ConnectionPool(ssl_context=context, network_backend=backend, **limits)
        )
    pool = httpcore.HTTPProxy(
        proxy_url=proxy,
        ssl_context=context,
        network_backend=GuardedBackend(None, executor),
        **limits,
    )
    return CoreTransport(pool, None if policy is None else _proxy_precheck(policy, executor))


def _proxy_precheck(policy: AddressPolicy, executor: Executor) -> Callable[[str, int], None]:
    backend = GuardedBackend(policy, executor)

    def check(host: str, port: int) -> None:
        backend.vet(host, resolve(executor, host, port, None))

    return check
