"""Rule matching in the CPU pool: the workers load the daemon's rule set snapshot and find what
the daemon itself would; a new rule set version replaces the old snapshot; an unreadable snapshot
leaves the matching to the daemon."""

from __future__ import annotations

import asyncio
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
