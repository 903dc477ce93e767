"""Text folding and tokenisation shared by queries and articles, so both sides agree exactly.

Folding = NFKC (full-width → ASCII, ligatures, compatibility forms), case folding, Latin-only
accent folding (é → e, ø → o; Hangul, Kana, Han, Cyrillic and Greek letters keep their marks),
and typographic punctuation → ASCII (’ → ', “ → ", – → -). It runs per character cluster, so
a `Folded` can map every position of the folded text back to the original text — the highlighter
needs that because folding can change lengths ("ﬁ" → "fi", "ß" → "ss", soft hyphens vanish).

Tokens: a word is a maximal run of letters and digits (`str.isalnum`; "_" is not part of a word),
split where Hangul/Kana/Han meets another script ("LG전자" → "lg", "전자"). Hyphens and apostrophes
separate words ("Korea-Japan" → korea japan, "Korea's" → korea s). A token made of Hangul, Kana
or Han characters is a CJK run: queries match inside it as a substring.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

# Hangul, Kana and Han letters (punctuation such as 、。・ is not included: it separates words).
CJK_CLASS = (
    "\u1100-\u11ff\u3005-\u3007\u303b\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"
    "\u3131-\u318e\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97c\uac00-\ud7a3"
    "\ud7b0-\ud7c6\ud7cb-\ud7fb\uf900-\ufa6d\ufa70-\ufad9\U00020000-\U0003134f"
)
CJK_CHAR_RE = re.compile(f"[{CJK_CLASS}]")
TOKEN_RE = re.compile(f"[{CJK_CLASS}]+|[^\\W_{CJK_CLASS}]+")
_ASCII_SEP = {i: (i if chr(i).isalnum() else 32) for i in range(128)}

# Typographic characters NFKC keeps but analysts (and pasted queries) treat as their ASCII forms.
_PUNCT = {
    **dict.fromkeys("‘’‚‛′", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    "…": ".",  # one character, not NFKC's "...", so typical English text stays aligned
    "\u00ad": "",  # soft hyphen: invisible, must not split a word
    "\u200c": "",
    "\u200d": "",
    "\u2060": "",
    "\ufeff": "",
    "\u200b": " ",
}
# Letters with a stroke or bar have no NFD decomposition; fold them like accents.
_LATIN_EXTRA = {"ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "ŧ": "t", "ƀ": "b", "ɨ": "i"}
_DIACRITIC_BLOCKS = ((0x300, 0x36F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF))


def is_cjk(text: str) -> bool:
    """True when `text` contains a Hangul, Kana or Han letter (it then matches as a substring)."""
    return CJK_CHAR_RE.search(text) is not None


def tokenize(norm: str) -> list[str]:
    """Words of folded text, in order (ASCII text takes a translate+split fast path)."""
    if norm.isascii():
        return norm.translate(_ASCII_SEP).split()
    return TOKEN_RE.findall(norm)


def spaced_tokens(norm: str) -> str:
    """The words of folded text with only spaces between them (`tokenize` without the list)."""
    if norm.isascii():
        return norm.translate(_ASCII_SEP)
    return " ".join(TOKEN_RE.findall(norm))


def _is_diacritic(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _DIACRITIC_BLOCKS)


def _fold_cluster(cluster: str) -> str:
    """Fold one base character with its combining marks (uncached; see `_fold`)."""
    if cluster in _PUNCT:
        return _PUNCT[cluster]
    text = unicodedata.normalize("NFKC", cluster).casefold()
    if CJK_CHAR_RE.search(text):  # never decompose Hangul syllables or touch Kana voicing
        return text
    out: list[str] = []
    latin = True  # a mark with no base (or on a Latin base) is a stray accent: drop it
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch):
            if latin and _is_diacritic(ch):
                continue
        else:
            latin = ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")
        out.append(ch)
    folded = unicodedata.normalize("NFC", "".join(out))
    return "".join(_PUNCT.get(ch, _LATIN_EXTRA.get(ch, ch)) for ch in folded)


_FOLD_CACHE: dict[str, str] = {}


def _fold(cluster: str) -> str:
    folded = _FOLD_CACHE.get(cluster)
    if folded is None:
        if len(_FOLD_CACHE) > 200_000:  # clusters of marks are unbounded in principle
            _FOLD_CACHE.clear()
        folded = _FOLD_CACHE[cluster] = _fold_cluster(cluster)
    return folded


class _Tables:
    """Characters whose fold is not plain `str.lower()` (built once, on first non-ASCII text)."""

    unstable: re.Pattern[str] | None = None

    @classmethod
    def get(cls) -> re.Pattern[str]:
        if cls.unstable is None:
            ranges: list[tuple[int, int]] = []
            for code in range(0x80, 0x10000):
                ch = chr(code)
                low = ch.lower()
                if 0xD800 <= code <= 0xDFFF or (len(low) == 1 and _fold_cluster(ch) == low):
                    continue
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1] = (ranges[-1][0], code)
                else:
                    ranges.append((code, code))
            parts = "".join(
                re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                for a, b in ranges
            )
            # Σ lowers to ς at a word end; astral characters other than Han are folded one by one
            cls.unstable = re.compile(f"[{parts}\u03a3\U00010000-\U0001ffff\U00031350-\U0010ffff]+")
        return cls.unstable


def _joins(ch: str) -> bool:
    """True for characters that combine with the one before (marks, half-width voicing marks)."""
    found = _JOINS.get(ch)
    if found is None:
        found = _JOINS[ch] = bool(
            unicodedata.combining(ch)
            or unicodedata.combining(unicodedata.normalize("NFKC", ch)[-1:])
        )
    return found


_JOINS: dict[str, bool] = {}
# Typographic characters of typical English news, replaced in bulk (str.replace is fast) so that
# such text takes the ASCII path. Each folds to one character, keeping offsets aligned.
_BULK = tuple((ch, _fold_cluster(ch)) for ch in "’‘“”–—…\u00a0«»")
assert all(len(folded) == 1 for _, folded in _BULK)


@dataclass(frozen=True, slots=True)
class Folded:
    """Folded text plus the breakpoints mapping folded offsets back to the original text.

    `marks` holds (folded offset, original offset) pairs: from a breakpoint on, offsets advance
    together. No breakpoints means the folded text is aligned one-to-one with the original.
    """

    norm: str
    marks_norm: tuple[int, ...] = ()
    marks_orig: tuple[int, ...] = ()

    def to_orig(self, index: int) -> int:
        """Original offset of the folded character at `index`."""
        k = bisect.bisect_right(self.marks_norm, index) - 1
        if k < 0:
            return index
        return self.marks_orig[k] + index - self.marks_norm[k]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of the folded span [start, end)."""
        if not self.marks_norm:
            return start, end
        if end <= start:
            orig = self.to_orig(start)
            return orig, orig
        return self.to_orig(start), self.to_orig(end - 1) + 1


