"""What a match is made of (terms, fields) and keyword-in-context snippets for the digest.

Runs only for rules that matched. Hits are found in the folded text and mapped back to the
ORIGINAL text through `Folded` (NFKC can change lengths), so highlights are offsets into what the
reader sees. A snippet is the sentence around a hit, cut to at most ~80 characters either side at
a word boundary, with "…" where it was cut.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from watcher.domain import Snippet
from watcher.query.ast import And, Near, Node, Not, Or, Phrase, Term
from watcher.query.compiler import Compiler, Pred
from watcher.query.index import PUBLIC_NAME, ArticleIndex, FieldIndex
from watcher.query.text import CJK_CHAR_RE

Leaf = Term | Phrase
Hit = tuple[Leaf, int]  # a leaf that matched, and the slot it matched in (-1: url)
Collector = Callable[[ArticleIndex, list[Hit]], None]

URL_SLOT = -1
MAX_SNIPPETS = 3
CONTEXT = 80
_SENTENCE_END = re.compile(r"[.!?。！？\n]")


def collector(node: Node, compiler: Compiler) -> Collector:
    """A function listing the positive leaves that hit, within the parts of the query that hold."""
    if isinstance(node, Not):
        return lambda ix, out: None
    if isinstance(node, (And, Or)):
        parts = [(compiler.predicate(c), collector(c, compiler)) for c in node.children]
        return lambda ix, out: _collect_parts(parts, ix, out)
    if isinstance(node, Near):
        holds = compiler.predicate(node)
        inner = [collector(node.left, compiler), collector(node.right, compiler)]
        return lambda ix, out: _collect_parts([(holds, c) for c in inner], ix, out)
    if isinstance(node, Term) and node.kind in ("substr", "exact"):
        test = compiler.predicate(node)
        if node.kind == "exact":
            return lambda ix, out: None
        return lambda ix, out: out.append((node, URL_SLOT)) if test(ix) else None
    slots, occurs = compiler.occurs(node)  # type: ignore[arg-type]
    ordered = sorted(slots)

    def leaf(ix: ArticleIndex, out: list[Hit]) -> None:
        for slot in ordered:
            if occurs(ix.fields[slot]):
                out.append((node, slot))  # type: ignore[arg-type]

    return leaf


def _collect_parts(parts: list[tuple[Pred, Collector]], ix: ArticleIndex, out: list[Hit]) -> None:
    for holds, collect in parts:
        if holds(ix):
            collect(ix, out)


def terms_and_fields(hits: list[Hit]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Distinct query terms (as written) and public field names, in a stable order."""
    terms: list[str] = []
    fields: list[str] = []
    for leaf, slot in hits:
        if leaf.text not in terms:
            terms.append(leaf.text)
        name = "url" if slot == URL_SLOT else PUBLIC_NAME[slot]
        if name not in fields:
            fields.append(name)
    order = ("title", "text", "author", "source", "url", "lang")
    return tuple(terms), tuple(sorted(fields, key=order.index))


def _is_word_char(ch: str) -> bool:
    """A letter or digit of a Latin-script (non-CJK) word."""
    return ch.isalnum() and CJK_CHAR_RE.match(ch) is None


def _term_at(norm: str, term: Term, at: int) -> int:
    """End of `term` if it occurs at `at` (respecting word boundaries), else -1."""
    value = term.value
    if not norm.startswith(value, at):
        return -1
    end = at + len(value)
    if term.kind == "cjk":
        return end
    if at > 0 and _is_word_char(norm[at - 1]):
        return -1
    if term.kind == "prefix":
        while end < len(norm) and _is_word_char(norm[end]):
            end += 1
        return end
    return -1 if end < len(norm) and _is_word_char(norm[end]) else end


