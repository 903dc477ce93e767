"""Matching semantics, checked on the Engine AND the reference evaluator (they must agree)."""

from __future__ import annotations

import pickle

import pytest

from watcher.domain import Article, RuleMatch, Snippet
from watcher.errors import RuleError
from watcher.query import CompiledRule, Engine, parse, reference_match
from watcher.query.presearch import Presearch


def article(title: str = "", text: str = "", **extra: object) -> Article:
    extra.setdefault("url", "https://www.example.com/news/1")
    return Article(title=title, text=text, **extra)  # type: ignore[arg-type]


def rule(query: str, **options: object) -> CompiledRule:
    exclude = options.pop("exclude", None)
    return CompiledRule(
        "r",
        parse(query),
        parse(exclude) if exclude else None,
        **options,  # type: ignore[arg-type]
    )


def matches(query: str, text: str = "", title: str = "", **options: object) -> bool:
    """Engine and reference verdicts on one rule; they must be the same."""
    fields = {k: options.pop(k) for k in ("source", "url", "lang", "author") if k in options}
    compiled = rule(query, **options)
    item = article(title, text, **fields)
    engine = bool(Engine([compiled]).match(item))
    reference = reference_match(compiled, item)
    assert engine == reference, f"engine={engine} reference={reference} for {query!r} on {text!r}"
    return engine


