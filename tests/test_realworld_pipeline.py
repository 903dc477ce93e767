"""Real-world leg: every feed and article page in ../shared/fixtures through the whole pipeline.

The files are read in place (never copied) and served by a local HTTP server; the leg skips with a
reason where ../shared is absent.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest
from werkzeug import Request, Response

from tests.conftest import Workspace, poll_once, stored_rows
from watcher.db.models import Article, Feed

pytestmark = pytest.mark.realworld


def serve_files(httpserver, files: dict[str, Path], content_type: str) -> None:
    def handle(request: Request) -> Response:
        path = files.get(request.path)
        if path is None:
            return Response("not found", status=404)
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag, "Content-Type": content_type})

    httpserver.expect_request(re.compile(r"/.+")).respond_with_handler(handle)


def test_every_real_feed_parses_or_fails_clearly(
    shared_fixtures: Path, httpserver, workspace: Workspace
):
    files = {f"/{p.name}": p for p in sorted((shared_fixtures / "feeds").iterdir())}
    serve_files(httpserver, files, "application/octet-stream")
    workspace.write_feeds({path: httpserver.url_for(path) for path in files})
    settings = workspace.settings(extract={"enabled": False})

    first = poll_once(settings)
    assert first.feeds == len(files)
    feeds = stored_rows(settings, Feed)
    for feed in feeds:
        if feed.last_error:
            assert len(feed.last_error) > 10 and "Traceback" not in feed.last_error, feed.url
    ok = [f for f in feeds if f.last_error is None]
    assert len(ok) >= len(files) - 2, [(f.url, f.last_error) for f in feeds if f.last_error]
    assert first.new_articles > 500

    second = poll_once(settings, force=True)
    assert second.not_modified == len(ok) and second.new_articles == 0


def test_every_real_page_is_extracted_through_the_pipeline(
    shared_fixtures: Path, httpserver, workspace: Workspace
):
    pages = {f"/pages/{p.name}": p for p in sorted((shared_fixtures / "pages").iterdir())}
    now = format_datetime(datetime(2026, 11, 20, tzinfo=UTC))
    items = "".join(
        f"<item><title>{escape(path)}</title><link>{httpserver.url_for(path)}</link>"
        f"<guid>{escape(path)}</guid><pubDate>{now}</pubDate><description>x</description></item>"
        for path in pages
    )
    channel = f"<channel><title>pages</title>{items}</channel>"
    feed = f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'
    httpserver.expect_request("/pages.xml").respond_with_data(
        feed, content_type="application/rss+xml"
    )
    serve_files(httpserver, pages, "text/html")  # after /pages.xml: its catch-all comes last
    workspace.write_feeds({"Pages": httpserver.url_for("/pages.xml")})
    settings = workspace.settings()

    summary = poll_once(settings)
    assert summary.new_articles == len(pages)
    articles = stored_rows(settings, Article)
    extracted = [a for a in articles if a.text_method == "trafilatura"]
    assert len(extracted) >= len(pages) - 3, [
        (a.url, a.extract_error) for a in articles if a.text_method != "trafilatura"
    ]
    for article in extracted:
        assert len(article.text) > 150, article.url
