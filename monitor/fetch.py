"""Fetch: the I/O edge that gets feed and page documents over HTTP.

``Fetcher.fetch(FeedState) -> Fetched`` is the one narrow interface the pipeline calls;
``HTTPFetcher`` implements it with httpx (issue 2 "Each poll", issue 6 "Fetching").

Per fetch: a total deadline (``state.timeout``, held at the socket level, so a server
dripping bytes still ends on time), a size cap on the *decompressed* body, at most
``max_redirects`` redirects followed here so each hop is checked, http/https only, TLS
verified unless ``state.verify_tls`` is False (for the configured host only), and a
conditional GET with the stored ETag / Last-Modified.

How answers reach the caller:

- 2xx: ``Fetched`` with the body. 304: ``Fetched(not_modified=True)``, no body.
- ``Fetched.permanent_url``: set when the configured URL was moved by 301/308. Only the
  leading run of permanent redirects counts (301 → B, then 302 → C gives B; a 302 first
  gives None): persist it as the source's new URL.
- 429 and 503 raise ``RetryLater`` (an ``HTTPStatusError``) whose ``retry_after`` is the
  server's Retry-After in seconds from now (integer seconds or an HTTP date; garbage
  and absence give None; clamped to [0, 7 days]). Clamp it to the poll interval with
  ``max(interval, err.retry_after)``, or re-parse ``err.retry_after_raw`` with
  ``parse_retry_after(..., minimum=interval)``.
- 410 raises ``HTTPStatusError`` with ``status == 410``; other 4xx/5xx likewise.
- Everything else that goes wrong raises a ``FetchError`` subclass, mapped in one place
  (``map_errors``) and chained with ``from``. Messages read
  ``"<source>: <problem> (<url without credentials>)"``.

SSRF (issue 6): ``fetch`` trusts the configured URL's host, wherever it points; hops
that leave it, and every hop of ``fetch_untrusted``, may only connect to public
addresses or to what ``allow_private`` opens, checked on the connected socket.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Protocol
from urllib.parse import urljoin

import httpx

from monitor._fetch_answer import Answer
from monitor._fetch_decode import ACCEPT_ENCODING
from monitor._fetch_errors import RetryLater, map_errors, parse_retry_after
from monitor._fetch_guard import AddressPolicy, check_url, host_of, redact, split_userinfo
from monitor._fetch_transport import DEADLINE, CoreTransport, make_transport
from monitor.errors import FetchError, FetchRefused
from monitor.types import FeedState, Fetched

__all__ = [
    "DEFAULT_USER_AGENT",
    "Fetcher",
    "HTTPFetcher",
    "RetryLater",
    "fetch_all",
    "map_errors",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "news-monitor/0.1 (+https://github.com/)"
CONNECT_TIMEOUT = 10.0  # seconds; each step is also cut to the time left
READ_TIMEOUT = 20.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_ACCEPT = {
    "feed": "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8",
    "page": "text/html, application/xhtml+xml;q=0.9, */*;q=0.8",
}


class Fetcher(Protocol):
    """Gets one source's document (the pipeline's only view of the network)."""

    def fetch(self, state: FeedState) -> Fetched:
        """Fetch the source described by ``state``.

        Args:
            state: The source's URL, validators, limits and headers.

        Returns:
            The answer; ``not_modified`` for a 304.

        Raises:
            FetchError: Any failure (only ``FetchError`` subclasses are raised).
        """
        ...


@dataclass(frozen=True, slots=True)
class _Job:
    """One fetch: a source's state plus what the fetcher derived from it."""

    state: FeedState
    trusted: bool
    auth: str | None  # Authorization header from URL userinfo, for the configured host

    @classmethod
    def of(cls, state: FeedState, *, trusted: bool) -> _Job:
        url, userinfo = split_userinfo(state.url.strip())
        auth = None
        if userinfo is not None and trusted:
            token = base64.b64encode(f"{userinfo[0]}:{userinfo[1]}".encode()).decode()
            auth = f"Basic {token}"
        elif userinfo is not None:
            url = state.url  # keep it, so the URL check refuses the userinfo trick
        return cls(replace(state, url=url), trusted, auth)


