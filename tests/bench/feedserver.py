"""The bench feed server: N deterministic news feeds and their article pages on loopback addresses.

It runs in its own process (`FeedServer` starts it), so serving never competes with the measured
process for the GIL, and it answers from bytes prepared in advance (feed bodies and their gzip form
are rebuilt only when items are published), so it stays far from being the bottleneck: the harness
measures a plain fetch loop against it and reports the figure next to the results.

What it serves, like a real site would:
- feed i (RSS 2.0 for even i, Atom for odd i) at http://127.0.10.H:PORT/feeds/i.xml, the feeds
  spread over several loopback addresses (a daemon's per-host limits see several hosts, as with
  real feed lists); 20 items each, 2-4 KB of HTML per item, some items about the seeded topics
  (GSOMIA, Dokdo/독도/竹島, the trilateral summit); ETag and Last-Modified with 304 answers;
  gzip when asked for;
- article pages at /a/i/seq.html: the real pages of ../shared/fixtures/pages read in place (never
  copied), else generated ~90 KB pages;
- control: /_control/publish?count=C&feeds=N (C new items at the top of the first N feeds),
  /_control/stats (requests by kind), /_control/reset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import random
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[2]
SHARED_PAGES = REPO.parent / "shared" / "fixtures" / "pages"
HOST_PREFIX = "127.0.10."
BASE_DATE = datetime(2025, 6, 1, 6, 0, tzinfo=UTC)

TOPICS = [  # (headline, sentence): each headline alone matches one of the seeded rules
    (
        "Seoul keeps GSOMIA intelligence-sharing pact with Japan in force",
        "Seoul said it would keep the GSOMIA intelligence-sharing pact with Japan in force, and "
        "Korea's defence ministry called the General Security of Military Information Agreement "
        "essential.",
    ),
    (
        "Japan protests South Korean lawmakers' visit to Dokdo islets",
        "Japan lodged a protest after South Korean lawmakers landed on Dokdo, the islets Japan "
        "calls Takeshima, and Korea's foreign ministry rejected the claim.",
    ),
    (
        "한국, 독도 방어훈련 실시…일본 항의",
        "한국 정부는 독도 방어훈련을 실시했다고 밝혔으며 일본 정부는 이에 항의했다.",
    ),
    (
        "日本政府、竹島の領有権を改めて主張",
        "日本政府は竹島の領有権を改めて主張し、韓国政府に抗議した。",
    ),
    (
        "Trilateral summit: South Korea, Japan and US to share missile warning data",
        "Leaders of South Korea, Japan and the United States agreed at the trilateral summit to "
        "share missile warning data in real time.",
    ),
]
_WORDS = (  # noqa: SIM905 - a paragraph of words reads better than a 200-item list
    "the of and to in a that said for on with was as by at from officials government minister "
    "talks market week year people city council report police court economy trade company "
    "percent price prices bank rates growth election party voters campaign policy plan budget "
    "school students health hospital workers union strike energy power climate rain storm "
    "flood river road bridge train airport festival museum team season coach players match "
    "league record final fans crowd statement spokesman analysts investors shares quarter "
    "profit sales exports imports industry factory village residents officers judge ruling "
    "appeal law bill parliament committee hearing vote support opposition leader mayor "
    "governor region province capital border coast island harbour port ship fishing farmers "
    "harvest water supply network service users data system software phone internet security "
    "after before during while because although however later earlier new old local national "
    "international public private major small large early late first last next several many"
).split()


def _paragraphs(count: int, seed: int) -> list[str]:
    """A pool of prose paragraphs items are assembled from (fast: feeds are rebuilt on publish)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(count):
        sentences = []
        for _ in range(rng.randint(4, 7)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(12, 24))]
            sentences.append(" ".join(words).capitalize() + ".")
        pool.append(" ".join(sentences))
    return pool


@dataclass
class Item:
    feed: int
    seq: int
    title: str
    html: str
    published: datetime


@dataclass
class FeedState:
    head: int  # items published so far; the feed shows the newest `per_feed`
    body: bytes = b""
    gz: bytes = b""
    etag: str = ""
    last_modified: str = ""
    items: dict[int, Item] = field(default_factory=dict)


