"""extract_article over the project's own article pages, charsets, junk, and language detection."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.extract import Extracted, decode_page, detect_language, extract_article, from_feed
from watcher.parse import Entry
from watcher.text import reconcile_lang

PAGES = Path(__file__).parent / "data" / "pages"
URL = "http://127.0.0.1:8080/articles/"

# Site furniture on every page: none of it may reach the article text.
BOILERPLATE = {
    "en": [
        "Subscribe to our newsletter", "Sign up for the Morning Briefing", "Most read",
        "Most popular", "We use cookies", "This site uses cookies", "All rights reserved",
        "Tokyo Wire Co., Ltd.", "Terms of service", "Privacy policy", "Advertise with us",
        "Related stories", "Share this article", "Breaking", "North Korea\nDefense",
    ],
    "ko": [
        "뉴스레터 구독하기", "많이 본 뉴스", "쿠키를 사용합니다", "무단 전재", "개인정보처리방침",
        "관련 기사",
    ],
    "ja": [
        "メールマガジン", "よく読まれている記事", "クッキーを使用", "無断転載", "利用規約",
        "関連記事",
    ],
}  # fmt: skip

CASES = [
    (
        "gsomia-extension-seoul-tokyo", "en", "Park Ji-won", datetime(2026, 11, 20, tzinfo=UTC),
        "Seoul and Tokyo agree to keep GSOMIA intelligence pact in force",
        [
            "The General Security of Military Information Agreement, known as GSOMIA, renews",
            "nearly lapsed in 2019, when Seoul announced it would terminate the pact",
            "The ministry said it would do so before the end of the regular session.",
        ],
    ),
    (
        "dokdo-defence-drill", "en", "Lee Seo-yeon", datetime(2026, 11, 19, tzinfo=UTC),
        "South Korea holds Dokdo defence drill; Tokyo lodges protest over Takeshima",
        [
            "Japan claims the islets, which it calls Takeshima, as part of Shimane prefecture.",
            '"Dokdo is clearly Korean territory historically, geographically and under',
        ],
    ),
    (
        "acsa-logistics-talks", "en", "Park Ji-won", datetime(2026, 11, 18, tzinfo=UTC),
        "Japan and South Korea open talks on ACSA logistics pact",
        ["An ACSA was first discussed in 2012 alongside the intelligence pact"],
    ),
    (
        "trilateral-summit-missile-data", "en", "Choi Min-ho", datetime(2026, 11, 17, tzinfo=UTC),
        "Trilateral summit: US, Japan and South Korea leaders to review missile data sharing",
        ["The three countries agreed at Camp David in 2023 to hold annual leaders' meetings"],
    ),
    (
        "takeshima-day-ceremony", "en", "Tokyo Wire staff", datetime(2026, 11, 20, tzinfo=UTC),
        "Shimane assembly plans Takeshima Day ceremony as Seoul calls for cancellation",
        ["The prefecture created Takeshima Day in 2005 to press Japan's claim to the islets"],
    ),
    (
        "ko-gsomia-normalization", "ko", "김서준 기자", datetime(2026, 11, 20, tzinfo=UTC),
        "한일 지소미아 1년 자동 연장…북 미사일 정보 교류 계속",
        [
            "한국과 일본 간 군사정보보호협정(GSOMIA·지소미아)이 1년 더 자동 연장됐다.",
            "독도는 역사적·지리적·국제법적으로 명백한 대한민국 고유의 영토",
        ],
    ),
    (
        "ja-takeshima-protest", "ja", "東亜新報 政治部", datetime(2026, 11, 19, tzinfo=UTC),
        "竹島周辺での韓国軍訓練に政府が抗議 「極めて遺憾」",
        [
            "韓国軍が島根県・竹島（韓国名・独島）周辺で定例の防衛訓練を実施したことを受け",
            "日韓の秘密軍事情報保護協定（GSOMIA）が今年も自動延長される見通しだ",
        ],
    ),
]  # fmt: skip


def page(slug: str) -> bytes:
    return (PAGES / f"{slug}.html").read_bytes()


@pytest.mark.parametrize(("slug", "lang", "author", "published", "title", "sentences"), CASES)
def test_own_pages(
    slug: str, lang: str, author: str, published: datetime, title: str, sentences: list[str]
) -> None:
    result = extract_article(page(slug), url=f"{URL}{slug}.html", content_type="text/html")
    assert result is not None
    assert (result.method, result.lang, result.author) == ("trafilatura", lang, author)
    assert result.title == title
    assert result.published == published
    for sentence in sentences:
        assert sentence in result.text
    for furniture in BOILERPLATE[lang]:
        assert furniture not in result.text
    assert "gtag(" not in result.text and "dataLayer" not in result.text
    assert result.text == result.text.strip() and "\n\n" not in result.text


def test_every_own_page_yields_its_article() -> None:
    for path in PAGES.glob("*.html"):
        if path.stem == "not-a-feed":
            continue
        result = extract_article(path.read_bytes(), url=f"{URL}{path.name}")
        assert result is not None and len(result.text) > 500, path.name


# --- charsets -----------------------------------------------------------------------------------


def recoded(slug: str, codec: str, meta: str | None) -> bytes:
    html = page(slug).decode("utf-8")
    html = html.replace('<meta charset="utf-8">', f'<meta charset="{meta}">' if meta else "")
    return html.encode(codec, errors="xmlcharrefreplace")  # as CMSs do for other scripts


@pytest.mark.parametrize(
    ("slug", "codec", "meta", "header", "sentence"),
    [
        ("ko-gsomia-normalization", "euc-kr", "euc-kr", None, "군사정보보호협정(GSOMIA·지소미아)"),
        ("ko-gsomia-normalization", "cp949", None, "text/html; charset=EUC-KR", "지소미아"),
        ("ja-takeshima-protest", "shift_jis", "Shift_JIS", None, "竹島（韓国名・独島）"),
        ("ja-takeshima-protest", "euc-jp", None, "text/html;charset=euc-jp", "極めて遺憾"),
        ("ja-takeshima-protest", "gb18030", "gb2312", None, "秘密軍事情報保護協定"),
        ("dokdo-defence-drill", "utf-8", "iso-8859-1", None, "Takeshima"),
    ],
)
def test_charsets(
    slug: str, codec: str, meta: str | None, header: str | None, sentence: str
) -> None:
    result = extract_article(
        recoded(slug, codec, meta), url=f"{URL}{slug}.html", content_type=header
    )
    assert result is not None and sentence in result.text


def test_header_charset_beats_meta_charset() -> None:
    body = recoded("ko-gsomia-normalization", "euc-kr", "utf-8")
    assert "지소미아" in decode_page(body, "text/html; charset=euc-kr")


def test_utf8_page_mislabelled_latin1_is_read_as_utf8() -> None:
    assert "독도" in decode_page(page("ko-gsomia-normalization"), "text/html; charset=ISO-8859-1")


def test_undeclared_legacy_page_is_guessed() -> None:
    text = decode_page(recoded("ko-gsomia-normalization", "cp949", None))
    assert "군사정보보호협정" in text


def test_windows_1252_holes_do_not_fail_latin1_pages() -> None:
    body = "<html><body><p>Café \x81 Séoul</p></body></html>".encode("latin-1")
    assert "Café" in decode_page(body, "text/html; charset=iso-8859-1")


# --- junk ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"\x00\xff\xfe" * 500,
        bytes(range(256)) * 40,
        b"<html></html>",
        b"<html><body><nav><a href='/'>Home</a></nav></body></html>",
        b"just a short line of text",
        b"<" * 20000,
        b"<div>" * 5000,
        b'{"json": "not a page"}',
        b"\x1f\x8b\x08\x00compressed-looking garbage",
        "<html><body><p>\ud800 lone surrogate</p></body></html>".encode("utf-8", "surrogatepass"),
    ],
)
def test_junk_returns_none(body: bytes) -> None:
    assert extract_article(body, url=f"{URL}junk.html", content_type="text/html") is None


def test_bad_arguments_return_none() -> None:
    odd_header = extract_article(page("dokdo-defence-drill"), url=None, content_type=7)  # type: ignore[arg-type]
    assert odd_header is not None and "Takeshima" in odd_header.text
    assert extract_article(None, url=URL) is None  # type: ignore[arg-type]


# --- language -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("독도를 둘러싼 한일 갈등이 다시 불거졌다.", "ko"),
        ("竹島をめぐる日韓の対立が続いている。", "ja"),
        ("米朝首脳直通電話", "zh"),  # Han only: Chinese unless a feed or page says ja
        ("外国专家：中美合作共赢符合国际社会利益", "zh"),
        (
            "The GSOMIA pact, known in Korean as 지소미아, was renewed on Friday by both sides.",
            "en",
        ),
        (
            "Le ministère sud-coréen a réclamé l'annulation de la cérémonie prévue dans la "
            "préfecture de Shimane, qui revendique les îlots.",
            "fr",
        ),
        (
            "Die Regierung in Seoul hat das Abkommen mit Japan über den Austausch von Daten "
            "verlängert.",
            "de",
        ),
        (
            "El gobierno de Corea del Sur y el de Japón acordaron mantener el pacto de "
            "inteligencia.",
            "es",
        ),
        ("Южная Корея и Япония продлили соглашение об обмене разведданными", "ru"),
        ("Торгівля між Росією та Китаєм перевищила 200 млрд доларів", "uk"),
        ("ผล DNA ยืนยัน ศพลอยแม่น้ำโขงเป็นคนสนิท", "th"),
        ("GSOMIA", None),
        ("", None),
        ("12345 !!!", None),
    ],
)
def test_detect_language(text: str, lang: str | None) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize(
    ("declared", "detected", "expected"),
    [
        ("en", "ko", "ko"),  # Hangul beats a CMS default
        ("ja", "zh", "ja"),  # kanji-only headline in a Japanese feed
        ("en", "fr", "fr"),  # Libération says lang="en"
        ("sk", "cs", "sk"),  # Slovak is not modelled; keep the declaration
        ("ko", "en", "ko"),  # an English quote in a Korean column
        (None, "de", "de"),
        ("it", None, "it"),
    ],
)
def test_reconcile_lang(declared: str | None, detected: str | None, expected: str) -> None:
    assert reconcile_lang(declared, detected, "[독도] quoted text" if declared == "ko" else "") == (
        expected
    )


def test_latin_text_under_a_declared_korean_page_without_hangul_is_not_korean() -> None:
    assert reconcile_lang("ko", "en", "An English article from a Korean CMS.") == "en"


def test_page_declaring_the_wrong_language_gets_the_detected_one() -> None:
    html = page("takeshima-day-ceremony").replace(b'<html lang="en">', b'<html lang="ko">')
    assert extract_article(html, url=f"{URL}x.html").lang == "en"


# --- fallback and pickling ----------------------------------------------------------------------


def test_from_feed_uses_the_richest_feed_text() -> None:
    entry = Entry(
        guid="g", link=f"{URL}a.html", title="GSOMIA renewed", summary="Short.",
        content="Long content about GSOMIA.", author="Park Ji-won",
        published=datetime(2026, 11, 20, tzinfo=UTC), updated=None, lang="en",
    )  # fmt: skip
    fallback = from_feed(entry)
    assert fallback == Extracted(
        text="Long content about GSOMIA.", title="GSOMIA renewed", author="Park Ji-won",
        published=datetime(2026, 11, 20, tzinfo=UTC), lang="en", method="feed",
    )  # fmt: skip
    entry.content = ""
    assert from_feed(entry).text == "Short."


def test_result_survives_pickling() -> None:
    result = extract_article(page("ja-takeshima-protest"), url=f"{URL}ja.html")
    assert pickle.loads(pickle.dumps(result)) == result


def test_strip_controls_drops_control_characters_and_keeps_line_structure() -> None:
    """The ASCII fast path (bytes.translate) must drop exactly what the regex for other text
    drops: C0 controls but tab, newline and carriage return; DEL; zero-width marks; surrogates."""
    import random

    from watcher.text import _CONTROL_CHARS, strip_controls

    assert strip_controls("a\x00b\tc\r\nd\x7f\x1f") == "ab\tc\r\nd"
    assert strip_controls("Dok\u200bdo \ufeff독도\x08") == "Dokdo 독도"
    rng = random.Random(3)
    alphabet = [chr(i) for i in range(160)] + ["\u200b", "\u2060", "\ufeff", "é", "한", "\ud800"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert strip_controls(text) == _CONTROL_CHARS.sub("", text), repr(text)
