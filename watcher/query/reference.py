"""The reference evaluator: one rule, one article, by brute force, obviously correct.

It shares only the DEFINITIONS with the engine (the folding function and the CJK character
class, both specified in watcher.query.text) — not its index, tokeniser, anchors or closures.
Tokens come from a character loop, positions from a per-character unit table, phrases and NEAR
from enumerating every combination of hits. The agreement test holds the Engine to it, and the
benchmark uses it as the one-rule-at-a-time baseline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from watcher.domain import Article
from watcher.query.ast import And, Near, Node, Not, Or, Phrase, Term
from watcher.query.engine import CompiledRule
from watcher.query.text import CJK_CHAR_RE, fold_text

Span = tuple[int, int]

_FIELDS = {
    "title": ("title",),
    "text": ("text",),
    "author": ("author",),
    "source": ("source", "host"),
    "url": ("url",),
    "lang": ("lang",),
}


@dataclass(frozen=True)
class _Token:
    word: str
    cjk: bool
    unit: int  # position in half-word units: a Latin word is 2 wide, a CJK character 1


@dataclass(frozen=True)
class _Field:
    norm: str
    tokens: tuple[_Token, ...]
    char_unit: tuple[int, ...]  # unit of every character that belongs to a CJK run (else -1)


@lru_cache(maxsize=256)
def _analyse(text: str) -> _Field:
    norm = fold_text(text)
    tokens: list[_Token] = []
    char_unit = [-1] * len(norm)
    unit = 0
    i = 0
    while i < len(norm):
        ch = norm[i]
        if CJK_CHAR_RE.match(ch):
            j = i
            while j < len(norm) and CJK_CHAR_RE.match(norm[j]):
                char_unit[j] = unit + (j - i)
                j += 1
            tokens.append(_Token(norm[i:j], True, unit))
            unit += j - i
            i = j
        elif ch.isalnum():
            j = i
            while j < len(norm) and norm[j].isalnum() and not CJK_CHAR_RE.match(norm[j]):
                j += 1
            tokens.append(_Token(norm[i:j], False, unit))
            unit += 2
            i = j
        else:
            i += 1
    return _Field(norm, tuple(tokens), tuple(char_unit))


def _hits(term: Term, field: _Field) -> list[Span]:
    if term.kind == "word":
        return [(t.unit, t.unit + 2) for t in field.tokens if not t.cjk and t.word == term.value]
    if term.kind == "prefix":
        return [
            (t.unit, t.unit + 2)
            for t in field.tokens
            if not t.cjk and t.word.startswith(term.value)
        ]
    size = len(term.value)
    starts = [m.start() for m in re.finditer(f"(?={re.escape(term.value)})", field.norm)]
    return [(field.char_unit[i], field.char_unit[i] + size) for i in starts]


class _Evaluator:
    def __init__(self, article: Article, defaults: tuple[str, ...]) -> None:
        self.article = article
        self.defaults = defaults
        self.texts = {
            "title": article.title,
            "text": article.text,
            "author": article.author or "",
            "source": article.source,
            "host": article.host,
            "url": article.url,
            "lang": article.lang or "",
        }

    def fields(self, field: str | None) -> list[str]:
        names = self.defaults if field is None else (field,)
        return [part for name in names for part in _FIELDS[name]]

    def holds(self, node: Node) -> bool:
        if isinstance(node, And):
            return all(self.holds(c) for c in node.children)
        if isinstance(node, Or):
            return any(self.holds(c) for c in node.children)
        if isinstance(node, Not):
            return not self.holds(node.child)
        if isinstance(node, Term) and node.kind == "substr":
            return node.value in fold_text(self.article.url)
        if isinstance(node, Term) and node.kind == "exact":
            return _lang_is(self.article.lang, node.value)
        return any(self.spans(node, name) for name in self.all_fields(node))

    def all_fields(self, node: Node) -> set[str]:
        if isinstance(node, (Term, Phrase)):
            return set(self.fields(node.field))
        if isinstance(node, Or):
            return set().union(*(self.all_fields(c) for c in node.children))
        if isinstance(node, Near):
            return self.all_fields(node.left) & self.all_fields(node.right)
        return set()

    def spans(self, node: Node, name: str) -> list[Span]:
        if isinstance(node, (Term, Phrase)) and name not in self.fields(node.field):
            return []
        field = _analyse(self.texts[name])
        if isinstance(node, Term):
            return _hits(node, field)
        if isinstance(node, Phrase):
            lists = [_hits(t, field) for t in node.terms]
            if node.slop is None:
                return _chains(lists)
            return _windows(node.terms, lists, node.slop)
        if isinstance(node, Or):
            return [s for c in node.children for s in self.spans(c, name)]
        assert isinstance(node, Near)
        limit = 2 * node.distance
        out = []
        for a, b in product(self.spans(node.left, name), self.spans(node.right, name)):
            forward = a[1] <= b[0] and b[0] - a[1] <= limit
            backward = not node.ordered and b[1] <= a[0] and a[0] - b[1] <= limit
            if forward or backward:
                out.append((min(a[0], b[0]), max(a[1], b[1])))
        return out


def _chains(lists: list[list[Span]]) -> list[Span]:
    """Exact phrase: one hit per word, each starting where the previous one ends."""
    out = []
    for first in lists[0]:
        ends = {first}
        for hits in lists[1:]:
            ends = {h for h in hits for e in ends if h[0] == e[1]}
        out.extend((first[0], e[1]) for e in ends)
    return out


def _windows(terms: tuple[Term, ...], lists: list[list[Span]], slop: int) -> list[Span]:
    """Sloppy phrase: every window [L, R) holding enough hits of each word, minimal ones only."""
    need: dict[tuple[str, str], int] = {}
    hits: dict[tuple[str, str], list[Span]] = {}
    words = 0
    for term, found in zip(terms, lists, strict=True):
        key = (term.kind, term.value)
        need[key] = need.get(key, 0) + 1
        hits[key] = found
        words += len(term.value) if term.kind == "cjk" else 2
    starts = {h[0] for found in lists for h in found}
    ends = {h[1] for found in lists for h in found}
    valid = [
        (lo, hi)
        for lo in starts
        for hi in ends
        if lo < hi
        and hi - lo - words <= 2 * slop
        and all(
            sum(1 for h in hits[key] if lo <= h[0] and h[1] <= hi) >= count
            for key, count in need.items()
        )
    ]
    return [w for w in valid if not any(o != w and w[0] <= o[0] and o[1] <= w[1] for o in valid)]


def _lang_is(lang: str | None, code: str) -> bool:
    value = (lang or "").strip().lower()
    return value == code or any(value.startswith(code + sep) for sep in "-_")


def reference_match(rule: CompiledRule, article: Article) -> bool:
    """Does `rule` match `article`? Slow and simple; the Engine must agree with it."""
    languages = rule.languages
    if languages and article.lang and not any(_lang_is(article.lang, c.lower()) for c in languages):
        return False
    evaluator = _Evaluator(article, rule.fields or ("title", "text"))
    if not evaluator.holds(rule.query):
        return False
    return rule.exclude is None or not evaluator.holds(rule.exclude)
