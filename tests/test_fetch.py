"""fetch: a hostile local HTTP server with one route per fault, the SSRF table, errors."""

from __future__ import annotations

import gzip
import inspect
import shutil
import ssl
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpcore
import httpx
import pytest

from monitor import fetch as fetch_module
from monitor._fetch_guard import AddressPolicy, forbidden_reason
from monitor.errors import (
    FetchError,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    HTTPStatusError,
    ParseError,
)
from monitor.fetch import HTTPFetcher, RetryLater, fetch_all, map_errors, parse_retry_after
from monitor.parse import parse_feed
from monitor.types import FeedState, Fetched
from tests.servers import HTTPServer, Request, Response

DATA = Path(__file__).parent / "data"
RSS = (DATA / "rss2.xml").read_bytes()
DEADLINE = 2.0  # seconds, the total deadline the slow routes are fetched with
SLACK = 2.0  # generous bound on top of the deadline: correctness, not a benchmark
MB = 1024 * 1024

try:
    import brotli
except ImportError:  # pragma: no cover
    brotli = None


def _slow(write: Callable[[Request], None]) -> Callable[[Request], None]:
    """A handler that writes its own answer and ignores the client hanging up."""

    def handler(req: Request) -> None:
        try:
            write(req)
        except OSError:
            pass

    return handler


def _hang(req: Request) -> None:
    time.sleep(DEADLINE + 3)


def _hang_after_headers(req: Request) -> None:
    h = req.handler  # type: ignore[attr-defined]
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    h.wfile.flush()
    time.sleep(DEADLINE + 3)


def _drip(req: Request) -> None:
    h = req.handler  # type: ignore[attr-defined]
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(1000):
        h.wfile.write(b"x")
        h.wfile.flush()
        time.sleep(1)


def _drip_headers(req: Request) -> None:
    h = req.handler  # type: ignore[attr-defined]
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(1)


def _endless(req: Request) -> None:
    h = req.handler  # type: ignore[attr-defined]
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
    while True:
        h.wfile.write(chunk)


def _conditional(req: Request) -> Response:
    if req.headers.get("If-None-Match") == '"v1"':
        return Response(304, b"", {"ETag": '"v1"'})
    headers = {
        "Content-Type": "application/rss+xml",
        "ETag": '"v1"',
        "Last-Modified": "Sun, 28 Jul 2024 00:00:00 GMT",
    }
    return Response(200, RSS, headers)


def _redirect(location: str, status: int = 302) -> Response:
    return Response(status, b"", {"Location": location})


