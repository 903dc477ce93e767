"""Folding and tokenisation: the definitions both queries and articles go through."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.query.text import CJK_CHAR_RE, TOKEN_RE, fold, fold_text, is_cjk, tokenize


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Seoul", "seoul"),
        ("Séoul", "seoul"),
        ("SÉOUL", "seoul"),
        ("Se\u0301oul", "seoul"),  # decomposed accent (not NFC)
        ("Ｋｏｒｅａ", "korea"),  # full-width
        ("“Dokdo”", '"dokdo"'),  # curly quotes → ASCII
        ("Korea’s", "korea's"),
        ("Straße", "strasse"),
        ("ﬁnance", "finance"),  # ligature (NFKC)
        ("Øresund Łódź", "oresund lodz"),
        ("Москва Й", "москва й"),  # Cyrillic keeps its letters (й is not и)
        ("독도를", "독도를"),  # Hangul stays composed
        ("竹島は", "竹島は"),
        ("ｶﾞｲﾑｼｮｳ", "ガイムショウ"),  # half-width katakana with a voicing mark → composed
        ("か\u3099", "が"),  # combining voicing mark (not NFC)
        ("soft\u00adhyphen", "softhyphen"),
        ("ＩＳＳＵＥ①", "issue1"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold_text(raw) == folded


def test_hangul_is_never_decomposed_into_jamo() -> None:
    folded = fold_text("대한민국 독도 Séoul")
    assert unicodedata.is_normalized("NFC", folded)
    assert "독도" in folded
    assert not any(0x1100 <= ord(ch) <= 0x11FF for ch in folded)


@pytest.mark.parametrize(
    ("norm", "tokens"),
    [
        ("korea-japan talks", ["korea", "japan", "talks"]),
        ("korea's start", ["korea", "s", "start"]),
        ("snake_case", ["snake", "case"]),
        ("lg전자 삼성galaxy", ["lg", "전자", "삼성", "galaxy"]),
        ("独島は、日本の", ["独島は", "日本の"]),  # CJK punctuation separates runs
        ("トランプ・タワー", ["トランプ", "タワー"]),
        ("g7 2024 3.5", ["g7", "2024", "3", "5"]),
        ("", []),
    ],
)
def test_tokenize(norm: str, tokens: list[str]) -> None:
    assert tokenize(norm) == tokens


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_ascii_fast_path_agrees_with_the_regex(text: str) -> None:
    norm = text.lower()
    assert tokenize(norm) == TOKEN_RE.findall(norm)


def test_is_cjk() -> None:
    assert is_cjk("독도") and is_cjk("竹島") and is_cjk("カタカナ") and is_cjk("lg전자")
    assert not is_cjk("korea") and not is_cjk("Москва") and not is_cjk("、。・")


def test_every_cjk_class_character_is_a_word_character() -> None:
    """CJK runs are tokens, so the class must not contain punctuation."""
    for code in range(0x1100, 0x10000):
        ch = chr(code)
        if CJK_CHAR_RE.match(ch):
            assert ch.isalnum(), hex(code)


@pytest.mark.parametrize(
    "raw",
    [
        "plain ascii",
        "Séoul’s “summit” … ﬁne Straße ①",
        "ｶﾞｲﾑ 독도를 Se\u0301oul",
        "emoji 👍 then ＡＢＣ",
        "İstanbul",
    ],
)
def test_offset_map_points_into_the_original(raw: str) -> None:
    """Every folded word maps back to the original characters it came from."""
    folded = fold(raw)
    for token in tokenize(folded.norm):
        start = folded.norm.find(token)
        lo, hi = folded.span(start, start + len(token))
        assert fold_text(raw[lo:hi]) == token


@given(st.text(max_size=60))
def test_offset_map_is_monotonic_and_in_range(raw: str) -> None:
    folded = fold(raw)
    previous = 0
    for i in range(len(folded.norm)):
        orig = folded.to_orig(i)
        assert previous <= orig < max(len(raw), 1)
        previous = orig
