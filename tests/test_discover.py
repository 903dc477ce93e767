"""Feed discovery against a real local HTTP server: the address is a feed, <link rel=alternate>
(picking the main feed, listing candidates when unclear), common paths, feed-like links, nothing."""

from __future__ import annotations

import asyncio

import pytest
from pytest_httpserver import HTTPServer

from watcher.config import FetchSettings
from watcher.discover import (
    Discovery,
    FeedCandidate,
    NoFeedFoundError,
    discover,
    pick,
    probe_urls,
    score,
)
from watcher.fetch import Fetcher

RSS_TYPE = "application/rss+xml; charset=utf-8"


def rss(title: str, count: int = 3) -> str:
    items = "".join(
        f"<item><title>{title} item {n}</title><link>https://example.org/{n}</link>"
        f"<guid>{title}-{n}</guid><pubDate>Fri, 20 Nov 2026 0{n}:00:00 GMT</pubDate></item>"
        for n in range(count)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://example.org/</link><description>d</description>{items}</channel></rss>"
    )


def atom(title: str) -> str:
    return (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{title}</title><id>urn:x</id><updated>2026-11-20T00:00:00Z</updated>"
        "<entry><title>one</title><id>urn:x:1</id><updated>2026-11-20T00:00:00Z</updated>"
        '<link href="https://example.org/1"/></entry></feed>'
    )


def page(head: str = "", body: str = "", title: str = "Example News") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def alternate(href: str, title: str, kind: str = "rss") -> str:
    return f'<link rel="alternate" type="application/{kind}+xml" title="{title}" href="{href}">'


def run(server: HTTPServer, path: str) -> Discovery:
    async def go() -> Discovery:
        async with Fetcher(FetchSettings()) as fetcher:
            return await discover(fetcher, server.url_for(path))

    return asyncio.run(go())


def serve_html(server: HTTPServer, path: str, html: str) -> None:
    server.expect_request(path).respond_with_data(html, content_type="text/html; charset=utf-8")


def serve_feed(server: HTTPServer, path: str, body: str) -> None:
    server.expect_request(path).respond_with_data(body, content_type=RSS_TYPE)


def test_an_address_that_is_already_a_feed_is_taken_as_it_is(httpserver: HTTPServer):
    serve_feed(httpserver, "/news.xml", rss("Wire"))
    found = run(httpserver, "/news.xml")
    assert found.chosen == FeedCandidate(httpserver.url_for("/news.xml"), "Wire", "rss", "address")
    assert found.parsed is not None and len(found.parsed.entries) == 3


def test_page_with_posts_and_comments_feeds_picks_the_posts_feed(httpserver: HTTPServer):
    head = alternate("/comments/feed/", "Example » Comments Feed") + alternate(
        "/feed/", "Example » Feed"
    )
    serve_html(httpserver, "/", page(head))
    found = run(httpserver, "/")
    assert [c.url for c in found.candidates] == [
        httpserver.url_for("/comments/feed/"),
        httpserver.url_for("/feed/"),
    ]
    assert found.chosen is not None and found.chosen.url == httpserver.url_for("/feed/")
    assert found.page_title == "Example News"


def test_page_with_all_news_and_section_feeds_picks_all_news(httpserver: HTTPServer):
    head = (
        alternate("/rss/politics.xml", "Politics")
        + alternate("/rss/allnews.xml", "All news")
        + alternate("/rss/economy.xml", "Economy")
    )
    serve_html(httpserver, "/", page(head))
    found = run(httpserver, "/")
    assert found.chosen is not None and found.chosen.title == "All news"


def test_page_with_korean_section_feeds_picks_the_whole_paper(httpserver: HTTPServer):
    head = alternate("/rss/politics.xml", "정치") + alternate("/rss/total.xml", "전체기사")
    serve_html(httpserver, "/", page(head, title="연합뉴스"))
    assert run(httpserver, "/").chosen.title == "전체기사"


def test_page_with_only_section_feeds_is_ambiguous_and_lists_them(httpserver: HTTPServer):
    head = alternate("/rss/politics.xml", "Politics") + alternate("/rss/economy.xml", "Economy")
    serve_html(httpserver, "/", page(head))
    found = run(httpserver, "/")
    assert found.chosen is None and found.ambiguous
    assert [c.title for c in found.candidates] == ["Politics", "Economy"]


