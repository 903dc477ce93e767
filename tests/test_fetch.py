"""The fetch stage against real HTTP servers on 127.0.0.1 (pytest-httpserver, raw sockets)."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import random
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli
import httpx
import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from watcher.config import FetchSettings
from watcher.errors import FetchError
from watcher.fetch import (
    BodyDecoder,
    BodyTooLargeError,
    Fetcher,
    FetchResult,
    Politeness,
    Pools,
    _describe,
    _Hops,
    next_interval,
    parse_retry_after,
    retry_delay,
)

RSS = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    instance = HTTPServer(host="127.0.0.1", port=0)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def http(server: HTTPServer) -> HTTPServer:
    server.clear()
    return server


def settings(**overrides: Any) -> FetchSettings:
    return FetchSettings(
        **{"connect_timeout": 2, "read_timeout": 2, "total_timeout": 5, **overrides}
    )


def feed(url: str, cfg: FetchSettings | None = None, **kwargs: Any) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(cfg or settings()) as fetcher:
            return await fetcher.fetch_feed(url, **kwargs)

    return asyncio.run(go())


def page(url: str, cfg: FetchSettings | None = None) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(cfg or settings()) as fetcher:
            return await fetcher.fetch_page(url)

    return asyncio.run(go())


def feed_error(url: str, cfg: FetchSettings | None = None, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        feed(url, cfg, **kwargs)
    return info.value


# -- caching and request headers ------------------------------------------------------------


def test_200_then_304_on_conditional_get(http: HTTPServer) -> None:
    etag, modified = '"v1"', "Wed, 21 Oct 2015 07:28:00 GMT"

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304)
        headers = {"ETag": etag, "Last-Modified": modified}
        return Response(RSS, headers=headers, content_type="application/rss+xml")

    http.expect_request("/feed").respond_with_handler(handler)
    url = http.url_for("/feed")

    first = feed(url)
    assert (first.status, first.body, first.etag, first.last_modified) == (200, RSS, etag, modified)
    assert first.content_type == "application/rss+xml" and not first.not_modified
    assert first.final_url == url and first.permanent_redirect is None

    second = feed(url, etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.body == b""
    assert (second.etag, second.last_modified) == (etag, modified)  # kept from the request

    sent = http.log[-1][0].headers
    assert sent["If-None-Match"] == etag and sent["If-Modified-Since"] == modified
    assert sent["User-Agent"] == FetchSettings().user_agent
    assert {"gzip", "deflate", "br"} <= {e.strip() for e in sent["Accept-Encoding"].split(",")}
    assert sent["Accept"].startswith("application/rss+xml")
    assert "If-None-Match" not in http.log[0][0].headers  # the first poll was unconditional


def test_unsendable_validators_degrade_to_a_plain_get(http: HTTPServer) -> None:
    http.expect_request("/feed").respond_with_data(RSS)
    result = feed(http.url_for("/feed"), etag='"a"\r\nX-Injected: 1', last_modified="水曜日")
    assert result.status == 200
    sent = http.log[0][0].headers
    assert not {"If-None-Match", "If-Modified-Since", "X-Injected"} & set(sent.keys())


def test_credentials_in_the_url_become_basic_auth(http: HTTPServer) -> None:
    http.expect_request(
        "/private", headers={"Authorization": "Basic dXNlcjpwdw=="}
    ).respond_with_data(RSS)
    url = http.url_for("/private").replace("http://", "http://user:pw@")
    assert feed(url).body == RSS


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("br", brotli.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_compressed_bodies_are_decoded(
    http: HTTPServer, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = RSS * 200
    http.expect_request("/z").respond_with_data(
        compress(body), headers={"Content-Encoding": encoding}
    )
    result = feed(http.url_for("/z"))
    assert result.body == body
    assert result.headers["content-encoding"] == encoding


# -- redirects ------------------------------------------------------------------------------


def redirect(http: HTTPServer, path: str, to: str, status: int = 301, **headers: str) -> None:
    http.expect_request(path).respond_with_data(
        "", status=status, headers={"Location": to, **headers}
    )


def test_permanent_redirect_chain_reports_the_new_url(http: HTTPServer) -> None:
    redirect(http, "/old", "/older-still", 301)
    redirect(http, "/older-still", http.url_for("/new"), 308)
    http.expect_request("/new").respond_with_data(RSS)
    result = feed(http.url_for("/old"))
    assert result.body == RSS
    assert result.final_url == result.permanent_redirect == http.url_for("/new")
    assert result.url == http.url_for("/old")
    assert result.redirects == [(301, http.url_for("/older-still")), (308, http.url_for("/new"))]


def test_a_temporary_hop_makes_the_move_not_permanent(http: HTTPServer) -> None:
    redirect(http, "/a", "/b", 301)
    redirect(http, "/b", "/c", 302)
    http.expect_request("/c").respond_with_data(RSS)
    result = feed(http.url_for("/a"))
    assert result.final_url == http.url_for("/c") and result.permanent_redirect is None


def test_redirect_loop_is_permanent(http: HTTPServer) -> None:
    redirect(http, "/ping", "/pong", 302)
    redirect(http, "/pong", "/ping", 302)
    error = feed_error(http.url_for("/ping"))
    assert "redirect loop" in error.message and error.permanent
    assert error.message.startswith(http.url_for("/ping"))


def test_cookie_wall_redirect_to_itself_is_not_a_loop(http: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if request.cookies.get("consent") == "yes":
            return Response(RSS)
        return Response("", 302, headers={"Location": "/wall", "Set-Cookie": "consent=yes"})

    http.expect_request("/wall").respond_with_handler(handler)
    assert feed(http.url_for("/wall")).body == RSS


def test_too_many_redirects(http: HTTPServer) -> None:
    for hop in range(7):
        redirect(http, f"/r{hop}", f"/r{hop + 1}", 302)
    error = feed_error(http.url_for("/r0"), settings(max_redirects=5))
    assert "too many redirects (6 > 5)" in error.message and error.permanent


@pytest.mark.parametrize("target", ["javascript:alert(1)", "file:///etc/passwd"])
def test_redirect_to_non_http_scheme_is_refused(http: HTTPServer, target: str) -> None:
    redirect(http, "/evil", target, 302)
    error = feed_error(http.url_for("/evil"))
    assert f"redirect to a non-HTTP URL ({target}) refused" in error.message
    assert not error.permanent


# -- statuses -------------------------------------------------------------------------------


def test_404_names_the_url(http: HTTPServer) -> None:
    http.expect_request("/gone-missing").respond_with_data("nope", status=404)
    error = feed_error(http.url_for("/gone-missing"))
    assert error.message == f"{http.url_for('/gone-missing')}: HTTP 404 Not Found"
    assert error.status == 404 and not error.permanent and error.retry_after is None


def test_410_disables_the_feed(http: HTTPServer) -> None:
    http.expect_request("/removed").respond_with_data("", status=410)
    url = http.url_for("/removed")
    error = feed_error(url)
    assert error.permanent and error.status == 410
    assert "HTTP 410 Gone: the feed was removed — disabled" in error.message
    assert f"`watcher feeds enable {url}`" in error.message


def test_429_with_retry_after_seconds(http: HTTPServer) -> None:
    http.expect_request("/busy").respond_with_data("", status=429, headers={"Retry-After": "120"})
    error = feed_error(http.url_for("/busy"))
    assert "HTTP 429 Too Many Requests, retry after 120 s" in error.message
    assert error.retry_after == 120 and error.status == 429


def test_503_with_retry_after_http_date(http: HTTPServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    http.expect_request("/down").respond_with_data("", status=503, headers={"Retry-After": when})
    error = feed_error(http.url_for("/down"))
    assert error.status == 503 and error.retry_after is not None
    assert 3500 < error.retry_after <= 3600
    assert "HTTP 503 Service Unavailable, retry after" in error.message


# -- limits ---------------------------------------------------------------------------------


def test_body_over_the_cap_with_content_length(http: HTTPServer) -> None:
    http.expect_request("/big").respond_with_data(b"x" * 5000)
    error = feed_error(http.url_for("/big"), settings(max_body_bytes=4096))
    assert "response larger than 4 KiB limit" in error.message


def test_body_over_the_cap_without_content_length(http: HTTPServer) -> None:
    http.expect_request("/stream").respond_with_response(
        Response((b"x" * 1000 for _ in range(50)), direct_passthrough=True)
    )
    error = feed_error(http.url_for("/stream"), settings(max_body_bytes=10_000))
    assert "response larger than" in error.message


def test_gzip_bomb_stops_at_the_cap_without_inflating_it_all(http: HTTPServer) -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = deflater.compress(b"\0" * 30_000_000) + deflater.flush()  # 30 MB -> ~30 KB
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    http.expect_request("/small").respond_with_data(
        gzip.compress(RSS), headers={"Content-Encoding": "gzip"}
    )
    feed(http.url_for("/small"))  # first use imports modules lazily: keep that out of the peak
    # A raw socket server: werkzeug itself allocates ~10 MB serving this, which would blur the peak.
    with SocketServer(lambda conn, _: conn.sendall(head.encode() + bomb)) as server:
        tracemalloc.start()
        try:
            url = f"http://127.0.0.1:{server.port}/bomb"
            error = feed_error(url, settings(max_body_bytes=100_000))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "response larger than 97.7 KiB limit" in error.message
    assert "after decompression" in error.message
    assert peak < 5_000_000  # inflating everything would allocate 30 MB (measured: ~0.5 MB)


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [
        ("gzip", gzip.compress(b"\0" * 5_000_000)),
        ("deflate", zlib.compress(b"\0" * 5_000_000)),
        ("br", brotli.compress(b"\0" * 5_000_000, quality=1)),
    ],
)
def test_decoder_never_holds_much_more_than_the_cap(encoding: str, payload: bytes) -> None:
    decoder = BodyDecoder(encoding, cap=100_000)
    with pytest.raises(BodyTooLargeError):
        decoder.feed(payload)  # one network chunk that would inflate to 5 MB
    assert decoder._size <= 100_000 + 100 * 1024  # stopped within one piece of the cap


def test_decoder_handles_multi_member_gzip_split_anywhere() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    decoder = BodyDecoder("gzip", cap=1000)
    for i in range(0, len(body), 7):
        decoder.feed(body[i : i + 7])
    assert decoder.finish() == b"first second"


class SocketServer:
    """A raw TCP server on 127.0.0.1 whose `handle(conn)` runs in a thread per connection."""

    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._handle = handle
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self._handle(conn, self.stop)
            except OSError:
                pass  # the client hung up, which is what the tests provoke

    def __enter__(self) -> SocketServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()
        self.listener.close()


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while not stop.wait(0.2):
        conn.sendall(b"x")


def test_trickling_server_hits_the_total_timeout() -> None:
    with SocketServer(trickle) as slow:
        started = time.monotonic()
        error = feed_error(f"http://127.0.0.1:{slow.port}/feed", settings(total_timeout=1))
        assert time.monotonic() - started < 4  # a guard against hanging, not a speed claim
    assert "timed out after 1 s before the whole response arrived" in error.message


def test_garbage_instead_of_http_is_a_fetch_error() -> None:
    with SocketServer(lambda conn, _: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as bad:
        error = feed_error(f"http://127.0.0.1:{bad.port}/feed")
    assert "the server broke the HTTP protocol" in error.message


def test_connection_refused_on_a_closed_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    error = feed_error(f"http://127.0.0.1:{port}/feed")
    assert error.message.startswith(f"http://127.0.0.1:{port}/feed: connection refused")


def test_tls_certificate_error() -> None:
    ca = trustme.CA()  # not in the system trust store
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with HTTPServer(host="127.0.0.1", port=0, ssl_context=context) as tls:
        tls.expect_request("/feed").respond_with_data(RSS)
        error = feed_error(tls.url_for("/feed"))
    assert "TLS certificate error: " in error.message


def test_dns_failure_message_names_the_host() -> None:
    # Mapping only: a real lookup would query the resolver, and tests stay off the network.
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as cause:
            raise httpx.ConnectError("[Errno -2]") from cause
    except httpx.ConnectError as exc:
        message = _describe(exc, _Hops("https://no-such-host.invalid/feed", 5), settings())
    assert message.startswith("DNS lookup failed for host no-such-host.invalid")


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "not a url", "http://[::1/feed"])
def test_unusable_urls_are_fetch_errors(url: str) -> None:
    error = feed_error(url)
    assert error.message.startswith(url)


# -- politeness -----------------------------------------------------------------------------


class CountingHandler(BaseHTTPRequestHandler):
    """Answers after a pause and records the most requests it ever had in flight at once."""

    lock = threading.Lock()
    active = 0
    peak = 0
    pause = 0.1

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(cls.pause)
        with cls.lock:
            cls.active -= 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(RSS)))
        self.end_headers()
        self.wfile.write(RSS)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def counting() -> Iterator[tuple[type[CountingHandler], list[int]]]:
    handler = type("Handler", (CountingHandler,), {"active": 0, "peak": 0})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield handler, [s.server_address[1] for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


def fetch_all(urls: list[str], cfg: FetchSettings) -> list[FetchResult]:
    async def go() -> list[FetchResult]:
        async with Fetcher(cfg) as fetcher:
            return await asyncio.gather(*(fetcher.fetch_feed(url) for url in urls))

    return asyncio.run(go())


def test_per_host_concurrency_is_respected(counting: Any) -> None:
    handler, (port, _) = counting
    urls = [f"http://127.0.0.1:{port}/feed/{i}" for i in range(6)]
    results = fetch_all(urls, settings(per_host_concurrency=2, concurrency=10))
    assert [r.body for r in results] == [RSS] * 6
    assert handler.peak == 2


def test_global_concurrency_spans_hosts(counting: Any) -> None:
    handler, ports = counting
    handler.pause = 0.03
    urls = [f"http://127.0.0.1:{port}/feed/{i}" for port in ports for i in range(3)]
    fetch_all(urls, settings(per_host_concurrency=3, concurrency=1))
    assert handler.peak == 1


def test_per_host_delay_spaces_request_starts() -> None:
    async def go() -> list[float]:
        politeness = Politeness(concurrency=10, per_host=10, per_host_delay=0.05)
        starts: list[float] = []

        async def one() -> None:
            async with politeness.slot("example.org:443"):
                starts.append(asyncio.get_running_loop().time())

        await asyncio.gather(*(one() for _ in range(4)))
        return starts

    starts = asyncio.run(go())
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 3 and all(gap >= 0.049 for gap in gaps)


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: 304 for /304, a redirect for /moved, 404 otherwise."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/304")
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"moved")
        elif self.path == "/304":
            self.send_response(304)
            self.end_headers()
        else:  # not send_error(): it closes the connection
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")

    def log_message(self, *args: object) -> None:
        pass


def test_connections_are_reused_after_304_redirect_and_error() -> None:
    handler = type("Handler", (KeepAliveHandler,), {"connections": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    async def go() -> None:
        async with Fetcher(settings(per_host_concurrency=1)) as fetcher:
            for _ in range(3):
                assert (await fetcher.fetch_feed(f"{base}/moved", etag='"x"')).not_modified
                with pytest.raises(FetchError):
                    await fetcher.fetch_feed(f"{base}/missing")

    try:
        asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    assert handler.connections == 1  # nine requests, one connection


def test_idle_pools_are_closed_and_busy_ones_kept() -> None:
    async def go() -> list[httpx.AsyncHTTPTransport]:
        made: list[httpx.AsyncHTTPTransport] = []

        def make() -> httpx.AsyncHTTPTransport:
            made.append(httpx.AsyncHTTPTransport())
            return made[-1]

        pools = Pools(make, idle=0.01)
        async with pools.use("idle:80"):
            pass
        async with pools.use("busy:80"):
            await asyncio.sleep(0.03)
            await pools.sweep()
            async with pools.use("busy:80"):
                pass  # still the same pool: in use, so not swept
        async with pools.use("idle:80"):
            pass  # a fresh pool: the first one was closed
        await pools.aclose()
        return made

    assert len(asyncio.run(go())) == 3


# -- private-address guard for article pages ------------------------------------------------


def test_fetch_page_refuses_loopback_by_default(http: HTTPServer) -> None:
    http.expect_request("/article").respond_with_data("<html>hi</html>")
    with pytest.raises(FetchError) as info:
        page(http.url_for("/article"))
    message = info.value.message
    assert "127.0.0.1 is a loopback address" in message
    assert "fetch.allow_private_addresses" in str(info.value)
    assert http.log == []  # refused before connecting: the server never saw a request


def test_fetch_page_allowed_when_configured(http: HTTPServer) -> None:
    content_type = "text/html; charset=EUC-KR"
    http.expect_request("/article").respond_with_data("<html>hi</html>", content_type=content_type)
    result = page(http.url_for("/article"), settings(allow_private_addresses=True))
    assert result.body == b"<html>hi</html>"
    assert result.content_type == content_type  # the charset is kept for the decoder
    assert http.log[0][0].headers["Accept"].startswith("text/html")


def test_fetch_feed_is_not_guarded(http: HTTPServer) -> None:
    http.expect_request("/feed").respond_with_data(RSS)
    assert feed(http.url_for("/feed"), settings(allow_private_addresses=False)).body == RSS


# -- back-off arithmetic --------------------------------------------------------------------


def test_retry_delay_grows_exponentially_then_caps() -> None:
    cfg = FetchSettings(jitter=0, max_backoff=3600)
    delays = [retry_delay(n, interval=300, settings=cfg) for n in range(1, 7)]
    assert delays == [300, 600, 1200, 2400, 3600, 3600]
    assert retry_delay(10_000, interval=300, settings=cfg) == 3600  # no overflow


def test_retry_delay_honours_retry_after_up_to_the_cap() -> None:
    cfg = FetchSettings(jitter=0, max_backoff=3600)
    assert retry_delay(1, interval=300, settings=cfg, retry_after=1000) == 1000
    assert retry_delay(3, interval=300, settings=cfg, retry_after=10) == 1200
    assert retry_delay(1, interval=300, settings=cfg, retry_after=10**9) == 3600


def test_jitter_stays_within_bounds() -> None:
    cfg = FetchSettings(jitter=0.1, max_backoff=86400)
    rng = random.Random(42)
    delays = [retry_delay(2, interval=100, settings=cfg, rng=rng) for _ in range(500)]
    assert all(180 <= d <= 220 for d in delays) and len(set(delays)) > 400
    intervals = [next_interval(900, cfg, rng) for _ in range(500)]
    assert all(810 <= i <= 990 for i in intervals) and min(intervals) < 830 < 970 < max(intervals)
    capped = [retry_delay(30, interval=100, settings=cfg, rng=rng) for _ in range(100)]
    assert all(77760 <= d <= 86400 for d in capped)


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after("Wed, 01 Jan 2025 12:02:00 GMT", now) == 120
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0  # in the past
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk, now) is None