# -- words, CJK substrings, folding ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("art", "the start of the art fair", True),
        ("art", "the start of it", False),  # whole words only
        ("korea", "North Korean leaders", False),
        ("korea", "Korea's leader", True),
        ("korea", "the Korea-Japan summit", True),
        ('"korea japan"', "the Korea-Japan summit", True),
        ("Korea-Japan", "korea japan summit", True),
        ("Korea-Japan", "Japan-Korea summit", False),
        ("독도", "독도를 둘러싼 갈등", True),  # Korean particle attached
        ("독도", "한국은 독도에 대해", True),
        ("竹島", "竹島は日本の領土", True),  # Japanese particle, no spaces at all
        ("竹島は", "竹島を", False),
        ("지소미아", "지소미아(GSOMIA) 종료", True),
        ("LG전자", "LG전자가 발표했다", True),
        ("LG전자", "LG 전자가", True),
        ("LG전자", "XLG전자", False),  # the Latin part is still a whole word
        ("Seoul", "Séoul et Tokyo", True),  # accents fold both ways
        ("Séoul", "SEOUL", True),
        ("korea", "ＫＯＲＥＡ ｔｏｄａｙ", True),  # full-width article text
        ("ｋｏｒｅａ", "Korea today", True),  # full-width query
        ('"south korea"', "“South Korea” said", True),
        ("straße", "STRASSE", True),
        ("ガイムショウ", "ｶﾞｲﾑｼｮｳ発表", True),  # half-width katakana is normalised
        ("rock and roll", "rock and roll", True),  # lowercase and: a word
        ("rock and roll", "rock roll", False),
        ("korea or japan", "korea japan", False),  # lowercase or: a word, not OR
        ("g7", "the G7 summit", True),
        ("summ*", "summit and summer", True),
        ("summ*", "consummate", False),  # wildcard is a word prefix
        ("korea*", "Koreans", True),
        ("korea*", "korea", True),
    ],
)
def test_words(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_nested_rules_match_the_same_article() -> None:
    engine = Engine([rule("york") | _id("york"), rule('"new york"') | _id("new-york")])
    found = engine.match(article("New York mayor", "Elections in New York."))
    assert [m.rule_id for m in found] == ["york", "new-york"]


def _id(rule_id: str) -> _Renamer:
    return _Renamer(rule_id)


class _Renamer:
    def __init__(self, rule_id: str) -> None:
        self.rule_id = rule_id

    def __ror__(self, compiled: CompiledRule) -> CompiledRule:
        return CompiledRule(self.rule_id, compiled.query, compiled.exclude)


# -- phrases, slop, NEAR --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ('"new york"', "in new york", True),
        ('"new york"', "new, york", True),  # punctuation between words is not a word
        ('"new york"', "new big york", False),
        ('"new york"', "york new", False),
        ('"korea summit"~2', "korea trade summit", True),
        ('"korea summit"~2', "korea a b summit", True),
        ('"korea summit"~2', "korea a b c summit", False),
        ('"korea summit"~2', "summit in korea", True),  # any order
        ('"korea summit"~0', "summit korea", True),
        ('"a b c"~1', "c x a b", True),
        ('"a b c"~1', "c x a y b", False),
        ('"korea korea"~3', "korea x korea", True),  # a repeated word needs two occurrences
        ('"korea korea"~3', "korea only", False),
        ('"독도 영유권"', "독도영유권 주장", True),  # CJK words need no space between them
        ('"독도 영유권"', "독도 영유권", True),
        ('"독도 영유권"', "독도의 영유권", False),
        ('"korea* talks"', "koreans talks", True),
        ("korea NEAR/2 japan", "korea a b japan", True),
        ("korea NEAR/2 japan", "korea a b c japan", False),
        ("korea NEAR/2 japan", "japan a b korea", True),  # either order
        ("korea NEAR/0 japan", "korea japan", True),
        ("korea NEAR/0 japan", "korea x japan", False),
        ("korea ONEAR/2 japan", "korea a b japan", True),
        ("korea ONEAR/2 japan", "japan a b korea", False),  # ordered
        ("korea NEAR/5f japan", "japan korea", False),
        ("korea NEAR/5 korea*", "korea only", False),  # two separate occurrences
        ("korea NEAR/5 korea*", "korea and koreans", True),
        ("(japan OR tokyo) NEAR/3 (korea OR seoul)", "tokyo and seoul", True),
        ("(japan OR tokyo) NEAR/3 (korea OR seoul)", "tokyo a b c d seoul", False),
        ('"new york" NEAR/1 "stock exchange"', "new york big stock exchange", True),
        ('"new york" NEAR/1 "stock exchange"', "new york a big stock exchange", False),
        ("a NEAR/1 b NEAR/1 c", "a x b x c", True),  # chains: (a NEAR b) NEAR c
        ("a NEAR/1 b NEAR/1 c", "a x b x x c", False),
        # CJK proximity counts characters: NEAR/n allows 2n characters between
        ("독도 NEAR/2 일본", "독도는 원래 일본", True),  # 는 원래 = 3 characters
        ("독도 NEAR/1 일본", "독도는 원래 일본", False),
        ("竹島 NEAR/1 日本", "竹島は日本", True),
        ("竹島 ONEAR/1 日本", "日本の竹島", False),
        ("korea NEAR/1 독도", "korea 문제 독도", True),  # 2 characters = 1 word
        ("korea NEAR/1 독도", "korea 문제의 독도", False),
    ],
)
def test_positions(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_phrases_do_not_cross_fields() -> None:
    assert not matches('"korea japan"', text="japan talks", title="talks about korea")
    assert not matches("korea NEAR/5 japan", text="japan talks", title="korea")


# -- Boolean structure, fields, languages, exclude ------------------------------------------------


@pytest.mark.parametrize(
    ("query", "title", "text", "expected"),
    [
        ("korea japan", "korea", "japan", True),  # AND across fields
        ("korea -japan", "korea", "", True),
        ("korea -japan", "korea", "japan", False),
        ("korea NOT (japan OR china)", "korea", "china", False),
        ("korea AND NOT japan NEAR/2 talks", "korea", "japan talks", False),
        ("korea AND NOT japan NEAR/2 talks", "korea", "japan a b c talks", True),
        ("korea OR japan", "", "japan", True),
        ("title:korea", "korea", "", True),
        ("title:korea", "", "korea", False),
        ("intitle:korea", "korea", "", True),
        ("text:korea", "korea", "", False),
        ("title:(korea OR japan) summit", "japan", "summit", True),
    ],
)
def test_boolean_and_fields(query: str, title: str, text: str, expected: bool) -> None:
    assert matches(query, text, title) is expected


@pytest.mark.parametrize(
    ("query", "extra", "expected"),
    [
        ("source:reuters", {"source": "Reuters Asia"}, True),
        ('source:"reuters asia"', {"source": "Reuters Asia"}, True),
        ("source:nytimes", {"url": "https://www.nytimes.com/a"}, True),  # host
        ("site:nytimes.com", {"url": "https://www.nytimes.com/a"}, True),
        ("site:bbc.co.uk", {"url": "https://news.bbc.co.uk/a"}, True),  # subdomains too
        ("site:bbc.co.uk", {"url": "https://bbc.com/a"}, False),
        ("url:politics", {"url": "https://x.com/Politics/2024"}, True),
        ("inurl:/world/", {"url": "https://x.com/world/1"}, True),
        ("inurl:/world/", {"url": "https://x.com/worlds/1"}, False),
        ("lang:ko", {"lang": "ko"}, True),
        ("lang:en", {"lang": "en-US"}, True),
        ("lang:en", {"lang": None}, False),
        ("author:kim", {"author": "Kim Min-jun"}, True),
        ("author:kim", {"author": "Kimberly"}, False),
    ],
)
def test_metadata_fields(query: str, extra: dict[str, object], expected: bool) -> None:
    assert matches(f"{query} talks", "talks", **extra) is expected


def test_default_fields_restrict_unfielded_terms() -> None:
    assert matches("korea", title="korea", fields=("title",))
    assert not matches("korea", text="korea", fields=("title",))
    assert matches("korea", source="Korea Herald", fields=("source",))
    assert matches("text:korea", text="korea", fields=("title",))  # explicit field wins


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("en", True), ("EN-us", True), ("ko", False), (None, True)],  # unknown language: kept
)
def test_languages_filter(lang: str | None, expected: bool) -> None:
    assert matches("korea", "korea", languages=("en", "ja"), lang=lang) is expected