def _bomb(encoding: str) -> bytes:
    zeros = b"\0" * (100 * MB)
    if encoding == "gzip":
        return gzip.compress(zeros, compresslevel=9)
    if encoding == "deflate":
        return zlib.compress(zeros, 9)
    assert brotli is not None
    return bytes(brotli.compress(zeros))


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    with HTTPServer() as srv:
        ok = {"Content-Type": "application/rss+xml"}
        srv.routes.update(
            {
                "/feed": Response(200, RSS, ok),
                "/conditional": _conditional,
                "/gzip": Response(200, gzip.compress(RSS), {**ok, "Content-Encoding": "gzip"}),
                "/deflate": Response(
                    200, zlib.compress(RSS), {**ok, "Content-Encoding": "deflate"}
                ),
                "/raw-deflate": Response(
                    200, zlib.compress(RSS)[2:-4], {**ok, "Content-Encoding": "deflate"}
                ),
                "/gzip-bomb": Response(200, _bomb("gzip"), {**ok, "Content-Encoding": "gzip"}),
                "/deflate-bomb": Response(
                    200, _bomb("deflate"), {**ok, "Content-Encoding": "deflate"}
                ),
                "/corrupt-gzip": Response(
                    200, gzip.compress(RSS)[:10] + b"garbage!", {"Content-Encoding": "gzip"}
                ),
                "/truncated-gzip": Response(
                    200, gzip.compress(RSS)[:-30], {"Content-Encoding": "gzip"}
                ),
                "/zstd": Response(200, b"whatever", {"Content-Encoding": "zstd"}),
                "/big": Response(200, b"z" * (2 * MB), ok),
                "/hang": _slow(_hang),
                "/hang-body": _slow(_hang_after_headers),
                "/drip": _slow(_drip),
                "/drip-headers": _slow(_drip_headers),
                "/endless": _slow(_endless),
                "/loop": _redirect("/loop"),
                "/301": _redirect("/feed", 301),
                "/308": _redirect("/feed", 308),
                "/302": _redirect("/feed", 302),
                "/307": _redirect("/feed", 307),
                "/301-then-302": _redirect("/302", 301),
                "/302-then-301": _redirect("/301", 302),
                "/no-location": Response(301, b""),
                "/410": Response(410, b"gone"),
                "/404": Response(404, b"nope"),
                "/500": Response(500, b"oops"),
                "/html": Response(
                    200, (DATA / "challenge.html").read_bytes(), {"Content-Type": "text/html"}
                ),
                "/laughs-utf8": Response(
                    200,
                    (DATA / "billion_laughs.xml").read_bytes(),
                    {"Content-Type": "application/xml"},
                ),
                "/canary": Response(200, b"CANARY-SECRET"),
                "/headers": Response(200, b"<rss/>", ok),
                "/to-localhost": lambda req: _redirect(f"http://localhost:{srv.port}/feed"),
                "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
                "/to-file": _redirect("file:///etc/passwd"),
                "/to-ipv6-loopback": lambda req: _redirect(f"http://[::1]:{srv.port}/feed"),
                "/to-userinfo": lambda req: _redirect(
                    f"http://evil.example@localhost:{srv.port}/feed"
                ),
            }
        )
        text16 = (
            (DATA / "billion_laughs.xml")
            .read_text()
            .replace('encoding="utf-8"', 'encoding="utf-16"')
        )
        srv.routes["/laughs-utf16"] = Response(
            200, text16.encode("utf-16"), {"Content-Type": "application/xml"}
        )
        for n in range(7):  # /chain-N redirects N times before the feed
            srv.routes[f"/chain-{n}"] = (
                _redirect(f"/chain-{n - 1}" if n > 1 else "/feed") if n else Response(200, RSS, ok)
            )
        yield srv


@pytest.fixture(scope="module")
def fetcher() -> Iterator[HTTPFetcher]:
    with HTTPFetcher() as f:
        yield f


def state(server: HTTPServer, path: str, **kw: object) -> FeedState:
    values: dict[str, object] = {"name": "Test source", "url": server.url(path), "timeout": 10.0}
    values.update(kw)
    return FeedState(**values)  # type: ignore[arg-type]


def timed(call: Callable[[], object]) -> tuple[object, float]:
    start = time.monotonic()
    try:
        result: object = call()
    except FetchError as exc:
        result = exc
    return result, time.monotonic() - start


def test_exported_members_sorted() -> None:
    assert fetch_module.__all__ == sorted(fetch_module.__all__)


