"""Fetching feeds and article pages over HTTP, politely and within hard limits.

One `Fetcher` per daemon: it keeps HTTP/1.1 connections alive across polls, follows redirects itself
(to cap hops, spot loops, refuse non-HTTP targets and tell a permanent move from a temporary one),
decodes gzip/deflate/br while counting the inflated bytes (a compression bomb stops at the size cap
instead of filling memory), and limits requests per host. Every network-level failure leaves as a
`FetchError` whose message names the URL and what the user can do; the back-off arithmetic the
scheduler needs (`retry_delay`, `next_interval`, `parse_retry_after`) lives here too.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import ssl
import time
import zlib
from base64 import b64encode
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import certifi
import httpx

from watcher.config import FetchSettings
from watcher.errors import FetchError
from watcher.netguard import BlockedAddressError, GuardedTransport

try:
    import brotli
except ImportError:  # pragma: no cover - httpx[brotli] is a dependency
    brotli = None

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
_PIECE = 64 * 1024  # largest piece a decoder inflates at once: bounds memory past the size cap
_RNG = random.Random()


@dataclass(slots=True)
class FetchResult:
    """One successful response (2xx or 304) after following redirects."""

    url: str
    final_url: str
    status: int
    body: bytes
    headers: dict[str, str]
    etag: str | None  # validator to send next time (kept from the request on a bare 304)
    last_modified: str | None
    permanent_redirect: str | None
    elapsed: float  # seconds, including waits for a politeness slot
    redirects: list[tuple[int, str]] = field(default_factory=list)  # (status, target) per hop

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str | None:
        """The Content-Type header as sent, charset included (the decoders need it)."""
        return self.headers.get("content-type") or None


# -- the fetcher ----------------------------------------------------------------------------


class Fetcher:
    """Shared HTTP connection pools for feeds and article pages; use as `async with Fetcher(...)`.

    It talks to httpx transports directly rather than through `httpx.AsyncClient.send`: redirects
    are followed here, and the client would otherwise pre-build (and choke on) every hostile
    Location header, keep a cookie jar shared by all sites, and add per-request overhead.
    """

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._ssl = ssl.create_default_context(cafile=certifi.where())  # as httpx does; built once
        limits = httpx.Limits(
            max_connections=settings.per_host_concurrency,
            max_keepalive_connections=settings.per_host_concurrency,
        )
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.total_timeout,
        ).as_dict()
        self._base_headers = {
            "User-Agent": settings.user_agent,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        # trust_env=False: proxies and CA files come from settings, never from the environment.
        self._feeds = Pools(
            lambda: httpx.AsyncHTTPTransport(verify=self._ssl, limits=limits, trust_env=False)
        )
        self._pages = (
            self._feeds
            if settings.allow_private_addresses
            else Pools(lambda: GuardedTransport(ssl_context=self._ssl, limits=limits))
        )
        self._politeness = Politeness(
            settings.concurrency, settings.per_host_concurrency, settings.per_host_delay
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Fetcher:
        # Idle connections are also closed between passes, not only when the next fetch starts.
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="fetch-pool-sweeper")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await self._feeds.aclose()
        await self._pages.aclose()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(Pools.IDLE)
            await self._feeds.sweep()
            await self._pages.sweep()

    async def fetch_feed(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET a feed, conditionally when validators from the last poll are given."""
        headers: dict[str, str | bytes] = {**self._base_headers, "Accept": FEED_ACCEPT}
        for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified)):
            if (raw := _header_bytes(value)) is not None:
                headers[name] = raw
        result = await self._fetch(self._feeds, url, headers, what="feed")
        if result.not_modified:
            result.etag = result.etag or etag
            result.last_modified = result.last_modified or last_modified
        return result

    async def fetch_page(self, url: str) -> FetchResult:
        """GET an article page; private/loopback targets are refused unless allowed in settings."""
        headers: dict[str, str | bytes] = {**self._base_headers, "Accept": PAGE_ACCEPT}
        return await self._fetch(self._pages, url, headers, what="page")

    # -- one fetch: hops, limits, error mapping ---------------------------------------------

    async def _fetch(
        self, pools: Pools, url: str, headers: dict[str, str | bytes], *, what: str
    ) -> FetchResult:
        started = time.perf_counter()
        hop = _Hops(url, self._settings.max_redirects)
        deadline: float | None = None
        await pools.sweep()
        try:
            while True:
                request = self._request(hop, headers)
                key = _host_key(request.url)
                async with self._politeness.slot(key), pools.use(key) as transport:
                    if deadline is None:
                        deadline = asyncio.get_running_loop().time() + self._settings.total_timeout
                    async with asyncio.timeout_at(deadline):
                        response = await transport.handle_async_request(request)
                        response.request = request
                        try:
                            done = await self._handle(response, hop, what)
                        finally:
                            await response.aclose()
                if done is not None:
                    done.elapsed = time.perf_counter() - started
                    return done
        except FetchError:
            raise
        except TimeoutError:
            secs = _secs(self._settings.total_timeout)
            raise _error(
                hop,
                f"timed out after {secs} before the whole response arrived",
                hint="the server is too slow; fetch.total_timeout sets the limit",
            ) from None
        except BlockedAddressError as exc:
            raise _error(
                hop,
                f"refused: {exc} — article links may not point at internal addresses",
                hint="set fetch.allow_private_addresses = true to allow",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError, *_BODY_ERRORS) as exc:
            raise _error(hop, _describe(exc, hop, self._settings)) from exc

    def _request(self, hop: _Hops, headers: dict[str, str | bytes]) -> httpx.Request:
        try:
            url = httpx.URL(hop.url)
            if url.scheme not in ("http", "https") or not url.host:
                raise FetchError(f"{hop.url}: not an http(s) URL", hint="use an http(s):// URL")
            request = httpx.Request("GET", url, headers=headers)
        except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
            raise _error(hop, f"invalid URL ({exc})") from None
        request.extensions["timeout"] = self._timeout
        if url.username or url.password:  # https://user:pass@host/feed: HTTP basic auth
            token = b64encode(f"{url.username}:{url.password}".encode()).decode()
            request.headers["Authorization"] = f"Basic {token}"
        hop.add_cookies(request)
        return request

    async def _handle(self, response: httpx.Response, hop: _Hops, what: str) -> FetchResult | None:
        """The result, None after recording a redirect to follow, or a FetchError for the status."""
        status = response.status_code
        if status in REDIRECTS:
            await _drain(response)
            hop.follow(response)
            return None
        if not (200 <= status < 300 or status == 304):
            await _drain(response)
            raise _status_error(hop, response, what)
        if status == 304:
            await _drain(response)
            body = b""
        else:
            body = await _read_body(response, self._settings.max_body_bytes)
        headers = dict(response.headers.items())
        return FetchResult(
            url=hop.start,
            final_url=hop.url,
            status=status,
            body=body,
            headers=headers,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            permanent_redirect=hop.permanent_target(),
            elapsed=0.0,
            redirects=hop.trail,
        )


