"""Query text → tokens, each positioned in the ORIGINAL text (errors point where the analyst looks).

Characters are classified by their NFKC form, so full-width （ ） ＂ － ： and ＯＲ act like their
ASCII forms, and curly quotes “ ” „ « » open and close phrases. Only UPPERCASE AND, OR, NOT,
NEAR/n and ONEAR/n are operators.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from watcher.query.errors import QuerySyntaxError

FIELDS = ("title", "text", "source", "url", "lang", "author")
ALIASES = {"intitle": "title", "site": "source", "inurl": "url", "intext": "text", "body": "text"}
MAX_DISTANCE = 1000
_QUOTES = frozenset('"“”„‟«»')
_NEAR = re.compile(r"^(O?NEAR)(?:/(.*))?$")
_NEAR_ARG = re.compile(r"^(\d+)([fF]?)$")

Kind = Literal["(", ")", "phrase", "word", "AND", "OR", "NOT", "-", "near", "field"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    offset: int
    length: int
    text: str = ""  # word: original text; phrase: original content; field: canonical name
    number: int | None = None  # near: distance; phrase: slop
    ordered: bool = False  # near: ONEAR / NEAR/nf


@lru_cache(maxsize=4096)
def canon(ch: str) -> str:
    """NFKC form of one character, with typographic quotes as '"'."""
    return '"' if ch in _QUOTES else unicodedata.normalize("NFKC", ch)


def _is_space(ch: str) -> bool:
    return ch.isspace() or canon(ch).isspace()


def _is_break(ch: str) -> bool:
    """Characters that end a word: whitespace, parentheses, quotes."""
    return _is_space(ch) or canon(ch) in ("(", ")", '"')


def tokenize_query(text: str) -> list[Token]:
    """Split a query into tokens; raises QuerySyntaxError for anything a token cannot be."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        c = canon(ch)
        if _is_space(ch):
            i += 1
        elif c in ("(", ")"):
            tokens.append(Token(c, i, 1))  # type: ignore[arg-type]
            i += 1
        elif c == '"':
            i = _phrase(text, i, tokens)
        else:
            j = i
            while j < n and not _is_break(text[j]):
                j += 1
            _word(text, i, j, tokens)
            i = j
    return tokens


def _phrase(text: str, start: int, tokens: list[Token]) -> int:
    end = start + 1
    while end < len(text) and canon(text[end]) != '"':
        end += 1
    if end >= len(text):
        raise QuerySyntaxError(
            "unterminated phrase: add the closing quote", start, len(text) - start
        )
    after = end + 1
    slop = None
    if after < len(text) and canon(text[after]) == "~":
        k = after + 1
        while k < len(text) and canon(text[k]).isdigit():
            k += 1
        if k == after + 1:
            raise QuerySyntaxError('~ needs a number after the phrase, e.g. "a b"~5', after, 1)
        slop = int("".join(canon(ch) for ch in text[after + 1 : k]))
        if slop > MAX_DISTANCE:
            raise QuerySyntaxError(
                f"~{slop} is too large (at most {MAX_DISTANCE})", after, k - after
            )
        after = k
    tokens.append(Token("phrase", start, after - start, text[start + 1 : end], slop))
    return after


def _word(text: str, start: int, end: int, tokens: list[Token]) -> None:
    """Classify text[start:end] (no spaces, parentheses or quotes) as operator, field or word."""
    raw = text[start:end]
    word = "".join(canon(ch) for ch in raw)
    length = end - start
    if word in ("AND", "OR", "NOT", "&&", "||"):
        kind = {"&&": "AND", "||": "OR"}.get(word, word)  # Lucene's symbols
        tokens.append(Token(kind, start, length))  # type: ignore[arg-type]
        return
    near = _NEAR.match(word)
    if near:
        tokens.append(_near_token(near, start, length))
        return
    if word.startswith("-"):
        if length == 1 and (end >= len(text) or _is_space(text[end])):
            raise QuerySyntaxError(
                "a lone '-' excludes nothing: attach it to what it excludes, e.g. -sports", start
            )
        tokens.append(Token("-", start, 1))
        if length > 1:
            _word(text, start + 1, end, tokens)
        return
    colon = word.find(":")
    named = colon > 0 and word[:colon].isascii() and word[:colon].isalpha()
    if named and _field(text, start, end, colon, word, tokens):
        return
    for bad, message in (
        ("~", 'fuzzy search (word~N) is not supported; ~N only follows a phrase: "a b"~5'),
        ("?", "the ? wildcard is not supported; use a trailing * (e.g. organi*)"),
        ("^", "boosts (word^2) are not supported"),
        ("[", "ranges [a TO b] are not supported; put the text in quotes to search for it"),
        ("]", "ranges [a TO b] are not supported; put the text in quotes to search for it"),
        ("{", "ranges {a TO b} are not supported; put the text in quotes to search for it"),
        ("}", "ranges {a TO b} are not supported; put the text in quotes to search for it"),
    ):
        at = word.find(bad)
        if at >= 0:
            if bad == "~" and at == 0:
                message = '~N must follow the closing quote directly, e.g. "a b"~5'
            raise QuerySyntaxError(message, start + _orig_index(raw, at), 1)
    tokens.append(Token("word", start, length, raw))


def _near_token(near: re.Match[str], start: int, length: int) -> Token:
    name, arg = near.group(1), near.group(2)
    if arg is None:
        raise QuerySyntaxError(f"{name} needs a distance, e.g. {name}/5", start, length)
    parsed = _NEAR_ARG.match(arg)
    if not parsed:
        raise QuerySyntaxError(f"{name}/ needs a number, e.g. {name}/5", start, length)
    distance = int(parsed.group(1))
    if distance > MAX_DISTANCE:
        raise QuerySyntaxError(
            f"{name}/{distance} is too far (at most {MAX_DISTANCE} words)", start, length
        )
    ordered = name == "ONEAR" or bool(parsed.group(2))
    return Token("near", start, length, name, distance, ordered)


def _field(text: str, start: int, end: int, colon: int, word: str, tokens: list[Token]) -> bool:
    """Emit a field token for `name:`; False when the colon is not a field (e.g. a pasted URL)."""
    name = word[:colon].lower()
    raw = text[start:end]
    at = _orig_index(raw, colon)  # original index of the colon within the word
    field = ALIASES.get(name, name)
    if field not in FIELDS:
        if word[colon + 1 :].startswith("//"):
            return False
        close = difflib.get_close_matches(name, [*FIELDS, *ALIASES], n=1)
        hint = f" (did you mean {close[0]}?)" if close else f" (fields: {', '.join(FIELDS)})"
        raise QuerySyntaxError(
            f"unknown field '{word[:colon]}'{hint}; put the word in quotes to search for it",
            start,
            at,
        )
    tokens.append(Token("field", start, at + 1, field))
    rest = start + at + 1
    if rest < end:
        _word(text, rest, end, tokens)
    elif end >= len(text) or _is_space(text[end]) or canon(text[end]) == ")":
        raise QuerySyntaxError(
            f"field {word[:colon]}: needs a word, phrase or (group) right after the colon",
            start,
            at + 1,
        )
    return True


def _orig_index(raw: str, canon_index: int) -> int:
    """Index in `raw` of the character whose NFKC form starts at `canon_index` of the word."""
    size = 0
    for i, ch in enumerate(raw):
        if size >= canon_index:
            return i
        size += len(canon(ch))
    return len(raw)
