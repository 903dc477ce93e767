"""Syntax tree → Python closures over an ArticleIndex, built once per rule (on its first use).

`predicate(node)` answers "does the article match?"; `spans(node)` answers "where, in one field?"
as (start, end) intervals in half-word units, which phrases and NEAR/ combine. The matching
semantics mirror watcher.query.reference (an independent slow evaluator the tests compare against).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from watcher.query.anchors import anchored_cost as _anchor_cost
from watcher.query.ast import And, Near, Node, Not, Or, Phrase, Term
from watcher.query.index import LATIN_WIDTH, QUERY_FIELD_SLOTS, ArticleIndex, FieldIndex

Pred = Callable[[ArticleIndex], bool]
Span = tuple[int, int]
SpanFn = Callable[[FieldIndex], list[Span]]

DEFAULT_FIELDS = ("title", "text")


def default_slots(fields: tuple[str, ...] | None) -> tuple[int, ...]:
    """Internal field slots searched by unfielded terms."""
    slots: list[int] = []
    for name in fields or DEFAULT_FIELDS:
        for slot in QUERY_FIELD_SLOTS[name]:
            if slot not in slots:
                slots.append(slot)
    return tuple(slots)


def width(term: Term) -> int:
    return len(term.value) if term.kind == "cjk" else LATIN_WIDTH


Present = Callable[[FieldIndex], bool]


def _present(kind: str, value: str) -> Present:
    """Cheap test before positions: is the word / prefix / CJK string in the field at all?"""
    if kind == "word":
        return lambda fx: value in fx.tset
    if kind == "prefix":
        return lambda fx: fx.has_prefix(value)
    return lambda fx: value in fx.norm


class Compiler:
    """Compiles the nodes of one rule; `defaults` are the slots unfielded terms search."""

    def __init__(self, defaults: tuple[int, ...]) -> None:
        self.defaults = defaults
        # closures by node identity: the highlighter asks again for parts already compiled
        self._memo: dict[tuple[int, bool], Any] = {}

    def slots(self, field: str | None) -> tuple[int, ...]:
        return self.defaults if field is None else QUERY_FIELD_SLOTS[field]

    # -- boolean -------------------------------------------------------------------------------

    def predicate(self, node: Node) -> Pred:
        key = (id(node), True)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._predicate(node)
        return found  # type: ignore[no-any-return]

    def _predicate(self, node: Node) -> Pred:
        if isinstance(node, Term):
            return self._term(node)
        if isinstance(node, Not):
            inner = self.predicate(node.child)
            return lambda ix: not inner(ix)
        if isinstance(node, And):
            return _all([self.predicate(c) for c in sorted(node.children, key=_cost)])
        if isinstance(node, Or):
            return _any([self.predicate(c) for c in sorted(node.children, key=_cost)])
        return self._positional(node)

    def _positional(self, node: Node) -> Pred:
        """Phrase or NEAR: does it occur in one of its fields? (stops at the first occurrence)"""
        if isinstance(node, Phrase) and node.slop is None:
            slots = frozenset(self.slots(node.field))
            exists = _exact_exists(node.terms)
        elif isinstance(node, Near):
            left_slots, left = self.spans(node.left)
            right_slots, right = self.spans(node.right)
            slots = left_slots & right_slots
            exists = _near_exists(left, right, node.distance * 2, node.ordered)
            window = self._near_window(node)
            if window is not None:
                exists = _window_or(window, exists)
        else:
            slots, spans = self.spans(node)
            exists = lambda fx: bool(spans(fx))  # noqa: E731 - a closure like its siblings
        ordered = tuple(sorted(slots))
        if len(ordered) == 1:
            (a,) = ordered
            return lambda ix: exists(ix.fields[a])
        if len(ordered) == 2:
            a, b = ordered
            return lambda ix: exists(ix.fields[a]) or exists(ix.fields[b])
        return lambda ix: any(exists(ix.fields[s]) for s in ordered)

    def occurs(self, leaf: Term | Phrase) -> tuple[frozenset[int], Callable[[FieldIndex], bool]]:
        """Slots of a leaf, and whether it occurs in one field (no positions for a word)."""
        slots = frozenset(self.slots(leaf.field))
        if isinstance(leaf, Term):
            return slots, _present(leaf.kind, leaf.value)
        if leaf.slop is None:
            return slots, _exact_exists(leaf.terms)
        _, spans = self.spans(leaf)
        return slots, lambda fx: bool(spans(fx))

    def _near_window(self, node: Near) -> Callable[[FieldIndex], bool | None] | None:
        """For `x NEAR/n (word OR prefix* …)`: find x, then look at the few words around it
        instead of listing every occurrence of frequent words. Drives by the rarer side."""
        simple_left, simple_right = _simple(node.left), _simple(node.right)
        if simple_left is None and simple_right is None:
            return None
        drive_left = simple_right is not None and (
            simple_left is None or _rarity(node.left) <= _rarity(node.right)
        )
        driver = node.left if drive_left else node.right
        words, prefixes = simple_right if drive_left else simple_left  # type: ignore[misc]
        _, spans = self.spans(driver)
        n = node.distance
        after = drive_left or not node.ordered  # may the other side follow the driver?
        before = not drive_left or not node.ordered  # may it precede it?

        def window(fx: FieldIndex) -> bool | None:
            if fx.coords() is not None:
                return None  # CJK in this field: positions are not 2 units a word
            found = spans(fx)
            if not found:
                return False
            tokens = fx.tokens
            for lo, hi in found:
                if after:
                    for t in tokens[hi // 2 : hi // 2 + n + 1]:
                        if t in words or t.startswith(prefixes):
                            return True
                if before:
                    for t in tokens[max(lo // 2 - 1 - n, 0) : lo // 2]:
                        if t in words or t.startswith(prefixes):
                            return True
            return False

        return window

    def _term(self, term: Term) -> Pred:
        value = term.value
        if term.kind == "substr":
            return lambda ix: value in ix.url
        if term.kind == "exact":
            return lambda ix: ix.lang_is(value)
        slots = self.slots(term.field)
        if term.kind == "word":
            if len(slots) == 1:
                (a,) = slots
                return lambda ix: value in ix.sets[a]
            if len(slots) == 2:
                a, b = slots
                return lambda ix: value in ix.sets[a] or value in ix.sets[b]
            return lambda ix: any(value in ix.sets[s] for s in slots)
        present = _present(term.kind, value)
        return lambda ix: any(present(ix.fields[s]) for s in slots)

    # -- positional ------------------------------------------------------------------------------

    def spans(self, node: Node) -> tuple[frozenset[int], SpanFn]:
        """Slots where `node` can match, and its spans within one field."""
        key = (id(node), False)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._spans(node)
        return found  # type: ignore[no-any-return]

    def _spans(self, node: Node) -> tuple[frozenset[int], SpanFn]:
        if isinstance(node, Term):
            slots = frozenset(self.slots(node.field))
            return slots, _only_in(slots, _term_spans(node))
        if isinstance(node, Phrase):
            slots = frozenset(self.slots(node.field))
            if node.slop is None:
                return slots, _only_in(slots, _exact_phrase(node.terms))
            return slots, _only_in(slots, _sloppy_phrase(node.terms, node.slop))
        if isinstance(node, Or):
            parts = [self.spans(c) for c in node.children]
            return frozenset().union(*(p[0] for p in parts)), _union(parts)
        if isinstance(node, Near):
            left_slots, left = self.spans(node.left)
            right_slots, right = self.spans(node.right)
            slots = left_slots & right_slots
            return slots, _near(left, right, node.distance * 2, node.ordered)
        raise TypeError(f"{type(node).__name__} has no positions")  # the parser prevents this


def _only_in(slots: frozenset[int], spans: SpanFn) -> SpanFn:
    """A fielded leaf inside an OR group has no spans in the group's other fields."""
    return lambda fx: spans(fx) if fx.slot in slots else []