def test_exclude_query() -> None:
    assert matches("korea", "korea football", exclude="baseball OR golf")
    assert not matches("korea", "korea golf open", exclude="baseball OR golf")
    assert not matches("korea", "korea golf", exclude="title:golf OR text:golf")


# -- the engine itself ----------------------------------------------------------------------------


def test_unanchored_rules_are_reported_and_still_evaluated() -> None:
    rules = [
        rule("lang:ko") | _id("korean-anything"),
        rule("korea OR url:politics") | _id("half"),
        rule("korea") | _id("anchored"),
    ]
    engine = Engine(rules)
    assert engine.unanchored == ("korean-anything", "half")
    found = engine.match(article("nothing here", url="https://x.com/politics/1", lang="ko"))
    assert [m.rule_id for m in found] == ["korean-anything", "half"]


def test_engine_pickles() -> None:
    engine = Engine([rule("korea NEAR/3 japan") | _id("a"), rule("독도") | _id("b")])
    clone = pickle.loads(pickle.dumps(engine))
    item = article("독도", "korea and japan")
    assert clone.match(item) == engine.match(item)
    assert [m.rule_id for m in clone.match(item)] == ["a", "b"]


def test_empty_engine() -> None:
    assert Engine([]).match(article("korea")) == []


def test_unknown_default_field_is_a_rule_error() -> None:
    with pytest.raises(RuleError, match="unknown default field 'body'"):
        Engine([rule("korea", fields=("body",))])


def test_rule_order_is_kept() -> None:
    rules = [rule(q) | _id(f"r{i}") for i, q in enumerate(["zeta", "alpha OR zeta", "zeta*"])]
    assert [m.rule_id for m in Engine(rules).match(article("zeta"))] == ["r0", "r1", "r2"]


