"""The pipeline against a real local HTTP server, on SQLite and PostgreSQL.

First poll, second poll all 304, a new item appearing, one feed failing while others succeed,
redirects, Retry-After, 410, one article reached through two feeds, and first-poll suppression.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import Workspace, poll_once, stored_rows
from tests.feedsite import FeedSite, Item, items
from watcher.db.models import Article, Feed, FeedEntry, Match
from watcher.identity import text_fingerprint
from watcher.timeutil import utcnow


@pytest.fixture
def site(httpserver) -> FeedSite:
    return FeedSite(httpserver)


@pytest.fixture
def settings(workspace: Workspace, database_url: str):
    return workspace.settings(database_url=database_url)


def test_first_poll_stores_articles_and_suppresses_their_matches(site, workspace, settings):
    url = site.add_feed("/a.xml", items("a", 6))
    workspace.write_feeds({"Outlet A": url})
    summary = poll_once(settings)
    assert (summary.feeds, summary.ok, summary.errors, summary.new_articles) == (1, 1, 0, 6)
    articles = stored_rows(settings, Article)
    assert len(articles) == 6
    assert all(a.text_method == "trafilatura" for a in articles), [
        a.extract_error for a in articles
    ]
    assert all("officials discussed" in a.text for a in articles)
    assert all("utm_" not in (a.canonical_url or "") for a in articles)
    matches = stored_rows(settings, Match)
    assert len(matches) == 2 and summary.matches == 2  # items 0 and 3 mention GSOMIA
    assert all(m.suppressed for m in matches), "first poll must not flood the first digest"
    assert all(m.terms == m.snippets == [] for m in matches), "never shown: no snippets made"


def test_second_poll_is_all_not_modified_then_a_new_item_matches(site, workspace, settings):
    url = site.add_feed("/a.xml", items("a", 3))
    workspace.write_feeds({"Outlet A": url})
    poll_once(settings)
    second = poll_once(settings, force=True)
    assert (second.not_modified, second.new_articles) == (1, 0)
    assert site.conditional_hits["/a.xml"] == 1

    site.publish(
        "/a.xml", Item("breaking", "GSOMIA extended again", "Seoul keeps the GSOMIA pact.")
    )
    third = poll_once(settings, force=True)
    assert (third.ok, third.new_articles, third.matches) == (1, 1, 1)
    fresh = [m for m in stored_rows(settings, Match) if not m.suppressed]
    assert len(fresh) == 1
    assert fresh[0].terms == ["GSOMIA"] and "GSOMIA" in fresh[0].snippets[0]["text"]
    assert site.hits["/articles/breaking.html"] == 1


def test_one_failing_feed_does_not_stop_the_others(site, workspace, settings):
    good = site.add_feed("/good.xml", items("g", 2))
    bad = site.add_feed("/bad.xml", status=500)
    workspace.write_feeds({"Good": good, "Bad": bad})
    summary = poll_once(settings)
    assert (summary.ok, summary.errors) == (1, 1)
    feeds = {f.title: f for f in stored_rows(settings, Feed)}
    assert feeds["Bad"].consecutive_failures == 1
    assert "500" in (feeds["Bad"].last_error or "")
    assert feeds["Bad"].failing_since is not None
    assert feeds["Bad"].next_check_at > utcnow()
    assert feeds["Good"].last_error is None and feeds["Good"].last_success_at is not None


def test_the_health_settings_set_when_a_failing_feed_gets_a_notice(site, workspace, database_url):
    bad = site.add_feed("/bad.xml", status=503)
    workspace.write_feeds({"Bad": bad})
    settings = workspace.settings(
        database_url=database_url,
        health={"failing_after_hours": 0.000001},  # 3.6 ms
    )
    poll_once(settings)
    [feed] = stored_rows(settings, Feed)
    assert feed.health_notice is None  # failing since this very check
    poll_once(settings, force=True)
    [feed] = stored_rows(settings, Feed)
    assert (feed.health_notice or "").startswith("failing for "), feed.health_notice
    assert feed.consecutive_failures == 2
    # with the default threshold (24 hours) the same two checks raise nothing
    default = workspace.settings(database_url=database_url)
    poll_once(default, force=True)
    [feed] = stored_rows(default, Feed)
    assert feed.consecutive_failures == 3 and feed.health_notice is not None  # not cleared...
    assert "(3 checks in a row)" not in feed.health_notice  # ...nor renewed: under 24 h


def test_permanent_redirect_updates_the_stored_url(site, workspace, settings):
    new = site.add_feed("/new.xml", items("r", 1))
    old = site.add_feed("/old.xml", status=301, redirect_to=new)
    workspace.write_feeds({"Moved": old})
    assert poll_once(settings).ok == 1
    (feed,) = stored_rows(settings, Feed)
    assert feed.url == new and feed.opml_url == old


def test_retry_after_is_honoured(site, workspace, settings):
    url = site.add_feed("/busy.xml", status=429, headers={"Retry-After": "3600"})
    workspace.write_feeds({"Busy": url})
    poll_once(settings)
    (feed,) = stored_rows(settings, Feed)
    assert feed.last_status == 429
    assert feed.next_check_at >= utcnow() + timedelta(seconds=3500)


def test_gone_disables_the_feed(site, workspace, settings):
    url = site.add_feed("/gone.xml", status=410)
    workspace.write_feeds({"Gone": url})
    poll_once(settings)
    (feed,) = stored_rows(settings, Feed)
    assert not feed.enabled and "410" in (feed.disabled_reason or "")
    assert poll_once(settings, force=True).feeds == 0  # disabled feeds are not polled


def test_the_same_article_through_two_feeds_is_stored_once(site, workspace, settings):
    shared = items("wire", 2)
    one = site.add_feed("/one.xml", shared, title="One")
    two = site.add_feed(
        "/two.xml",
        [Item(i.slug, i.title, i.body, i.published, guid=f"other-{i.slug}") for i in shared],
        title="Two",
    )
    workspace.write_feeds({"One": one, "Two": two})
    summary = poll_once(settings)
    assert summary.new_articles == 2
    assert len(stored_rows(settings, Article)) == 2
    assert len(stored_rows(settings, FeedEntry)) == 4
    assert sum(site.hits[f"/articles/{i.slug}.html"] for i in shared) == 2


def test_backfill_setting_delivers_first_poll_matches(site, workspace, database_url):
    url = site.add_feed("/a.xml", items("a", 3))
    workspace.write_feeds({"Outlet A": url})
    settings = workspace.settings(database_url=database_url, backfill=True)
    poll_once(settings)
    matches = stored_rows(settings, Match)
    assert matches and not any(m.suppressed for m in matches)


def test_extract_false_uses_the_feed_text(site, workspace, settings):
    url = site.add_feed("/full.xml", items("f", 2))
    workspace.write_feeds({"Full": url}, Full={"extract": "false"})
    poll_once(settings)
    assert all(a.text_method == "feed" for a in stored_rows(settings, Article))
    assert site.hits["/articles/f-0.html"] == 0


def test_content_hash_is_the_hash_of_the_stored_title_and_text(site, workspace, settings):
    """Feed-text articles take their entry's fingerprint as content hash (the same inputs),
    extracted ones hash their page text: either way it is the hash of what was stored, which
    is what an edit is compared against."""
    full = site.add_feed("/full.xml", items("f", 2))
    page = site.add_feed("/page.xml", items("p", 2))
    untitled = Item("u", "", "An entry without a headline, about the GSOMIA pact.")
    bare = site.add_feed("/bare.xml", [untitled])
    workspace.write_feeds({"Full": full, "Page": page, "Bare": bare}, Full={"extract": "false"})
    poll_once(settings)
    articles = stored_rows(settings, Article)
    assert {a.text_method for a in articles} == {"feed", "trafilatura"}
    for article in articles:
        assert article.content_hash == text_fingerprint(article.title, article.text), article.url


def test_article_links_to_private_addresses_are_refused_by_default(site, workspace, database_url):
    url = site.add_feed("/a.xml", items("p", 1))
    workspace.write_feeds({"A": url})
    settings = workspace.settings(
        database_url=database_url, fetch={"allow_private_addresses": False}
    )
    assert poll_once(settings).new_articles == 1
    (article,) = stored_rows(settings, Article)
    assert article.text_method == "feed"
    assert site.hits["/articles/p-0.html"] == 0
    assert article.extract_error and "private" in article.extract_error.lower()


def test_an_edited_entry_becomes_a_new_version_of_its_article_in_its_story(
    site, workspace, settings
):
    """Same guid, new words: version 2 of the same article, same story, the signature follows the
    new text, and a rule with `on_update: alert` matches again with what changed."""
    from watcher.db.models import ArticleSignature
    from watcher.story_signature import Signature

    (workspace.rules_dir / "gsomia.yaml").write_text(
        "id: gsomia\nquery: GSOMIA\non_update: alert\n", encoding="utf-8"
    )
    first = Item("pact", "Seoul keeps GSOMIA", "Seoul said it keeps the GSOMIA pact with Tokyo.")
    url = site.add_feed("/a.xml", [first])
    workspace.write_feeds({"Outlet A": url})
    poll_once(settings)
    (before,) = stored_rows(settings, Article)
    (old_signature,) = stored_rows(settings, ArticleSignature)

    edited = Item(
        "pact", "Seoul keeps GSOMIA for a year", "Seoul said it keeps the GSOMIA pact for a year."
    )
    site.feeds["/a.xml"].items = [edited]
    site.add_page(edited)  # the article page says the same as the feed
    poll_once(settings, force=True)

    (after,) = stored_rows(settings, Article)
    assert (after.id, after.version, after.story_id) == (before.id, 2, before.story_id)
    assert after.title == "Seoul keeps GSOMIA for a year"
    (new_signature,) = stored_rows(settings, ArticleSignature)
    assert new_signature.signature != old_signature.signature
    assert new_signature.title_key == "seoul keeps gsomia for a year"
    assert Signature.from_bytes(new_signature.signature, new_signature.title_key) is not None
    versions = sorted((m.article_version, m.change_summary) for m in stored_rows(settings, Match))
    assert versions[0] == (1, None)
    assert versions[1][0] == 2 and "title changed" in (versions[1][1] or "")


def test_a_slow_feed_does_not_hold_back_the_feeds_claimed_after_it(
    threaded_httpserver, workspace, database_url
):
    """Claims overlap: with batches of 4 (2 x fetch.concurrency), the ten feeds after a slow one
    are claimed and stored while it still answers. The slow feed answers only once all ten are
    reported (or after 20 s: a poll that waits for whole batches reports some of them after it)."""
    import threading

    from werkzeug import Response

    from tests.feedsite import FeedSpec, rss

    fast_done = threading.Event()

    def slow(_request):
        fast_done.wait(timeout=20)
        spec = FeedSpec(items=items("slow", 2))
        return Response(
            rss(threaded_httpserver.url_for(""), spec), content_type="application/rss+xml"
        )

    threaded_httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    site = FeedSite(threaded_httpserver)
    feeds = {"Slow outlet": threaded_httpserver.url_for("/slow.xml")}
    feeds |= {f"Outlet {n}": site.add_feed(f"/f{n}.xml", items(f"f{n}", 2)) for n in range(10)}
    workspace.write_feeds(feeds)
    settings = workspace.settings(
        database_url=database_url, fetch={"concurrency": 2}, extract={"enabled": False}
    )
    reported: list[str] = []

    def progress(job, outcome) -> None:
        reported.append(job.url)
        if sum(not url.endswith("/slow.xml") for url in reported) == 10:
            fast_done.set()

    summary = poll_once(settings, progress=progress)
    assert (summary.feeds, summary.ok, summary.new_articles) == (11, 11, 22)
    assert reported[-1].endswith("/slow.xml"), reported
    assert len(reported) == len(set(reported)) == 11


def test_each_feeds_database_work_takes_its_own_event_loop_turn(
    threaded_httpserver, workspace, database_url
):
    """Between two feeds' stores the event loop turns (sockets are read, the pool is fed): a
    ticker task that counts loop turns shows a different count at every feed's outcome, which
    is reported in the same step as its store. (Feeds whose analysis came back together used
    to be stored back to back in one turn.)"""
    import asyncio

    from watcher.daemon import Watcher

    site = FeedSite(threaded_httpserver)
    feeds = {f"Outlet {n}": site.add_feed(f"/t{n}.xml", items(f"t{n}", 3)) for n in range(40)}
    workspace.write_feeds(feeds)
    settings = workspace.settings(database_url=database_url, extract={"enabled": False})

    async def run() -> list[int]:
        turns = 0
        seen: list[int] = []

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        watcher = Watcher(settings)
        watcher.prepare()
        try:
            async with watcher:
                ticking = asyncio.create_task(ticker())
                summary = await watcher.poll(progress=lambda job, outcome: seen.append(turns))
                ticking.cancel()
        finally:
            watcher.engine.dispose()
        assert (summary.ok, summary.new_articles) == (40, 120)
        return seen

    seen = asyncio.run(run())
    assert len(seen) == len(set(seen)) == 40, sorted(seen)