def fold(text: str) -> Folded:
    """Fold `text` for matching (see the module docstring)."""
    if text.isascii():
        return Folded(text.lower())
    plain = text
    for ch, folded in _BULK:
        if ch in plain:
            plain = plain.replace(ch, folded)
    if plain.isascii():
        return Folded(plain.lower())
    unstable = _Tables.get()
    if not unicodedata.is_normalized("NFC", text):
        return _fold_clusters(text)
    pieces: list[str] = []
    marks_norm: list[int] = []
    marks_orig: list[int] = []
    last = 0
    size = 0  # length of the folded text so far
    for match in unstable.finditer(text):
        start, end = match.span()
        if start > last:
            pieces.append(text[last:start].lower())
            size += start - last
        for offset, ch in enumerate(match.group(), start):
            if _joins(ch):  # e.g. a half-width voicing mark: fold whole clusters instead
                return _fold_clusters(text)
            folded = _fold(ch)
            pieces.append(folded)
            if len(folded) != 1:
                _mark(marks_norm, marks_orig, size, offset, len(folded), 1)
            size += len(folded)
        last = end
    if not pieces:
        return Folded(text.lower())
    pieces.append(text[last:].lower())
    return Folded("".join(pieces), tuple(marks_norm), tuple(marks_orig))


def _mark(
    norm: list[int], orig: list[int], at: int, offset: int, width: int, consumed: int
) -> None:
    """Record that `consumed` original chars at `offset` became `width` folded chars at `at`."""
    for j in range(width):
        norm.append(at + j)
        orig.append(offset)
    norm.append(at + width)
    orig.append(offset + consumed)


def _fold_clusters(text: str) -> Folded:
    """Slow path for text that is not NFC or holds half-width voicing marks: fold per cluster."""
    pieces: list[str] = []
    marks_norm: list[int] = []
    marks_orig: list[int] = []
    size = 0
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and _joins(text[j]):
            j += 1
        folded = _fold(text[i:j])
        pieces.append(folded)
        if len(folded) != 1 or j - i != 1:
            _mark(marks_norm, marks_orig, size, i, len(folded), j - i)
        size += len(folded)
        i = j
    return Folded("".join(pieces), tuple(marks_norm), tuple(marks_orig))


def fold_text(text: str) -> str:
    """Just the folded string."""
    return fold(text).norm
