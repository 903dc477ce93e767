"""`watcher feeds …` on the real app (CliRunner) with a temporary rules dir and data dir, against a
real local HTTP server: add by site address, ambiguity, duplicates, remove, import/export, check
(which stores nothing), and the health table with disabled feeds and `feeds enable` after a 410."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner, Result

from tests.conftest import DATA, REPO, Workspace
from tests.feedsite import FeedSite, Item, items
from watcher.cli import app
from watcher.errors import WatcherError
from watcher.opml import load_feed_list

runner = CliRunner()


@pytest.fixture
def cli(workspace: Workspace, monkeypatch: pytest.MonkeyPatch):
    """Runs `watcher ARGS` with settings from the environment, pointing at the workspace."""
    import os

    for name in [n for n in os.environ if n.startswith("WATCHER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(workspace.root)  # no ./watcher.toml from elsewhere
    monkeypatch.setenv("WATCHER_RULES_DIR", str(workspace.rules_dir))
    monkeypatch.setenv("WATCHER_DATA_DIR", str(workspace.data_dir))
    monkeypatch.setenv("WATCHER_FETCH__ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.setenv("WATCHER_EXTRACT__WORKERS", "1")
    monkeypatch.setenv("COLUMNS", "250")
    from watcher.commands import common  # its consoles took their width when first imported

    monkeypatch.setattr(common.console, "_width", 250)
    monkeypatch.setattr(common.err_console, "_width", 250)

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return run


@pytest.fixture
def site(httpserver: HTTPServer) -> FeedSite:
    return FeedSite(httpserver)


@pytest.fixture
def seeded(workspace: Workspace) -> Path:
    """The workspace's feed list replaced by a copy of the seeded one (comments and folders)."""
    path = workspace.rules_dir / "feeds.opml"
    shutil.copyfile(REPO / "rules" / "feeds.opml", path)
    return path


def home_page(*links: tuple[str, str]) -> str:
    tags = "".join(
        f'<link rel="alternate" type="application/rss+xml" title="{title}" href="{href}">'
        for title, href in links
    )
    return f"<!doctype html><html><head><title>Test Outlet</title>{tags}</head><body></body></html>"


def error_of(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, WatcherError), result.exception
    return str(result.exception)


# -- add ----------------------------------------------------------------------------------------


def test_add_by_site_address_finds_the_main_feed_and_keeps_the_file(cli, site, seeded: Path):
    feed_url = site.add_feed("/feed/", items("t", 4))
    site.pages["/home"] = home_page(("Outlet » Comments", "/comments/feed/"), ("Outlet", "/feed/"))
    before = seeded.read_bytes()

    result = cli("feeds", "add", site.url("/home"))
    assert result.exit_code == 0, result.output
    assert "added 'Test Outlet'" in result.output and "4 entries" in result.output

    after = seeded.read_bytes()
    assert after.startswith(before[: before.index(b"</outline>")])  # all before: untouched
    assert len(after.splitlines()) == len(before.splitlines()) + 1
    spec = next(s for s in load_feed_list(seeded) if s.url == feed_url)
    assert (spec.title, spec.category, spec.site_url) == ("Test Outlet", "English", site.url("/"))


def test_add_refuses_a_feed_already_listed(cli, site, seeded: Path):
    feed_url = site.add_feed("/feed/", items("t", 2))
    assert cli("feeds", "add", feed_url).exit_code == 0
    before = seeded.read_bytes()
    again = feed_url.replace("/feed/", "/feed").replace("http://", "http://www.", 1)
    message = error_of(cli("feeds", "add", again))
    assert "already in" in message and "Test Outlet" in message
    assert seeded.read_bytes() == before
    assert site.hits["/feed"] == 0  # refused before any network work


