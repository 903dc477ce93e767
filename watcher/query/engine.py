"""The matching engine: many rules against one article, after Lucene Monitor / Luwak.

Build: each rule's top-level OR is split into sub-queries; each sub-query gets anchor terms
(watcher.query.anchors) and an evaluation closure (watcher.query.compiler). All anchors of all
rules go into ONE Aho–Corasick automaton (watcher.query.presearch).

Match: the article is folded and tokenised once per field; the automaton scans the article's
distinct tokens once (" word " keys hit whole words, " prefix" keys hit word starts, CJK keys hit
inside Hangul/Kana/Han runs) and yields the candidate sub-queries; only those are evaluated, on
the shared per-article index. Sub-queries without an anchor (e.g. only `lang:` or `url:`) are
evaluated for every article and listed in `unanchored`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcher.domain import Article, RuleMatch
from watcher.errors import RuleError
from watcher.query.anchors import anchor_set, disjuncts
from watcher.query.ast import Node, Term, leaves
from watcher.query.compiler import Compiler, Pred, default_slots
from watcher.query.highlight import Collector, collector, snippets, terms_and_fields
from watcher.query.index import QUERY_FIELD_SLOTS, ArticleIndex, fold_fields, presearch_text
from watcher.query.presearch import Presearch


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A parsed rule as the engine takes it.

    `languages`: the rule only matches articles in these languages; an article whose language
    is unknown (None) still matches, because many feeds do not declare one.
    `fields`: what unfielded terms search (default title + text).
    """

    rule_id: str
    query: Node
    exclude: Node | None = None
    languages: tuple[str, ...] | None = None
    fields: tuple[str, ...] | None = None


class _Plan:
    """Everything the engine keeps for one rule. Closures are compiled on first use: with many
    rules most are never a candidate for most articles, and closures cost memory and build time.
    """

    __slots__ = ("_collect", "_compiler", "_exclude", "defaults", "languages", "rule")

    def __init__(self, rule: CompiledRule) -> None:
        for name in rule.fields or ():
            if name not in QUERY_FIELD_SLOTS:
                raise RuleError(
                    f"rule {rule.rule_id!r}: unknown default field {name!r} "
                    f"(use {', '.join(QUERY_FIELD_SLOTS)})"
                )
        self.rule = rule
        self.defaults = default_slots(rule.fields)
        self.languages = (
            frozenset(code.strip().lower() for code in rule.languages) if rule.languages else None
        )
        self._compiler: Compiler | None = None
        self._exclude: Pred | None = None
        self._collect: Collector | None = None

    @property
    def compiler(self) -> Compiler:
        if self._compiler is None:
            self._compiler = Compiler(self.defaults)
        return self._compiler

    def slots(self) -> set[int]:
        """Every field slot this rule's query or exclude can search."""
        found = set(self.defaults)
        for node in (self.rule.query, self.rule.exclude):
            for leaf in leaves(node):
                raw = isinstance(leaf, Term) and leaf.kind in ("substr", "exact")
                if leaf.field is not None and not raw:  # url:/lang: read the raw values
                    found.update(QUERY_FIELD_SLOTS[leaf.field])
        return found

    def language_ok(self, ix: ArticleIndex) -> bool:
        if self.languages is None or not ix.lang:
            return True
        return any(ix.lang_is(code) for code in self.languages)

    def excluded(self, ix: ArticleIndex) -> bool:
        if self.rule.exclude is None:
            return False
        if self._exclude is None:
            self._exclude = self.compiler.predicate(self.rule.exclude)
        return self._exclude(ix)

    def result(self, ix: ArticleIndex) -> RuleMatch:
        if self._collect is None:  # built on first match: most rules never match
            self._collect = collector(self.rule.query, self.compiler)
        hits: list[Any] = []
        self._collect(ix, hits)
        terms, fields = terms_and_fields(hits)
        return RuleMatch(self.rule.rule_id, fields, terms, snippets(hits, ix))