def test_ok_feed(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    got = fetcher.fetch(state(server, "/feed"))
    assert (got.status, got.content, got.not_modified, got.permanent_url) == (200, RSS, False, None)
    assert got.url == server.url("/feed")
    assert got.headers["content-type"] == "application/rss+xml"
    assert len(parse_feed(got, "Test source")) == 3


def test_conditional_get_304(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    first = fetcher.fetch(state(server, "/conditional"))
    assert (first.etag, first.last_modified) == ('"v1"', "Sun, 28 Jul 2024 00:00:00 GMT")
    second = fetcher.fetch(
        state(server, "/conditional", etag=first.etag, last_modified=first.last_modified)
    )
    assert second.not_modified and second.status == 304 and second.content == b""
    assert (second.etag, second.last_modified) == ('"v1"', "Sun, 28 Jul 2024 00:00:00 GMT")
    sent = server.requests_to("/conditional")[-1].headers
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Sun, 28 Jul 2024 00:00:00 GMT"


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/raw-deflate"])
def test_compressed_bodies(server: HTTPServer, fetcher: HTTPFetcher, path: str) -> None:
    assert fetcher.fetch(state(server, path)).content == RSS


@pytest.mark.parametrize("path", ["/gzip-bomb", "/deflate-bomb", "/brotli-bomb"])
def test_compression_bombs_stop_at_the_cap(
    server: HTTPServer, fetcher: HTTPFetcher, path: str
) -> None:
    if path == "/brotli-bomb":
        if brotli is None:
            pytest.skip("brotli is not installed, so br is neither advertised nor decoded")
        body = _bomb("br")
        server.routes[path] = Response(200, body, {"Content-Encoding": "br"})
    tracemalloc.start()
    try:
        with pytest.raises(FetchTooLarge, match="exceeds the size cap of 1048576 bytes"):
            fetcher.fetch(state(server, path, max_bytes=MB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * MB  # 100 MB of zeros never materialise


def test_body_errors(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    for path in ("/corrupt-gzip", "/truncated-gzip"):
        with pytest.raises(FetchError, match="corrupt compressed body"):
            fetcher.fetch(state(server, path))
    with pytest.raises(FetchError, match="cannot decode the body"):
        fetcher.fetch(state(server, "/zstd"))
    with pytest.raises(FetchTooLarge, match="Content-Length 2097152 exceeds"):
        fetcher.fetch(state(server, "/big", max_bytes=MB))


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/hang", FetchTimeout),
        ("/hang-body", FetchTimeout),
        ("/drip", FetchTimeout),
        ("/drip-headers", FetchTimeout),
        ("/endless", FetchTimeout),
    ],
)
def test_slow_servers_end_within_the_deadline(
    server: HTTPServer, fetcher: HTTPFetcher, path: str, error: type[FetchError]
) -> None:
    result, took = timed(
        lambda: fetcher.fetch(state(server, path, timeout=DEADLINE, max_bytes=10**12))
    )
    assert isinstance(result, error), result
    assert took < DEADLINE + SLACK
    assert str(result).startswith("Test source: ")


def test_endless_body_stops_at_the_cap(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    result, took = timed(
        lambda: fetcher.fetch(state(server, "/endless", timeout=DEADLINE, max_bytes=MB))
    )
    assert isinstance(result, FetchTooLarge)
    assert took < DEADLINE + SLACK


def test_redirect_loop(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    with pytest.raises(FetchError, match=r"too many redirects \(more than 5\)"):
        fetcher.fetch(state(server, "/loop"))


def test_a_cookie_set_by_a_redirect_goes_with_the_next_hop(
    server: HTTPServer, fetcher: HTTPFetcher
) -> None:
    # Consent walls: the first answer sets a cookie and redirects; without it, a loop.
    server.routes["/consent"] = Response(302, b"", {"Location": "/walled",
                                                    "Set-Cookie": "ok=1; Path=/"})  # fmt: skip

    def walled(req: Request) -> Response:
        if "ok=1" in req.headers.get("Cookie", ""):
            return Response(200, b"<rss/>", {"Content-Type": "application/rss+xml"})
        return Response(302, b"", {"Location": "/consent"})

    server.routes["/walled"] = walled
    assert fetcher.fetch(state(server, "/consent")).content == b"<rss/>"
    assert "Cookie" not in server.requests_to("/consent")[0].headers  # none before


def test_at_most_five_redirects(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    assert fetcher.fetch(state(server, "/chain-5")).status == 200
    with pytest.raises(FetchError, match="too many redirects"):
        fetcher.fetch(state(server, "/chain-6"))


@pytest.mark.parametrize(
    ("path", "permanent"),
    [
        ("/301", "/feed"),
        ("/308", "/feed"),
        ("/302", None),
        ("/307", None),
        ("/301-then-302", "/302"),  # the source moved for good to /302, which points on for now
        ("/302-then-301", None),  # a temporary move first: the source itself did not move
    ],
)
def test_permanent_redirects(
    server: HTTPServer, fetcher: HTTPFetcher, path: str, permanent: str | None
) -> None:
    got = fetcher.fetch(state(server, path))
    assert got.url == server.url("/feed") and got.content == RSS
    assert got.permanent_url == (server.url(permanent) if permanent else None)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/410", 410), ("/404", 404), ("/500", 500), ("/no-location", 301)],
)
def test_error_statuses(server: HTTPServer, fetcher: HTTPFetcher, path: str, status: int) -> None:
    with pytest.raises(HTTPStatusError) as info:
        fetcher.fetch(state(server, path))
    assert info.value.status == status and not isinstance(info.value, RetryLater)
    assert str(info.value).startswith("Test source: ")
    if status == 410:
        assert "gone (HTTP 410)" in str(info.value)


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    ("status", "header", "low", "high"),
    [
        (429, "120", 120, 120),
        (503, "120", 120, 120),
        (429, " 30 ", 30, 30),
        (429, None, None, None),
        (503, None, None, None),
        (429, "soon", None, None),  # garbage ignored
        (429, "-5", None, None),
        (429, "1.5", None, None),
        (429, "99999999999999", 7 * 86400, 7 * 86400),  # clamped to 7 days
        ("date", timedelta(hours=1), 3590, 3600),
        ("date", timedelta(days=30), 7 * 86400, 7 * 86400),
        ("date", -timedelta(hours=1), 0, 0),  # a date in the past: no wait
    ],
)
def test_retry_after_forms(
    server: HTTPServer,
    fetcher: HTTPFetcher,
    status: int | str,
    header: str | timedelta | None,
    low: float | None,
    high: float | None,
) -> None:
    code = 429 if status == "date" else int(status)
    value = _http_date(header) if isinstance(header, timedelta) else header
    server.routes["/busy"] = Response(
        code, b"slow down", {"Retry-After": value} if value is not None else {}
    )
    with pytest.raises(RetryLater) as info:
        fetcher.fetch(state(server, "/busy"))
    err = info.value
    assert isinstance(err, HTTPStatusError) and err.status == code
    assert err.retry_after_raw == (value.strip() if value is not None else None)
    if low is None:
        assert err.retry_after is None
    else:
        assert err.retry_after is not None and high is not None
        assert low <= err.retry_after <= high


NOW = datetime(2024, 7, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "minimum", "expected"),
    [
        (None, 600, None),
        ("", 600, None),
        ("120", 600, 600),  # never sooner than the poll interval
        ("3600", 600, 3600),
        ("Sun, 28 Jul 2024 13:00:00 GMT", 0, 3600),
        ("Sunday, 28-Jul-24 13:00:00 GMT", 0, 3600),  # RFC 850 form
        ("Sun Jul 28 13:00:00 2024", 0, 3600),  # asctime form
        ("Sun, 28 Jul 2024 11:00:00 GMT", 600, 600),
        ("Mon, 28 Jul 2025 12:00:00 GMT", 0, 7 * 86400),
        ("next tuesday", 600, None),
        ("0x10", 0, None),
    ],
)
def test_parse_retry_after(value: str | None, minimum: float, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW, minimum=minimum) == expected


def test_parse_retry_after_naive_now_is_utc() -> None:
    assert (
        parse_retry_after("Sun, 28 Jul 2024 13:00:00 GMT", now=NOW.replace(tzinfo=None), minimum=0)
        == 3600
    )


def test_html_page_served_to_a_feed_url(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    got = fetcher.fetch(state(server, "/html"))
    with pytest.raises(ParseError, match="Test source: not a feed: got text/html page"):
        parse_feed(got, "Test source")


@pytest.mark.parametrize("path", ["/laughs-utf8", "/laughs-utf16"])
def test_billion_laughs_over_http(server: HTTPServer, fetcher: HTTPFetcher, path: str) -> None:
    got = fetcher.fetch(state(server, path))
    with pytest.raises(ParseError, match="entity declaration refused"):
        parse_feed(got, "Test source")


def test_xxe_to_a_local_file(server: HTTPServer, fetcher: HTTPFetcher, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("FILE-SECRET")
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY x SYSTEM "{secret.as_uri()}">\n]>\n'
    doc += "<rss version='2.0'><channel><item><title>&x;</title></item></channel></rss>"
    server.routes["/xxe-file"] = Response(200, doc.encode(), {"Content-Type": "application/xml"})
    got = fetcher.fetch(state(server, "/xxe-file"))
    with pytest.raises(ParseError) as info:
        parse_feed(got, "Test source")
    assert "FILE-SECRET" not in str(info.value)


@pytest.mark.parametrize("kind", ["general", "parameter"])
def test_xxe_to_a_canary_url(server: HTTPServer, fetcher: HTTPFetcher, kind: str) -> None:
    canary = server.url("/canary")
    decl = (
        f'<!ENTITY x SYSTEM "{canary}">'
        if kind == "general"
        else f'<!ENTITY % x SYSTEM "{canary}"> %x;'
    )
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{decl}\n]>\n'
    doc += "<rss version='2.0'><channel><item><title>t &x;</title></item></channel></rss>"
    server.routes["/xxe-url"] = Response(200, doc.encode(), {"Content-Type": "application/xml"})
    got = fetcher.fetch(state(server, "/xxe-url"))
    with pytest.raises(ParseError):
        parse_feed(got, "Test source")
    assert server.requests_to("/canary") == []


def test_extra_headers_and_user_agent(server: HTTPServer) -> None:
    with HTTPFetcher(user_agent="desk-monitor/1.0") as f:
        f.fetch(state(server, "/headers", headers=(("X-Api-Key", "k1"), ("Accept-Language", "ja"))))
        sent = server.requests_to("/headers")[-1].headers
        assert sent["User-Agent"] == "desk-monitor/1.0"
        f.fetch(state(server, "/headers", headers=(("user-agent", "per-source/2"),)))
        raw = server.requests_to("/headers")[-1].handler.headers  # type: ignore[attr-defined]
        assert raw.get_all("User-Agent") == ["per-source/2"]
    assert (sent["X-Api-Key"], sent["Accept-Language"]) == ("k1", "ja")
    assert "gzip" in sent["Accept-Encoding"]


def test_url_credentials_become_basic_auth_and_stay_out_of_messages(
    server: HTTPServer, fetcher: HTTPFetcher
) -> None:
    url = f"http://alice:s3cret@127.0.0.1:{server.port}/404"
    with pytest.raises(HTTPStatusError) as info:
        fetcher.fetch(state(server, "/404", url=url))
    assert "s3cret" not in str(info.value) and "alice" not in str(info.value)
    assert server.requests_to("/404")[-1].headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"
    got = fetcher.fetch(
        state(server, "/feed", url=f"http://alice:s3cret@127.0.0.1:{server.port}/feed?token=abc")
    )
    assert "s3cret" not in got.url


def test_secret_query_values_are_redacted_in_messages(
    server: HTTPServer, fetcher: HTTPFetcher
) -> None:
    with pytest.raises(HTTPStatusError) as info:
        fetcher.fetch(state(server, "/404", url=server.url("/404?api_key=SECRET1&id=7")))
    assert "SECRET1" not in str(info.value) and "id=7" in str(info.value)


# --- SSRF ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.2:8080/x",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://255.255.255.255/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://%31%32%37.0.0.1/",
        "http://evil.example@127.0.0.1/",
        "http://user:pass@example.com/",
        "http://example.com\\@127.0.0.1/",
        "http://127.0.0.1\\.example.com/",
        "http://example.com /",
        "file:///etc/passwd",
        "ftp://example.com/",
        "gopher://127.0.0.1:70/_x",
        "javascript:alert(1)",
        "//127.0.0.1/",
        "http:///nohost",
        "http://[::1/",
    ],
)
def test_ssrf_untrusted_urls_are_refused(fetcher: HTTPFetcher, url: str) -> None:
    result, took = timed(lambda: fetcher.fetch_untrusted(url, timeout=5, max_bytes=MB))
    assert isinstance(result, FetchRefused), result
    assert "refused" in str(result)
    assert took < 5


@pytest.mark.parametrize(
    "path",
    ["/to-localhost", "/to-metadata", "/to-ipv6-loopback", "/to-file", "/to-userinfo"],
)
def test_ssrf_redirects_leaving_the_configured_host_are_refused(
    server: HTTPServer, fetcher: HTTPFetcher, path: str
) -> None:
    before = len(server.requests_to("/feed"))
    with pytest.raises(FetchRefused, match="^Test source: refused"):
        fetcher.fetch(state(server, path))
    assert len(server.requests_to("/feed")) == before


def test_configured_sources_may_point_at_loopback(server: HTTPServer, fetcher: HTTPFetcher) -> None:
    assert fetcher.fetch(state(server, "/302")).status == 200  # same-host redirect stays trusted


def test_allow_private_opens_named_hosts_and_networks(server: HTTPServer) -> None:
    with HTTPFetcher(allow_private=["127.0.0.1"]) as f:
        assert f.fetch_untrusted(server.url("/feed"), timeout=5, max_bytes=MB).content == RSS
        for hop in ("/to-ipv6-loopback", "/to-metadata"):  # hops to addresses not opened
            with pytest.raises(FetchRefused, match="refused"):
                f.fetch_untrusted(server.url(hop), timeout=5, max_bytes=MB)
    with HTTPFetcher(allow_private=["localhost", "127.0.0.0/8", "::1"]) as f:
        assert f.fetch(state(server, "/to-localhost")).status == 200
    with HTTPFetcher(allow_private=["10.0.0.0/8"]) as f:
        with pytest.raises(FetchRefused):
            f.fetch_untrusted(server.url("/feed"), timeout=5, max_bytes=MB)


def test_allow_private_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="allow_private"):
        HTTPFetcher(allow_private=["not a host!"])
    with pytest.raises(ValueError, match="proxy"):
        HTTPFetcher(proxy="socks5://127.0.0.1:1080")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("100.100.100.100", "CGNAT"),
        ("239.1.1.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:100.64.0.1", "CGNAT"),
        ("fd12::1", "private"),
        ("192.0.2.1", "private"),  # documentation range: not public either
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    import ipaddress

    got = forbidden_reason(ipaddress.ip_address(address))
    assert (got is None) if reason is None else (got is not None and reason in got)