def _occurrences(norm: str, leaf: Leaf) -> list[tuple[int, int]]:
    """Where `leaf` occurs in folded text (a sloppy phrase: each of its words)."""
    if isinstance(leaf, Phrase) and leaf.slop is not None:
        return [span for term in leaf.terms for span in _occurrences(norm, term)]
    terms = leaf.terms if isinstance(leaf, Phrase) else (leaf,)
    out = []
    at = norm.find(terms[0].value)
    while at >= 0:
        end = _term_at(norm, terms[0], at)
        for before, term in itertools.pairwise(terms):
            if end < 0:
                break
            gap = end
            while gap < len(norm) and not norm[gap].isalnum():
                gap += 1
            latin = before.kind != "cjk" and term.kind != "cjk"
            end = -1 if latin and gap == end else _term_at(norm, term, gap)
        if end >= 0:
            out.append((at, end))
        at = norm.find(terms[0].value, at + 1)
    return out


def snippets(hits: list[Hit], ix: ArticleIndex) -> tuple[Snippet, ...]:
    """Up to three snippets: the title if it has hits, then sentences around distinct hits."""
    by_slot: dict[int, list[Leaf]] = {}
    for leaf, slot in hits:
        if slot != URL_SLOT and leaf not in by_slot.setdefault(slot, []):
            by_slot[slot].append(leaf)
    out: list[Snippet] = []
    for slot in sorted(by_slot):
        if len(out) >= MAX_SNIPPETS:
            break
        fx = ix.fields[slot]
        spans = _original_spans(fx, tuple(by_slot[slot]))
        out.extend(_field_snippets(PUBLIC_NAME[slot], fx.raw, spans, MAX_SNIPPETS - len(out)))
    return tuple(out)


def _original_spans(fx: FieldIndex, leaves: tuple[Leaf, ...]) -> list[tuple[int, int]]:
    """Hits in the original text, sorted, with overlaps merged (a phrase and its own words)."""
    found = sorted(span for leaf in leaves for span in _occurrences(fx.norm, leaf))
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    spans = []
    for start, end in merged:
        orig = fx.folded.span(start, end)
        if orig[1] > orig[0]:
            spans.append(orig)
    return spans


def _field_snippets(
    field: str, text: str, spans: list[tuple[int, int]], budget: int
) -> list[Snippet]:
    out: list[Snippet] = []
    covered: list[tuple[int, int]] = []
    seen_words: set[str] = set()
    # first the first hit of each distinct matched text, then the rest, in text order
    firsts = []
    for span in spans:
        word = text[span[0] : span[1]].casefold()
        if word not in seen_words:
            seen_words.add(word)
            firsts.append(span)
    for span in firsts + [s for s in spans if s not in firsts]:
        if len(out) >= budget:
            break
        if any(lo <= span[0] and span[1] <= hi for lo, hi in covered):
            continue
        lo, hi, prefix, suffix = _window(text, *span)
        covered.append((lo, hi))
        marks = tuple(
            (s - lo + len(prefix), e - lo + len(prefix)) for s, e in spans if lo <= s and e <= hi
        )
        out.append(Snippet(field, prefix + text[lo:hi] + suffix, marks))
    return out


def _window(text: str, start: int, end: int) -> tuple[int, int, str, str]:
    """The sentence around [start, end), at most CONTEXT characters either side."""
    lo = max(0, start - CONTEXT)
    cut_left = lo > 0
    for m in _SENTENCE_END.finditer(text, lo, start):
        lo, cut_left = m.end(), False
    if cut_left:
        space = text.find(" ", lo, start)
        if 0 <= space < lo + 20:
            lo = space + 1
    while lo < start and text[lo].isspace():
        lo += 1
    hi = min(len(text), end + CONTEXT)
    cut_right = hi < len(text)
    stop = _SENTENCE_END.search(text, end, hi)
    if stop:
        hi, cut_right = stop.end(), False
    if cut_right:
        space = text.rfind(" ", end, hi)
        if space > hi - 20:
            hi = space
    while hi > end and text[hi - 1].isspace():
        hi -= 1
    return lo, hi, "…" if cut_left else "", "…" if cut_right else ""
