"""The per-article index the engine builds ONCE and every candidate rule reads.

Positions are "half-word units" so that one proximity rule covers every script: a Latin-script
word is 2 units wide, a Hangul/Kana/Han character 1 unit. NEAR/n and "…"~n allow 2n units of
other text between the hits, i.e. n words, or 2n CJK characters (see rules/README.md).
Everything expensive (positions, coordinates, sorted vocabularies) is computed lazily, because
most articles are only ever asked "is this word here?".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from itertools import accumulate

from watcher.domain import Article
from watcher.query.text import CJK_CHAR_RE, TOKEN_RE, Folded, fold, spaced_tokens, tokenize

# Internal fields. `source:` searches the outlet name AND the host; `url`/`lang` here are the
# tokenised forms, used only when a rule lists them as default fields.
FIELD_NAMES = ("title", "text", "author", "source", "host", "url", "lang")
PUBLIC_NAME = ("title", "text", "author", "source", "source", "url", "lang")
QUERY_FIELD_SLOTS: dict[str, tuple[int, ...]] = {
    "title": (0,),
    "text": (1,),
    "author": (2,),
    "source": (3, 4),
    "url": (5,),
    "lang": (6,),
}
LATIN_WIDTH = 2


class FieldIndex:
    """One field of one article: folded text, tokens, and lazily its positional index."""

    __slots__ = (
        "_coords",
        "_plain",
        "_positions",
        "_prefix",
        "_sorted",
        "_starts",
        "folded",
        "norm",
        "raw",
        "slot",
        "tokens",
        "tset",
    )

    def __init__(self, raw: str, slot: int, folded: Folded | None = None) -> None:
        self.slot = slot  # which of FIELD_NAMES this is
        self.raw = raw
        self.folded: Folded = folded or fold(raw)
        self.norm = self.folded.norm
        self.tokens = tokenize(self.norm)
        self.tset = set(self.tokens)
        self._coords: list[int] | None = None
        self._starts: list[int] | None = None
        self._plain = False  # known to hold no CJK
        self._positions: dict[tuple[str, str], list[int]] = {}
        self._prefix: dict[str, bool] = {}
        self._sorted: list[str] | None = None

    # -- presence ---------------------------------------------------------------------------

    def has_prefix(self, prefix: str) -> bool:
        hit = self._prefix.get(prefix)
        if hit is None:
            vocab = self.vocabulary()
            k = bisect.bisect_left(vocab, prefix)
            hit = self._prefix[prefix] = k < len(vocab) and vocab[k].startswith(prefix)
        return hit

    def vocabulary(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.tset)
        return self._sorted

    # -- positions (half-word units) -------------------------------------------------------

    def positions(self, kind: str, value: str) -> list[int]:
        """Sorted start positions of a word / prefix / CJK substring."""
        key = (kind, value)
        found = self._positions.get(key)
        if found is None:
            if kind == "word":
                found = self._word_positions(value)
            elif kind == "prefix":
                found = self._prefix_positions(value)
            else:
                found = self._cjk_positions(value)
            self._positions[key] = found
        return found

    def _token_indexes(self, word: str) -> list[int]:
        tokens = self.tokens
        out: list[int] = []
        i = -1
        try:
            while True:
                i = tokens.index(word, i + 1)
                out.append(i)
        except ValueError:
            return out

    def _word_positions(self, word: str) -> list[int]:
        if word not in self.tset:
            return []
        indexes = self._token_indexes(word)
        coords = self.coords()
        if coords is None:
            return [i + i for i in indexes]
        return [coords[i] for i in indexes]

    def _prefix_positions(self, prefix: str) -> list[int]:
        vocab = self.vocabulary()
        k = bisect.bisect_left(vocab, prefix)
        found: list[int] = []
        while k < len(vocab) and vocab[k].startswith(prefix):
            found.extend(self._word_positions(vocab[k]))
            k += 1
        found.sort()
        return found

    def _cjk_positions(self, value: str) -> list[int]:
        norm = self.norm
        at = norm.find(value)
        if at < 0:
            return []
        coords = self.coords()
        assert coords is not None  # a CJK hit implies CJK coordinates
        if self._starts is None:
            self._starts = [m.start() for m in TOKEN_RE.finditer(norm)]
        starts = self._starts
        out: list[int] = []
        while at >= 0:
            j = bisect.bisect_right(starts, at) - 1
            out.append(coords[j] + at - starts[j])
            at = norm.find(value, at + 1)
        return out

    def coords(self) -> list[int] | None:
        """Start unit of every token, or None when the field has no CJK (token i starts at 2i)."""
        if self._coords is None and not self._plain:
            if self.norm.isascii() or not CJK_CHAR_RE.search(self.norm):
                self._plain = True
                return None
            tokens = self.tokens
            cjk = map(CJK_CHAR_RE.match, tokens)  # C-level loops: this runs for every CJK text
            widths = [
                LATIN_WIDTH if m is None else len(t) for m, t in zip(cjk, tokens, strict=True)
            ]
            coords = list(accumulate(widths, initial=0))
            coords.pop()
            self._coords = coords
        return self._coords


_RAW = (
    lambda a: a.title,
    lambda a: a.text,
    lambda a: a.author or "",
    lambda a: a.source,
    lambda a: a.host,
    lambda a: a.url,
    lambda a: a.lang or "",
)
ALL_SLOTS = tuple(range(len(FIELD_NAMES)))


class ArticleIndex:
    """The fields of one article the rule set can search, plus the raw URL and language.

    `slots` are the fields any rule searches; the others stay empty (no rule can look at them),
    which saves folding an author or a URL nobody queries.
    """

    __slots__ = ("_url", "article", "fields", "lang", "sets", "slots")

    def __init__(
        self,
        article: Article,
        slots: tuple[int, ...] = ALL_SLOTS,
        folded: Sequence[Folded] | None = None,
    ) -> None:
        """`folded`: the slots' folded texts when already at hand (`fold_fields`)."""
        self.article = article
        self.slots = slots
        self._url: str | None = None
        self.lang = (article.lang or "").strip().lower()
        fields = list(_EMPTY)
        for n, slot in enumerate(slots):
            raw = _RAW[slot](article)
            fields[slot] = FieldIndex(raw, slot, folded[n] if folded is not None else None)
        self.fields = tuple(fields)
        self.sets = tuple(f.tset for f in fields)

    @property
    def url(self) -> str:
        """The folded URL, for url: substrings."""
        if self._url is None:
            self._url = fold(self.article.url).norm
        return self._url

    def vocabulary_text(self) -> str:
        """Every distinct token once between spaces: `presearch_text` without repeats."""
        sets = self.sets
        vocabulary = sets[0].union(*(sets[s] for s in self.slots if s))
        return " " + " ".join(vocabulary) + " "

    def lang_is(self, code: str) -> bool:
        lang = self.lang
        return lang == code or lang.startswith(code + "-") or lang.startswith(code + "_")


_EMPTY = tuple(FieldIndex("", slot) for slot in ALL_SLOTS)


def fold_fields(article: Article, slots: tuple[int, ...]) -> list[Folded]:
    """The folded text of each of these fields of an article."""
    return [fold(_RAW[slot](article)) for slot in slots]


def presearch_text(fields: Sequence[Folded]) -> str:
    """The fields' tokens between spaces, with a space at each end: what the anchor automaton
    scans. No anchor spans two tokens (a word, a word's start, a CJK run), so this finds what
    scanning each distinct token would, and it needs no index: most articles have no anchor
    at all and are then never indexed."""
    return " " + " ".join(spaced_tokens(f.norm) for f in fields) + " "