class BenchSite:
    """The content: pure functions of (seed, feed, seq), so every run serves the same bytes."""

    def __init__(
        self,
        n_feeds: int,
        *,
        port: int,
        per_feed: int = 20,
        hosts: int = 32,
        seed: int = 1,
        pages_dir: Path | None = SHARED_PAGES,
    ) -> None:
        self.n_feeds, self.port, self.per_feed, self.seed = n_feeds, port, per_feed, seed
        self.hosts = max(1, min(hosts, 250))
        self.pool = _paragraphs(3000, seed)
        self.real_pages = _read_pages(pages_dir)
        self.feeds = [FeedState(head=per_feed) for _ in range(n_feeds)]
        for number in range(n_feeds):
            self._render(number)

    # -- addresses --------------------------------------------------------------------------
    def host(self, feed: int) -> str:
        return f"{HOST_PREFIX}{1 + feed % self.hosts}"

    def feed_url(self, feed: int) -> str:
        return f"http://{self.host(feed)}:{self.port}/feeds/{feed}.xml"

    def cpu_seconds(self) -> float:
        """CPU time the server process used so far (to show it is not the bottleneck)."""
        import psutil

        assert self._process is not None
        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    def page_url(self, feed: int, seq: int) -> str:
        return f"http://{self.host(feed)}:{self.port}/a/{feed}/{seq}.html"

    # -- content ----------------------------------------------------------------------------
    def item(self, feed: int, seq: int) -> Item:
        state = self.feeds[feed]
        cached = state.items.get(seq)
        if cached is not None:
            return cached
        rng = random.Random(self.seed * 1_000_003 + feed * 10_007 + seq)
        paragraphs = [rng.choice(self.pool) for _ in range(rng.randint(4, 7))]
        paragraphs.insert(
            1, f"Report {seq} of outlet {feed} (reference {feed}-{seq}-{rng.random():.6f})."
        )
        subject = " ".join(rng.choice(_WORDS) for _ in range(6)).capitalize()
        if (feed + seq) % 6 == 0:  # one item in six is about a watched topic
            subject, sentence = TOPICS[(feed + seq) % len(TOPICS)]
            paragraphs.insert(0, sentence)
        html = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        made = Item(feed, seq, subject, html, BASE_DATE + timedelta(minutes=10 * seq))
        state.items[seq] = made
        return made

    def _render(self, feed: int) -> None:
        state = self.feeds[feed]
        seqs = range(state.head - 1, max(state.head - self.per_feed, 0) - 1, -1)
        items = [self.item(feed, seq) for seq in seqs]
        state.items = {it.seq: it for it in items}  # older items are no longer needed
        text = self._atom(feed, items) if feed % 2 else self._rss(feed, items)
        state.body = text.encode("utf-8")
        state.gz = gzip.compress(state.body, compresslevel=6, mtime=0)
        state.etag = f'"f{feed}-{state.head}"'
        updated = BASE_DATE + timedelta(minutes=10 * state.head)
        state.last_modified = format_datetime(updated, usegmt=True)

    def _rss(self, feed: int, items: list[Item]) -> str:
        home = f"http://{self.host(feed)}:{self.port}/"
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Bench Outlet {feed}</title><link>{home}</link>"
            f"<description>News from outlet {feed}</description><language>en</language>"
        ]
        for it in items:
            parts.append(
                f"<item><title>{escape(it.title)}</title>"
                f"<link>{self.page_url(feed, it.seq)}?utm_source=rss</link>"
                f'<guid isPermaLink="false">outlet-{feed}-item-{it.seq}</guid>'
                f"<pubDate>{format_datetime(it.published)}</pubDate>"
                f"<dc:creator>Reporter {it.seq % 17}</dc:creator>"
                f"<description>{escape(it.html)}</description></item>"
            )
        parts.append("</channel></rss>\n")
        return "".join(parts)

    def _atom(self, feed: int, items: list[Item]) -> str:
        home = f"http://{self.host(feed)}:{self.port}/"
        updated = items[0].published.isoformat() if items else BASE_DATE.isoformat()
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
            f'xml:lang="en"><title>Bench Outlet {feed}</title>'
            f'<link rel="alternate" href="{home}"/><id>urn:bench:outlet:{feed}</id>'
            f"<updated>{updated}</updated>"
        ]
        for it in items:
            summary = escape(re.sub(r"<[^>]+>", " ", it.html)[:280])
            parts.append(
                f"<entry><title>{escape(it.title)}</title>"
                f'<link rel="alternate" href="{self.page_url(feed, it.seq)}"/>'
                f"<id>urn:bench:outlet:{feed}:item:{it.seq}</id>"
                f"<published>{it.published.isoformat()}</published>"
                f"<updated>{it.published.isoformat()}</updated>"
                f"<author><name>Reporter {it.seq % 17}</name></author>"
                f"<summary>{summary}</summary>"
                f'<content type="html">{escape(it.html)}</content></entry>'
            )
        parts.append("</feed>\n")
        return "".join(parts)

    def publish(self, count: int, feeds: int | None = None) -> int:
        """`count` new items at the top of the first `feeds` feeds (all by default)."""
        touched = range(min(feeds or self.n_feeds, self.n_feeds))
        for number in touched:
            self.feeds[number].head += count
            self._render(number)
        return len(touched)

    def page(self, feed: int, seq: int) -> bytes:
        if self.real_pages:
            return self.real_pages[(feed * 7 + seq) % len(self.real_pages)]
        return generated_page(self.item(feed, seq), self.pool, self.seed)


