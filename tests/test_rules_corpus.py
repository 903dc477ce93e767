"""The seeded rules against a labelled corpus of short en/ko/ja articles (tests/data/rules_corpus).

Each article lists the rule ids it should match; `traps` lists rules it is a look-alike for
(Airports Company South Africa for acsa, the ship ROKS Dokdo, Gamagori's Takeshima, Vietnam's
"East Sea", the China–Japan–Korea summit, ...). Floors: precision and recall ≥ 0.9 per rule, and
no trap may fire. `python -m tests.test_rules_corpus` prints the table the README quotes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from watcher.domain import Article
from watcher.rules import RuleSet, load_ruleset

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "rules_corpus"
FLOOR = 0.9


@dataclass(frozen=True)
class Labelled:
    id: str
    article: Article
    labels: frozenset[str]
    traps: frozenset[str]


@cache
def corpus() -> tuple[Labelled, ...]:
    items = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            article = Article(
                url=row["url"],
                title=row["title"],
                text=row["text"],
                source=row["source"],
                lang=row["lang"],
            )
            items.append(
                Labelled(
                    row["id"], article, frozenset(row["labels"]), frozenset(row.get("traps", ()))
                )
            )
    return tuple(items)


@cache
def seeded() -> RuleSet:
    return load_ruleset(ROOT / "rules")


@cache
def predictions() -> dict[str, frozenset[str]]:
    ruleset = seeded()
    return {item.id: frozenset(m.rule_id for m in ruleset.match(item.article)) for item in corpus()}


@dataclass(frozen=True)
class Score:
    rule_id: str
    positives: int
    tp: int
    fp: int
    fn: int
    traps: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def scores() -> list[Score]:
    found = predictions()
    result = []
    for rule in seeded().rules:
        tp = fp = fn = 0
        for item in corpus():
            expected, got = rule.id in item.labels, rule.id in found[item.id]
            tp += expected and got
            fp += got and not expected
            fn += expected and not got
        traps = sum(rule.id in item.traps for item in corpus())
        result.append(Score(rule.id, tp + fn, tp, fp, fn, traps))
    return result


def markdown_table() -> str:
    lines = [
        "| rule | labelled positives | look-alike negatives | precision | recall |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in scores():
        lines.append(
            f"| `{s.rule_id}` | {s.positives} | {s.traps} | {s.precision:.2f} | {s.recall:.2f} |"
        )
    return "\n".join(lines)


def mistakes() -> list[str]:
    found = predictions()
    out = []
    for item in corpus():
        got = found[item.id]
        for rule_id in sorted(got - item.labels):
            out.append(f"false positive {rule_id}: {item.id} {item.article.title}")
        for rule_id in sorted(item.labels - got):
            out.append(f"missed {rule_id}: {item.id} {item.article.title}")
    return out


def test_corpus_is_big_and_labels_name_real_rules() -> None:
    items = corpus()
    languages = Counter(item.article.lang for item in items)
    assert len(items) >= 150 and languages["ko"] >= 25 and languages["ja"] >= 25
    assert len({item.id for item in items}) == len(items)
    rule_ids = {rule.id for rule in seeded().rules}
    for item in items:
        assert item.labels | item.traps <= rule_ids, item.id
        assert not item.labels & item.traps, item.id
    for s in scores():
        assert s.positives >= 10, f"{s.rule_id} has only {s.positives} labelled positives"


def test_every_seeded_rule_meets_the_precision_and_recall_floor() -> None:
    table = markdown_table()
    print("\n" + table)
    low = [s for s in scores() if s.precision < FLOOR or s.recall < FLOOR]
    assert not low, table + "\n" + "\n".join(mistakes())


@pytest.mark.parametrize("rule_id", sorted({t for item in corpus() for t in item.traps}))
def test_no_look_alike_fires(rule_id: str) -> None:
    found = predictions()
    fired = [
        f"{item.id}: {item.article.title}"
        for item in corpus()
        if rule_id in item.traps and rule_id in found[item.id]
    ]
    assert fired == []


if __name__ == "__main__":
    print(markdown_table())
    print("\n".join(mistakes()))
