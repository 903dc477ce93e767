"""The query syntax tree: plain frozen values (picklable, hashable, comparable in tests).

Every node keeps `offset`/`length` into the original query so explanations and errors can point
at it. Field names on atoms are resolved at parse time (`title:(a OR b)` puts "title" on a and b);
`field=None` means "the rule's default fields" (title + text unless the rule says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TermKind = Literal["word", "prefix", "cjk", "substr", "exact"]
# word: whole Latin-script word; prefix: word starting with it (wildcard); cjk: substring of a
# Hangul/Kana/Han run; substr: substring of the URL (url:); exact: equals the language (lang:).


@dataclass(frozen=True, slots=True)
class Term:
    value: str  # folded form that is matched
    kind: TermKind
    field: str | None
    text: str  # as the analyst wrote it (without field prefix or quotes)
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive words; with `slop`, all words within a window of `slop` extra words."""

    terms: tuple[Term, ...]
    slop: int | None
    field: str | None
    text: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Near:
    left: Node
    right: Node
    distance: int
    ordered: bool
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    offset: int
    length: int


Node = Term | Phrase | Near | And | Or | Not
Leaf = Term | Phrase


def leaves(node: Node | None) -> list[Leaf]:
    """Every term and phrase of a tree, left to right."""
    if node is None:
        return []
    if isinstance(node, (Term, Phrase)):
        return [node]
    if isinstance(node, Not):
        return leaves(node.child)
    if isinstance(node, Near):
        return leaves(node.left) + leaves(node.right)
    return [leaf for child in node.children for leaf in leaves(child)]