def _read_pages(pages_dir: Path | None) -> list[bytes]:
    if pages_dir is None or not pages_dir.is_dir():
        return []
    return [path.read_bytes() for path in sorted(pages_dir.glob("*.html"))]


def generated_page(item: Item, pool: list[str], seed: int, size: int = 90_000) -> bytes:
    """A ~90 KB news page: the article among navigation, related links, scripts and a footer."""
    rng = random.Random(seed + item.feed * 7919 + item.seq)
    nav = "".join(f'<li><a href="/section/{w}">{w.title()}</a></li>' for w in _WORDS[:40])
    related = "".join(
        f'<li><a href="/a/{item.feed}/{n}.html">{escape(rng.choice(pool)[:80])}</a></li>'
        for n in range(30)
    )
    body = item.html + "".join(f"<p>{escape(rng.choice(pool))}</p>" for _ in range(8))
    head = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(item.title)}'
        f'</title><meta property="og:title" content="{escape(item.title)}"></head><body>'
        f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>{escape(item.title)}</h1>"
        f'<p class="byline">By Reporter {item.seq % 17}</p>{body}</article>'
        f"<aside><h2>Related</h2><ul>{related}</ul></aside></main>"
    )
    script = "<script>window.dataLayer=window.dataLayer||[];" + "x=1;" * 200 + "</script>"
    filler = []
    length = len(head)
    while length < size:
        block = f'<div class="promo"><p>{escape(rng.choice(pool))}</p></div>{script}'
        filler.append(block)
        length += len(block)
    return (head + "".join(filler) + "<footer>© Bench Outlet</footer></body></html>").encode()


# -- HTTP -------------------------------------------------------------------------------------

_FEED_PATH = re.compile(r"^/feeds/(\d+)\.xml$")
_PAGE_PATH = re.compile(r"^/a/(\d+)/(\d+)\.html$")


class Handler:
    """Routes one parsed request to bytes; counts what it served."""

    def __init__(self, site: BenchSite) -> None:
        self.site = site
        self.stats: dict[str, int] = {}

    def count(self, kind: str, nbytes: int = 0) -> None:
        self.stats[kind] = self.stats.get(kind, 0) + 1
        self.stats["bytes"] = self.stats.get("bytes", 0) + nbytes

    def respond(self, target: str, headers: dict[str, str]) -> bytes:
        parts = urlsplit(target)
        found = _FEED_PATH.match(parts.path)
        if found and int(found.group(1)) < self.site.n_feeds:
            return self._feed(int(found.group(1)), headers)
        found = _PAGE_PATH.match(parts.path)
        if found and int(found.group(1)) < self.site.n_feeds:
            body = self.site.page(int(found.group(1)), int(found.group(2)))
            self.count("page", len(body))
            return _response(200, body, {"Content-Type": "text/html"})
        if parts.path.startswith("/_control/"):
            return self._control(parts.path.removeprefix("/_control/"), parse_qs(parts.query))
        self.count("404")
        return _response(404, b"not found", {"Content-Type": "text/plain"})

    def _feed(self, number: int, headers: dict[str, str]) -> bytes:
        state = self.site.feeds[number]
        validators = {"ETag": state.etag, "Last-Modified": state.last_modified}
        if headers.get("if-none-match") == state.etag or (
            "if-none-match" not in headers
            and headers.get("if-modified-since") == state.last_modified
        ):
            self.count("feed304")
            return _response(304, b"", validators)
        kind = "application/atom+xml" if number % 2 else "application/rss+xml"
        extra = {"Content-Type": f"{kind}; charset=utf-8", **validators}
        if "gzip" in headers.get("accept-encoding", ""):
            extra["Content-Encoding"] = "gzip"
            self.count("feed200", len(state.gz))
            return _response(200, state.gz, extra)
        self.count("feed200", len(state.body))
        return _response(200, state.body, extra)

    def _control(self, action: str, query: dict[str, list[str]]) -> bytes:
        def arg(name: str) -> int | None:
            return int(query[name][0]) if name in query else None

        if action == "publish":
            touched = self.site.publish(arg("count") or 1, arg("feeds"))
            data: object = {"published": touched}
        elif action == "stats":
            data = dict(self.stats)
        elif action == "reset":
            self.stats.clear()
            data = {"reset": True}
        else:
            return _response(404, b"unknown control action", {"Content-Type": "text/plain"})
        return _response(200, json.dumps(data).encode(), {"Content-Type": "application/json"})


