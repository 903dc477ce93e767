"""A small news site for tests: RSS feeds and article pages served by a real local HTTP server.

Feeds honour conditional GET (ETag / If-None-Match), can be made to fail, redirect or go away, and
every request is counted, so tests can assert what the daemon fetched and how often.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ARTICLE_FILLER = (
    "Officials in Seoul and Tokyo said the talks would continue next month. Analysts noted that "
    "public opinion in both countries remains divided over the pace of security cooperation, and "
    "that the opposition has demanded a full briefing in parliament before any new commitment. "
)


@dataclass
class Item:
    slug: str
    title: str
    body: str
    published: datetime = field(default_factory=lambda: datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    guid: str | None = None


@dataclass
class FeedSpec:
    items: list[Item] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    redirect_to: str | None = None
    title: str = "Test Outlet"


class FeedSite:
    """Register with `site.install(httpserver)`; URLs via `site.url(path)`."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.feeds: dict[str, FeedSpec] = {}
        self.pages: dict[str, str] = {}
        self.hits: Counter[str] = Counter()
        self.conditional_hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server.expect_request("/", method="GET").respond_with_data("ok")
        import re

        server.expect_request(re.compile(r"/.+")).respond_with_handler(self.handle)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def add_feed(self, path: str, items: list[Item] | None = None, **options: object) -> str:
        self.feeds[path] = FeedSpec(items=list(items or []), **options)  # type: ignore[arg-type]
        for item in self.feeds[path].items:
            self.add_page(item)
        return self.url(path)

    def add_page(self, item: Item) -> None:
        self.pages[f"/articles/{item.slug}.html"] = article_html(item)

    def publish(self, path: str, item: Item) -> None:
        self.feeds[path].items.insert(0, item)
        self.add_page(item)

    # -- serving -------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        with self._lock:
            self.hits[request.path] += 1
            if request.headers.get("If-None-Match"):
                self.conditional_hits[request.path] += 1
        if request.path in self.pages:
            return Response(self.pages[request.path], content_type="text/html; charset=utf-8")
        spec = self.feeds.get(request.path)
        if spec is None:
            return Response("not found", status=404)
        if spec.redirect_to:
            return Response("", status=spec.status, headers={"Location": spec.redirect_to})
        if spec.status != 200:
            return Response("failure", status=spec.status, headers=spec.headers)
        body = rss(self.url(""), spec)
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(
            body, content_type="application/rss+xml; charset=utf-8", headers={"ETag": etag}
        )


def rss(base: str, spec: FeedSpec) -> str:
    base = base.rstrip("/")
    items = "".join(
        f"""
    <item>
      <title>{escape(item.title)}</title>
      <link>{base}/articles/{item.slug}.html?utm_source=rss&amp;utm_medium=feed</link>
      <guid isPermaLink="false">{escape(item.guid or item.slug)}</guid>
      <pubDate>{format_datetime(item.published)}</pubDate>
      <description>{escape(item.body[:160])}</description>
    </item>"""
        for item in spec.items
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
  <title>{escape(spec.title)}</title><link>{base}/</link><description>test</description>
  <language>en</language>{items}
</channel></rss>"""


def article_html(item: Item) -> str:
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in (item.body, ARTICLE_FILLER, ARTICLE_FILLER))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{escape(item.title)} | Test Outlet</title></head><body>
<nav><a href="/">Home</a> <a href="/politics">Politics</a> <a href="/world">World</a></nav>
<article><h1>{escape(item.title)}</h1><p class="byline">By Test Reporter</p>{paragraphs}</article>
<footer>Copyright Test Outlet. All rights reserved. Subscribe to our newsletter.</footer>
</body></html>"""


def items(prefix: str, count: int, *, topic: str = "GSOMIA") -> list[Item]:
    """Distinct articles; every third mentions `topic` so rules have something to match."""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    made = []
    for number in range(count):
        subject = topic if number % 3 == 0 else f"harbour festival number {number}"
        made.append(
            Item(
                slug=f"{prefix}-{number}",
                title=f"{prefix} report {number}: news about {subject}",
                body=(
                    f"In report {number} from {prefix}, officials discussed {subject} at length. "
                    f"The item has its own unique wording {prefix}{number} to stay distinct. "
                ),
                published=start - timedelta(hours=number),
            )
        )
    return made


def opml(feeds: dict[str, str], **attributes: dict[str, str]) -> str:
    """An OPML feed list: {title: url}; `attributes[title]` adds outline attributes."""
    outlines = "".join(
        f'<outline type="rss" text="{escape(title)}" title="{escape(title)}" xmlUrl="{escape(url)}"'
        + "".join(f' {k}="{escape(v)}"' for k, v in attributes.get(title, {}).items())
        + "/>\n"
        for title, url in feeds.items()
    )
    head = '<?xml version="1.0"?>\n<opml version="2.0"><head><title>t</title></head><body>\n'
    return f"{head}{outlines}</body></opml>\n"