def test_rss_and_atom_of_the_same_feed_are_one_choice(httpserver: HTTPServer):
    head = alternate("/feeds/posts/default", "Blog - Atom", "atom") + alternate(
        "/feeds/posts/default?alt=rss", "Blog - RSS"
    )
    serve_html(httpserver, "/", page(head))
    found = run(httpserver, "/")
    assert found.chosen is not None and found.chosen.title == "Blog - Atom"


def test_relative_links_resolve_against_base_href(httpserver: HTTPServer):
    head = '<base href="/edition/">' + alternate("feed.xml", "Edition feed")
    serve_html(httpserver, "/", page(head))
    found = run(httpserver, "/")
    assert found.chosen.url == httpserver.url_for("/edition/feed.xml")


def test_json_feed_link_is_found_but_an_oembed_json_link_is_not(httpserver: HTTPServer):
    head = (
        '<link rel="alternate" type="application/json+oembed" href="/oembed?url=x">'
        '<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">'
        '<link rel="alternate" type="application/feed+json" title="JSON Feed" href="/feed.json">'
    )
    serve_html(httpserver, "/", page(head))
    found = run(httpserver, "/")
    assert [(c.url, c.kind) for c in found.candidates] == [
        (httpserver.url_for("/feed.json"), "json")
    ]


def test_a_page_without_links_is_found_through_common_paths(httpserver: HTTPServer):
    serve_html(httpserver, "/", page(body="<p>no feed links here</p>"))
    serve_html(httpserver, "/feed", page(title="Page not found"))  # a "soft 404"
    httpserver.expect_request("/rss").respond_with_data("gone", status=404)
    serve_feed(httpserver, "/rss.xml", rss("Site feed"))
    found = run(httpserver, "/")
    assert found.chosen == FeedCandidate(httpserver.url_for("/rss.xml"), "Site feed", "rss", "path")
    assert found.parsed is not None


def test_common_paths_next_to_the_page_come_before_the_root(httpserver: HTTPServer):
    serve_html(httpserver, "/blog/", page())
    serve_feed(httpserver, "/blog/atom.xml", atom("The blog"))
    serve_feed(httpserver, "/atom.xml", atom("The whole site"))
    found = run(httpserver, "/blog/")
    assert found.chosen.url == httpserver.url_for("/blog/atom.xml")
    assert found.chosen.kind == "atom"


def test_an_rss_index_page_offers_its_feed_links(httpserver: HTTPServer):
    links = "".join(
        f'<li><a href="/rss/{slug}.xml">{name}</a></li>'
        for slug, name in (("politics", "정치"), ("total", "전체기사"), ("nk", "북한"))
    )
    body = f'<a href="/about">About</a><ul>{links}</ul><a href="/rss/">RSS help</a>'
    serve_html(httpserver, "/rss/", page(body=body, title="RSS 서비스"))
    found = run(httpserver, "/rss/")
    assert [c.found_by for c in found.candidates] == ["anchor"] * 3
    assert found.chosen.url == httpserver.url_for("/rss/total.xml")


def test_nothing_found_says_what_was_tried(httpserver: HTTPServer):
    serve_html(httpserver, "/", page(body="<p>plain</p>"))
    with pytest.raises(NoFeedFoundError) as caught:
        run(httpserver, "/")
    message = str(caught.value)
    assert httpserver.url_for("/") in message
    assert "/rss.xml" in message and "rel=" in message


# -- ranking without a server -------------------------------------------------------------------


def candidate(url: str, title: str = "", kind: str = "rss") -> FeedCandidate:
    return FeedCandidate(url, title, kind, "link")


def test_comments_feeds_never_win():
    comments = candidate("https://a.example/comments/feed/", "Comments")
    sections = candidate("https://a.example/category/x/feed/", "X")
    assert score(comments) < score(sections)
    assert pick([comments, sections]) is sections


def test_rss_and_atom_beat_json():
    json_feed = candidate("https://a.example/feed.json", "Site", "json")
    rss_feed = candidate("https://a.example/index.xml", "Site")
    assert pick([json_feed, rss_feed]) is rss_feed


def test_single_candidate_and_no_candidate():
    only = candidate("https://a.example/x.xml", "Politics")
    assert pick([only]) is only
    assert pick([]) is None


def test_probe_urls_look_next_to_the_page_then_at_the_root():
    urls = probe_urls("https://a.example/blog/post?id=1")
    assert urls[0] == "https://a.example/blog/post/feed"
    assert "https://a.example/feeds/posts/default" in urls
    assert probe_urls("https://a.example/")[:2] == [
        "https://a.example/feed",
        "https://a.example/rss",
    ]
