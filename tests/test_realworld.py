"""Every real-world feed and article page in ../shared/fixtures (read in place, never copied).

Expected values come from ../shared/fixtures/SOURCES.md (feedparser 6.0.14 / trafilatura 2.3.1
check columns), adjusted where this project deliberately differs (noted inline).
"""

from __future__ import annotations

import re
from datetime import UTC, date
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from watcher.errors import ParseError
from watcher.extract import extract_article
from watcher.identity import entry_key
from watcher.parse import parse_feed

pytestmark = pytest.mark.realworld

TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]*>")
FEED_FILES = sorted(p.name for p in (FIXTURES / "feeds").glob("*")) if FIXTURES.is_dir() else []
PAGE_FILES = sorted(p.name for p in (FIXTURES / "pages").glob("*")) if FIXTURES.is_dir() else []

# file: (entries, format, feed language)
FEEDS = {
    "2ch_top10news_2006-08-19_shift_jis.rdf": (3, "rss10", "ja"),
    "aktuality_sk_2021-01-17.rss": (30, "rss20", "sk"),
    "bbc_chinese_2013-01-23.atom": (2, "atom10", "zh"),
    "bbc_urdu_2018-01-05.xml": (26, "rss20", "ur"),
    "bbc_world_2019-02-24.xml": (33, "rss20", "en"),
    "dailymail_ushome_2013-02-03.xml": (1, "rss20", "en"),
    "daringfireball_2017-06-27.json": (48, "json", "en"),  # feedparser 6: 0 (no JSON Feed)
    "fcutrecht_2021-09-07_bad-prolog.rss": (20, "rss20", "nl"),
    "geekpark_2020-12-16.xml": (30, "rss20", "zh"),
    "golem_2018-10-26_iso-8859-1.xml": (40, "rss20", "de"),
    "google_alert_slack_2019-07-10.atom": (20, "atom10", "en"),
    "guardian_us_2018-01-31.rss": (55, "rss20", "en"),
    "guardian_world_2022-09-25_no-decl.xml": (54, "rss20", "en"),
    "heise_developer_2016-02-01.atom": (15, "atom10", "de"),
    "heise_online_2018-10_rss090.rdf": (60, "rss090", "de"),
    "huffpost_canada_2017-10-17.xml": (2, "rss20", "en"),
    "huffpost_world_2019-06-30.xml": (31, "rss20", "en"),
    "ilmessaggero_mondo_2022-11-16_no-decl.xml": (1, "rss20", "it"),
    "inovacaotecnologica_2020-08-13_iso-8859-1.xml": (1, "rss20", "pt"),
    "jornaldenoticias_2018-01-03_iso-8859-1.rss": (40, "rss20", "pt"),
    "kc0011_2020-01-10_gb2312.rss": (20, "rss20", "zh"),
    "koreaherald_2021-02-09_from_kstodon.xml": (1, "rss20", "en"),
    "kyunghyang_all_2018-04-06.xml": (324, "rss20", "ko"),
    "lecerclepsy_2018-10-17_no-decl_iso-8859-1.xml": (9, "rss20", "fr"),  # 10th <item> is empty
    "lemonde_une_2018-02-11.xml": (21, "rss20", "fr"),
    "livemint_news_2019-05-29.xml": (25, "rss20", "en"),
    "npr_technology_2021-10-29.json": (25, "json", "en"),  # feedparser 6: 0 (no JSON Feed)
    "nytimes_homepage_2013-05-05.xml": (1, "rss20", "en"),
    "oren_ru_2014-01-23_windows-1251.xml": (10, "rss20", "ru"),
    "reuters_worldnews_2018-01-30.xml": (10, "rss20", "en"),
    "science_twis_2017-06-15.rdf": (69, "rss10", "en"),
    "slashdot_2024-03-02.rdf": (15, "rss10", "en"),
    "suspilne_ukrnet_2023-12-22.xml": (20, "rss20", "uk"),
    "tdiary_ishinao_2006-08-19_euc-jp.rdf": (15, "rss10", "ja"),
    "techcrunch_2011-11-02.xml": (20, "rss20", "en"),
    "tjrs_2020-08-13_rss091_iso-8859-1.xml": (1, "rss091u", "pt"),
    "tpm_allnews_2017-11-08.atom": (20, "atom10", "en"),
    "uol_noticias_2018-09-24.rss": (15, "rss", "pt"),
    "washingtonpost_wellness_2012-08.xml": (29, "rss20", "en"),
}
# Feeds that must carry a warning, and what it says. Every other feed parses without one.
WARNINGS = {
    "guardian_world_2022-09-25_no-decl.xml": "malformed XML at line 34, column 158",
    "dailymail_ushome_2013-02-03.xml": "the feed declares ISO-8859-1 but is UTF-8",
    "lecerclepsy_2018-10-17_no-decl_iso-8859-1.xml": "declares no encoding and is not UTF-8",
    "uol_noticias_2018-09-24.rss": "declares no encoding and is not UTF-8; read as cp1252",
}
# Text that shows the bytes were decoded with the right charset.
DECODED = {
    "golem_2018-10-26_iso-8859-1.xml": "ü",
    "kc0011_2020-01-10_gb2312.rss": "纪念",
    "oren_ru_2014-01-23_windows-1251.xml": "Оренбург",
    "tdiary_ishinao_2006-08-19_euc-jp.rdf": "いしなお",
    "uol_noticias_2018-09-24.rss": "simulações",
    "lecerclepsy_2018-10-17_no-decl_iso-8859-1.xml": "thérapeutique",
    "2ch_top10news_2006-08-19_shift_jis.rdf": "早実",
}
# Pages trafilatura cannot get an article from, and why (asserted, so a change is noticed).
NO_ARTICLE = {
    "scmp_en_2020-01-20_tsai-playbook.html": "the capture is a JavaScript app shell without text",
}
# Pages whose article is legitimately short (paywall notice, lead only, easy-Japanese story).
SHORT = {
    "nikkei_ja_2018-06-19_us-nk-hotline.html",
    "asahi_ja_2019-03_media-arts-award.html",
    "yomiuri_ja_2019-04-11_barcelona.html",
    "nhk-easy_ja_2019_corporal-punishment.html",
}
PAGE_DATES = {
    "bbc_en_2015-07-24_obama-gun-laws.html": date(2015, 7, 24),
    "donga_ko_2013-10-24_ceo-interview.html": date(2013, 10, 24),
    "nikkei_ja_2018-06-19_us-nk-hotline.html": date(2018, 6, 19),
    "qq_zh_deepmind_gb2312.html": date(2016, 10, 14),
    "rp-pl_pl_2021-05-04_eu-funds_windows-1250.html": date(2021, 5, 5),
    "yonhap-en_en_2019-08-20_nk-slams-drill.html": date(2019, 8, 20),
    "elmundo_es_2012-10-28_eta_iso-8859-15.html": date(2012, 10, 28),
}
PAGE_DECODED = {
    "qq_zh_deepmind_gb2312.html": "人工智能",
    "qqyewu_zh_2025-02-09_gb2312.html": "辣椒酱",
    "rp-pl_pl_2021-05-04_eu-funds_windows-1250.html": "Sejm",
    "elmundo_es_2012-10-28_eta_iso-8859-15.html": "Lesaka",
    "tagespost_de_2020-04-24_demut_iso-8859-1.html": "Demut",
    "asahi_ja_2019-03_media-arts-award.html": "チコちゃん",
}


