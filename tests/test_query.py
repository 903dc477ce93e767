"""The query parser: every construct, precedence, warnings, every syntax error with its offset."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.errors import RuleError
from watcher.query import (
    And,
    Near,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    QueryWarning,
    Term,
    anchors,
    explain,
    parse,
    parse_with_warnings,
)


def show(node: object) -> str:
    """A compact rendering of a tree, so expectations read like the query."""
    if isinstance(node, Term):
        prefix = f"{node.field}:" if node.field else ""
        mark = {"prefix": "*", "cjk": "~c", "substr": "~u", "exact": "~l"}.get(node.kind, "")
        return f"{prefix}{node.value}{mark}"
    if isinstance(node, Phrase):
        prefix = f"{node.field}:" if node.field else ""
        slop = f"~{node.slop}" if node.slop is not None else ""
        return prefix + '"' + " ".join(show(t) for t in node.terms) + '"' + slop
    if isinstance(node, Near):
        op = "ONEAR" if node.ordered else "NEAR"
        return f"({show(node.left)} {op}/{node.distance} {show(node.right)})"
    if isinstance(node, Not):
        return f"-{show(node.child)}"
    assert isinstance(node, (And, Or))
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(show(c) for c in node.children) + ")"


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("korea", "korea"),
        ("Korea JAPAN", "(korea AND japan)"),  # adjacency is AND
        ("korea AND japan", "(korea AND japan)"),
        ("korea OR japan OR china", "(korea OR japan OR china)"),
        ("korea and japan", "(korea AND and AND japan)"),  # lowercase: ordinary words
        ("korea or japan", "(korea AND or AND japan)"),
        ("not near/5", '(not AND "near 5")'),
        ("korea NOT japan", "(korea AND -japan)"),
        ("korea -japan", "(korea AND -japan)"),
        ("korea - japan", None),  # a lone '-' is an error (see the error table)
        ('"new york"', '"new york"'),
        ('"new york"~3', '"new york"~3'),
        ('"korea"', "korea"),  # a one-word phrase is the word
        ("korea*", "korea*"),
        ("Korea-Japan", '"korea japan"'),  # hyphenated: a phrase of its words
        ("Korea's", '"korea s"'),
        ("LG전자", '"lg 전자~c"'),
        ("독도", "독도~c"),
        ("竹島*", "竹島~c"),  # wildcard is redundant on a CJK substring
        ("title:korea", "title:korea"),
        ("intitle:korea", "title:korea"),
        ("site:nytimes.com", 'source:"source:nytimes source:com"'),
        ("inurl:politics", "url:politics~u"),
        ("url:/News/", "url:/news/~u"),
        ("lang:EN", "lang:en~l"),
        ("author:kim", "author:kim"),
        ("intext:korea", "text:korea"),
        ("title:(korea OR japan)", "(title:korea OR title:japan)"),
        ('title:"new york"', 'title:"title:new title:york"'),
        ("title:(korea OR text:japan)", "(title:korea OR text:japan)"),
        ("korea NEAR/5 japan", "(korea NEAR/5 japan)"),
        ("korea ONEAR/5 japan", "(korea ONEAR/5 japan)"),
        ("korea NEAR/5f japan", "(korea ONEAR/5 japan)"),  # Meltwater's forward NEAR
        (
            "(japan OR tokyo) NEAR/5 (korea OR seoul)",
            "((japan OR tokyo) NEAR/5 (korea OR seoul))",
        ),
        ('"new york" NEAR/3 "stock exchange"~1', '("new york" NEAR/3 "stock exchange"~1)'),
        ("a NEAR/1 b NEAR/2 c", "((a NEAR/1 b) NEAR/2 c)"),
        # precedence: NOT > NEAR > AND > OR, and NOT applies to a whole NEAR
        ("a b OR c", "((a AND b) OR c)"),
        ("a OR b c", "(a OR (b AND c))"),
        ("a OR b AND c", "(a OR (b AND c))"),
        ("a NEAR/2 b c", "((a NEAR/2 b) AND c)"),
        ("a NEAR/2 b OR c", "((a NEAR/2 b) OR c)"),
        ("x NOT a NEAR/2 b", "(x AND -(a NEAR/2 b))"),
        ("x -(a OR b)", "(x AND -(a OR b))"),
        ("((a))", "a"),
        ("(a OR b) OR c", "(a OR b OR c)"),
        # NFKC in the query: full-width operators and brackets, curly quotes
        ("ｋｏｒｅａ ＯＲ ｊａｐａｎ", "(korea OR japan)"),
        ("（korea OR japan） －sports", "((korea OR japan) AND -sports)"),
        ("“new york”", '"new york"'),
        ("„new york“", '"new york"'),
        ("title：korea", "title:korea"),
        ("http://example.com/a", '"http example com a"'),  # a pasted URL is not a field
        ("10:30", '"10 30"'),
        ('"[video]" korea^', None),
        ('"[video] korea^2"', '"video korea 2"'),  # inside quotes: plain punctuation
        ("korea && japan || china", "((korea AND japan) OR china)"),  # Lucene's symbols
    ],
)
def test_constructs(query: str, tree: str | None) -> None:
    if tree is None:
        with pytest.raises(QuerySyntaxError):
            parse(query)
        return
    assert show(parse(query)) == tree


def test_offsets_point_into_the_original_query() -> None:
    node = parse('ｋｏｒｅａ "new  york" title:seoul')
    assert isinstance(node, And)
    korea, phrase, seoul = node.children
    assert (korea.offset, korea.length) == (0, 5)
    assert (phrase.offset, phrase.length) == (6, 11)
    assert isinstance(phrase, Phrase) and phrase.terms[1].offset == 12
    assert isinstance(seoul, Term) and (seoul.offset, seoul.length, seoul.text) == (24, 5, "seoul")


def test_terms_keep_the_text_as_written() -> None:
    node = parse('GSOMIA OR "General Security" OR 지소미아 OR korea*')
    assert isinstance(node, Or)
    assert [c.text for c in node.children] == ["GSOMIA", "General Security", "지소미아", "korea*"]


# -- warnings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "offset"),
    [
        ("a AND b OR c", 8),
        ("a b OR c", 4),
        ("a OR b c", 2),
        ("x OR a b OR c", 2),
        ("(a b OR c) OR d", 5),  # the mix inside the parentheses
    ],
)
def test_and_or_mix_warns_at_the_or(query: str, offset: int) -> None:
    _, warnings = parse_with_warnings(query)
    assert [w.offset for w in warnings] == [offset]
    assert "AND and OR are mixed" in warnings[0].message
    assert isinstance(warnings[0], QueryWarning)


def test_mix_warning_shows_the_reading() -> None:
    _, warnings = parse_with_warnings("korea japan OR china")
    assert "(korea japan) OR china" in warnings[0].message


@pytest.mark.parametrize(
    "query", ["(a b) OR c", "a OR (b c)", "a OR b", "a b c", "(a OR b) c", "a NEAR/3 b OR c"]
)
def test_no_warning_when_grouped(query: str) -> None:
    assert parse_with_warnings(query)[1] == []


# -- syntax errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "offset", "length", "message"),
    [
        ("", 0, 0, "the query is empty"),
        ("   ", 0, 3, "the query is empty"),
        ("(korea OR japan", 0, 1, "unbalanced parenthesis: '(' is never closed"),
        ("korea OR japan)", 14, 1, "unbalanced parenthesis: ')' has no matching '('"),
        ("a ((b)", 2, 1, "'(' is never closed"),
        ("()", 0, 2, "empty parentheses"),
        ('"new york', 0, 9, "unterminated phrase"),
        ('a "new york', 2, 9, "unterminated phrase"),
        ('""', 0, 2, "empty phrase"),
        ('"a b"~', 5, 1, "~ needs a number"),
        ('"a b" ~2', 6, 1, "~N must follow the closing quote"),
        ("korea~2", 5, 1, "fuzzy search"),
        ("organi?ation", 6, 1, "? wildcard is not supported"),
        ("korea^2", 5, 1, "boosts (word^2) are not supported"),
        ("year:[2020 TO 2021]", 0, 4, "unknown field 'year'"),
        ("[2020 TO 2021]", 0, 1, "ranges [a TO b] are not supported"),
        ("ko*", 0, 3, "wildcard needs at least 3 characters before *"),
        ("korea-j*", 0, 8, "wildcard needs at least 3 characters before *"),
        ("*", 0, 1, "wildcard needs at least 3 characters before *"),
        ("kor*ea", 3, 1, "wildcard * only works at the end of a word"),
        ("*korea", 0, 1, "wildcard * only works at the end of a word"),
        ("tilte:korea", 0, 5, "unknown field 'tilte' (did you mean title?)"),
        ("foo:bar", 0, 3, "unknown field 'foo'"),
        ("title:", 0, 6, "field title: needs a word"),
        ("title: korea", 0, 6, "field title: needs a word"),
        ("(title:)", 1, 6, "field title: needs a word"),
        ("korea NEAR/ japan", 6, 5, "NEAR/ needs a number, e.g. NEAR/5"),
        ("korea NEAR/x japan", 6, 6, "NEAR/ needs a number, e.g. NEAR/5"),
        ("korea NEAR japan", 6, 4, "NEAR needs a distance, e.g. NEAR/5"),
        ("korea ONEAR japan", 6, 5, "ONEAR needs a distance"),
        ("korea NEAR/5000 japan", 6, 9, "too far"),
        ("korea NEAR/5", 6, 6, "operator NEAR/5 at the end of the query"),
        ("NEAR/5 korea", 0, 6, "operator NEAR/5 at the start of the query"),
        ("korea NEAR/5 -japan", 13, 1, "cannot take an excluded term"),
        ("korea NEAR/5 (NOT japan)", 14, 9, "not an exclusion"),
        ("(a AND b) NEAR/2 c", 1, 7, "not AND"),
        ("url:x NEAR/2 c", 4, 1, "needs word positions, and url: has none"),
        ("c NEAR/2 lang:en", 14, 2, "needs word positions, and lang: has none"),
        ("korea OR", 6, 2, "operator OR at the end of the query"),
        ("korea AND", 6, 3, "operator AND at the end of the query"),
        ("korea NOT", 6, 3, "operator NOT at the end of the query"),
        ("OR korea", 0, 2, "operator OR at the start of the query"),
        ("AND korea", 0, 3, "operator AND at the start of the query"),
        ("korea OR OR japan", 6, 2, "operator OR needs a term on its right"),
        ("korea AND OR japan", 6, 3, "operator AND needs a term on its right"),
        ("(OR korea)", 1, 2, "operator OR after ("),
        ("korea - japan", 6, 1, "a lone '-' excludes nothing"),
        ("NOT korea", 0, 9, "a query needs at least one positive term"),
        ("-korea -japan", 0, 13, "a query needs at least one positive term"),
        ("korea OR -japan", 9, 6, "each OR alternative needs at least one positive term"),
        ("!!!", 0, 3, "'!!!' has no letters or digits"),
        ("lang:en*", 5, 3, "lang: takes a language code"),
        ("url:*", 4, 1, "url: needs something to look for"),
        ('url:"a b"~2', 4, 7, "~N has no meaning for url:"),
        ("title:-korea", 6, 1, "put the exclusion before the field"),
        ("ｋｏ＊", 0, 3, "wildcard needs at least 3 characters"),
    ],
)
def test_syntax_errors(query: str, offset: int, length: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    error = caught.value
    assert message in error.message
    assert (error.offset, error.length) == (offset, length), error.message
    assert 0 <= error.offset <= len(query)
    assert isinstance(error, RuleError)


def test_unknown_field_lists_the_fields_when_nothing_is_close() -> None:
    with pytest.raises(QuerySyntaxError, match="fields: title, text, source, url, lang, author"):
        parse("zzzzz:korea")


def test_errors_inside_a_phrase_point_at_the_word() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse('"north ko* talks"')
    assert (caught.value.offset, caught.value.length) == (7, 3)


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(QuerySyntaxError):
        parse("(" * 5000 + "a" + ")" * 5000)


# -- the parser raises nothing but QuerySyntaxError -----------------------------------------------

QUERY_ALPHABET = st.sampled_from(
    [
        "a", "korea", "독도", "竹島は", " ", "  ", '"', "“", "”", "(", ")", "（", ":", "title:",
        "site:", "url:", "lang:", "tilte:", "-", "*", "~", "~2", "?", "AND", "OR", "NOT", "NEAR/",
        "NEAR/3", "ONEAR/1", "NEAR", "and", "or", "é", "\u0301", "ｶﾞ", "ＯＲ", "０", "/", "\\",
        "\n", "\t", "\u3000", "\x00", "'", "kor*", "ab*",
    ]
)  # fmt: skip


def _parse_or_syntax_error(text: str) -> None:
    try:
        node, warnings = parse_with_warnings(text)
    except QuerySyntaxError as error:
        assert 0 <= error.offset <= len(text)
        assert error.length >= 0
        assert error.message
        return
    assert node is not None
    for warning in warnings:
        assert 0 <= warning.offset <= len(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_a_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(QUERY_ALPHABET, max_size=14).map("".join))
def test_query_alphabet_parses_or_raises_a_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


@given(st.lists(QUERY_ALPHABET, max_size=14).map("".join))
def test_explain_works_on_every_parsed_query(text: str) -> None:
    try:
        node = parse(text)
    except QuerySyntaxError:
        return
    assert "anchors:" in explain(node)


# -- explain and anchors --------------------------------------------------------------------------


def test_anchors_pick_specific_terms() -> None:
    assert anchors(parse('GSOMIA OR 지소미아 OR "military information"')) == [
        "gsomia",
        "지소미아",
        "information",  # the longer word of the phrase
    ]
    # NEAR needs one side: one specific word beats two alternatives
    assert anchors(parse('(japan OR tokyo) NEAR/5 "south korea"')) == ["korea"]
    assert anchors(parse("the AND summit")) == ["summit"]  # common words are avoided
    assert anchors(parse("korea* -sports")) == ["korea*"]
    assert anchors(parse("lang:en OR url:politics")) == []


def test_explain_shows_tree_and_anchors() -> None:
    text = explain(parse('(japan OR tokyo) NEAR/5 "south korea" -sports'))
    assert text.splitlines() == [
        "AND",
        "  NEAR/5 (either order, at most 5 words apart)",
        "    OR",
        "      word 'japan'",
        "      word 'tokyo'",
        "    phrase 'south korea'",
        "  NOT",
        "    word 'sports'",
        "anchors: korea",
    ]


def test_explain_warns_about_unanchored_parts() -> None:
    assert "evaluated for every article" in explain(parse("korea OR lang:ko"))


def test_syntax_errors_pickle() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse("korea NEAR japan")
    clone = pickle.loads(pickle.dumps(caught.value))
    assert (clone.message, clone.offset, clone.length) == (
        "NEAR needs a distance, e.g. NEAR/5",
        6,
        4,
    )