_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found"}


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if status != 304:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; GET/HEAD only; just enough for feed readers."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
            request_line, *header_lines = head.split("\r\n")
            try:
                method, target, version = request_line.split(" ", 2)
            except ValueError:
                self.transport.close()
                return
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            reply = self.handler.respond(target, headers)
            if method == "HEAD":
                reply = reply[: reply.find(b"\r\n\r\n") + 4]
            self.transport.write(reply)
            closing = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            if closing:
                self.transport.close()
                self.transport = None


async def serve(site: BenchSite, ready: asyncio.Future[None] | None = None) -> None:
    loop = asyncio.get_running_loop()
    handler = Handler(site)
    hosts = ["127.0.0.1"] + [f"{HOST_PREFIX}{n}" for n in range(1, site.hosts + 1)]
    servers = [
        await loop.create_server(lambda: HttpProtocol(handler), host, site.port, backlog=1024)
        for host in hosts
    ]
    print(json.dumps({"ready": True, "port": site.port}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for server in servers:
            server.close()


def free_port() -> int:
    """A port free on every bench address (the OS picks it on the first one)."""
    import socket

    for _ in range(20):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for n in range(1, 251):
                check = socket.socket()
                check.bind((f"{HOST_PREFIX}{n}", port))
                check.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on the 127.0.10.x loopback addresses")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench feed server (started by FeedServer)")
    parser.add_argument("--feeds", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--per-feed", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pages", type=str, default=str(SHARED_PAGES), help="'' for generated")
    args = parser.parse_args(argv)
    site = BenchSite(
        args.feeds,
        port=args.port,
        per_feed=args.per_feed,
        hosts=args.hosts,
        seed=args.seed,
        pages_dir=Path(args.pages) if args.pages else None,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(site))
    return 0


# -- the harness side ----------------------------------------------------------------------------


class FeedServer:
    """Starts the server process; `with FeedServer(500) as server: server.feed_urls()`."""

    def __init__(
        self,
        n_feeds: int,
        *,
        hosts: int = 32,
        per_feed: int = 20,
        seed: int = 1,
        real_pages: bool = True,
    ) -> None:
        self.n_feeds, self.hosts, self.per_feed, self.seed = n_feeds, hosts, per_feed, seed
        self.pages_dir = SHARED_PAGES if real_pages and SHARED_PAGES.is_dir() else None
        self.port = free_port()
        self._process: subprocess.Popen[str] | None = None
        # The same addresses the server computes, without building its content here.
        self._addresses = BenchSite.__new__(BenchSite)
        self._addresses.port, self._addresses.hosts = self.port, max(1, min(hosts, 250))

    @property
    def real_pages(self) -> bool:
        return self.pages_dir is not None

    def __enter__(self) -> FeedServer:
        command = [
            sys.executable, "-m", "tests.bench.feedserver",
            "--feeds", str(self.n_feeds), "--port", str(self.port), "--hosts", str(self.hosts),
            "--per-feed", str(self.per_feed), "--seed", str(self.seed),
            "--pages", str(self.pages_dir or ""),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            self.__exit__()
            raise RuntimeError(f"the bench feed server did not start (got {line!r})")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def feed_urls(self, count: int | None = None) -> list[str]:
        return [self._addresses.feed_url(i) for i in range(count or self.n_feeds)]

    def cpu_seconds(self) -> float:
        """CPU time the server process used so far (to show it is not the bottleneck)."""
        import psutil

        assert self._process is not None
        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    def page_url(self, feed: int, seq: int) -> str:
        return self._addresses.page_url(feed, seq)

    def control(self, action: str, **params: int) -> dict:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"http://127.0.0.1:{self.port}/_control/{action}?{query}"
        with urllib.request.urlopen(url, timeout=120) as response:
            return json.loads(response.read())

    def publish(self, count: int = 1, feeds: int | None = None) -> int:
        params = {"count": count} | ({"feeds": feeds} if feeds else {})
        return int(self.control("publish", **params)["published"])

    def stats(self) -> dict[str, int]:
        return self.control("stats")

    def reset(self) -> None:
        self.control("reset")


if __name__ == "__main__":
    raise SystemExit(main())