def _simple(node: Node) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """(words, prefixes) when `node` is a Latin word/prefix or an OR of them in one field."""
    terms = node.children if isinstance(node, Or) else (node,)
    if not all(isinstance(t, Term) and t.kind in ("word", "prefix") for t in terms):
        return None
    if len({t.field for t in terms}) != 1:  # type: ignore[union-attr]
        return None
    words = frozenset(t.value for t in terms if t.kind == "word")  # type: ignore[union-attr]
    prefixes = tuple(t.value for t in terms if t.kind == "prefix")  # type: ignore[union-attr]
    return words, prefixes


def _rarity(node: Node) -> float:
    found = _anchor_cost(node)
    return found if found is not None else float("inf")


def _window_or(
    window: Callable[[FieldIndex], bool | None], general: Callable[[FieldIndex], bool]
) -> Callable[[FieldIndex], bool]:
    def exists(fx: FieldIndex) -> bool:
        answer = window(fx)
        return general(fx) if answer is None else answer

    return exists


def _cost(node: Node) -> int:
    """Cheap tests first in AND/OR (evaluation order does not change the result)."""
    if isinstance(node, Term):
        return 0
    if isinstance(node, Not):
        return 3
    return 1 if isinstance(node, (And, Or)) else 2


def _all(preds: list[Pred]) -> Pred:
    if len(preds) == 2:
        a, b = preds
        return lambda ix: a(ix) and b(ix)
    if len(preds) == 3:
        a, b, c = preds
        return lambda ix: a(ix) and b(ix) and c(ix)
    return lambda ix: all(p(ix) for p in preds)