def _header_bytes(value: str | None) -> bytes | None:
    """A stored validator as header bytes, or None when it could not be sent back verbatim.

    Validators echo what a server sent (possibly Latin-1, possibly mangled); a value that cannot
    be a header line is dropped so the poll degrades to an unconditional GET instead of failing.
    """
    if not value or "\r" in value or "\n" in value:
        return None
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _host_key(url: httpx.URL) -> str:
    """Politeness is per origin server: host name and port, as browsers count connections."""
    return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


class _Hops:
    """Redirect bookkeeping for one fetch: where we are, where we have been, what kind of moves."""

    def __init__(self, url: str, max_redirects: int) -> None:
        self.start = url
        self.url = url
        self.max = max_redirects
        self.count = 0
        self.all_permanent = True
        self.trail: list[tuple[int, str]] = []
        # Cookies set by redirect responses (cookie walls), kept for this fetch only; created on
        # first use because a cookie jar costs more than the rest of a 304 round trip.
        self.cookies: httpx.Cookies | None = None
        self.seen = {self._state(url)}

    def _state(self, url: str) -> tuple[str, str]:
        # Same URL with new cookies is progress (a cookie wall), not a loop.
        jar = self.cookies.jar if self.cookies is not None else ()
        return url, "; ".join(f"{c.name}={c.value}" for c in jar)

    def add_cookies(self, request: httpx.Request) -> None:
        if self.cookies is not None:
            self.cookies.set_cookie_header(request)

    def follow(self, response: httpx.Response) -> None:
        location = response.headers.get("location", "").strip()
        status = response.status_code
        if not location:
            raise _error(self, f"HTTP {status} redirect without a Location header")
        scheme = urlsplit(location).scheme.lower()
        if scheme and scheme not in ("http", "https"):
            raise _error(self, f"redirect to a non-HTTP URL ({_clip(location)}) refused")
        try:
            target = str(response.url.join(location).copy_with(fragment=None))
        except (httpx.InvalidURL, ValueError, UnicodeError):
            raise _error(self, f"redirect to an invalid URL ({_clip(location)})") from None
        if "set-cookie" in response.headers:
            if self.cookies is None:
                self.cookies = httpx.Cookies()
            self.cookies.extract_cookies(response)
        self.count += 1
        self.all_permanent &= status in PERMANENT_REDIRECTS
        state = self._state(target)
        if state in self.seen:
            raise _error(self, f"redirect loop (back to {target})", permanent=True)
        if self.count > self.max:
            raise _error(
                self,
                f"too many redirects ({self.count} > {self.max})",
                permanent=True,
                hint="update the URL to where it ends up, or raise fetch.max_redirects",
            )
        self.seen.add(state)
        self.trail.append((status, target))
        self.url = target

    def permanent_target(self) -> str | None:
        return self.url if self.count and self.all_permanent and self.url != self.start else None


