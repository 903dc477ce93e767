"""Generated rules and articles for the query engine's agreement test and benchmark.

Two generators: `random_query` draws from the whole grammar over a tiny mixed en/ko/ja vocabulary
(so random rules actually match random articles, edge cases included: prefixes of other words,
accents, full-width forms, hyphens, particles); `analyst_rules` / `bench_articles` imitate real
monitoring: many rules about rare names, articles mostly made of common words.
"""

from __future__ import annotations

import random
import string

from watcher.domain import Article
from watcher.query import CompiledRule, QuerySyntaxError, parse

# -- agreement corpus: small vocabulary, dense matches ------------------------------------------

EN = ["korea", "korean", "koreas", "japan", "japanese", "seoul", "tokyo", "summit", "sum"]
EN += ["start", "art", "star", "trade", "deal"]
EN += ["new", "york", "talks", "and", "or", "not"]
EN_SURFACE = {
    "korea": ["Korea", "KOREA", "Ｋｏｒｅａ", "Korea's"],
    "seoul": ["Seoul", "Séoul"],
    "japan": ["Japan", "JAPAN"],
    "summit": ["Summit"],
    "york": ["York"],
}
KO = ["독도", "독도를", "한국", "한국은", "일본", "일본의", "정상회담", "지소미아"]
JA = ["竹島", "竹島は", "日本", "韓国", "首脳会談", "東京", "ソウル"]
PUNCT = [" ", " ", " ", " ", ", ", ". ", " - ", "-", " … ", "\n"]
QUERY_WORDS = [*EN, "Séoul", "SEOUL", "Korea-Japan", "new-york", "LG전자", *KO, *JA]
PREFIXES = ["kor*", "korea*", "jap*", "sta*", "sum*", "tra*", "독도*", "竹島*"]
FIELDS = ["title:", "text:", "intitle:", "source:", "site:", "author:"]


def agreement_corpus(count: int, seed: int = 1, latin_only: bool = False) -> list[Article]:
    """Short articles; `latin_only` keeps Hangul/Kana/Han out (the engine has a faster path)."""
    rng = random.Random(seed)
    pools = [EN] if latin_only else [EN, EN, KO, JA]
    return [_small_article(rng, i, pools) for i in range(count)]


def _small_article(rng: random.Random, number: int, pools: list[list[str]]) -> Article:
    def words(n: int) -> str:
        parts = []
        for _ in range(n):
            pool = rng.choice(pools)
            word = rng.choice(pool)
            if word in EN_SURFACE and rng.random() < 0.5:
                word = rng.choice(EN_SURFACE[word])
            parts.append(word)
            # CJK often runs on without spaces
            parts.append("" if pool is not EN and rng.random() < 0.3 else rng.choice(PUNCT))
        return "".join(parts)

    host = rng.choice(["www.example.com", "news.korea-herald.kr", "asahi.jp", "tokyo-news.jp"])
    return Article(
        url=f"https://{host}/{rng.choice(['politics', 'world', 'art'])}/{number}",
        title=words(rng.randint(2, 8)),
        text=words(rng.randint(5, 45)),
        source=rng.choice(["Korea Herald", "Asahi", "Example News", ""]),
        lang=rng.choice(["en", "ko", "ja", None, "en-US"]),
        author=rng.choice([None, "Kim Seoul", "Tanaka Star"]),
    )


def random_query(rng: random.Random, depth: int = 0) -> str:
    """A query drawn from the grammar (it may be invalid, e.g. purely negative: callers skip)."""
    roll = rng.random()
    if depth >= 3 or roll < 0.35:
        return _leaf(rng)
    if roll < 0.55:
        parts = [random_query(rng, depth + 1) for _ in range(rng.randint(2, 3))]
        return "(" + " OR ".join(parts) + ")"
    if roll < 0.75:
        joiner = rng.choice([" AND ", " "])
        return "(" + joiner.join(random_query(rng, depth + 1) for _ in range(2)) + ")"
    if roll < 0.85:
        return rng.choice(["NOT ", "-"]) + _leaf(rng)
    op = rng.choice(["NEAR", "ONEAR"]) + f"/{rng.randint(0, 5)}"
    return f"{_near_operand(rng)} {op} {_near_operand(rng)}"


def _near_operand(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "(" + " OR ".join(_leaf(rng, positional=True) for _ in range(2)) + ")"
    return _leaf(rng, positional=True)


def _leaf(rng: random.Random, positional: bool = False) -> str:
    roll = rng.random()
    field = rng.choice(FIELDS) if rng.random() < 0.15 else ""
    if roll < 0.45:
        return field + rng.choice(QUERY_WORDS)
    if roll < 0.6:
        return field + rng.choice(PREFIXES)
    if roll < 0.85 or positional:
        words = " ".join(rng.choice(QUERY_WORDS + PREFIXES) for _ in range(rng.randint(2, 3)))
        slop = f"~{rng.randint(0, 4)}" if rng.random() < 0.4 else ""
        return f'{field}"{words}"{slop}'
    return rng.choice(["lang:en", "lang:ko", "url:politics", "inurl:art", "site:asahi.jp"])


def random_rules(count: int, seed: int = 2) -> list[CompiledRule]:
    rng = random.Random(seed)
    rules: list[CompiledRule] = []
    while len(rules) < count:
        try:
            query = parse(random_query(rng))
            exclude = parse(_leaf(rng)) if rng.random() < 0.1 else None
        except QuerySyntaxError:
            continue
        languages = rng.choice([None, None, None, ("en",), ("ko", "ja")])
        fields = rng.choice([None, None, None, ("title",), ("text", "source")])
        rules.append(CompiledRule(f"r{len(rules)}", query, exclude, languages, fields))
    return rules


# -- benchmark: analyst-style rules about rare names, 5 KB articles -------------------------------

_SYLLABLES = [a + b for a in "bdgklmnprstvz" for b in ["a", "e", "i", "o", "u", "ai", "ou"]]
_HANGUL = [chr(0xAC00 + i * 5) for i in range(2000)]
_JAPANESE = [chr(0x4E00 + i * 7) for i in range(2500)] + [chr(c) for c in range(0x3041, 0x3094)]
_JAPANESE += [chr(c) for c in range(0x30A1, 0x30F4)]


def _vocabulary(
    rng: random.Random, count: int, syllables: list[str], low: int, high: int
) -> list[str]:
    out: set[str] = set()
    while len(out) < count:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(low, high))))
    ordered = sorted(out)
    rng.shuffle(ordered)  # rank (and so frequency) independent of spelling
    return ordered