def test_policy_opens_networks() -> None:
    import ipaddress

    policy = AddressPolicy.from_allow(["10.0.0.0/8", "Intranet.Example."])
    assert policy.refusal("x", ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal("intranet.example", ipaddress.ip_address("192.168.0.1")) is None
    assert policy.refusal("other", ipaddress.ip_address("192.168.0.1")) is not None


# --- TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
    command += " -addext subjectAltName=IP:127.0.0.1"
    args = [*command.split(), "-keyout", str(key), "-out", str(cert)]
    subprocess.run(args, check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with HTTPServer(ssl_context=context) as srv:
        srv.routes["/feed"] = Response(200, RSS, {"Content-Type": "application/rss+xml"})
        yield srv


def test_tls_is_verified_unless_the_source_opts_out(
    tls_server: HTTPServer, fetcher: HTTPFetcher
) -> None:
    with pytest.raises(FetchError, match="could not connect"):
        fetcher.fetch(state(tls_server, "/feed"))
    assert fetcher.fetch(state(tls_server, "/feed", verify_tls=False)).content == RSS


# --- errors --------------------------------------------------------------------------


def _instances() -> Iterator[BaseException]:
    request = httpx.Request("GET", "https://example.org/")
    response = httpx.Response(500, request=request)
    for module in (httpx, httpcore):
        for name in module.__all__:
            cls = getattr(module, name)
            if not (inspect.isclass(cls) and issubclass(cls, Exception)):
                continue
            if cls is httpx.HTTPStatusError:
                yield cls("boom", request=request, response=response)
            elif len(inspect.signature(cls.__init__).parameters) == 1:  # StreamConsumed & co
                yield cls()
            else:
                yield cls("boom")


@pytest.mark.parametrize(
    "exc", list(_instances()), ids=lambda e: f"{type(e).__module__}.{type(e).__name__}"
)
def test_every_httpx_and_httpcore_exception_is_mapped(exc: BaseException) -> None:
    with pytest.raises(FetchError) as info:
        with map_errors("Src", "https://user:pw@example.org/feed"):
            raise exc
    assert info.value.__cause__ is exc
    assert str(info.value).startswith("Src: ")
    assert "pw@" not in str(info.value)
    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        assert isinstance(info.value, FetchTimeout)
    if isinstance(exc, httpx.HTTPStatusError):
        assert isinstance(info.value, HTTPStatusError) and info.value.status == 500


def test_unknown_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        with map_errors("Src", "https://example.org/"):
            raise KeyError("bug")


# --- fetch_all -------------------------------------------------------------------------


def test_fetch_all_bounds_concurrency_and_isolates_failures(server: HTTPServer) -> None:
    lock = threading.Lock()
    active: dict[str, int] = {}
    peak: dict[str, int] = {}

    def slow(req: Request) -> Response:
        host = req.headers["Host"].split(":")[0]
        with lock:
            active[host] = active.get(host, 0) + 1
            active["*"] = active.get("*", 0) + 1
            for key in (host, "*"):
                peak[key] = max(peak.get(key, 0), active[key])
        time.sleep(0.2)
        with lock:
            active[host] -= 1
            active["*"] -= 1
        return Response(200, RSS)

    server.routes["/slow"] = slow
    states = [FeedState(name="broken", url=server.url("/404"), timeout=10)]
    states += [
        FeedState(name=f"{host}-{i}", url=f"http://{host}:{server.port}/slow?{i}", timeout=10)
        for host in ("127.0.0.1", "localhost")
        for i in range(5)
    ]
    with HTTPFetcher() as f:
        results = list(fetch_all(f, states, max_workers=3, per_host=2))
    assert len(results) == len(states)
    assert {s.name for s, _ in results} == {s.name for s in states}
    errors = [r for _, r in results if isinstance(r, FetchError)]
    assert len(errors) == 1 and isinstance(errors[0], HTTPStatusError)
    assert results[0][0].name == "broken"  # fast results come out first
    assert all(
        isinstance(r, Fetched) and r.content == RSS for s, r in results if s.name != "broken"
    )
    assert peak["127.0.0.1"] <= 2 and peak["localhost"] <= 2 and peak["*"] <= 3


def test_fetch_all_wraps_contract_breaking_fetchers() -> None:
    class Broken:
        def fetch(self, state: FeedState) -> Fetched:
            if state.name == "bad":
                raise RuntimeError("bug")
            return Fetched(url=state.url, status=200)

    states = [
        FeedState(name="bad", url="https://a.example/"),
        FeedState(name="good", url="https://b.example/"),
    ]
    results = {s.name: r for s, r in fetch_all(Broken(), states)}
    assert isinstance(results["bad"], FetchError) and isinstance(
        results["bad"].__cause__, RuntimeError
    )
    assert isinstance(results["good"], Fetched)


def test_fetch_all_slow_source_does_not_hold_others(
    server: HTTPServer, fetcher: HTTPFetcher
) -> None:
    states = [
        state(server, "/hang", name="hang", timeout=DEADLINE),
        state(server, "/feed", name="good"),
    ]
    start = time.monotonic()
    results = []
    for st, result in fetch_all(fetcher, states):
        results.append((st.name, type(result).__name__, time.monotonic() - start))
    assert results[0][:2] == ("good", "Fetched") and results[0][2] < 1.0
    assert results[1][:2] == ("hang", "FetchTimeout") and results[1][2] < DEADLINE + SLACK


def test_connected_peer_is_checked_after_dns(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the answer looked public when vetted, the socket lands on loopback."""
    from concurrent.futures import ThreadPoolExecutor

    from monitor._fetch_transport import GuardedBackend, Refused

    backend = GuardedBackend(AddressPolicy(), ThreadPoolExecutor(max_workers=1))
    monkeypatch.setattr(backend, "vet", lambda host, addresses: addresses)
    with pytest.raises(Refused, match="connected to 127.0.0.1 is a loopback address"):
        backend.connect_tcp("127.0.0.1", server.port, timeout=5)


def test_proxy_carries_requests_and_guards_untrusted_targets(server: HTTPServer) -> None:
    with HTTPServer() as proxy:
        proxy.routes["http://feeds.example.test/rss"] = Response(200, RSS)
        with HTTPFetcher(proxy=proxy.url("")) as f:
            got = f.fetch(
                FeedState(name="Via proxy", url="http://feeds.example.test/rss", timeout=5)
            )
            assert got.content == RSS
            with pytest.raises(FetchRefused, match="loopback"):
                f.fetch_untrusted(server.url("/feed"), timeout=5, max_bytes=MB)
        assert len(proxy.requests) == 1