def anchor_key(kind: str, value: str) -> str:
    """Automaton key: the presearch text is " tok1 tok2 … ", so spaces mark word boundaries."""
    if kind == "word":
        return f" {value} "
    if kind == "prefix":
        return f" {value}"
    return value


# Up to this many anchors an article's text is scanned before it is indexed, and most articles
# (no anchor of any rule) are never indexed: the seeded rules' 94 anchors scan in ~10 µs where
# an index costs ~90 µs. Larger automata scan a whole text slower than its distinct words (52
# against 36 µs at 21,000 anchors, tests/bench), and with their many common words nearly every
# article has candidates and needs its index anyway (2.9 per article at 6,600 anchors).
PRESCAN_MAX_ANCHORS = 5_000


class Engine:
    """Matches articles against a fixed rule set; rebuild it when the rules change."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        self._plans = [_Plan(rule) for rule in self.rules]
        self._owners: list[int] = []  # sub-query number → rule index
        self._nodes: list[Node] = []  # sub-query number → its tree
        self._preds: list[Pred | None] = []  # sub-query number → predicate, once compiled
        always: list[int] = []
        keyed: dict[str, list[int]] = {}
        unanchored: list[str] = []
        for index, plan in enumerate(self._plans):
            for part in disjuncts(plan.rule.query):
                number = len(self._nodes)
                self._owners.append(index)
                self._nodes.append(part)
                found = anchor_set(part)
                if found is None:
                    always.append(number)
                    if plan.rule.rule_id not in unanchored:
                        unanchored.append(plan.rule.rule_id)
                    continue
                for kind, value in found:
                    keyed.setdefault(anchor_key(kind, value), []).append(number)
        self._always = tuple(always)
        self.unanchored: tuple[str, ...] = tuple(unanchored)
        self._presearch = Presearch(keyed)
        self.anchor_count = len(keyed)
        self._slots = tuple(sorted(set().union(*(plan.slots() for plan in self._plans))))
        self._preds = [None] * len(self._nodes)

    def _predicate(self, number: int) -> Pred:
        predicate = self._preds[number]
        if predicate is None:
            plan = self._plans[self._owners[number]]
            predicate = self._preds[number] = plan.compiler.predicate(self._nodes[number])
        return predicate

    def __reduce__(self) -> tuple[type[Engine], tuple[tuple[CompiledRule, ...]]]:
        return (Engine, (self.rules,))

    def index(self, article: Article) -> ArticleIndex:
        """The per-article index, with only the fields some rule searches."""
        return ArticleIndex(article, self._slots)

    def candidates(self, ix: ArticleIndex) -> set[int]:
        """Sub-queries whose anchors occur in the article (plus the unanchored ones)."""
        found = self._presearch.scan(ix.vocabulary_text())
        found.update(self._always)
        return found

    def match(self, article: Article, *, details: bool = True) -> list[RuleMatch]:
        """Every rule the article matches, in rule order, with terms and snippets (`details`;
        without them a RuleMatch names only its rule: for matches that are never shown)."""
        if self.anchor_count <= PRESCAN_MAX_ANCHORS:  # scan first: most articles stop there
            folded = fold_fields(article, self._slots)
            found = self._presearch.scan(presearch_text(folded))
            found.update(self._always)
            if not found:
                return []
            ix = ArticleIndex(article, self._slots, folded)
        else:
            ix = self.index(article)
            found = self.candidates(ix)
        plans, owners, preds = self._plans, self._owners, self._preds
        matched: set[int] = set()
        rejected: set[int] = set()
        for number in found:
            index = owners[number]
            if index in matched or index in rejected:
                continue
            plan = plans[index]
            if plan.languages is not None and not plan.language_ok(ix):
                rejected.add(index)
            elif (preds[number] or self._predicate(number))(ix):
                matched.add(index)
        kept = [i for i in sorted(matched) if not plans[i].excluded(ix)]
        if not details:
            return [RuleMatch(plans[i].rule.rule_id) for i in kept]
        return [plans[i].result(ix) for i in kept]