def _zipf(count: int) -> list[float]:
    """Cumulative Zipf weights: word i is (i+1) times rarer than word 0."""
    total = 0.0
    out = []
    for rank in range(count):
        total += 1 / (rank + 1)
        out.append(total)
    return out


class BenchWorld:
    """Vocabularies shared by the rule and article generators of one benchmark run.

    Articles are mostly common words (Zipf-distributed); rules are about names and rare Korean
    and Japanese words, so an article is a candidate for a few dozen rules and matches a few —
    as in real monitoring, where most of 10,000 rules never match a given article.
    """

    def __init__(self, seed: int = 7, scale: int = 1) -> None:
        """`scale`: 10 for 100,000 rules — ten times the rules are about ten times the names."""
        rng = random.Random(seed)
        self.common = _vocabulary(rng, 3000, _SYLLABLES, 1, 3)
        self.names = [n.capitalize() for n in _vocabulary(rng, 60000 * scale, _SYLLABLES, 3, 5)]
        self.korean = _vocabulary(rng, 20000 + 40000 * scale, _HANGUL, 2, 4)
        self.japanese = _vocabulary(rng, 20000 + 40000 * scale, _JAPANESE, 2, 4)
        self.stems = sorted({w[:4] for w in self.common if len(w) >= 5})
        self.zipf_common = _zipf(len(self.common))
        self.zipf_cjk = _zipf(60000)  # articles: the rare words beyond 60,000 never occur
        self.rare_korean = self.korean[20000:]  # names and terms of art, like `names`
        self.rare_japanese = self.japanese[20000:]
        self.korean_text = self.korean[:60000]  # what articles are written with
        self.japanese_text = self.japanese[:60000]


def analyst_rules(world: BenchWorld, count: int, seed: int = 11) -> list[str]:
    """Queries like the ones analysts write: OR lists of names, phrases, AND/NEAR combinations."""
    rng = random.Random(seed)
    rules: list[str] = []
    names, common = world.names, world.common
    for _ in range(count):
        name = rng.choice(names)
        roll = rng.random()
        if roll < 0.3:
            alternatives = [f'"{name} {rng.choice(names)}"', rng.choice(names)]
            alternatives += [rng.choice(world.rare_korean), rng.choice(world.rare_japanese)]
            query = " OR ".join(alternatives)
        elif roll < 0.5:
            query = f'"{name} {rng.choice(common)}" AND {rng.choice(common)}'
        elif roll < 0.7:
            left = f"({name} OR {rng.choice(names)})"
            right = f"({rng.choice(common)} OR {rng.choice(world.stems)}*)"
            query = f"{left} NEAR/{rng.randint(3, 15)} {right}"
        elif roll < 0.8:
            pair = f"{rng.choice(world.rare_korean)} {rng.choice(world.korean[:20000])}"
            query = f"({pair}) OR {name}"
        elif roll < 0.9:
            query = f'{rng.choice(world.rare_japanese)} OR "{name} {rng.choice(names)}"~3'
        else:
            query = f"{name} {rng.choice(common)} -{rng.choice(common)}"
        rules.append(query)
    return rules


def bench_articles(
    world: BenchWorld, count: int, size: int = 5000, seed: int = 13
) -> list[Article]:
    """~`size` UTF-8 bytes each; one in ten Korean, one in ten Japanese, the rest English-like."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        kind = {8: "ko", 9: "ja"}.get(number % 10, "en")
        text = _text(rng, world, kind, size)
        title = _text(rng, world, kind, 60)
        letters = "".join(rng.choice(string.ascii_lowercase) for _ in range(6))
        url = f"https://{letters}.example/{number}"
        out.append(Article(url=url, title=title, text=text, lang=kind))
    return out


def _text(rng: random.Random, world: BenchWorld, kind: str, size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        roll = rng.random()
        if kind == "ko" and roll < 0.8:
            word = rng.choices(world.korean_text, cum_weights=world.zipf_cjk)[0]
        elif kind == "ja" and roll < 0.85:
            word = "".join(rng.choices(world.japanese_text, cum_weights=world.zipf_cjk, k=4))
            word += rng.choice(["、", "。", "は", "の"])
        elif roll < 0.965:
            word = rng.choices(world.common, cum_weights=world.zipf_common)[0]
        else:
            word = rng.choice(world.names)
        if rng.random() < 0.08:
            word += rng.choice([",", ".", "’s", "”"])
        parts.append(word)
        length += len(word.encode()) + 1
    return " ".join(parts)