def _any(preds: list[Pred]) -> Pred:
    if len(preds) == 2:
        a, b = preds
        return lambda ix: a(ix) or b(ix)
    return lambda ix: any(p(ix) for p in preds)


def _term_spans(term: Term) -> SpanFn:
    kind, value, size = term.kind, term.value, width(term)
    return lambda fx: [(p, p + size) for p in fx.positions(kind, value)]


Plan = list[tuple[str, str, int, Present]]


def _phrase_plan(terms: tuple[Term, ...]) -> tuple[Plan, int]:
    """(kind, value, offset from the phrase start, presence test) per word, and the width."""
    plan = []
    total = 0
    for term in terms:
        plan.append((term.kind, term.value, total, _present(term.kind, term.value)))
        total += width(term)
    return plan, total


def _phrase_starts(plan: Plan, fx: FieldIndex, first_only: bool) -> list[int]:
    """Where the words occur at consecutive positions (driven by the rarest word)."""
    for _, _, _, present in plan:
        if not present(fx):
            return []
    lists = [(fx.positions(kind, value), off) for kind, value, off, _ in plan]
    pick = min(range(len(lists)), key=lambda i: len(lists[i][0]))
    driver, driver_off = lists[pick]
    others: list[tuple[list[int] | set[int], int]] = [
        (found, off) for i, (found, off) in enumerate(lists) if i != pick
    ]
    if len(driver) > 4:
        others = [(set(found), off) for found, off in others]
    out = []
    for pos in driver:
        start = pos - driver_off
        if all(start + off in found for found, off in others):
            out.append(start)
            if first_only:
                break
    return out


def _exact_exists(terms: tuple[Term, ...]) -> Callable[[FieldIndex], bool]:
    plan, _ = _phrase_plan(terms)
    return lambda fx: bool(_phrase_starts(plan, fx, True))


def _exact_phrase(terms: tuple[Term, ...]) -> SpanFn:
    """Words at consecutive positions: each starts where the previous one ends."""
    plan, total = _phrase_plan(terms)
    return lambda fx: [(start, start + total) for start in _phrase_starts(plan, fx, False)]