class HTTPFetcher:
    """Fetches sources over HTTP with httpx; thread-safe (``fetch_all`` uses threads).

    Args:
        user_agent: The User-Agent sent (a source's ``headers`` may override it).
        allow_private: Host names or CIDR networks that untrusted fetches may reach
            although they are not public (tests use ``["127.0.0.1"]``).
        proxy: An http(s) proxy URL for every request, or None.
        max_redirects: Redirects followed per fetch (each hop is checked).

    Raises:
        ValueError: A bad ``allow_private`` entry or proxy URL.
    """

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        allow_private: Sequence[str] = (),
        proxy: str | None = None,
        max_redirects: int = 5,
    ) -> None:
        if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
            raise ValueError(f"proxy: only http(s) proxies are supported, got {redact(proxy)}")
        self._user_agent = user_agent
        self._policy = AddressPolicy.from_allow(allow_private)
        self._proxy = proxy
        self._max_redirects = max_redirects
        self._transports: dict[tuple[bool, bool], CoreTransport] = {}
        self._lock = threading.Lock()
        self._dns = ThreadPoolExecutor(max_workers=8, thread_name_prefix="monitor-dns")

    def fetch(self, state: FeedState) -> Fetched:
        """Fetch a configured source (see the module docstring for the outcomes).

        Raises:
            FetchError: ``FetchTimeout``, ``FetchTooLarge``, ``FetchRefused``,
                ``HTTPStatusError`` (``RetryLater`` for 429/503) or ``FetchError``.
        """
        return self._run(_Job.of(state, trusted=True))

    def fetch_untrusted(self, url: str, *, timeout: float, max_bytes: int) -> Fetched:
        """Fetch a URL found in a feed or page, under the SSRF guard on every hop.

        Raises:
            FetchError: As ``fetch``; ``FetchRefused`` for a forbidden URL or address.
        """
        state = FeedState(
            name=redact(url), url=url, type="page", timeout=timeout, max_bytes=max_bytes
        )
        return self._run(_Job.of(state, trusted=False))

    def close(self) -> None:
        """Close pooled connections and the resolver threads."""
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()
        self._dns.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> HTTPFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, job: _Job) -> Fetched:
        deadline = time.monotonic() + job.state.timeout
        token = DEADLINE.set(deadline)
        try:
            return self._follow(job, deadline)
        finally:
            DEADLINE.reset(token)

    def _follow(self, job: _Job, deadline: float) -> Fetched:
        url, origin, trusted = job.state.url, host_of(job.state.url), job.trusted
        permanent: str | None = None
        moving = True  # still in the leading run of 301/308
        cookies = httpx.Cookies()
        for _ in range(self._max_redirects + 1):
            self._check(job, url, strict=not trusted)
            on_origin = trusted and host_of(url) == origin
            with map_errors(job.state.name, url, deadline):
                result = self._hop(job, url, on_origin, cookies, deadline, permanent)
            if isinstance(result, Fetched):
                return result
            status, url = result
            if trusted and host_of(url) == origin:  # credentials only come from the config
                url = split_userinfo(url)[0]
            moving = moving and status in _PERMANENT
            permanent = url if moving and url != job.state.url else permanent
            trusted = trusted and host_of(url) == origin
        raise FetchError(
            f"{job.state.name}: too many redirects (more than {self._max_redirects}) "
            f"({redact(url)})"
        )

    def _check(self, job: _Job, url: str, *, strict: bool) -> None:
        problem = check_url(url, strict=strict)
        if problem:
            raise FetchRefused(f"{job.state.name}: refused: {problem} ({redact(url)})")

    def _hop(
        self,
        job: _Job,
        url: str,
        on_origin: bool,
        cookies: httpx.Cookies,
        deadline: float,
        permanent: str | None,
    ) -> Fetched | tuple[int, str]:
        """One request; a redirect gives (status, next URL), anything else the result."""
        request = self._request(job, url, on_origin, deadline)
        if cookies:  # the cookie jar's policy checks cost more than a 304 (issue 9)
            cookies.set_cookie_header(request)
        verify = job.state.verify_tls or not on_origin
        response = self._transport(guarded=not on_origin, verify=verify).handle_request(request)
        try:
            if "set-cookie" in response.headers:
                cookies.extract_cookies(response)
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                return response.status_code, urljoin(url, location.strip())
            return Answer(job.state, url, response, permanent).result()
        finally:
            response.close()

    def _request(self, job: _Job, url: str, on_origin: bool, deadline: float) -> httpx.Request:
        state = job.state
        headers = httpx.Headers(
            {
                "User-Agent": self._user_agent,
                "Accept": _ACCEPT.get(state.type, _ACCEPT["feed"]),
                "Accept-Encoding": ACCEPT_ENCODING,
            }
        )
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        if on_origin:  # credentials and extra headers never follow a redirect elsewhere
            for name, value in state.headers:  # replaces ours, whatever the case
                headers[name] = value
            if job.auth:
                headers["Authorization"] = job.auth
        left = max(deadline - time.monotonic(), 0.001)
        timeout = httpx.Timeout(
            min(READ_TIMEOUT, left), connect=min(CONNECT_TIMEOUT, left), pool=min(10.0, left)
        )
        return httpx.Request("GET", url, headers=headers, extensions={"timeout": timeout.as_dict()})

    def _transport(self, *, guarded: bool, verify: bool) -> CoreTransport:
        key = (guarded, verify)
        with self._lock:
            transport = self._transports.get(key)
            if transport is None:
                transport = make_transport(
                    policy=self._policy if guarded else None,
                    verify=verify,
                    proxy=self._proxy,
                    executor=self._dns,
                )
                self._transports[key] = transport
            return transport


