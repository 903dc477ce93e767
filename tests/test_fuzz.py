"""Property tests: the feed parser and the rule, settings and feed-list loaders, fed arbitrary or
damaged input, either succeed or raise the project's own errors (WatcherError subclasses) — never
a KeyError, RecursionError, UnicodeError or a library's exception that would escape as a traceback.
FUZZ_EXAMPLES=5000 runs longer searches (200 examples each by default).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA
from tests.hostile import feeds as hostile_feeds
from watcher.config import load_settings
from watcher.deliver.webhook import _retry_after as webhook_retry_after
from watcher.errors import ConfigError, ParseError, RuleError, WatcherError
from watcher.fetch import parse_retry_after
from watcher.opml import parse_opml
from watcher.parse import ParsedFeed, parse_feed
from watcher.query import QuerySyntaxError, parse
from watcher.rules import RuleSet, load_ruleset

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REAL_FEEDS = sorted(
    p for p in (DATA / "feeds").iterdir() if p.suffix in (".xml", ".rdf", ".atom", ".json")
)
SEEDS = [p.read_bytes() for p in REAL_FEEDS] + [
    hostile_feeds.injection(),
    hostile_feeds.entity_bomb(),
    hostile_feeds.nul_json(),
    hostile_feeds.malformed(),
]


def check_feed(body: bytes, content_type: str | None = None) -> None:
    try:
        parsed = parse_feed(body, url="http://fuzz.example/feed", content_type=content_type)
    except ParseError:
        return
    assert isinstance(parsed, ParsedFeed)
    for entry in parsed.entries:
        for value in (entry.title, entry.summary, entry.content, entry.guid, entry.link):
            assert "\x00" not in (value or "")
        assert entry.link is None or entry.link.startswith(("http://", "https://"))


# -- feeds ----------------------------------------------------------------------------------------


@FUZZ
@given(
    st.binary(max_size=2000),
    st.sampled_from([None, "application/rss+xml", "text/html", "application/json; charset=cp1251"]),
)
def test_arbitrary_bytes_parse_or_raise_parse_error(body, content_type):
    check_feed(body, content_type)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A real feed with a few bytes flipped, inserted, deleted, duplicated, or a truncation."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "copy", "cut"]))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b"<",
                        b">",
                        b"&",
                        b"]]>",
                        b"<![CDATA[",
                        b"\x00",
                        b"<!ENTITY x 'y'>",
                        b"\xff\xfe",
                        b"&#0;",
                        b'"',
                    ]
                )
            )
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 50))]
        elif kind == "copy":
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(damaged())
def test_damaged_real_feeds_parse_or_raise_parse_error(body):
    check_feed(body)


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@FUZZ
@given(title=TEXT, summary=TEXT, link=TEXT, guid=TEXT)
def test_arbitrary_text_in_a_feed_is_read_as_text(title, summary, link, guid):
    from html import escape

    item = (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<guid>{escape(guid)}</guid><description>{escape(summary)}</description></item>"
    )
    body = hostile_feeds.rss("Fuzz", item).encode("utf-8", "surrogatepass")
    check_feed(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "id",
        "url",
        "external_url",
        "title",
        "summary",
        "content_html",
        "content_text",
        "date_published",
        "date_modified",
        "authors",
        "author",
        "language",
    ]
)


@FUZZ
@given(st.lists(st.dictionaries(KEYS, JSON, max_size=8) | JSON, max_size=5), JSON)
def test_arbitrary_json_feed_items_parse_or_raise_parse_error(items, title):
    import json

    doc = {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}
    check_feed(json.dumps(doc).encode())


# -- rules ----------------------------------------------------------------------------------------

QUERY_ALPHABET = st.sampled_from(
    [
        "GSOMIA",
        " ",
        "AND",
        "OR",
        "NOT",
        "-",
        "(",
        ")",
        '"',
        "NEAR/3",
        "ONEAR/2",
        "~2",
        "*",
        ":",
        "title",
        "site:",
        "lang:",
        "독도",
        "竹島",
        "\u201c",
        "\uff08",
        "a",
        "and",
        "\n",
        "\\",
        "/",
    ]
)


@FUZZ
@given(st.one_of(st.text(max_size=60), st.lists(QUERY_ALPHABET, max_size=25).map("".join)))
def test_any_query_text_parses_or_raises_a_located_syntax_error(text):
    try:
        parse(text)
    except QuerySyntaxError as exc:
        assert isinstance(exc, RuleError)
        assert 0 <= exc.offset <= len(text)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        yield Path(tmp)


YAML_ALPHABET = st.sampled_from(
    [
        "id: a\n",
        "query: GSOMIA\n",
        "name: ",
        "deliver:",
        " {",
        "}",
        "[",
        "]",
        ",",
        ": ",
        "- ",
        "  ",
        "\t",
        "\n",
        "'",
        '"',
        "&x",
        "*x",
        "!!python/object:os.system",
        "---\n",
        "...\n",
        "rules:\n",
        "priority: high\n",
        "languages: [en]\n",
        "immediate: yes\n",
        "%YAML 1.2\n",
        "? ",
        "|\n  ",
        ">\n  ",
        "#",
        "\x00",
        "\ufeff",
        "1e400",
        "~",
        "null",
        "<<: *x\n",
    ]
)


@FUZZ
@given(st.one_of(st.text(max_size=120), st.lists(YAML_ALPHABET, max_size=30).map("".join)))
def test_any_rule_file_loads_or_raises_rule_error(scratch, text):
    (scratch / "fuzz.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        ruleset = load_ruleset(scratch)
    except RuleError as exc:
        assert exc.errors and all(isinstance(line, str) for line in exc.errors)
        return
    assert isinstance(ruleset, RuleSet)


# -- settings, feed lists, headers ----------------------------------------------------------------

TOML_ALPHABET = st.sampled_from(
    [
        "[fetch]\n",
        "[destinations.x]\n",
        'type = "webhook"\n',
        "read_timeout = ",
        "3",
        '"3"',
        "-1",
        "inf",
        "nan",
        "[",
        "]",
        "=",
        "\n",
        '"',
        "'''",
        "timezone = ",
        '"Asia/Seoul"',
        "[digest]\n",
        'at = "7:5"\n',
        "concurrency = ",
        "true",
        "{a = 1}",
        "password = 'x'\n",
        "data_dir = ",
        "1979-05-27",
        "[[fetch]]\n",
        "\x00",
    ]
)


@FUZZ
@given(st.one_of(st.text(max_size=80), st.lists(TOML_ALPHABET, max_size=20).map("".join)))
def test_any_config_file_loads_or_raises_config_error(scratch, text):
    config = scratch / "watcher.toml"
    config.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_settings(config)
    except ConfigError as exc:
        assert str(config) in str(exc) or "setting " in str(exc)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        damaged_opml := st.lists(
            st.sampled_from(
                [
                    '<opml version="2.0">',
                    "<body>",
                    "</body>",
                    "</opml>",
                    "<outline ",
                    'xmlUrl="http://a.example/f" ',
                    'xmlUrl="javascript:x" ',
                    'interval="',
                    "30m",
                    '"',
                    "/>",
                    ">",
                    "</outline>",
                    'enabled="no" ',
                    "&",
                    "<!--",
                    "\x00",
                ]
            ),
            max_size=20,
        ).map(lambda parts: "".join(parts).encode()),
    )
)
def test_any_feed_list_loads_or_raises_config_error(data):
    try:
        specs = parse_opml(data, source="feeds.opml")
    except ConfigError as exc:
        assert str(exc).startswith("feeds.opml")
        return
    assert all(spec.url.startswith(("http://", "https://")) for spec in specs)


@FUZZ
@given(st.text(max_size=40))
def test_any_retry_after_header_is_seconds_or_nothing(value):
    """Feeds (fetch) and webhook receivers (delivery) both send Retry-After."""
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0
    answer = httpx.Response(503, headers={"Retry-After": value.encode("utf-8", "replace")})
    seconds = webhook_retry_after(answer)
    assert seconds is None or seconds >= 0


def test_the_fuzzers_only_let_watcher_errors_through():
    """The families above catch nothing but WatcherError subclasses (a wider except would hide
    exactly the crashes these tests look for)."""
    for error in (ParseError, RuleError, QuerySyntaxError, ConfigError):
        assert issubclass(error, WatcherError)