def _sloppy_phrase(terms: tuple[Term, ...], slop: int) -> SpanFn:
    """All words (any order) in a window with at most `slop` words of other text in it.

    A repeated query word needs as many occurrences. The spans are the minimal windows.
    """
    counts: dict[tuple[str, str], int] = {}
    sizes: dict[tuple[str, str], int] = {}
    for term in terms:
        key = (term.kind, term.value)
        counts[key] = counts.get(key, 0) + 1
        sizes[key] = width(term)
    keys = list(counts)
    words = sum(counts[k] * sizes[k] for k in keys)
    allowance = 2 * slop
    present = [_present(kind, value) for kind, value in keys]

    def spans(fx: FieldIndex) -> list[Span]:
        if not all(p(fx) for p in present):
            return []
        lists = [(fx.positions(k[0], k[1]), counts[k], sizes[k]) for k in keys]
        return minimal_windows(lists, words, allowance)

    return spans


def minimal_windows(
    lists: list[tuple[list[int], int, int]], words: int, allowance: int
) -> list[Span]:
    """Windows [L, R) holding `need` hits of every (starts, need, size) word, minimal by
    inclusion, with at most `allowance` units not covered by the words themselves.

    R(L) — the smallest end for a window starting at L — never decreases as L grows, so the
    window at L is minimal exactly when the next start needs a strictly larger end.
    """
    starts = sorted({p for found, _, _ in lists for p in found})
    ends: list[int] = []
    for left in starts:
        end = 0
        for found, need, size in lists:
            k = bisect.bisect_left(found, left) + need - 1
            if k >= len(found):
                end = -1
                break
            end = max(end, found[k] + size)
        if end < 0:
            break
        ends.append(end)
    out: list[Span] = []
    for i, end in enumerate(ends):
        if (i + 1 == len(ends) or ends[i + 1] > end) and end - starts[i] - words <= allowance:
            out.append((starts[i], end))
    return out


def _union(parts: list[tuple[frozenset[int], SpanFn]]) -> SpanFn:
    def spans(fx: FieldIndex) -> list[Span]:
        out: list[Span] = []
        for _, fn in parts:
            out.extend(fn(fx))
        out.sort()
        return out

    return spans


def _near(left: SpanFn, right: SpanFn, allowance: int, ordered: bool) -> SpanFn:
    """Pairs of non-overlapping spans with at most `allowance` units between them."""

    def spans(fx: FieldIndex) -> list[Span]:
        a_spans = left(fx)
        if not a_spans:
            return []
        b_spans = right(fx)
        if not b_spans:
            return []
        out = _pairs(a_spans, b_spans, allowance)
        if not ordered:
            out.extend(_pairs(b_spans, a_spans, allowance))
            out.sort()
        return out

    return spans


def _near_exists(
    left: SpanFn, right: SpanFn, allowance: int, ordered: bool
) -> Callable[[FieldIndex], bool]:
    def exists(fx: FieldIndex) -> bool:
        a_spans = left(fx)
        if not a_spans:
            return False
        b_spans = right(fx)
        if not b_spans:
            return False
        return _any_pair(a_spans, b_spans, allowance) or (
            not ordered and _any_pair(b_spans, a_spans, allowance)
        )

    return exists


def _any_pair(first: list[Span], second: list[Span], allowance: int) -> bool:
    """Is some b in `second` (sorted) at most `allowance` units after the end of some a?"""
    starts = [b[0] for b in second]
    for _, a_end in first:
        k = bisect.bisect_left(starts, a_end)
        if k < len(starts) and starts[k] - a_end <= allowance:
            return True
    return False


def _pairs(first: list[Span], second: list[Span], allowance: int) -> list[Span]:
    """Every (a, b) with a before b: b starts at or after a ends, within `allowance`."""
    starts = [b[0] for b in second]  # `second` is sorted by start
    out: list[Span] = []
    for a_start, a_end in first:
        k = bisect.bisect_left(starts, a_end)
        while k < len(second) and second[k][0] - a_end <= allowance:
            out.append((a_start, second[k][1]))
            k += 1
    return out
