"""A feed server on 127.0.0.1 that misbehaves on purpose, one path per case.

Written on http.server so it can do what HTTP libraries refuse to: bodies that never end, one byte
per second, lying lengths, endless headers, gzip bombs, raw junk instead of HTTP. Every request is
counted by path, so tests can also prove what the daemon did NOT fetch (an external entity's URL).
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.hostile import feeds

RSS = "application/rss+xml; charset=utf-8"
SLOW_BYTES = 120  # the slow server gives up after this many seconds if nobody hung up
ENDLESS_LIMIT = 512 * 1024 * 1024  # the endless body stops here if nobody hung up

Route = Callable[["Handler"], None]


class HostileServer:
    """`with HostileServer() as server:`; `server.url(path)`, `server.hits[path]`.

    `marker` is a unique string written to `marker_file`, a local file the external-entity feeds
    point at: it must never show up in anything news-watcher stores or sends.
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.marker = f"LOCAL-FILE-MARKER-{uuid.uuid4().hex}"
        self._tmp = tempfile.TemporaryDirectory(prefix="hostile-")
        self.marker_file = Path(self._tmp.name) / "secret.txt"
        self.marker_file.write_text(self.marker + "\n", encoding="utf-8")
        self.good_serial = 0
        self._bomb: feeds.GzipBomb | None = None
        self._lock = threading.Lock()
        self.routes: dict[str, Route] = {}
        self._install()
        outer = self

        class Bound(Handler):
            server_ref = outer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Bound)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._tmp.cleanup()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def bomb(self) -> feeds.GzipBomb:
        with self._lock:
            if self._bomb is None:
                self._bomb = feeds.GzipBomb()
            return self._bomb

    def publish_good(self) -> None:
        """The good feed gets a fresh set of items (for tests that poll more than once)."""
        self.good_serial += 1

    # -- the routes ----------------------------------------------------------------------------
    def _install(self) -> None:
        r = self.routes
        r["/good.xml"] = lambda h: h.send(feeds.good(self.base, self.good_serial))
        r["/malformed.xml"] = lambda h: h.send(feeds.malformed())
        r["/truncated.xml"] = lambda h: h.send(feeds.truncated())
        r["/cp1251-declared-utf8.xml"] = lambda h: h.send(
            feeds.mis_encoded(feeds.RUSSIAN, "cp1251", "utf-8"), RSS
        )
        r["/euckr-declared-latin1.xml"] = lambda h: h.send(
            feeds.mis_encoded(feeds.KOREAN, "euc-kr", "ISO-8859-1"),
            "application/rss+xml; charset=ISO-8859-1",
        )
        r["/sjis-undeclared.xml"] = lambda h: h.send(
            feeds.mis_encoded(feeds.JAPANESE, "shift_jis", None), "text/xml"
        )
        r["/sjis-declared-eucjp.xml"] = lambda h: h.send(
            feeds.mis_encoded(feeds.JAPANESE, "shift_jis", "EUC-JP"), "text/xml"
        )
        r["/entity-bomb.xml"] = lambda h: h.send(feeds.entity_bomb())
        r["/quadratic-blowup.xml"] = lambda h: h.send(feeds.quadratic_blowup())
        r["/xxe.xml"] = lambda h: h.send(
            feeds.external_entity(str(self.marker_file), self.url("/entity-target"))
        )
        r["/entity-target"] = lambda h: h.send(self.marker.encode(), "text/plain")
        r["/xxe-page-feed.xml"] = lambda h: h.send(feeds.xxe_page_feed(self.base))
        r["/articles/xxe-page.html"] = lambda h: h.send(
            feeds.xxe_page(str(self.marker_file)), "application/xhtml+xml"
        )
        r["/gzip-bomb.xml"] = Handler.gzip_bomb
        r["/endless.xml"] = Handler.endless
        r["/slow.xml"] = Handler.slow
        r["/short-body.xml"] = Handler.short_body
        r["/endless-headers.xml"] = Handler.endless_headers
        r["/not-http.xml"] = Handler.not_http
        r["/loop-a.xml"] = lambda h: h.redirect(self.url("/loop-b.xml"))
        r["/loop-b.xml"] = lambda h: h.redirect(self.url("/loop-a.xml"))
        r["/to-file.xml"] = lambda h: h.redirect("file:///etc/passwd")
        r["/to-ftp.xml"] = lambda h: h.redirect("ftp://127.0.0.1/feed.xml")
        r["/status-404.xml"] = lambda h: h.status(404)
        r["/status-410.xml"] = lambda h: h.status(410)
        r["/status-429.xml"] = lambda h: h.status(429, {"Retry-After": "7200"})
        r["/status-500.xml"] = lambda h: h.status(500)
        r["/status-429-odd-retry.xml"] = lambda h: h.status(429, {"Retry-After": "\u00b9"})
        r["/status-503.xml"] = lambda h: h.status(
            503, {"Retry-After": formatdate(time.time() + 5400, usegmt=True)}
        )
        r["/html.xml"] = lambda h: h.send(feeds.html_page(), "text/html; charset=utf-8")
        r["/empty.xml"] = lambda h: h.send(b"", RSS)
        r["/huge-item.xml"] = lambda h: h.send(feeds.huge_item())
        r["/many.xml"] = lambda h: h.send(feeds.many_entries())
        r["/no-ids.xml"] = lambda h: h.send(feeds.no_ids())
        r["/future.xml"] = lambda h: h.send(feeds.future_dates(self.base))
        r["/dup-guids.xml"] = lambda h: h.send(feeds.duplicate_guids(self.base))
        r["/javascript-links.xml"] = lambda h: h.send(feeds.javascript_links())
        r["/injection.xml"] = lambda h: h.send(feeds.injection())
        r["/huge-doctype.xml"] = lambda h: h.send(feeds.huge_doctype())
        r["/nul.json"] = lambda h: h.send(feeds.nul_json(), "application/feed+json")
        r["/deep.json"] = lambda h: h.send(feeds.deep_json(), "application/feed+json")
        r["/nul-page-feed.xml"] = lambda h: h.send(feeds.nul_page_feed(self.base))
        r["/articles/nul-page.html"] = lambda h: h.send(feeds.nul_page(), "text/html")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_ref: HostileServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        outer = self.server_ref
        path = self.path.split("?", 1)[0]
        with outer._lock:
            outer.hits[path] += 1
        route = outer.routes.get(path)
        if route is None and path.startswith("/articles/"):
            route = lambda h: h.send(feeds.good_page(path), "text/html; charset=utf-8")  # noqa: E731
        if route is None:
            self.status(404)
            return
        try:
            route(self)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- plain answers -------------------------------------------------------------------------
    def send(self, body: bytes, content_type: str = RSS, headers: dict[str, str] | None = None):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def status(self, code: int, headers: dict[str, str] | None = None) -> None:
        body = f"<html><body>error {code}</body></html>".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- misbehaviour --------------------------------------------------------------------------
    def _stream(self, pieces: Iterable[bytes], headers: dict[str, str]) -> None:
        """Send pieces until the client hangs up; the response is close-delimited."""
        self.close_connection = True
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(piece)
            self.wfile.flush()

    def gzip_bomb(self) -> None:
        bomb = self.server_ref.bomb
        headers = {
            "Content-Type": RSS,
            "Content-Encoding": "gzip",
            "Content-Length": str(bomb.length),
        }
        self._stream(bomb.pieces(), headers)

    def endless(self) -> None:
        def pieces() -> Iterable[bytes]:
            yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>Endless</title>'
            chunk = b"<item><title>again and again</title></item>\n" * 1500
            sent = 0
            while sent < ENDLESS_LIMIT:
                yield chunk
                sent += len(chunk)

        self._stream(pieces(), {"Content-Type": RSS})

    def slow(self) -> None:
        def pieces() -> Iterable[bytes]:
            for byte in feeds.good(self.server_ref.base)[:SLOW_BYTES]:
                yield bytes([byte])
                time.sleep(1.0)

        self._stream(pieces(), {"Content-Type": RSS})

    def short_body(self) -> None:
        """Content-Length promises 100,000 bytes; 50 arrive, then the connection closes."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", RSS)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(feeds.good(self.server_ref.base)[:50])

    def endless_headers(self) -> None:
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
        for n in range(200_000):
            self.wfile.write(f"X-Padding-{n}: {'x' * 64}\r\n".encode())

    def not_http(self) -> None:
        self.close_connection = True
        self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\nthis is not HTTP at all\r\n\r\n")
