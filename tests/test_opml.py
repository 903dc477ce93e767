"""The feed list: the seeded rules/feeds.opml, editing it without disturbing the analyst's file
(comments, order, indentation), duplicates, imports of real-world exports, export round trips."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import DATA, REPO
from watcher.errors import ConfigError, WatcherError
from watcher.opml import load_feed_list, parse_opml
from watcher.opml_edit import (
    NEW_FILE,
    DuplicateFeedError,
    FeedOutline,
    OpmlDocument,
    add_feed,
    export,
    feed_key,
    merge,
    read_outlines,
    remove_feed,
)

SEEDED = REPO / "rules" / "feeds.opml"
OURS = DATA / "opml"


@pytest.fixture
def feed_list(tmp_path: Path) -> Path:
    """A copy of the seeded feed list to edit."""
    path = tmp_path / "feeds.opml"
    shutil.copyfile(SEEDED, path)
    return path


def changed_lines(before: bytes, after: bytes) -> list[str]:
    diff = difflib.ndiff(before.decode().splitlines(), after.decode().splitlines())
    return [line for line in diff if line[:2] in ("+ ", "- ")]


# -- the seeded list ----------------------------------------------------------------------------


def test_seeded_list_is_standard_opml_2_in_four_folders():
    root = etree.parse(str(SEEDED)).getroot()
    assert root.get("version") == "2.0" and root.findtext("head/title")
    folders = [o.get("text") for o in root.find("body")]
    assert folders == ["English", "한국어", "日本語", "News search"]
    for outline in root.iter("outline"):
        if outline.get("xmlUrl"):
            assert outline.get("type") == "rss" and outline.get("text") and outline.get("title")
    comments = [c.text for c in root.getroottree().getroot().itersiblings(preceding=True)]
    assert any("interval=" in text and "extract=" in text for text in comments)


def test_seeded_list_reads_with_the_daemons_reader():
    specs = load_feed_list(SEEDED)
    assert len(specs) >= 40
    urls = [spec.url for spec in specs]
    assert len({feed_key(u) for u in urls}) == len(urls)  # no feed twice
    searches = [s for s in specs if s.category == "News search"]
    assert len(searches) >= 10
    assert all(s.interval_seconds == 1800 and not s.extract for s in searches)
    titles = {s.title for s in specs}
    for outlet in ("연합뉴스", "한겨레", "朝日新聞", "産経新聞", "The Japan Times", "38 North"):
        assert outlet in titles


# -- editing in place ---------------------------------------------------------------------------


def test_loading_and_saving_unchanged_keeps_every_byte(feed_list: Path):
    before = feed_list.read_bytes()
    assert OpmlDocument.load(feed_list).to_bytes() == before
    for name in ("feedly.opml", "inoreader.opml"):
        data = (OURS / name).read_bytes()
        assert OpmlDocument(data, source=name).to_bytes() == data


def test_files_lxml_would_write_differently_keep_their_content(tmp_path: Path):
    """`<x></x>` comes back as `<x/>` and namespace declarations first: same document."""
    for name in ("miniflux.opml", "freshrss.opml"):
        data = (OURS / name).read_bytes()
        again = OpmlDocument(data, source=name).to_bytes()
        assert again.splitlines()[:2] == data.splitlines()[:2] or name == "freshrss.opml"
        assert read_outlines(again, source=name) == read_outlines(data, source=name)


def test_add_into_a_folder_changes_one_line_indented_like_its_siblings(feed_list: Path):
    before = feed_list.read_bytes()
    add_feed(
        feed_list,
        FeedOutline(url="https://example.com/feed", title="Example", folder=("English",)),
    )
    after = feed_list.read_bytes()
    assert changed_lines(before, after) == [
        '+       <outline type="rss" text="Example" title="Example" '
        'xmlUrl="https://example.com/feed"/>'
    ]
    lines = after.decode().splitlines()
    added = next(i for i, line in enumerate(lines) if "example.com/feed" in line)
    assert "Valdai" in lines[added - 1]  # last of the English folder, before it closes
    assert lines[added + 1] == "    </outline>"
    assert after.startswith(before[:200])  # declaration and leading comment untouched


def test_add_to_a_new_nested_folder_and_at_top_level(feed_list: Path):
    before = feed_list.read_bytes()
    add_feed(
        feed_list, FeedOutline(url="https://a.example/rss", title="A", folder=("Think", "Asia"))
    )
    add_feed(feed_list, FeedOutline(url="https://b.example/rss", title="B", interval="2h"))
    lines = [line[2:] for line in changed_lines(before, feed_list.read_bytes())]
    assert lines == [
        '    <outline text="Think" title="Think">',
        '      <outline text="Asia" title="Asia">',
        '        <outline type="rss" text="A" title="A" xmlUrl="https://a.example/rss"/>',
        "      </outline>",
        "    </outline>",
        '    <outline type="rss" text="B" title="B" xmlUrl="https://b.example/rss" interval="2h"/>',
    ]
    specs = {s.url: s for s in load_feed_list(feed_list)}
    assert specs["https://a.example/rss"].category == "Asia"
    assert specs["https://b.example/rss"].interval_seconds == 7200


def test_add_then_remove_gives_back_the_original_file(feed_list: Path):
    before = feed_list.read_bytes()
    outline = FeedOutline(url="https://example.com/x.xml", title="X", folder=("日本語",))
    add_feed(feed_list, outline)
    assert feed_list.read_bytes() != before
    assert remove_feed(feed_list, "http://www.example.com/x.xml/").url == outline.url
    assert feed_list.read_bytes() == before


def test_remove_first_last_and_only_child_keeps_the_rest(tmp_path: Path):
    path = tmp_path / "feeds.opml"
    path.write_bytes(
        b'<?xml version="1.0"?>\n<!-- mine -->\n<opml version="2.0">\n  <head/>\n  <body>\n'
        b'    <outline text="F">\n'
        b'      <outline text="one" xmlUrl="https://one.example/rss"/>\n'
        b"      <!-- keep this note -->\n"
        b'      <outline text="two" xmlUrl="https://two.example/rss"/>\n'
        b'      <outline text="three" xmlUrl="https://three.example/rss"/>\n'
        b"    </outline>\n"
        b'    <outline text="G">\n'
        b'      <outline text="only" xmlUrl="https://only.example/rss"/>\n'
        b"    </outline>\n  </body>\n</opml>\n"
    )
    for url in ("https://one.example/rss", "https://three.example/rss", "https://only.example/rss"):
        remove_feed(path, url)
    assert path.read_bytes() == (
        b'<?xml version="1.0"?>\n<!-- mine -->\n<opml version="2.0">\n  <head/>\n  <body>\n'
        b'    <outline text="F">\n'
        b"      <!-- keep this note -->\n"
        b'      <outline text="two" xmlUrl="https://two.example/rss"/>\n'
        b"    </outline>\n"
        b'    <outline text="G">\n    </outline>\n  </body>\n</opml>\n'
    )


def test_tab_indented_file_gets_a_tab_indented_outline(tmp_path: Path):
    path = tmp_path / "feeds.opml"
    path.write_bytes(
        b'<?xml version="1.0"?>\n<opml version="2.0">\n\t<head/>\n\t<body>\n'
        b'\t\t<outline text="F">\n\t\t\t<outline text="a" xmlUrl="https://a.example/"/>\n'
        b"\t\t</outline>\n\t</body>\n</opml>\n"
    )
    add_feed(path, FeedOutline(url="https://b.example/", title="b", folder=("New",)))
    assert b'\t\t<outline text="New" title="New">\n\t\t\t<outline type="rss"' in path.read_bytes()


def test_a_missing_list_is_created(tmp_path: Path):
    path = tmp_path / "rules" / "feeds.opml"
    add_feed(path, FeedOutline(url="https://a.example/rss", title="A", folder=("English",)))
    assert [s.url for s in load_feed_list(path)] == ["https://a.example/rss"]
    assert b"<!-- news-watcher feed list" in path.read_bytes()


@pytest.mark.parametrize(
    "spelling",
    [
        "https://en.yna.co.kr/RSS/news.xml",
        "http://en.yna.co.kr/RSS/news.xml",
        "https://www.en.yna.co.kr/RSS/news.xml/",
        "https://EN.YNA.CO.KR/RSS/news.xml?utm_source=feedly",
    ],
)
def test_duplicates_are_refused_in_any_spelling(feed_list: Path, spelling: str):
    before = feed_list.read_bytes()
    with pytest.raises(DuplicateFeedError, match="Yonhap News Agency"):
        add_feed(feed_list, FeedOutline(url=spelling, title="again"))
    assert feed_list.read_bytes() == before


def test_removing_an_unlisted_feed_says_so(feed_list: Path):
    with pytest.raises(WatcherError, match="not in"):
        remove_feed(feed_list, "https://nowhere.example/rss")


def test_a_concurrent_edit_is_not_overwritten(feed_list: Path):
    document = OpmlDocument.load(feed_list)
    document.add(FeedOutline(url="https://mine.example/rss", title="mine"))
    feed_list.write_bytes(feed_list.read_bytes().replace(b"38 North", b"38 North (edited)"))
    with pytest.raises(WatcherError, match="changed on disk"):
        document.save(feed_list)
    assert b"38 North (edited)" in feed_list.read_bytes()
    assert b"mine.example" not in feed_list.read_bytes()


def test_an_invalid_list_is_reported_with_file_and_line(tmp_path: Path):
    path = tmp_path / "feeds.opml"
    path.write_bytes(NEW_FILE.replace(b"  <body>\n", b'  <body>\n<outline xmlUrl="x" text="t"/>\n'))
    with pytest.raises(ConfigError, match=r"feeds\.opml:9.*http\(s\)"):
        add_feed(path, FeedOutline(url="https://a.example/rss"))


# -- imports ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "added", "skipped", "folders"),
    [
        ("feedly.opml", 6, 1, {("Korea",), ("Japan",), ("Must read",)}),
        ("inoreader.opml", 5, 0, {("Japan",), ("Korea",), ()}),
        ("miniflux.opml", 3, 0, {("All",), ("Japan",)}),
        ("freshrss.opml", 3, 1, {("Uncategorized",), ("日本語",)}),
        ("edge_cases.opml", 4, 3, {("Think tanks", "Asia"), ()}),
    ],
)
def test_import_of_reader_exports_into_an_empty_list(
    tmp_path: Path, name: str, added: int, skipped: int, folders: set
):
    path = tmp_path / "feeds.opml"
    report = merge(path, (OURS / name).read_bytes(), source=name)
    assert (len(report.added), len(report.skipped)) == (added, skipped)
    assert {o.folder for o in report.added} == folders
    specs = load_feed_list(path)  # the daemon accepts the result
    assert [s.url for s in specs] == [o.url for o in report.added]
    assert all(s.title for s in specs)


def test_import_details_of_odd_exports(tmp_path: Path):
    path = tmp_path / "feeds.opml"
    report = merge(path, (OURS / "edge_cases.opml").read_bytes(), source="edge.opml")
    by_url = {o.url: o for o in report.added}
    assert by_url["http://example.org/cafe.rss"].title == "Café Asie (Latin-1 file)"
    assert by_url["https://example.org/nested.xml"].title == "Nested two deep"  # TEXT/XMLURL
    options = by_url["https://example.com/options.xml"]
    assert (options.interval, options.extract, options.enabled) == ("2h", False, False)
    reasons = {s.url: s.reason for s in report.skipped}
    assert "listed twice" in reasons["http://www.example.org/nested.xml/"]
    assert "http(s)" in reasons["ftp://example.com/feed.xml"]
    assert "edge.opml:15" in reasons["https://example.com/bad.xml"]
    spec = next(s for s in load_feed_list(path) if s.url.endswith("no-title.xml"))
    assert spec.title == "https://example.com/no-title.xml"  # text="" is invalid OPML 2.0


def test_import_merges_into_existing_folders_and_skips_what_is_listed(feed_list: Path):
    report = merge(feed_list, (OURS / "feedly.opml").read_bytes(), source="feedly.opml")
    assert report.added == []  # all six are seeded already (http/https, www, / variants too)
    assert len(report.skipped) == 7
    report = merge(feed_list, (OURS / "miniflux.opml").read_bytes(), source="miniflux.opml")
    assert [o.title for o in report.added] == []
    again = merge(feed_list, (OURS / "freshrss.opml").read_bytes(), source="freshrss.opml")
    assert [o.url for o in again.added] == []  # JoongAng, NK News, 毎日 are seeded


def test_import_twice_adds_nothing_the_second_time(tmp_path: Path):
    path = tmp_path / "feeds.opml"
    merge(path, (OURS / "inoreader.opml").read_bytes(), source="inoreader.opml")
    before = path.read_bytes()
    report = merge(path, (OURS / "inoreader.opml").read_bytes(), source="inoreader.opml")
    assert (len(report.added), len(report.skipped)) == (0, 5)
    assert path.read_bytes() == before
    merge(path, (OURS / "feedly.opml").read_bytes(), source="feedly.opml")
    korea = OpmlDocument.load(path).folder(("korea",))  # folder names match in any case
    assert len(korea) == 2 + 3


@pytest.mark.realworld
@pytest.mark.parametrize(
    ("name", "feeds", "warnings"),
    [
        ("flym_auto_backup_2017-06-26.opml", 11, 0),  # OPML 1.1, single quotes, nested type=rss
        ("netnewswire_subs.opml", 205, 0),  # flat, two feeds listed twice
        ("plenary_programming.opml", 49, 1),  # a raw "<" in one attribute: 49 of 50 recovered
        ("rssguard_export_2017-07-27.opml", 30, 0),  # version="version"
    ],
)
def test_import_of_real_world_exports(
    shared_fixtures: Path, tmp_path: Path, name: str, feeds: int, warnings: int
):
    source = shared_fixtures / "opml" / name
    if not source.is_file():
        pytest.skip(f"{source} absent")
    path = tmp_path / "feeds.opml"
    report = merge(path, source.read_bytes(), source=name)
    assert len(report.added) == feeds
    assert len(report.warnings) == warnings
    assert all(w.startswith(f"{name}:42:") for w in report.warnings)
    assert len(load_feed_list(path)) == feeds
    exported = read_outlines(export(path), source="export")
    assert {o.url for o in exported.outlines} == {o.url for o in report.added}


# -- export -------------------------------------------------------------------------------------


def test_export_is_valid_opml_2_with_our_options(feed_list: Path):
    data = export(feed_list, title="Team list")
    root = etree.fromstring(data)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert root.get("version") == "2.0" and root.findtext("head/title") == "Team list"
    assert root.findtext("head/dateCreated") and root.findtext("head/docs")
    feeds = [o for o in root.iter("outline") if o.get("xmlUrl")]
    assert len(feeds) == len(load_feed_list(feed_list))
    for outline in feeds:
        assert outline.get("type") == "rss" and outline.get("text") and outline.get("title")
    gsomia = next(o for o in feeds if o.get("title") == "Google News: GSOMIA")
    assert (gsomia.get("interval"), gsomia.get("extract")) == ("30m", "false")
    assert gsomia.getparent().get("text") == "News search"


def test_export_then_import_gives_the_same_feed_set(feed_list: Path, tmp_path: Path):
    add_feed(feed_list, FeedOutline(url="https://n.example/rss", title="N", folder=("A", "B")))
    add_feed(feed_list, FeedOutline(url="https://off.example/rss", title="Off", enabled=False))
    exported = export(feed_list)
    fresh = tmp_path / "other" / "feeds.opml"
    report = merge(fresh, exported, source="export.opml")
    assert report.skipped == [] and report.warnings == []
    assert load_feed_list(fresh) == load_feed_list(feed_list)  # urls, titles, folders, options
    assert export(fresh, now=None).split(b"<body>")[1] == exported.split(b"<body>")[1]


def test_export_of_an_invalid_list_fails_like_the_daemon(tmp_path: Path):
    path = tmp_path / "feeds.opml"
    path.write_bytes(
        NEW_FILE.replace(b"<body>", b'<body><outline xmlUrl="https://a/" interval="x"/>')
    )
    with pytest.raises(ConfigError, match="interval"):
        export(path)
    with pytest.raises(ConfigError):
        parse_opml(path.read_bytes())
