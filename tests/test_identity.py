"""Canonical URLs, entry keys and fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.identity import (
    MAX_KEY_LENGTH,
    canonical_url,
    content_fingerprint,
    entry_key,
    text_fingerprint,
)
from watcher.parse import Entry, parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # tracking parameters go, content parameters stay
        (
            "https://news.example/a.html?utm_source=rss&utm_medium=feed&utm_campaign=x",
            "https://news.example/a.html",
        ),
        ("https://news.example/a?UTM_Source=x&id=7", "https://news.example/a?id=7"),
        ("https://news.example/a?fbclid=IwAR0abc&gclid=Cj0&msclkid=1", "https://news.example/a"),
        (
            "https://news.example/a?mc_cid=1&mc_eid=2&igshid=3&yclid=4&_ga=5",
            "https://news.example/a",
        ),
        (
            "https://www.bbc.co.uk/news/x?at_medium=RSS&at_campaign=KARANGA",
            "https://www.bbc.co.uk/news/x",
        ),
        ("https://m.example/x?ITO=1490&ns_mchannel=rss&ns_campaign=1490", "https://m.example/x"),
        (
            "http://nyt.example/x.html?partner=rss&emc=rss&smid=tw-share",
            "http://nyt.example/x.html",
        ),
        ("https://x.example/s?ref_src=twsrc%5Etfw&ref_url=y", "https://x.example/s"),
        ("https://x.example/a?ref=rss&page=2", "https://x.example/a?page=2&ref=rss"),
        (
            "https://x.example/view.php?ud=20210209000915",
            "https://x.example/view.php?ud=20210209000915",
        ),
        # parameter order, escapes, non-ASCII
        ("https://x.example/a?b=2&a=1&c=3", "https://x.example/a?a=1&b=2&c=3"),
        ("https://x.example/a?tag=2&tag=1", "https://x.example/a?tag=2&tag=1"),
        ("https://x.example/a?q=%e3%81%82", "https://x.example/a?q=%E3%81%82"),
        (
            "https://x.example/독도/기사?q=지소미아",
            "https://x.example/%EB%8F%85%EB%8F%84/%EA%B8%B0%EC%82%AC?q=%EC%A7%80%EC%86%8C%EB%AF%B8%EC%95%84",
        ),
        ("https://x.example/a?", "https://x.example/a"),
        ("https://x.example/a?utm_source=x", "https://x.example/a"),
        # case: scheme and host lower, path kept
        ("HTTPS://WWW.Example.ORG/News/GSOMIA.html", "https://www.example.org/News/GSOMIA.html"),
        ("https://例え.jp/記事", "https://xn--r8jz45g.jp/%E8%A8%98%E4%BA%8B"),
        # fragments
        ("https://x.example/a#comments", "https://x.example/a"),
        ("https://x.example/#!/story/12", "https://x.example/#!/story/12"),
        # ports and trailing slashes
        ("http://x.example:80/a", "http://x.example/a"),
        ("https://x.example:443/a", "https://x.example/a"),
        ("https://x.example:8443/a", "https://x.example:8443/a"),
        ("http://x.example:443/a", "http://x.example:443/a"),
        ("https://x.example", "https://x.example/"),
        ("https://x.example/news/", "https://x.example/news/"),
        ("https://x.example./a", "https://x.example/a"),
        ("http://[::1]:80/a", "http://[::1]/a"),
        # not http(s) or not a URL: returned stripped, unchanged
        ("  javascript:alert(1) ", "javascript:alert(1)"),
        ("tag:example.org,2026:1", "tag:example.org,2026:1"),
        ("http://[::1", "http://[::1"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_is_idempotent() -> None:
    for url in ("https://X.example:443/%e3%81?b=1&a=2&utm_x=1#f", "https://例え.jp/記事?q=독도"):
        once = canonical_url(url)
        assert canonical_url(once) == once


def entry(**fields: object) -> Entry:
    values: dict[str, object] = {
        "guid": None,
        "link": None,
        "title": "Seoul and Tokyo keep GSOMIA",
        "summary": "The pact rolls over.",
        "content": "",
        "author": None,
        "published": None,
        "updated": None,
        "lang": "en",
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


def test_entry_key_prefers_guid_then_url_then_hash() -> None:
    link = "https://news.example/a.html?utm_source=rss"
    assert entry_key(entry(guid="urn:1", link=link)) == "guid:urn:1"
    assert entry_key(entry(guid="  ", link=link)) == "url:https://news.example/a.html"
    assert entry_key(entry(link=link)) == "url:https://news.example/a.html"
    key = entry_key(entry())
    assert key.startswith("hash:") and len(key) == len("hash:") + 64


def test_guid_is_used_as_published() -> None:
    # guids are opaque: no canonicalisation, case kept (only surrounding space trimmed)
    assert entry_key(entry(guid=" HTTP://News.Example/A?utm_source=x ")) == (
        "guid:HTTP://News.Example/A?utm_source=x"
    )


def test_same_article_with_other_tracking_params_has_one_key() -> None:
    a = entry(link="https://news.example/a.html?utm_source=rss&id=3")
    b = entry(link="https://NEWS.example:443/a.html?id=3&fbclid=xyz#top")
    assert entry_key(a) == entry_key(b)


def test_hash_key_ignores_whitespace_but_not_words() -> None:
    a = entry(title="GSOMIA  renewed", summary="The pact\nrolls over.")
    b = entry(title="GSOMIA renewed", summary="The pact rolls over. ")
    c = entry(title="GSOMIA ended", summary="The pact rolls over.")
    assert entry_key(a) == entry_key(b) != entry_key(c)


def test_overlong_keys_are_hashed() -> None:
    long_guid = "urn:" + "x" * 2000
    key = entry_key(entry(guid=long_guid))
    assert key.startswith("guid:sha256:") and len(key) <= MAX_KEY_LENGTH
    assert key != entry_key(entry(guid=long_guid + "y"))
    url_key = entry_key(entry(link="https://x.example/?q=" + "a" * 2000))
    assert url_key.startswith("url:sha256:") and len(url_key) <= MAX_KEY_LENGTH


def test_content_fingerprint_notices_edits_not_reformatting() -> None:
    base = entry(content="<p>ignored markup is already gone</p> GSOMIA stays.")
    same = entry(content="<p>ignored markup is already gone</p>\n  GSOMIA stays.")
    edited_title = entry(title="Seoul and Tokyo keep GSOMIA for a year", content=base.content)
    edited_body = entry(content=base.content + " Update: the ministry confirmed.")
    assert content_fingerprint(base) == content_fingerprint(same)
    assert content_fingerprint(base) != content_fingerprint(edited_title)
    assert content_fingerprint(base) != content_fingerprint(edited_body)
    # without content, the summary stands in
    assert content_fingerprint(entry(summary="a")) != content_fingerprint(entry(summary="b"))


def test_text_fingerprint() -> None:
    assert text_fingerprint("Title", "Body text.") == text_fingerprint(" Title", "Body\ntext.")
    assert text_fingerprint("Title", "Body text.") != text_fingerprint("Title", "Body text!")
    assert text_fingerprint("A", "BC") != text_fingerprint("AB", "C")


def test_keys_of_a_real_feed_are_unique_and_stable() -> None:
    body = (FEEDS / "rss20_seoul_ledger.xml").read_bytes().replace(b"{BASE}", b"http://h")
    first = [entry_key(e) for e in parse_feed(body, url="http://h/feed").entries]
    again = [entry_key(e) for e in parse_feed(body, url="http://h/feed").entries]
    assert first == again and len(set(first)) == 5
    assert all(k.startswith("guid:seoul-ledger-") for k in first)


def test_keys_of_a_feed_without_guids_use_canonical_links() -> None:
    body = (FEEDS / "rss091_korea_briefing.xml").read_bytes().replace(b"{BASE}", b"http://h")
    keys = [entry_key(e) for e in parse_feed(body, url="http://h/feed").entries]
    assert keys == [
        "url:http://h/articles/trilateral-summit-missile-data.html",
        "url:http://h/articles/chip-export-rules-eased.html",
    ]