def test_tables_cover_every_file(shared_fixtures: Path) -> None:
    assert set(FEEDS) == set(FEED_FILES)
    assert len(PAGE_FILES) == 45


@pytest.mark.parametrize("name", FEED_FILES)
def test_feed(shared_fixtures: Path, name: str) -> None:
    body = (shared_fixtures / "feeds" / name).read_bytes()
    try:
        feed = parse_feed(body, url=f"https://feeds.example/{name}")
    except ParseError as exc:  # allowed by the contract, but none of these fixtures needs it
        pytest.fail(f"{name}: {exc}")
    count, fmt, lang = FEEDS[name]
    assert (len(feed.entries), feed.format, feed.lang) == (count, fmt, lang)
    if name in WARNINGS:
        assert WARNINGS[name] in (feed.warning or "")
    else:
        assert feed.warning is None
    if name in DECODED:
        everything = " ".join(f"{feed.title} {e.title} {e.summary}" for e in feed.entries)
        assert DECODED[name] in everything
    for entry in feed.entries:
        assert entry.title or entry.summary or entry.content
        assert not TAG.search(entry.title), entry.title
        assert "\ufffd" not in entry.title
        assert entry.link is None or entry.link.startswith(("http://", "https://"))
        for moment in (entry.published, entry.updated):
            assert moment is None or moment.tzinfo is UTC
    by_key: dict[str, set[tuple[str | None, str]]] = {}
    for entry in feed.entries:  # a key may repeat only for an article the feed lists twice
        by_key.setdefault(entry_key(entry), set()).add((entry.link, entry.title))
    assert all(len(variants) == 1 for variants in by_key.values())


@pytest.mark.parametrize("name", PAGE_FILES)
def test_page(shared_fixtures: Path, name: str) -> None:
    body = (shared_fixtures / "pages" / name).read_bytes()
    result = extract_article(body, url=f"https://news.example/{name}")
    if name in NO_ARTICLE:
        assert result is None, NO_ARTICLE[name]
        return
    assert result is not None
    assert len(result.text) >= (200 if name in SHORT else 450)
    assert result.lang == name.split("_")[1]
    assert result.title
    assert "\ufffd" not in result.text and "Ã" not in result.text
    if name in PAGE_DATES:
        assert result.published and result.published.date() == PAGE_DATES[name]
    if name in PAGE_DECODED:
        assert PAGE_DECODED[name] in result.text
