"""`watcher rules …`: check exit codes and output, explain, test on JSON lines and stored articles,
backfill into the next digest."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from watcher.commands.common import open_database
from watcher.commands.rules import app
from watcher.db.articles import add_article
from watcher.db.engine import session_scope
from watcher.db.models import Article, Match
from watcher.timeutil import utcnow

runner = CliRunner()


def invoke(workspace, *args: str):
    return runner.invoke(app, list(args), obj={"settings": workspace.settings()})


def test_check_ok_exits_0_with_summary(workspace) -> None:
    result = invoke(workspace, "check")
    assert result.exit_code == 0, result.output
    assert "ok: 1 rules (1 enabled), 0 warnings" in result.output


def test_check_a_directory_argument_with_warnings(workspace, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "r.yaml").write_text("id: r\nquery: a AND b OR c\nenabled: false\n", encoding="utf-8")
    result = invoke(workspace, "check", str(other))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "rule 'r' is disabled" in result.output
    assert "ok: 1 rules (0 enabled), 2 warnings" in result.output


def test_check_errors_exit_1_listing_every_error_with_caret(workspace) -> None:
    rules = workspace.rules_dir
    (rules / "bad.yaml").write_text("id: bad\nquery: |\n  Dokdo OR\n  titel:x\n", encoding="utf-8")
    (rules / "dup.yaml").write_text("id: gsomia\nquery: GSOMIA\nprority: high\n", encoding="utf-8")
    result = invoke(workspace, "check")
    assert result.exit_code == 1
    out = result.output
    assert f"{rules / 'bad.yaml'}:4:3: error: query: unknown field 'titel'" in out
    assert "    titel:x" in out and "    ^~~~~" in out
    first, second = rules / "dup.yaml", rules / "gsomia.yaml"  # files are read in name order
    assert f"{second}:1:5: error: duplicate rule id 'gsomia' (also at {first}:1:5)" in out
    assert f"{rules / 'dup.yaml'}:3:1: error: unknown key 'prority'" in out
    assert "3 errors, 0 warnings" in out


def test_check_missing_directory_exits_1(workspace, tmp_path: Path) -> None:
    result = invoke(workspace, "check", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "rules directory not found" in result.output


def test_explain_shows_tree_and_anchors(workspace) -> None:
    result = invoke(workspace, "explain", "gsomia")
    assert result.exit_code == 0, result.output
    assert "gsomia" in result.output and "anchors" in result.output
    assert "gsomia" in result.output.split("anchors", 1)[1]


def test_explain_unknown_rule_is_an_error(workspace) -> None:
    result = invoke(workspace, "explain", "nope")
    assert result.exit_code != 0
    assert "no rule with id 'nope'" in str(result.exception)


def write_lines(path: Path, *rows: dict | str) -> Path:
    path.write_text(
        "".join(
            (row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n"
            for row in rows
        ),
        encoding="utf-8",
    )
    return path


def test_test_input_json_prints_one_object_per_line(workspace, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "in.jsonl",
        {"id": "a", "title": "Seoul keeps GSOMIA", "text": "The pact survives."},
        {"id": "b", "title": "Weather", "text": "Rain in Tokyo.", "lang": "en"},
        "",
    )
    result = invoke(workspace, "test", "--input", str(path), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [{"id": "a", "rules": ["gsomia"]}, {"id": "b", "rules": []}]


def test_test_input_table(workspace, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", {"id": "a", "title": "GSOMIA talks", "text": ""})
    result = invoke(workspace, "test", "--input", str(path))
    assert result.exit_code == 0, result.output
    assert "GSOMIA talks" in result.output and "gsomia" in result.output


def test_test_input_malformed_line_names_the_line(workspace, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", {"id": "a", "title": "x", "text": "y"}, "{not json")
    result = invoke(workspace, "test", "--input", str(path), "--json")
    assert result.exit_code != 0
    assert f"{path}:2: not a valid article line" in str(result.exception)


def test_test_needs_input_or_rule_with_since(workspace) -> None:
    result = invoke(workspace, "test")
    assert "give --input FILE.jsonl" in str(result.exception)


def store(workspace, *titles: str, age: timedelta = timedelta(0)) -> None:
    settings = workspace.settings()
    with open_database(settings) as engine, session_scope(engine) as session:
        for title in titles:
            url = f"https://news.example/{title.replace(' ', '-')}"
            add_article(
                session,
                Article(url=url, canonical_url=url, title=title, created_at=utcnow() - age),
            )


def matches(workspace) -> list[Match]:
    with open_database(workspace.settings()) as engine, session_scope(engine) as session:
        return list(session.exec(select(Match)))


def test_test_rule_since_reads_stored_articles(workspace) -> None:
    store(workspace, "GSOMIA renewed", "Yen slides")
    store(workspace, "Old GSOMIA story", age=timedelta(days=30))
    result = invoke(workspace, "test", "gsomia", "--since", "7d", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["rules"] for row in rows] == [["gsomia"]]
    assert matches(workspace) == []  # a test stores nothing


def test_backfill_stores_digest_only_matches_once(workspace) -> None:
    store(workspace, "GSOMIA renewed", "Yen slides")
    store(workspace, "Old GSOMIA story", age=timedelta(days=10))
    result = invoke(workspace, "backfill", "gsomia", "--since", "30d")
    assert result.exit_code == 0, result.output
    assert "2 new matches queued for the next digest" in result.output
    stored = matches(workspace)
    assert len(stored) == 2 and all(m.backfill and m.rule_id == "gsomia" for m in stored)
    again = invoke(workspace, "backfill", "gsomia", "--since", "30d")
    assert "0 new matches" in again.output and len(matches(workspace)) == 2


@pytest.mark.parametrize("since", ["soon", "7x"])
def test_bad_since_is_an_error(workspace, since: str) -> None:
    result = invoke(workspace, "backfill", "gsomia", "--since", since)
    assert result.exit_code != 0
    assert "--since" in str(result.exception)


def test_test_one_rule_even_while_disabled(workspace, tmp_path: Path) -> None:
    (workspace.rules_dir / "draft.yaml").write_text(
        "id: draft\nquery: Dokdo OR 독도\nenabled: false\n", encoding="utf-8"
    )
    path = write_lines(
        tmp_path / "in.jsonl",
        {"id": "a", "title": "GSOMIA and Dokdo", "text": ""},
        {"id": "b", "title": "독도 영유권", "text": "", "lang": "ko"},
    )
    result = invoke(workspace, "test", "draft", "--input", str(path), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [{"id": "a", "rules": ["draft"]}, {"id": "b", "rules": ["draft"]}]
    refused = invoke(workspace, "backfill", "draft")
    assert "is disabled" in str(refused.exception)


def test_check_warns_about_destinations_the_settings_lack(workspace) -> None:
    (workspace.rules_dir / "r.yaml").write_text(
        "id: r\nquery: Dokdo\ndeliver: {destinations: [outbox, team-chat]}\n", encoding="utf-8"
    )
    result = invoke(workspace, "check")
    assert result.exit_code == 0, result.output
    assert f"{workspace.rules_dir / 'r.yaml'}:1: warning: rule 'r' delivers to team-chat" in (
        result.output
    )
    assert "(configured: outbox)" in result.output and "1 warning " in result.output
