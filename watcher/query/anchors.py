"""Anchor terms (after Lucene Monitor / Luwak) and the `explain` tree.

An anchor set is a set of terms at least one of which MUST occur in any article the query
matches, so an article that contains none of them can skip the query. OR needs all branches'
anchors, AND needs only one child's (we pick the most specific), a phrase or NEAR needs one
word, NOT contributes nothing. `None` means "cannot be anchored": the query is always evaluated.
"""

from __future__ import annotations

from watcher.query.ast import And, Near, Node, Not, Or, Phrase, Term

Anchor = tuple[str, str]  # (kind, folded value): kind is "word", "prefix" or "cjk"

# Words so common that an anchor on them saves nothing; prefer any other child of an AND.
_COMMON = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "he", "in"}
    | {"is", "it", "its", "of", "on", "or", "that", "the", "to", "was", "were", "will", "with"}
    | {"s", "t", "said", "says", "new"}
)


def anchor_cost(term: Term) -> float:
    """Rough expected frequency of a term: short and common words are frequent, CJK characters
    rarer, and words the analyst capitalised or wrote with digits (names, acronyms, model
    numbers) rarer than the rest — proper nouns are what rules are about."""
    value = term.value
    if term.kind == "cjk":
        return 1.0 / (2 * len(value)) ** 2
    cost = 1.0 if value in _COMMON else 1.0 / len(value) ** 2
    if term.kind == "prefix":
        cost *= 4
    if any(ch.isupper() or ch.isdigit() for ch in term.text):
        cost /= 2
    return cost


Anchored = tuple[frozenset[Anchor], float]  # anchors and their summed cost


def anchored_cost(node: Node) -> float | None:
    """Expected frequency of the node's anchors (None: no anchor); lower is rarer."""
    found = _anchored(node)
    return None if found is None else found[1]


def anchor_set(node: Node) -> frozenset[Anchor] | None:
    """The anchors of `node`, or None when it cannot be anchored."""
    found = _anchored(node)
    return None if found is None else found[0]


def _anchored(node: Node) -> Anchored | None:
    if isinstance(node, Term):
        if node.kind in ("word", "prefix", "cjk"):
            return frozenset([(node.kind, node.value)]), anchor_cost(node)
        return None
    if isinstance(node, Phrase):
        return _cheapest([_anchored(t) for t in node.terms])
    if isinstance(node, Near):
        return _cheapest([_anchored(node.left), _anchored(node.right)])
    if isinstance(node, And):
        return _cheapest([_anchored(c) for c in node.children])
    if isinstance(node, Or):
        union: set[Anchor] = set()
        cost = 0.0
        for child in node.children:
            found = _anchored(child)
            if found is None:
                return None
            union |= found[0]
            cost += found[1]
        return frozenset(union), cost
    return None  # Not


def _cheapest(options: list[Anchored | None]) -> Anchored | None:
    usable = [o for o in options if o is not None]
    if not usable:
        return None
    return min(usable, key=lambda o: (o[1], len(o[0]), sorted(o[0])))


def disjuncts(node: Node) -> tuple[Node, ...]:
    """A top-level OR splits into independently anchored sub-queries."""
    return node.children if isinstance(node, Or) else (node,)


def anchors(node: Node) -> list[str]:
    """Anchor terms of the whole query, for `watcher rules explain` ("korea*" for a prefix)."""
    out: list[str] = []
    for part in disjuncts(node):
        found = anchor_set(part)
        if found is None:
            continue
        for kind, value in sorted(found):
            label = value + "*" if kind == "prefix" else value
            if label not in out:
                out.append(label)
    return out


def explain(node: Node) -> str:
    """Indented tree of the parsed query, then the anchors, so an analyst sees how it was read."""
    lines: list[str] = []
    _explain(node, 0, lines)
    parts = disjuncts(node)
    unanchored = [p for p in parts if anchor_set(p) is None]
    found = anchors(node)
    lines.append("anchors: " + (", ".join(found) if found else "(none)"))
    if unanchored:
        lines.append(
            "warning: part of this query has no anchor term, so it is evaluated for every article"
        )
    return "\n".join(lines)


def _field(node: Term | Phrase) -> str:
    return f"{node.field}: " if node.field else ""


def _explain(node: Node, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if isinstance(node, Term):
        what = {
            "word": "word",
            "prefix": "words starting with",
            "cjk": "text containing",
            "substr": "url containing",
            "exact": "language",
        }[node.kind]
        lines.append(f"{pad}{_field(node)}{what} {node.value!r}")
    elif isinstance(node, Phrase):
        words = " ".join(t.value + ("*" if t.kind == "prefix" else "") for t in node.terms)
        slop = f" within {node.slop} extra words" if node.slop is not None else ""
        lines.append(f"{pad}{_field(node)}phrase {words!r}{slop}")
    elif isinstance(node, Near):
        how = "in this order" if node.ordered else "either order"
        lines.append(f"{pad}NEAR/{node.distance} ({how}, at most {node.distance} words apart)")
        _explain(node.left, depth + 1, lines)
        _explain(node.right, depth + 1, lines)
    elif isinstance(node, Not):
        lines.append(f"{pad}NOT")
        _explain(node.child, depth + 1, lines)
    else:
        lines.append(f"{pad}{'AND' if isinstance(node, And) else 'OR'}")
        for child in node.children:
            _explain(child, depth + 1, lines)