def test_ambiguous_page_lists_candidates_exits_1_then_pick_chooses(cli, site, workspace):
    site.add_feed("/rss/politics.xml", items("p", 2), title="Politics desk")
    site.add_feed("/rss/economy.xml", items("e", 2), title="Economy desk")
    site.pages["/rss.html"] = home_page(
        ("Politics", "/rss/politics.xml"), ("Economy", "/rss/economy.xml")
    )
    path = workspace.rules_dir / "feeds.opml"
    before = path.read_bytes()

    result = cli("feeds", "add", site.url("/rss.html"))
    message = error_of(result)
    assert "--pick N" in message and "nothing added" in message
    assert "Politics" in result.output and "Economy" in result.output
    assert site.url("/rss/economy.xml") in result.output
    assert path.read_bytes() == before

    result = cli("feeds", "add", site.url("/rss.html"), "--pick", "2", "--name", "Economy")
    assert result.exit_code == 0, result.output
    [spec] = load_feed_list(path)
    assert (spec.url, spec.title) == (site.url("/rss/economy.xml"), "Economy")


def test_add_with_options(cli, site, workspace):
    url = site.add_feed("/full.xml", items("f", 2))
    result = cli(
        "feeds", "add", url, "--name", "Full text", "--interval", "45m", "--folder",
        "Wires/Korea", "--no-extract",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [spec] = load_feed_list(workspace.rules_dir / "feeds.opml")
    assert (spec.title, spec.category, spec.interval_seconds, spec.extract) == (
        "Full text", "Korea", 2700, False,
    )  # fmt: skip


def test_add_refuses_a_bad_interval_and_a_page_without_feeds(cli, site):
    url = site.add_feed("/x.xml", items("x", 1))
    assert "interval" in error_of(cli("feeds", "add", url, "--interval", "5s"))
    site.pages["/plain"] = "<html><head><title>Plain</title></head><body>no feeds</body></html>"
    message = error_of(cli("feeds", "add", site.url("/plain")))
    assert "no feed found" in message


# -- remove, import, export ---------------------------------------------------------------------


def test_remove_takes_the_feed_out_and_keeps_the_rest(cli, seeded: Path):
    before = load_feed_list(seeded)
    result = cli("feeds", "remove", "http://www.38north.org/feed")
    assert result.exit_code == 0, result.output
    assert "removed '38 North'" in result.output
    assert [s for s in before if s.title != "38 North"] == load_feed_list(seeded)
    assert "not in" in error_of(cli("feeds", "remove", "https://www.38north.org/feed/"))


def test_import_then_export_round_trip(cli, workspace, tmp_path: Path):
    result = cli("feeds", "import", str(DATA / "opml" / "feedly.opml"))
    assert result.exit_code == 0, result.output
    assert "6 feeds added" in result.output and "1 skipped" in result.output
    assert "listed twice" in result.output

    result = cli("feeds", "import", str(DATA / "opml" / "freshrss.opml"), "--json")
    report = json.loads(result.output)
    assert [a["title"] for a in report["added"]] == ["Korea JoongAng Daily", "NK News", "毎日新聞"]
    assert "HTML+XPath" in report["skipped"][0]["reason"]

    exported = cli("feeds", "export")
    assert exported.exit_code == 0
    root = etree.fromstring(exported.stdout.encode())
    urls = {o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")}
    listed = load_feed_list(workspace.rules_dir / "feeds.opml")
    assert urls == {s.url for s in listed} and len(urls) == 9

    target = tmp_path / "out.opml"
    assert cli("feeds", "export", str(target), "--title", "Team").exit_code == 0
    assert etree.parse(str(target)).getroot().findtext("head/title") == "Team"
    fresh = Workspace(tmp_path / "other")
    result = runner.invoke(
        app, ["feeds", "import", str(target)], env={"WATCHER_RULES_DIR": str(fresh.rules_dir)}
    )
    assert result.exit_code == 0, result.output
    assert load_feed_list(fresh.rules_dir / "feeds.opml") == listed


# -- check --------------------------------------------------------------------------------------


def test_check_shows_what_the_pipeline_would_do_and_stores_nothing(cli, site, workspace):
    url = site.add_feed("/news.xml", items("n", 7))
    result = cli("feeds", "check", url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    assert report["fetch"]["status"] == 200 and report["fetch"]["etag"]
    assert report["fetch"]["conditional_get"] is True
    assert report["feed"]["entries"] == 7 and report["feed"]["cadence"] == "1 hour"
    newest = report["newest"]
    assert len(newest) == 5 and newest[0]["title"].startswith("n report 0")
    assert [row["published"] for row in newest] == sorted(
        (row["published"] for row in newest), reverse=True
    )
    extraction = report["extraction"]
    assert extraction["method"] == "trafilatura" and extraction["chars"] > 200
    assert "n report 0" in extraction["start"] or "officials" in extraction["start"]
    assert newest[0]["rules"] == ["gsomia"]  # items 0, 3, 6 mention GSOMIA
    assert [m["title"][:10] for m in report["matches"]] == ["n report 0", "n report 3",
                                                              "n report 6"]  # fmt: skip
    assert report["listed"] is None
    assert list(workspace.data_dir.iterdir()) == []  # no database, nothing written


def test_check_in_plain_text_and_on_a_broken_feed(cli, site):
    url = site.add_feed("/news.xml", items("n", 3))
    result = cli("feeds", "check", url, "--no-extract")
    assert result.exit_code == 0, result.output
    for text in ("HTTP 200", "etag:", "3 entries", "newest 3 entries", "--no-extract",
                 "rules: 1 of 3 entries match"):  # fmt: skip
        assert text in result.output
    site.pages["/page.html"] = "<html><head><title>Not a feed</title></head></html>"
    result = cli("feeds", "check", site.url("/page.html"))
    assert result.exit_code == 1 and "not usable" in result.output and "HTML page" in result.output


# -- health table, disabled feeds, enable -------------------------------------------------------


def test_a_410_disables_the_feed_which_feeds_enable_brings_back(cli, site, workspace):
    url = site.add_feed("/gone.xml", items("g", 2), status=410)
    workspace.write_feeds({"Gone feed": url, "Fine feed": site.add_feed("/ok.xml", items("o", 2))})
    assert cli("poll", "--json").exit_code == 0

    listed = json.loads(cli("feeds", "--disabled", "--json").stdout)
    assert [(row["url"], row["enabled"]) for row in listed] == [(url, False)]
    assert "410" in listed[0]["disabled_reason"]
    assert listed[0]["health_notice"].startswith("disabled: ")
    table = cli("feeds").output
    assert "disabled" in table and "watcher feeds enable" in table
    assert "Gone feed" in cli("feeds", "--disabled").output

    site.feeds["/gone.xml"].status = 200  # the publisher fixed it
    result = cli("feeds", "enable", url)
    assert result.exit_code == 0 and "enabled 'Gone feed'" in result.output
    assert json.loads(cli("feeds", "--disabled", "--json").stdout) == []
    summary = json.loads(cli("poll", "--json").stdout)
    assert (summary["feeds"], summary["errors"]) == (1, 0)
    [row] = [r for r in json.loads(cli("feeds", "--json").stdout) if r["url"] == url]
    assert row["enabled"] and row["health_notice"] is None and row["last_status"] == 200


def test_enable_a_feed_disabled_in_the_list_edits_the_list(cli, site, workspace):
    url = site.add_feed("/paused.xml", [Item("a", "A title", "A body text here.")])
    workspace.write_feeds({"Paused": url}, Paused={"enabled": "false"})
    assert cli("poll", "--json").exit_code == 0
    assert [row["url"] for row in json.loads(cli("feeds", "--disabled", "--json").stdout)] == [url]
    assert site.hits["/paused.xml"] == 0

    result = cli("feeds", "enable", url)
    assert result.exit_code == 0, result.output
    assert 'removed enabled="false"' in result.output
    [spec] = load_feed_list(workspace.rules_dir / "feeds.opml")
    assert spec.enabled  # else the daemon's next sync would disable it again
    summary = json.loads(cli("poll", "--json").stdout)
    assert (summary["feeds"], summary["new_articles"]) == (1, 1)
    assert "no such feed" in error_of(cli("feeds", "enable", "https://unknown.example/rss"))
