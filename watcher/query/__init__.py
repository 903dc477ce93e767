"""The query language: lexer, parser → syntax tree, anchors, compiled matcher, highlighter.

The analysts' reference is rules/README.md. The semantics in one place:

- Text and queries are folded alike (watcher.query.text): NFKC, case folding, Latin-only accent
  folding, typographic punctuation → ASCII. Hangul stays composed.
- Latin-script (non-CJK) terms match whole words (runs of letters and digits; hyphens and
  apostrophes separate words, so "Korea-Japan" is the phrase "korea japan"). Terms made of
  Hangul, Kana or Han match as substrings (독도 matches 독도를). A word mixing both is split at
  the script change and its parts must be adjacent (LG전자 = "lg" + "전자").
- Proximity is counted in half-word units: a Latin word is 2 units, a CJK character 1, spaces
  and punctuation 0. NEAR/n (either order) and ONEAR/n (left first) allow 2n units between two
  non-overlapping occurrences: n words, or 2n CJK characters. "a b" = consecutive (0 units
  between); "a b c"~n = every word, any order, in a window with at most 2n units not covered by
  the words (repeated words need repeated occurrences).
- An unfielded term searches the rule's default fields (title + text); `source:` searches the
  outlet name and the host; `url:` is a substring of the folded URL; `lang:` equals the
  language code or is its prefix before "-"; `languages:` lets articles with no language through.

Public interface (watcher.rules and the CLI use only these names): parse, parse_with_warnings,
explain, anchors, QuerySyntaxError, QueryWarning, CompiledRule, Engine, reference_match.
"""

from __future__ import annotations

from watcher.query.anchors import anchors, explain
from watcher.query.ast import And, Near, Node, Not, Or, Phrase, Term
from watcher.query.engine import CompiledRule, Engine
from watcher.query.errors import QuerySyntaxError, QueryWarning
from watcher.query.parser import parse, parse_with_warnings
from watcher.query.reference import reference_match

__all__ = [
    "And",
    "CompiledRule",
    "Engine",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "QuerySyntaxError",
    "QueryWarning",
    "Term",
    "anchors",
    "explain",
    "parse",
    "parse_with_warnings",
    "reference_match",
]