def fetch_all(
    fetcher: Fetcher,
    states: Sequence[FeedState],
    *,
    max_workers: int = 16,
    per_host: int = 2,
) -> Iterator[tuple[FeedState, Fetched | FetchError]]:
    """Fetch many sources concurrently, at most ``max_workers`` at once and ``per_host``
    per host, yielding each result as it completes.

    A failure is a value: one source's error never stops the others. A fetcher that
    breaks its contract (raises something other than ``FetchError``) is logged and its
    exception is yielded wrapped in a ``FetchError``.

    Args:
        fetcher: The fetcher (``HTTPFetcher`` is thread-safe).
        states: The sources to fetch.
        max_workers: Concurrent fetches overall.
        per_host: Concurrent fetches to one host.

    Yields:
        (state, Fetched or FetchError), in completion order.
    """
    queues: dict[str, deque[FeedState]] = defaultdict(deque)
    for state in states:
        queues[host_of(state.url)].append(state)
    active: dict[str, int] = defaultdict(int)
    running: dict[Future[Fetched], FeedState] = {}
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="fetch") as pool:
        try:
            _submit_ready(pool, fetcher.fetch, queues, active, running, max_workers, per_host)
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    state = running.pop(future)
                    active[host_of(state.url)] -= 1
                    yield state, _outcome(future, state)
                _submit_ready(pool, fetcher.fetch, queues, active, running, max_workers, per_host)
        finally:
            for future in running:
                future.cancel()


def _submit_ready(
    pool: ThreadPoolExecutor,
    fetch: Callable[[FeedState], Fetched],
    queues: dict[str, deque[FeedState]],
    active: dict[str, int],
    running: dict[Future[Fetched], FeedState],
    max_workers: int,
    per_host: int,
) -> None:
    """Start queued fetches while there is room overall and on their host."""
    for host, queue in queues.items():
        while queue and active[host] < max(1, per_host) and len(running) < max(1, max_workers):
            state = queue.popleft()
            active[host] += 1
            running[pool.submit(fetch, state)] = state


def _outcome(future: Future[Fetched], state: FeedState) -> Fetched | FetchError:
    try:
        return future.result()
    except FetchError as exc:
        return exc
    except Exception as exc:
        log.critical("fetch.unexpected_error source=%s", state.name, exc_info=exc)
        error = FetchError(f"{state.name}: unexpected {type(exc).__name__} ({redact(state.url)})")
        error.__cause__ = exc
        return error
