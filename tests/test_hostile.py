"""Hostile feeds against a real `watcher run` daemon: every case is reported in words on its feed
row, the good feed alongside is unaffected, memory stays bounded, no local file content is ever
stored, and nothing executable from feed text reaches a digest.

One daemon polls every case at once (tests/hostile/server.py serves them); the per-case tests read
what it stored. A few in-process polls cover second polls and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, create_engine, select

from tests.conftest import Workspace
from tests.hostile import feeds
from tests.hostile.cases import BY_PATH, CASES, GOOD, Case
from tests.hostile.evidence import (
    executable_markup,
    files_containing,
    rows_containing,
    visible_text,
)
from tests.hostile.proc import Daemon, RssSampler, daemon_env, watcher
from tests.hostile.server import HostileServer
from watcher.daemon import Watcher
from watcher.db.engine import session_scope
from watcher.db.models import Article, Feed, Match
from watcher.timeutil import utcnow

MEMORY_BOUND_MB = 600
MAX_BODY = 12 * 1024 * 1024  # lets the 10 MB item and the 50,000-entry feed in; bombs stop here
EXTRA = ("/huge-doctype.xml", "/deep.json", "/nul.json", "/nul-page-feed.xml")


@pytest.fixture(scope="module")
def server():
    with HostileServer() as hostile:
        yield hostile


@dataclass
class DaemonRun:
    """What one daemon did with every hostile feed, read back from its database."""

    workspace: Workspace
    server: HostileServer
    peak_main_mb: float
    peak_tree_mb: float
    digest_html: str
    log: str
    feeds: dict[str, Feed] = field(default_factory=dict)
    articles: dict[str, list[Article]] = field(default_factory=dict)
    matches: list[Match] = field(default_factory=list)

    @property
    def db_file(self) -> Path:
        return self.workspace.data_dir / "watcher.db"


@pytest.fixture(scope="module")
def run(server: HostileServer, tmp_path_factory: pytest.TempPathFactory) -> DaemonRun:
    workspace = Workspace(tmp_path_factory.mktemp("hostile"))
    paths = [GOOD, *(case.path for case in CASES), *EXTRA]
    workspace.write_feeds({path: server.url(path) for path in paths})
    env = daemon_env(
        workspace.data_dir,
        workspace.rules_dir,
        WATCHER_BACKFILL="true",  # first-poll matches reach the digest (the injection check)
        WATCHER_FETCH__TOTAL_TIMEOUT="3",
        WATCHER_FETCH__READ_TIMEOUT="2",
        WATCHER_FETCH__MAX_BODY_BYTES=str(MAX_BODY),
        WATCHER_FETCH__ALLOW_PRIVATE_ADDRESSES="true",  # the article-page XXE case
        WATCHER_FETCH__PER_HOST_CONCURRENCY="16",
    )
    log = workspace.root / "daemon.log"
    with Daemon(env, workspace.root, log) as daemon, RssSampler(daemon.pid) as memory:
        daemon.wait_for("poll: ", timeout=120)
        assert daemon.running()
        output = daemon.stop()
    digest_file = workspace.root / "digest.html"
    preview = watcher(
        "digest", "preview", "--out", str(digest_file), "--since", "1d", env=env, cwd=workspace.root
    )
    assert preview.returncode == 0, preview.stderr
    result = DaemonRun(
        workspace,
        server,
        memory.peak_main / 2**20,
        memory.peak_tree / 2**20,
        digest_file.read_text(encoding="utf-8"),
        output,
    )
    engine = create_engine(f"sqlite:///{result.db_file}")
    with Session(engine) as session:
        feeds_by_id = {f.id: f for f in session.exec(select(Feed))}
        result.feeds = {f.opml_url.removeprefix(server.base): f for f in feeds_by_id.values()}
        for article in session.exec(select(Article)):
            path = feeds_by_id[article.feed_id].opml_url.removeprefix(server.base)
            result.articles.setdefault(path, []).append(article)
        result.matches = list(session.exec(select(Match)))
    engine.dispose()
    print(
        f"\npeak RSS polling {len(paths)} hostile feeds: daemon {result.peak_main_mb:.0f} MB, "
        f"daemon + workers {result.peak_tree_mb:.0f} MB (bound {MEMORY_BOUND_MB} MB)"
    )
    return result


# -- the daemon run ------------------------------------------------------------------------------


@pytest.mark.slow
def test_memory_stays_bounded(run: DaemonRun):
    assert run.peak_tree_mb > 0
    assert run.peak_tree_mb < MEMORY_BOUND_MB, run.peak_tree_mb


@pytest.mark.slow
def test_the_good_feed_in_the_same_poll_is_unaffected(run: DaemonRun):
    good = run.feeds[GOOD]
    assert good.last_error is None and good.parse_warning is None
    assert len(run.articles[GOOD]) == feeds.GOOD_ITEMS
    assert all(a.text_method == "trafilatura" for a in run.articles[GOOD])
    good_ids = {a.id for a in run.articles[GOOD]}
    assert len({m.article_id for m in run.matches if m.article_id in good_ids}) == feeds.GOOD_ITEMS
    assert "Traceback" not in run.log and "internal error" not in run.log


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_case_says_what_is_wrong(run: DaemonRun, case: Case):
    feed = run.feeds[case.path]
    assert feed.last_checked_at is not None, "every feed was polled"
    if case.kind == "error":
        message = feed.last_error or ""
        assert feed.consecutive_failures == 1 and feed.failing_since is not None
        assert not run.articles.get(case.path)
    else:
        assert feed.last_error is None, feed.last_error
        message = feed.parse_warning or ""
        if case.kind == "ok":
            assert message == "" and run.articles.get(case.path)
    for words in case.expect:
        assert words in message, f"{case.path}: {words!r} not in {message!r}"
    assert feed.enabled is not case.disables
    assert "Traceback" not in message and "internal error" not in message


@pytest.mark.slow
def test_extra_feeds_are_refused_or_cleaned(run: DaemonRun):
    assert "64 KB of DOCTYPE" in (run.feeds["/huge-doctype.xml"].last_error or "")
    assert "nested too deeply" in (run.feeds["/deep.json"].last_error or "")
    for path in ("/nul.json", "/nul-page-feed.xml"):
        assert run.feeds[path].last_error is None
        (article,) = run.articles[path]
        stored = (article.title, article.text, article.url, article.guid or "", article.author)
        assert not any("\x00" in (value or "") for value in stored), stored


@pytest.mark.slow
def test_retry_after_and_back_off_are_honoured(run: DaemonRun):
    checked = run.feeds["/status-429.xml"].last_checked_at
    assert run.feeds["/status-429.xml"].next_check_at >= checked + timedelta(seconds=7000)
    assert run.feeds["/status-503.xml"].next_check_at >= checked + timedelta(seconds=5000)
    assert run.feeds["/status-500.xml"].next_check_at > checked + timedelta(seconds=20)


@pytest.mark.slow
def test_mis_encoded_feeds_are_read_in_their_real_encoding(run: DaemonRun):
    def title(path: str) -> str:
        (article,) = run.articles[path]
        return article.title

    assert title("/cp1251-declared-utf8.xml") == feeds.RUSSIAN
    assert title("/euckr-declared-latin1.xml") == feeds.KOREAN
    assert title("/sjis-undeclared.xml") == feeds.JAPANESE
    assert title("/sjis-declared-eucjp.xml") == feeds.JAPANESE


@pytest.mark.slow
def test_size_limits_keep_what_is_usable(run: DaemonRun):
    (huge,) = run.articles["/huge-item.xml"]
    assert 900_000 < len(huge.text) <= 1_000_000 and huge.text.startswith("GSOMIA word salad")
    assert len(run.articles["/many.xml"]) == 1000
    assert {a.title for a in run.articles["/many.xml"]} >= {"Archive entry 0", "Archive entry 999"}


@pytest.mark.slow
def test_entries_without_ids_or_with_shared_ids_are_all_kept(run: DaemonRun):
    anonymous = run.articles["/no-ids.xml"]
    assert sorted(a.title for a in anonymous) == [f"Anonymous GSOMIA note {n}" for n in range(3)]
    assert all(a.url == "" and a.published_at is None for a in anonymous)
    shared = run.articles["/dup-guids.xml"]
    assert sorted(a.url.rsplit("/", 1)[-1] for a in shared) == [f"dup-{n}.html" for n in range(3)]


@pytest.mark.slow
def test_future_dates_are_pinned_to_the_poll(run: DaemonRun):
    for article in run.articles["/future.xml"]:
        assert article.published_at is not None
        assert article.published_at <= run.feeds["/future.xml"].last_checked_at + timedelta(days=1)


@pytest.mark.slow
def test_script_links_never_become_links(run: DaemonRun):
    stored = run.articles["/javascript-links.xml"]
    assert len(stored) == 4
    for article in stored:
        assert article.url == "" or article.url.startswith(("http://", "https://")), article.url


@pytest.mark.slow
def test_no_local_file_content_is_ever_stored_or_fetched(run: DaemonRun):
    marker = run.server.marker
    assert rows_containing(run.db_file, marker) == []
    assert files_containing(run.workspace.data_dir, marker) == []
    assert marker not in run.digest_html and marker not in run.log
    assert run.server.hits["/entity-target"] == 0, "an external entity's URL was fetched"
    assert run.server.hits["/articles/xxe-page.html"] == 1  # the page was fetched and read
    (page_article,) = run.articles["/xxe-page-feed.xml"]
    assert "GSOMIA" in page_article.text


@pytest.mark.slow
def test_nothing_executable_reaches_the_digest(run: DaemonRun):
    html = run.digest_html
    assert executable_markup(html) == []
    assert "INJECTED" not in html  # script bodies are dropped, not just escaped
    text = visible_text(html)
    for title in ("GSOMIA title one", "GSOMIA title three", "GSOMIA svg", "Script link GSOMIA one"):
        assert title in text, f"{title!r} should be in the digest (else the check proves nothing)"
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(("http://", "https://", "#", "mailto:")) for h in hrefs)


# -- in-process polls ---------------------------------------------------------------------------


def _poll(settings: Any, **options: Any) -> Any:
    async def go() -> Any:
        watcher_ = Watcher(settings)
        watcher_.prepare()
        try:
            async with watcher_:
                return await watcher_.poll(**options)
        finally:
            watcher_.engine.dispose()

    return asyncio.run(go())


def _stored(settings: Any) -> tuple[dict[str, Feed], list[Article]]:
    watcher_ = Watcher(settings)
    try:
        with session_scope(watcher_.engine) as session:
            return (
                {f.opml_url: f for f in session.exec(select(Feed))},
                list(session.exec(select(Article))),
            )
    finally:
        watcher_.engine.dispose()


SECOND_POLL = (
    "/no-ids.xml",
    "/dup-guids.xml",
    "/injection.xml",
    "/javascript-links.xml",
    "/nul.json",
    "/malformed.xml",
)


def test_a_second_poll_stores_nothing_twice(server: HostileServer, workspace: Workspace):
    workspace.write_feeds({path: server.url(path) for path in (GOOD, *SECOND_POLL)})
    settings = workspace.settings(fetch={"total_timeout": 3, "read_timeout": 2})
    first = _poll(settings)
    assert first.errors == 0, first.failures
    _, articles = _stored(settings)
    server.publish_good()
    second = _poll(settings, force=True)
    assert second.errors == 0, second.failures
    assert second.new_articles == feeds.GOOD_ITEMS  # only the good feed's new items
    _, again = _stored(settings)
    assert len(again) == len(articles) + feeds.GOOD_ITEMS


@pytest.mark.postgres
def test_control_characters_and_injection_on_postgresql(
    server: HostileServer, workspace: Workspace, pg_url: str
):
    paths = (GOOD, "/nul.json", "/nul-page-feed.xml", "/injection.xml", "/huge-item.xml")
    workspace.write_feeds({path: server.url(path) for path in paths})
    settings = workspace.settings(
        database_url=pg_url, db={"auto_upgrade": True}, fetch={"max_body_bytes": MAX_BODY}
    )
    summary = _poll(settings)
    assert summary.errors == 0, summary.failures
    feeds_by_url, articles = _stored(settings)
    assert all(f.last_error is None for f in feeds_by_url.values())
    assert len(articles) == feeds.GOOD_ITEMS + 1 + 1 + 6 + 1
    assert utcnow() - max(f.last_checked_at for f in feeds_by_url.values()) < timedelta(hours=1)
    assert (
        BY_PATH["/huge-item.xml"].expect[0]
        in feeds_by_url[server.url("/huge-item.xml")].parse_warning
    )


# -- the parser on its own (fast: no daemon) ------------------------------------------------------


def test_parser_limits_and_encodings_without_a_daemon():
    from watcher.parse import MAX_ENTRIES, parse_feed

    many = parse_feed(feeds.many_entries(), url="http://h.example/many.xml")
    assert len(many.entries) == MAX_ENTRIES and "lists 50000 entries" in (many.warning or "")
    huge = parse_feed(feeds.huge_item(), url="http://h.example/huge.xml")
    assert len(huge.entries[0].summary) > 900_000 and "cut to that length" in (huge.warning or "")
    korean = parse_feed(
        feeds.mis_encoded(feeds.KOREAN, "euc-kr", "ISO-8859-1"), url="http://h.example/ko.xml"
    )
    assert korean.entries[0].title == feeds.KOREAN and "read as cp949" in (korean.warning or "")
    japanese = parse_feed(feeds.mis_encoded(feeds.JAPANESE, "shift_jis", None), url="http://h/")
    assert japanese.entries[0].title == feeds.JAPANESE
    bomb = parse_feed(feeds.entity_bomb(), url="http://h.example/bomb.xml")
    assert "neither loaded nor expanded" in (bomb.warning or "")
    assert all(len(e.title) < 200 for e in bomb.entries)
    nul = parse_feed(feeds.nul_json(), url="http://h.example/nul.json")
    assert "\x00" not in (nul.entries[0].guid or "") + (nul.entries[0].link or "")
