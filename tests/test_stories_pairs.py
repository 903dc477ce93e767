"""How well "same story?" is decided, on the labelled pairs in tests/data/story_pairs/pairs.jsonl.

See the figures with:  .venv/bin/pytest tests/test_stories_pairs.py -q -s
"""

from __future__ import annotations

import collections
import importlib.util
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import DATA
from watcher.config import StoriesSettings
from watcher.story_index import StoryIndex
from watcher.story_signature import Signature, joins, signature

SET = DATA / "story_pairs"
DEFAULTS = StoriesSettings()
WINDOW = timedelta(days=DEFAULTS.window_days)
# Tuned on this set: the lowest threshold at which no two stories of the set merge when every
# article goes through one index (0.5 lets a same-day protest written from the same agency
# template absorb another protest story). Recommended as the default of stories.threshold.
TUNED = 0.6

Pair = dict[str, Any]


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, predicted: bool, pair: Pair) -> None:
        if predicted and pair["same"]:
            self.tp += 1
        elif predicted:
            self.fp += 1
            self.errors[f"false merge: {pair['kind']}"] += 1
        elif pair["same"]:
            self.fn += 1
            self.errors[f"missed: {pair['kind']}"] += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / max(1, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self.tp / max(1, self.tp + self.fn)

    def line(self, label: str) -> str:
        return (
            f"{label}: precision {self.precision:.3f}  recall {self.recall:.3f}  "
            f"(tp {self.tp}, fp {self.fp}, fn {self.fn}, tn {self.tn})"
        )


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    with (SET / "pairs.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def sigs(pairs: list[Pair]) -> dict[str, Signature]:
    articles = {a["id"]: a for pair in pairs for a in (pair["a"], pair["b"])}
    return {key: signature(a["title"], a["text"]) for key, a in articles.items()}


def gap(pair: Pair) -> timedelta:
    a, b = (datetime.fromisoformat(pair[side]["created_at"]) for side in "ab")
    return b - a


def evaluate(
    pairs: list[Pair], sigs: dict[str, Signature], *, threshold: float, timed: bool = True
) -> Tally:
    tally = Tally()
    for pair in pairs:
        a, b = sigs[pair["a"]["id"]], sigs[pair["b"]["id"]]
        when = gap(pair) if timed else timedelta(0)
        tally.add(joins(a, b, when, window=WINDOW, threshold=threshold), pair)
    return tally


def test_the_set_covers_what_it_must(pairs: list[Pair]) -> None:
    assert len(pairs) >= 200
    kinds = collections.Counter((pair["kind"], pair["same"]) for pair in pairs)
    for kind in ("wire_copy", "new_lead", "local_paragraph", "trimmed", "update", "republished"):
        assert kinds[(kind, True)] >= 20, kind
    for kind in ("translation", "same_topic_same_day", "same_topic_week_apart", "related_topic"):
        assert kinds[(kind, False)] >= 4, kind
    languages = collections.Counter((pair["a"]["lang"], pair["same"]) for pair in pairs)
    for lang in ("en", "ko", "ja"):
        assert languages[(lang, True)] >= 30 and languages[(lang, False)] >= 10, lang


def test_the_committed_set_is_what_generate_py_makes(pairs: list[Pair]) -> None:
    spec = importlib.util.spec_from_file_location("story_pairs_generate", SET / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.build() == pairs, "run: .venv/bin/python tests/data/story_pairs/generate.py"


def test_precision_and_recall_of_same_story(pairs: list[Pair], sigs: dict[str, Signature]) -> None:
    tally = evaluate(pairs, sigs, threshold=DEFAULTS.threshold)
    text_only = evaluate(pairs, sigs, threshold=DEFAULTS.threshold, timed=False)
    print(f"\n{len(pairs)} labelled pairs, threshold {DEFAULTS.threshold}, window {WINDOW.days} d")
    print(tally.line("as stored (window applies)"))
    print(text_only.line("text alone (no time)     "))
    for lang in ("en", "ko", "ja"):
        subset = [pair for pair in pairs if pair["a"]["lang"] == lang]
        print(evaluate(subset, sigs, threshold=DEFAULTS.threshold).line(f"  {lang}"))
    for error, count in sorted(tally.errors.items()):
        print(f"  {error}: {count}")
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(evaluate(pairs, sigs, threshold=threshold).line(f"  threshold {threshold}"))
    assert tally.precision >= 0.95 and tally.recall >= 0.90
    assert text_only.precision >= 0.95 and text_only.recall >= 0.90
    tuned = evaluate(pairs, sigs, threshold=TUNED)
    assert tuned.precision >= 0.95 and tuned.recall >= 0.90


def test_the_index_decides_like_the_pair_rule(
    pairs: list[Pair], sigs: dict[str, Signature]
) -> None:
    """What the daemon runs (LSH candidates, vectorised scores) agrees with what is measured."""
    disagree = []
    for pair in pairs:
        a, b = sigs[pair["a"]["id"]], sigs[pair["b"]["id"]]
        created = datetime.fromisoformat(pair["a"]["created_at"])
        index = StoryIndex(WINDOW, DEFAULTS.threshold)
        index.add(1, 1, created, a)
        found = index.best(b, created + gap(pair)) is not None
        if found != joins(a, b, gap(pair), window=WINDOW, threshold=DEFAULTS.threshold):
            disagree.append(pair["kind"])
    print(f"\nindex vs pair rule: {len(disagree)} of {len(pairs)} differ {disagree}")
    assert len(disagree) <= len(pairs) // 100


def cluster(articles: list[dict[str, Any]], sigs: dict[str, Signature], threshold: float) -> Tally:
    """Every article through one index, oldest first, as the daemon sees them; then every two
    articles scored: the same base article means the same story."""
    index = StoryIndex(WINDOW, threshold)
    story: dict[str, int] = {}
    for number, article in enumerate(articles, start=1):
        created = datetime.fromisoformat(article["created_at"])
        found = index.best(sigs[article["id"]], created)
        story[article["id"]] = found.story_id if found else number
        index.add(number, story[article["id"]], created, sigs[article["id"]])
    truth = {key: key.split("#")[0] for key in story}
    tally = Tally()
    keys = list(story)
    for i, x in enumerate(keys):
        for y in keys[i + 1 :]:
            pair = {"same": truth[x] == truth[y], "kind": f"{truth[x]} / {truth[y]}"}
            tally.add(story[x] == story[y], pair)
    tally.errors["stories"] = len(set(story.values()))
    return tally


def test_clustering_every_article_in_time_order(
    pairs: list[Pair], sigs: dict[str, Signature]
) -> None:
    articles = sorted(
        {a["id"]: a for pair in pairs for a in (pair["a"], pair["b"])}.values(),
        key=lambda a: (a["created_at"], a["id"]),
    )
    bases = len({a["id"].split("#")[0] for a in articles})
    print(f"\n{len(articles)} articles of {bases} stories, clustered in time order:")
    tallies = {}
    for threshold in sorted({DEFAULTS.threshold, TUNED}):
        tally = tallies[threshold] = cluster(articles, sigs, threshold)
        stories = tally.errors.pop("stories")
        print(tally.line(f"  threshold {threshold} → {stories} stories; pairwise"))
        for error, count in tally.errors.most_common(3):
            print(f"    {error}: {count} article pairs")
    assert tallies[TUNED].precision >= 0.95 and tallies[TUNED].recall >= 0.90
    assert tallies[DEFAULTS.threshold].recall >= 0.90
