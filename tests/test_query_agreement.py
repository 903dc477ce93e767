"""The Engine returns exactly what the one-rule-at-a-time reference evaluator returns.

Thousands of rules drawn from the whole grammar, over a mixed en/ko/ja corpus built to be full of
near misses (korea/korean/koreas, art/start, particles, full-width forms, hyphens), are matched
both ways; any difference is printed with the rule and the article.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bench._rulegen import agreement_corpus, random_query, random_rules
from watcher.domain import Article
from watcher.query import CompiledRule, Engine, QuerySyntaxError, parse, reference_match

RULES = 2000
ARTICLES = 150


def test_engine_agrees_with_reference_on_random_rules() -> None:
    _agree(random_rules(RULES), agreement_corpus(ARTICLES))


def test_engine_agrees_with_reference_on_latin_only_articles() -> None:
    """Latin-only fields take shortcuts (positions are token numbers, NEAR looks at windows)."""
    _agree(random_rules(RULES // 2, seed=3), agreement_corpus(ARTICLES // 2, 4, latin_only=True))


def _agree(rules: list[CompiledRule], corpus: list[Article]) -> None:
    engine = Engine(rules)
    differences = []
    total = 0
    for item in corpus:
        got = {m.rule_id for m in engine.match(item)}
        want = {r.rule_id for r in rules if reference_match(r, item)}
        total += len(want)
        for rule_id in sorted(got ^ want):
            who = "engine only" if rule_id in got else "reference only"
            differences.append(f"{who}: {rule_id} {rules[int(rule_id[1:])]} on {item}")
    assert not differences, "\n".join(differences[:5])
    # the corpus must make the comparison meaningful: plenty of matches, plenty of misses
    pairs = len(rules) * len(corpus)
    assert pairs * 0.03 < total < pairs * 0.6


def test_unanchored_rules_are_part_of_the_mix() -> None:
    engine = Engine(random_rules(RULES))
    assert 0 < len(engine.unanchored) < RULES / 4


_WORDS = st.sampled_from(
    [
        *("korea", "Korea's", "korean", "start", "art", "독도를", "독도", "竹島は", "日本"),
        *(
            "Séoul",
            "seoul",
            "ＫＯＲＥＡ",
            "new",
            "york",
            "New-York",
            " ",
            " ",
            ", ",
            ". ",
            "-",
            "…",
        ),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    title=st.lists(_WORDS, max_size=6).map(" ".join),
    text=st.lists(_WORDS, max_size=25).map("".join),
)
def test_engine_agrees_with_reference_on_generated_articles(
    seed: int, title: str, text: str
) -> None:
    rng = random.Random(seed)
    try:
        query = parse(random_query(rng))
    except QuerySyntaxError:
        return
    compiled = CompiledRule("r", query)
    item = Article(url="https://example.com/art/1", title=title, text=text, lang="en")
    assert bool(Engine([compiled]).match(item)) == reference_match(compiled, item)
