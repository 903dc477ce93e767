"""`watcher poll --json` against a local server with 200 feeds: each article stored once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlmodel import func, select

from tests.conftest import Workspace
from tests.feedsite import FeedSite, Item, items
from watcher.db.engine import make_engine, session_scope
from watcher.db.models import Article, Feed, FeedEntry


def run_poll(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_DATA_DIR=str(workspace.data_dir),
        WATCHER_RULES_DIR=str(workspace.rules_dir),
        WATCHER_EXTRACT__ENABLED="false",
        WATCHER_FETCH__PER_HOST_CONCURRENCY="32",
    )
    return subprocess.run(
        [sys.executable, "-m", "watcher", "poll", "--json", *args],
        env=env,
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def poll_json(workspace: Workspace, *args: str) -> dict:
    result = run_poll(workspace, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_two_hundred_feeds_store_every_article_once(httpserver, workspace: Workspace):
    site = FeedSite(httpserver)
    feeds = {f"Feed {n}": site.add_feed(f"/f{n}.xml", items(f"f{n}", 5)) for n in range(200)}
    workspace.write_feeds(feeds)

    first = poll_json(workspace)
    assert {k: first[k] for k in ("feeds", "ok", "errors", "new_articles")} == {
        "feeds": 200,
        "ok": 200,
        "errors": 0,
        "new_articles": 1000,
    }
    for n in range(0, 200, 2):
        site.publish(f"/f{n}.xml", Item(f"late-{n}", f"Late item {n}", f"Late body {n} here."))
    second = poll_json(workspace, "--all")
    assert (second["feeds"], second["not_modified"], second["new_articles"]) == (200, 100, 100)
    assert set(first) >= {"feeds", "ok", "not_modified", "errors", "new_articles", "matches"}

    settings = workspace.settings()
    engine = make_engine(settings)
    with session_scope(engine) as session:
        articles = session.exec(select(func.count()).select_from(Article)).one()
        distinct = session.exec(select(func.count(func.distinct(Article.canonical_url)))).one()
        entries = session.exec(select(func.count()).select_from(FeedEntry)).one()
    engine.dispose()
    assert articles == distinct == entries == 1100


def test_poll_one_feed_by_url(httpserver, workspace: Workspace):
    site = FeedSite(httpserver)
    one, other = (site.add_feed(f"/{name}.xml", items(name, 3)) for name in ("one", "other"))
    workspace.write_feeds({"One": one, "Other": other})

    summary = poll_json(workspace, "--feed", one)
    assert (summary["feeds"], summary["ok"], summary["new_articles"]) == (1, 1, 3)
    assert site.hits["/one.xml"] == 1 and site.hits["/other.xml"] == 0
    settings = workspace.settings()
    engine = make_engine(settings)
    with session_scope(engine) as session:
        feeds = {feed.title: feed for feed in session.exec(select(Feed))}
    engine.dispose()
    assert feeds["One"].primed and feeds["One"].lease_owner is None  # claimed, then released
    assert not feeds["Other"].primed and feeds["Other"].last_checked_at is None

    unknown = run_poll(workspace, "--feed", "https://nowhere.example/feed.xml")
    assert unknown.returncode != 0
    assert "no feed https://nowhere.example/feed.xml in feeds.opml" in unknown.stderr
