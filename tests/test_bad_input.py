"""Bad configuration, rule files and feed lists: every mistake is reported with the file, the key or
line, and what is expected; a running daemon keeps its last good rules and feeds through bad edits
and keeps running when its config file is broken under it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Workspace
from tests.feedsite import FeedSite, items, opml
from tests.hostile.proc import Daemon, daemon_env, wait_until, watcher
from watcher.config import load_settings
from watcher.errors import ConfigError, RuleError
from watcher.opml import parse_opml
from watcher.rules import load_ruleset

# -- settings -------------------------------------------------------------------------------------

SETTINGS = {
    "invalid-toml": ("[fetch\nread_timeout = 3\n", ["not valid TOML", "line 1, column 7"]),
    "wrong-type": ('[fetch]\nread_timeout = "soon"\n', ["fetch.read_timeout", "valid number"]),
    "unknown-key": ("[fetch]\ntimeout = 3\n", ["fetch.timeout", "unknown setting"]),
    "out-of-range": ("[fetch]\nconcurrency = 0\n", ["fetch.concurrency", "greater than or equal"]),
    "section-as-value": ("fetch = 3\n", ["setting fetch ", "valid dictionary"]),
    "string-for-list": ('[smtp]\nto = "desk@example.com"\n', ["smtp.to", "valid list"]),
    "time-zone": ('timezone = "Mars/Olympus"\n', ["timezone", "unknown IANA time zone"]),
    "digest-time": ('[digest]\nat = "25:00"\n', ["digest.at", "HH:MM"]),
    "secret-in-file": (
        '[smtp]\nhost = "mail"\npassword = "hunter2"\n',
        ["smtp.password", "set WATCHER_SMTP__PASSWORD", "from the environment"],
    ),
    "destination-type": (
        '[destinations.team]\ntype = "pigeon"\n',
        ["destinations.team", "'email', 'webhook', 'chat', 'folder'"],
    ),
    "destination-field": ('[destinations.team]\ntype = "webhook"\n', ["url", "Field required"]),
    "destination-name": (
        '[destinations."Team Mail"]\ntype = "webhook"\nurl = "http://x"\n',
        ["'Team Mail'", "lowercase letters"],
    ),
}


@pytest.mark.parametrize("text, words", SETTINGS.values(), ids=SETTINGS.keys())
def test_invalid_settings_name_the_file_the_key_and_what_is_expected(tmp_path, text, words):
    config = tmp_path / "watcher.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert str(config) in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "hunter2" not in message


def test_a_wrong_type_in_the_environment_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("WATCHER_FETCH__CONCURRENCY", "lots")
    monkeypatch.setenv("WATCHER_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    message = str(caught.value)
    assert "fetch.concurrency" in message and "WATCHER_FETCH__CONCURRENCY" in message
    assert "valid integer" in message


# -- rule files -----------------------------------------------------------------------------------

RULES = {
    "yaml-syntax": ("id: a\nname: A\nquery: [GSOMIA\n", ["r.yaml:3:", "YAML syntax error"]),
    "yaml-indent": ("id: a\n  name: A\nquery: GSOMIA\n", ["r.yaml:2:", "YAML syntax error"]),
    "tab": ("id: a\nquery:\tGSOMIA\n", ["r.yaml:2:", "'\\t'"]),
    "unknown-key": ("id: a\nqeury: GSOMIA\n", ["r.yaml:2:1", "did you mean 'query'"]),
    "wrong-type": (
        "id: a\nquery: GSOMIA\ndeliver: {immediate: 'yes'}\n",
        ["r.yaml:3:", "deliver.immediate", "valid boolean, got 'yes'"],
    ),
    "wrong-choice": ("id: a\nquery: GSOMIA\npriority: 3\n", ["r.yaml:3:11", "'high', 'normal'"]),
    "scalar-for-list": (
        "id: a\nquery: GSOMIA\nlanguages: english\n",
        ["r.yaml:3:12", "valid list, got 'english'"],
    ),
    "missing-query": ("id: a\nname: A\n", ["r.yaml:1:1", "missing required key 'query'"]),
    "bad-query": ("id: a\nquery: (GSOMIA AND\n", ["r.yaml:2:16", "AND at the end"]),
    "bad-id": ("id: Not An Id\nquery: GSOMIA\n", ["r.yaml:1:5", "not a valid rule id"]),
    "no-mapping": ("- GSOMIA\n", ["r.yaml:1:3", "a rule must be a mapping"]),
    "nowhere": (
        "id: a\nquery: GSOMIA\ndeliver: {destinations: []}\n",
        ["r.yaml:3:", "delivers nowhere"],
    ),
    "control-character": ('id: a\nquery: "GSOMIA\x07"\n', ["r.yaml:2:", "character #x0007"]),
    "self-alias": (
        "id: a\nquery: GSOMIA\ntags: &t\n  - *t\n",
        ["r.yaml:1:1", "alias (*name) refers to what contains it"],
    ),
    "alias-bomb": (
        "id: a\nquery: GSOMIA\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 9)),
        ["r.yaml:1:1", "more than 100,000 values through YAML aliases"],
    ),
    "nested-too-deeply": ("query: " + "[" * 600 + "]" * 600 + "\n", ["nested too deeply"]),
}


@pytest.mark.parametrize("text, words", RULES.values(), ids=RULES.keys())
def test_invalid_rule_files_name_the_file_the_line_and_the_problem(tmp_path, text, words):
    (tmp_path / "r.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        load_ruleset(tmp_path)
    report = "\n".join(caught.value.errors)
    for word in words:
        assert word in report, f"{word!r} not in {report!r}"


def test_rule_files_that_are_not_utf8_or_clash_are_located(tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"id: a\nquery: \xff GSOMIA\n")
    (tmp_path / "b.yaml").write_text("id: same\nquery: GSOMIA\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("id: same\nquery: Dokdo\n", encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        load_ruleset(tmp_path)
    report = "\n".join(caught.value.errors)
    assert "a.yaml:1:1: not UTF-8 text" in report
    assert "c.yaml:1:5: duplicate rule id 'same' (also at" in report and "b.yaml:1:5" in report


# -- feed lists -----------------------------------------------------------------------------------

OUTLINE = '<outline type="rss" title="A" xmlUrl="http://a.example/feed"'
FEED_LISTS = {
    "not-xml": (
        f'<opml version="2.0"><body>\n{OUTLINE}>\n</body></opml>',
        ["not valid OPML", "line 3"],
    ),
    "not-opml": ('<rss version="2.0"><channel/></rss>', ["not an OPML document"]),
    "interval": (
        f'<opml version="2.0"><body>\n{OUTLINE} interval="soon"/></body></opml>',
        ["feeds.opml:2:", "'soon'", "e.g. 90s, 30m"],
    ),
    "too-often": (
        f'<opml version="2.0"><body>\n{OUTLINE} interval="5"/></body></opml>',
        ["feeds.opml:2:", "shorter than 30 seconds"],
    ),
    "flag": (
        f'<opml version="2.0"><body>\n\n{OUTLINE} extract="maybe"/></body></opml>',
        ["feeds.opml:3:", "expected true or false, got 'maybe'"],
    ),
    "scheme": (
        '<opml version="2.0"><body>\n<outline title="A" xmlUrl="file:///etc/passwd"/>'
        "</body></opml>",
        ["feeds.opml:2:", "must be an http(s) URL"],
    ),
    "external-entity": (
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        '<opml version="2.0"><body><outline title="&x;" xmlUrl="http://a/f"/></body></opml>',
        ["not valid OPML", "external entity"],
    ),
}


@pytest.mark.parametrize("text, words", FEED_LISTS.values(), ids=FEED_LISTS.keys())
def test_invalid_feed_lists_name_the_file_the_line_and_the_problem(text, words):
    with pytest.raises(ConfigError) as caught:
        parse_opml(text.encode(), source="rules/feeds.opml")
    message = str(caught.value)
    assert message.startswith("rules/feeds.opml")
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# -- the command line and a running daemon -------------------------------------------------------


def _state(db: Path, key: str) -> dict | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def _listed_feeds(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM feed WHERE listed").fetchone()[0]


def _edit(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@pytest.mark.slow
def test_a_running_daemon_keeps_its_last_good_rules_and_feeds(
    workspace: Workspace, threaded_httpserver
):
    site = FeedSite(threaded_httpserver)
    first = site.add_feed("/one.xml", items("one", 3))
    workspace.write_feeds({"One": first})
    config = workspace.root / "watcher.toml"
    _edit(config, "[fetch]\nread_timeout = 5\n")
    env = daemon_env(workspace.data_dir, workspace.rules_dir, WATCHER_CONFIG=str(config))
    env["WATCHER_DELIVERY__TICK_SECONDS"] = "1"
    db = workspace.data_dir / "watcher.db"
    broken = workspace.rules_dir / "broken.yaml"

    def rules_error(*words: str) -> list[str] | None:
        state = _state(db, "ruleset") or {}
        report = "\n".join(state.get("error") or [])
        return state["error"] if all(w in report for w in words) else None

    with Daemon(env, workspace.root, workspace.root / "daemon.log") as daemon:
        daemon.wait_for("poll: ", timeout=60)
        # bad rule edits, one after another: each is reported, the one good rule stays active
        for text, words in (
            ("id: broken\nname: B\nquery: [GSOMIA\n", ["broken.yaml:3:", "YAML syntax"]),
            ("id: broken\nquery: GSOMIA\npriority: 3\n", ["broken.yaml:3:11", "'high'"]),
            ("id: broken\nqeury: GSOMIA tariffs\n", ["broken.yaml:2:1", "did you mean"]),
        ):
            _edit(broken, text)
            wait_until(lambda w=words: rules_error(*w), 30, what=f"reload error {words}")
            assert _state(db, "ruleset")["rules"] == 1
        # a valid rule naming a destination that does not exist: loaded, and said at once
        _edit(broken, "id: broken\nquery: Dokdo\ndeliver: {destinations: [nowhere]}\n")
        wait_until(lambda: (_state(db, "ruleset") or {}).get("rules") == 2, 30, what="2 rules")
        log = daemon.wait_for("delivers to destination 'nowhere', which is not configured")
        assert "broken.yaml:1" in log
        # bad feed-list edits: reported, the listed feed stays
        feeds = workspace.rules_dir / "feeds.opml"
        _edit(feeds, f'<opml version="2.0"><body>\n<outline xmlUrl="{first}">\n</body></opml>')
        log = daemon.wait_for("feed list not reloaded, previous list stays active")
        assert "feeds.opml: not valid OPML" in log
        _edit(feeds, opml({"One": first}, One={"interval": "soon"}))
        log = daemon.wait_for("feed list not reloaded", count=2)
        assert "feeds.opml:3: outline 'One': interval 'soon'" in log
        assert _listed_feeds(db) == 1
        _edit(feeds, opml({"One": first, "Two": site.add_feed("/two.xml", items("two", 2))}))
        wait_until(lambda: _listed_feeds(db) == 2, 30, what="the fixed feed list")
        # the config file broken under a running daemon: it runs on; the CLI says what is wrong
        _edit(config, "[fetch\nread_timeout = 5\n")
        shown = watcher("config", "show", env=env, cwd=workspace.root)
        assert shown.returncode == 2
        assert f"{config}: not valid TOML" in shown.stderr and "line 1, column 7" in shown.stderr
        assert "Traceback" not in shown.stderr
        assert daemon.running()
        output = daemon.stop()
    assert "rules not reloaded, previous set stays active" in output
    assert "Traceback" not in output

    # ...and a restart with the broken file (or a wrong type in the environment) refuses to start
    restart = watcher("run", env=env, cwd=workspace.root)
    assert restart.returncode == 2 and "not valid TOML" in restart.stderr
    _edit(config, "[fetch]\nread_timeout = 5\n")
    wrong = watcher("run", env={**env, "WATCHER_FETCH__CONCURRENCY": "lots"}, cwd=workspace.root)
    assert wrong.returncode == 2 and "WATCHER_FETCH__CONCURRENCY" in wrong.stderr
