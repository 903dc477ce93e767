"""Rule matching in the CPU pool: the workers load the daemon's rule set snapshot and find what
the daemon itself would; a new rule set version replaces the old snapshot; an unreadable snapshot
leaves the matching to the daemon; a killed daemon's snapshot folder is removed by the next one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from watcher.analysis import MatchJob, RulesSnapshot, RulesSnapshots, analyse
from watcher.cpu import CpuPool
from watcher.domain import Article
from watcher.rules import RuleSet, load_ruleset

GSOMIA = """id: gsomia
query: GSOMIA OR "General Security of Military Information Agreement"
"""
DOKDO = """id: dokdo
query: Dokdo NEAR/5 (islets OR territory)
"""


def ruleset(folder: Path, *texts: str) -> RuleSet:
    folder.mkdir(parents=True, exist_ok=True)
    for number, text in enumerate(texts):
        (folder / f"r{number}.yaml").write_text(text, encoding="utf-8")
    return load_ruleset(folder)


def articles() -> list[Article]:
    return [
        Article(url="https://a.example/1", title="Seoul keeps GSOMIA", text="GSOMIA stays."),
        Article(url="https://a.example/2", title="Talks", text="The Dokdo islets were discussed."),
        Article(url="https://a.example/3", title="Weather", text="Rain in Busan."),
    ]


def texts(items: list[Article]) -> list[tuple[str, str]]:
    return [(a.title, a.text) for a in items]


def test_a_worker_matches_what_the_daemon_matches(tmp_path: Path) -> None:
    rules = ruleset(tmp_path / "rules", GSOMIA, DOKDO)
    snapshots = RulesSnapshots()  # the snapshot directory lives as long as this object
    snapshot = snapshots.of(rules)
    assert snapshot is not None and Path(snapshot.path).is_file()
    items = articles()
    pool = CpuPool(1)

    async def in_pool(details: bool) -> list:
        return await pool.run(analyse, texts(items), None, MatchJob(snapshot, items, details))

    try:
        detailed = asyncio.run(in_pool(True))
        bare = asyncio.run(in_pool(False))
    finally:
        pool.close()
    assert [facts.matches for facts in detailed] == [rules.match(a) for a in items]
    assert [[m.rule_id for m in f.matches or []] for f in bare] == [["gsomia"], ["dokdo"], []]
    assert detailed[0].matches and detailed[0].matches[0].snippets  # details: the snippets too
    assert bare[0].matches and not bare[0].matches[0].snippets


def test_a_new_rule_set_version_replaces_the_snapshot(tmp_path: Path) -> None:
    snapshots = RulesSnapshots()
    first = snapshots.of(ruleset(tmp_path / "one", GSOMIA))
    second = snapshots.of(ruleset(tmp_path / "two", DOKDO))
    assert first is not None and second is not None and first.version != second.version
    assert not Path(first.path).exists() and Path(second.path).is_file()
    found = analyse(texts(articles()), None, MatchJob(second, articles(), True))
    assert [[m.rule_id for m in f.matches or []] for f in found] == [[], ["dokdo"], []]
    assert snapshots.of(RuleSet()) is None  # built in code, no version: the daemon matches


def test_an_unreadable_snapshot_leaves_matching_to_the_daemon(tmp_path: Path) -> None:
    (tmp_path / "junk.pickle").write_bytes(b"not a pickle")
    for path in (tmp_path / "missing.pickle", tmp_path / "junk.pickle"):
        job = MatchJob(RulesSnapshot(str(path), "v-unknown"), articles(), True)
        found = analyse(texts(articles()), None, job)
        assert [f.matches for f in found] == [None, None, None]
        assert all(f.content_hash for f in found)  # the rest of the analysis still done


KILLED_DAEMON = """
import sys, time
from pathlib import Path
from watcher.analysis import RulesSnapshots
from watcher.rules import load_ruleset
snapshots = RulesSnapshots(sys.argv[1])
print(snapshots.of(load_ruleset(Path(sys.argv[2]))).path, flush=True)
time.sleep(60)
"""


def test_a_killed_daemons_snapshot_is_removed_by_the_next_one(tmp_path: Path) -> None:
    parent, rules = tmp_path / "tmp", tmp_path / "rules"
    parent.mkdir()
    ruleset(rules, GSOMIA)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_DAEMON, str(parent), str(rules)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    orphan = Path(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)  # no chance to clean up
    child.wait(timeout=10)
    assert orphan.is_file()
    living = RulesSnapshots(str(parent))  # this process: alive
    kept = Path(living.of(ruleset(tmp_path / "live", DOKDO)).path)  # type: ignore[union-attr]
    unrelated = parent / "watcher-rules-notapid-x"
    unrelated.mkdir()

    following = RulesSnapshots(str(parent))
    assert following.of(ruleset(tmp_path / "next", GSOMIA)) is not None

    assert not orphan.parent.exists()  # the killed daemon's folder is gone
    assert kept.is_file() and unrelated.is_dir()  # a running daemon's, and a stranger, stay