class Pools:
    """One small connection pool per host instead of one big one.

    httpcore scans every connection of a pool, with a poll() call per idle one, for every request
    and response: one shared pool of 32 connections took about twice the CPU of per-host pools of
    two for a warm pass over 500 feeds. A pool unused for longer than the keep-alive expiry (httpx's
    default, 5 s) is closed.
    """

    IDLE = 5.0

    def __init__(self, make: Callable[[], httpx.AsyncBaseTransport], idle: float = IDLE) -> None:
        self._make = make
        self._idle = idle
        self._pools: dict[str, _Pool] = {}
        self._next_sweep = 0.0

    @asynccontextmanager
    async def use(self, key: str) -> AsyncIterator[httpx.AsyncBaseTransport]:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self._make())
        pool.users += 1
        try:
            yield pool.transport
        finally:
            pool.users -= 1
            pool.last_used = time.monotonic()

    async def sweep(self) -> None:
        """Close pools idle past the keep-alive expiry (their connections are useless by now)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._idle
        stale = [
            k for k, p in self._pools.items() if not p.users and now - p.last_used > self._idle
        ]
        for pool in [self._pools.pop(key) for key in stale]:
            await pool.transport.aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.transport.aclose()


class _Pool:
    __slots__ = ("last_used", "transport", "users")

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self.users = 0
        self.last_used = time.monotonic()


# -- politeness -----------------------------------------------------------------------------


class _HostGate:
    __slots__ = ("last_start", "semaphore", "spacing", "users")

    def __init__(self, concurrency: int) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.spacing = asyncio.Lock()
        self.last_start = -math.inf
        self.users = 0


class Politeness:
    """At most N requests in flight overall and per host; a minimum gap between starts to a host.

    The host slot is taken before the global one, so requests queued behind one slow host never
    hold global slots that other hosts could use. The gap is waited out holding both slots and
    measured when requests actually proceed, so it holds even when wake-ups run late; with the
    default delay of 0 nothing waits.
    """

    _SWEEP_AT = 1024  # idle host entries kept before a sweep (article links span many hosts)

    def __init__(self, concurrency: int, per_host: int, per_host_delay: float) -> None:
        self._global = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._delay = per_host_delay
        self._hosts: dict[str, _HostGate] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        gate = self._hosts.get(host) or self._new_gate(host)
        gate.users += 1
        try:
            async with gate.semaphore, self._global:
                if self._delay:
                    await self._space_out(gate)
                yield
        finally:
            gate.users -= 1
            if not gate.users and not self._waiting_out(gate, asyncio.get_running_loop().time()):
                self._hosts.pop(host, None)

    async def _space_out(self, gate: _HostGate) -> None:
        loop = asyncio.get_running_loop()
        async with gate.spacing:  # FIFO: one request at a time waits out the gap
            wait = gate.last_start + self._delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            gate.last_start = loop.time()

    def _waiting_out(self, gate: _HostGate, now: float) -> bool:
        return now < gate.last_start + self._delay

    def _new_gate(self, host: str) -> _HostGate:
        if len(self._hosts) >= self._SWEEP_AT:
            now = asyncio.get_running_loop().time()
            for key, gate in list(self._hosts.items()):
                if not gate.users and not self._waiting_out(gate, now):
                    del self._hosts[key]
        gate = self._hosts[host] = _HostGate(self._per_host)
        return gate


# -- body: streaming, decoding, size cap ----------------------------------------------------


class BodyTooLargeError(Exception):
    """The body (raw or inflated) passed the cap; reading stopped there."""


async def _drain(response: httpx.Response, limit: int = _PIECE) -> None:
    """Read a small unwanted body (304, redirect, error page) so the connection can be reused;
    a larger one is abandoned and its connection closed."""
    received = 0
    async for raw in response.aiter_raw():
        received += len(raw)
        if received > limit:
            return


async def _read_body(response: httpx.Response, cap: int) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise BodyTooLargeError(f"Content-Length {int(length)}")
    decoder = BodyDecoder(response.headers.get("content-encoding"), cap)
    async for raw in response.aiter_raw():
        decoder.feed(raw)
    return decoder.finish()


class BodyDecoder:
    """Undo Content-Encoding incrementally, raising BodyTooLargeError past `cap` decoded bytes.

    httpx's own decoders inflate each network chunk in one go (a 64 KiB gzip chunk of zeros becomes
    64 MiB); these inflate at most _PIECE bytes at a time, so memory stays near the cap.
    """

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        # Encodings are listed in the order applied, so they are undone last first.
        stages = (_stage(name) for name in reversed(names))
        self._stages = [stage for stage in stages if stage is not None]
        self._cap = cap
        self._raw = 0
        self._size = 0
        self._parts: list[bytes] = []

    def feed(self, raw: bytes) -> None:
        self._raw += len(raw)
        if self._raw > self._cap:
            raise BodyTooLargeError(f"more than {self._cap} bytes on the wire")
        for piece in self._decode(raw, 0):
            self._size += len(piece)
            if self._size > self._cap:
                raise BodyTooLargeError(f"more than {self._cap} bytes after decompression")
            self._parts.append(piece)

    def _decode(self, data: bytes, index: int) -> Iterator[bytes]:
        if index == len(self._stages):
            if data:
                yield data
            return
        for piece in self._stages[index].decode(data):
            yield from self._decode(piece, index + 1)

    def finish(self) -> bytes:
        return b"".join(self._parts)


class _ZlibStage:
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(self._wbits)
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._inflater.decompress(data, _PIECE)
            except zlib.error:
                if self._gzip or self._started:
                    raise
                self._wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header
                self._inflater = zlib.decompressobj(self._wbits)
                out = self._inflater.decompress(data, _PIECE)
            self._started = True
            data = self._inflater.unconsumed_tail
            if self._gzip and self._inflater.eof and self._inflater.unused_data[:2] == b"\x1f\x8b":
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(self._wbits)
            if out:
                yield out
            if not data and len(out) < _PIECE:
                return


class _BrotliStage:
    def __init__(self) -> None:
        assert brotli is not None
        self._decompressor = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        out = self._decompressor.process(data, output_buffer_limit=_PIECE)
        while out:  # output beyond the limit waits inside until asked for with empty input
            yield out
            out = self._decompressor.process(b"", output_buffer_limit=_PIECE)


def _stage(name: str) -> _ZlibStage | _BrotliStage | None:
    if name in ("gzip", "x-gzip"):
        return _ZlibStage(gzip=True)
    if name == "deflate":
        return _ZlibStage(gzip=False)
    if name == "br" and brotli is not None:
        return _BrotliStage()
    return None  # identity or an unknown coding: pass the bytes on, as httpx does


_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + ((brotli.error,) if brotli else ())
_BODY_ERRORS = (BodyTooLargeError, *_DECODE_ERRORS)


# -- errors ---------------------------------------------------------------------------------


def _error(
    hop: _Hops,
    text: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    permanent: bool = False,
    hint: str | None = None,
) -> FetchError:
    """A FetchError naming the requested URL, and where the redirects led if there were any."""
    where = ""
    if hop.count:
        where = f" (at {hop.url}, after {hop.count} redirect{'s' * (hop.count != 1)})"
    return FetchError(
        f"{hop.start}: {text}{where}",
        status=status,
        retry_after=retry_after,
        permanent=permanent,
        hint=hint,
    )


def _status_error(hop: _Hops, response: httpx.Response, what: str) -> FetchError:
    status = response.status_code
    text = f"HTTP {status} {httpx.codes.get_reason_phrase(status) or 'error'}".rstrip()
    if status == 410:
        if what == "feed":
            text += ": the feed was removed — disabled; re-enable with "
            text += f"`watcher feeds enable {hop.start}`"
        else:
            text += ": the page was removed"
        return _error(hop, text, status=status, permanent=True)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None:
            text += f", retry after {_secs(retry_after)}"
    hint = {
        401: "the feed needs credentials: put them in the URL as https://user:password@host/...",
        403: "the server refuses news-watcher; check the URL in a browser",
        404: "check the URL; the site may have moved its feed",
    }.get(status)
    return _error(hop, text, status=status, retry_after=retry_after, hint=hint)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and members of exception groups, each once."""
    stack, seen = [exc], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _describe(exc: BaseException, hop: _Hops, settings: FetchSettings) -> str:
    """A user-facing line for a network-level failure (httpx, ssl, OS, decoding)."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, BodyTooLargeError):
            return f"response larger than {_size(settings.max_body_bytes)} limit ({cause})"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate error: {cause.verify_message or cause.reason}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there; is the server down?)"
        if isinstance(cause, socket.gaierror):
            host = urlsplit(hop.url).hostname
            return f"DNS lookup failed for host {host} ({cause.strerror or cause})"
        if isinstance(cause, _DECODE_ERRORS):
            return f"could not decompress the response body ({cause})"
    return _describe_httpx(exc, settings)


def _describe_httpx(exc: BaseException, settings: FetchSettings) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out after {_secs(settings.connect_timeout)} connecting"
    if isinstance(exc, httpx.ReadTimeout):
        return f"timed out after {_secs(settings.read_timeout)} reading the response"
    if isinstance(exc, httpx.WriteTimeout):
        return f"timed out after {_secs(settings.read_timeout)} sending the request"
    if isinstance(exc, httpx.PoolTimeout):
        return "timed out waiting for a free connection"
    if isinstance(exc, httpx.LocalProtocolError):
        return f"could not send the request ({exc})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke the HTTP protocol ({exc})"
    if isinstance(exc, httpx.ReadError):
        return f"connection lost while reading the response ({exc or 'reset by peer'})"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({exc})"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | ValueError):
        return f"invalid URL ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _secs(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f} s"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


# -- schedule arithmetic --------------------------------------------------------------------


def next_interval(
    interval: float, settings: FetchSettings, rng: random.Random | None = None
) -> float:
    """`interval` ± settings.jitter, so feeds added together do not stay in lock-step forever."""
    rng = rng or _RNG
    return interval * (1.0 + rng.uniform(-settings.jitter, settings.jitter))


def retry_delay(
    failures: int,
    *,
    interval: float,
    settings: FetchSettings,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before the next attempt after `failures` consecutive failures.

    interval * 2**(failures-1), ± jitter, capped at settings.max_backoff; never sooner than the
    server's Retry-After, which is itself honoured only up to max_backoff so a hostile value cannot
    park a feed for a year.
    """
    rng = rng or _RNG
    cap = float(settings.max_backoff)
    exponent = min(max(failures, 1) - 1, 64)
    base = min(interval * 2.0**exponent, cap)
    delay = min(base * (1.0 + rng.uniform(-settings.jitter, settings.jitter)), cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date; None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "¹".isdigit() is True too
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