# -- what a match reports: terms, fields, snippets ------------------------------------------------


def only(query: str, item: Article, **options: object) -> RuleMatch:
    found = Engine([rule(query, **options)]).match(item)
    assert len(found) == 1
    return found[0]


def highlighted(snippet: Snippet) -> list[str]:
    return [snippet.text[a:b] for a, b in snippet.highlights]


def test_terms_and_fields() -> None:
    item = article("Korea talks", "GSOMIA expires; 지소미아 종료. Unrelated sentence.")
    found = only('GSOMIA OR 지소미아 OR "military information" OR korea -sports', item)
    assert found.terms == ("GSOMIA", "지소미아", "korea")
    assert found.fields == ("title", "text")


def test_terms_of_a_near_only_when_it_holds() -> None:
    item = article("", "korea a japan. Later: china.")
    found = only("(korea NEAR/2 japan) OR (china NEAR/1 russia) OR china", item)
    assert found.terms == ("korea", "japan", "china")


def test_snippets_highlight_the_original_text() -> None:
    item = article("Séoul and Tokyo", "Intro. The … ﬁnal “Séoul” summit. Other news.")
    found = only("seoul OR final", item)
    title, sentence = found.snippets
    assert title.field == "title" and highlighted(title) == ["Séoul"]
    assert sentence.field == "text"
    assert sentence.text == "The … ﬁnal “Séoul” summit."  # NFKC: … is 3 folded characters
    assert highlighted(sentence) == ["ﬁnal", "Séoul"]


def test_snippet_highlights_a_phrase_as_one_span() -> None:
    found = only('"new york"', article("", "He moved to New-York last year."))
    assert highlighted(found.snippets[0]) == ["New-York"]


def test_cjk_snippet() -> None:
    found = only("竹島", article("", "政府は竹島は日本の領土だと述べた。別の話。"))
    assert found.snippets[0].text == "政府は竹島は日本の領土だと述べた。"
    assert highlighted(found.snippets[0]) == ["竹島"]


def test_long_sentences_are_cut_at_word_boundaries() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    text = f"{words} korea {words}"
    snippet = only("korea", article("", text)).snippets[0]
    assert snippet.text.startswith("…") and snippet.text.endswith("…")
    assert 120 < len(snippet.text) < 200
    inner = snippet.text.strip("…")
    assert inner.split()[0] in words.split() and inner.split()[-1] in words.split()
    assert highlighted(snippet) == ["korea"]


def test_at_most_three_snippets() -> None:
    text = " ".join(f"Sentence {i} mentions korea." for i in range(10))
    found = only("korea", article("korea", text))
    assert len(found.snippets) == 3
    assert [s.field for s in found.snippets] == ["title", "text", "text"]


def test_excluded_terms_are_not_reported() -> None:
    found = only("korea -japan OR (china -korea)", article("", "korea talks"))
    assert found.terms == ("korea",)


def test_metadata_matches_report_their_field() -> None:
    found = only("site:nytimes.com korea", article("korea", url="https://nytimes.com/x"))
    assert found.fields == ("title", "source")
    assert "nytimes.com" in found.terms


@pytest.mark.parametrize("backend", ["rust", "python"])
def test_presearch_backends(backend: str) -> None:
    """Both automaton libraries report every anchor that occurs, overlapping ones included."""
    if backend == "rust":
        pytest.importorskip("ahocorasick_rs")
    keyed = {" korea ": [1], " kor": [2], " korean ": [3], "독도": [4], "도를": [5], "竹島": [6]}
    presearch = Presearch(keyed, backend=backend)
    assert presearch.scan(" korea korean 독도를 ") == {1, 2, 3, 4, 5}
    assert presearch.scan(" start 竹島は ") == {6}
    assert presearch.scan(" nothing ") == set()
    assert Presearch({}, backend=backend).scan(" korea ") == set()
