"""Build the labelled "same story?" pairs (pairs.jsonl) from the hand-written base articles.

Run `.venv/bin/python tests/data/story_pairs/generate.py` after editing base_*.yaml; the output is
deterministic (seeded) and committed, so the test reads a fixed set.

Variants imitate what outlets really do to a wire story: another headline, a dateline or byline,
an agency footer, a rewritten lead, an added local paragraph, a trimmed ending, an update with a
new paragraph and changed figures, a re-publication under a new URL, and feed entries that carry
only a summary. Negatives are different stories on the same topic (same day or a week apart),
translations of the same event (not the same story: signatures are per language), and unrelated
stories.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "pairs.jsonl"

Article = dict[str, Any]

OUTLETS = {
    "en": [
        ("Yonhap", "en.yna.co.kr"),
        ("The Korea Herald", "www.koreaherald.com"),
        ("The Korea Times", "www.koreatimes.co.kr"),
        ("The Japan Times", "www.japantimes.co.jp"),
        ("Reuters", "www.reuters.com"),
        ("AP", "apnews.com"),
        ("Kyodo News", "english.kyodonews.net"),
        ("NHK World", "www3.nhk.or.jp"),
        ("Nikkei Asia", "asia.nikkei.com"),
        ("Korea JoongAng Daily", "koreajoongangdaily.joins.com"),
        ("Stars and Stripes", "www.stripes.com"),
        ("The Straits Times", "www.straitstimes.com"),
    ],
    "ko": [
        ("연합뉴스", "www.yna.co.kr"),
        ("뉴스1", "www.news1.kr"),
        ("뉴시스", "www.newsis.com"),
        ("한겨레", "www.hani.co.kr"),
        ("조선일보", "www.chosun.com"),
        ("KBS", "news.kbs.co.kr"),
        ("경향신문", "www.khan.co.kr"),
        ("매일경제", "www.mk.co.kr"),
    ],
    "ja": [
        ("共同通信", "www.47news.jp"),
        ("時事通信", "www.jiji.com"),
        ("NHK", "www3.nhk.or.jp"),
        ("朝日新聞", "www.asahi.com"),
        ("日本経済新聞", "www.nikkei.com"),
        ("産経新聞", "www.sankei.com"),
        ("毎日新聞", "mainichi.jp"),
        ("東京新聞", "www.tokyo-np.co.jp"),
    ],
}

CITY = {
    "gsomia_us_reaction": "WASHINGTON",
    "tri_camp_david": "CAMP DAVID, Maryland",
    "tri_fm_icbm": "JAKARTA",
    "typhoon_khanun": "NAHA, Japan",
    "treated_water_4th": "TOKYO",
    "dokdo_protest": "TOKYO",
    "apbc_final": "TOKYO",
}

EN_BYLINES = [
    "By Kim Eun-jung",
    "By Hyonhee Shin and Ju-min Park",
    "By Mari Yamaguchi, Associated Press",
    "By Lee Haye-ah",
    "By Kaori Kaneko",
    "Staff reporter",
]
EN_FOOTERS = [
    "(END)",
    "Reporting by Hyonhee Shin in Seoul; Editing by Robert Birsel",
    "Copyright The Associated Press. All rights reserved.",
    "This story has been edited for length.",
    "Additional reporting by Kiyoshi Takenaka in Tokyo; Editing by Kim Coghill",
    "(Kyodo)",
]
EN_TITLE_MARKS = ["(LEAD) ", "(2nd LD) ", "UPDATE 1-", "Update: ", "(URGENT) "]

KO_DATELINES = [
    "(서울=연합뉴스) 김수연 기자 = ",
    "(서울=뉴스1) 이종서 기자 = ",
    "(서울=뉴시스) 박대로 기자 = ",
    "[서울=KBS] 최영은 기자 = ",
]
KO_FOOTERS = [
    "ⓒ 연합뉴스 무단 전재-재배포, AI 학습 및 활용 금지",
    "<저작권자 ⓒ 뉴스1코리아, 무단전재 및 재배포 금지>",
    "kimsy@yna.co.kr",
    "공감언론 뉴시스가 독자 여러분의 소중한 제보를 기다립니다.",
]
KO_TITLE_MARKS = ["[속보] ", "[종합] ", "(2보) ", "[단독] "]

JA_DATELINES = ["【ソウル共同】", "【ソウル時事】", "【東京】", ""]
JA_FOOTERS = ["（共同）", "（時事）", "© 一般社団法人共同通信社", "【関連記事】"]
JA_TITLE_MARKS = ["【速報】", "【更新】", "＜独自＞", "【詳報】"]


# Korea–Japan security: different stories here share names, places and background paragraphs.
SECURITY = {
    *("gsomia", "dokdo", "trilateral", "nkmissile"),
    *("ko_gsomia", "ko_dokdo", "ko_nkmissile", "ko_trilateral"),
    *("ja_gsomia", "ja_takeshima", "ja_nk", "ja_trilateral"),
}


def load_bases() -> list[Article]:
    bases: list[Article] = []
    for name in ("base_en.yaml", "base_ko.yaml", "base_ja.yaml"):
        bases.extend(yaml.safe_load((HERE / name).read_text(encoding="utf-8")))
    for base in bases:
        base["paragraphs"] = [p.strip() for p in base["text"].split("\n\n") if p.strip()]
    return bases


class Maker:
    """Makes articles for one base article: a URL and outlet per copy, dates close to the base."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.serial = itertools.count(1)

    def article(
        self,
        base: Article,
        title: str,
        paragraphs: list[str],
        *,
        outlet: int | None = None,
        hours: float = 0.0,
        agency: bool = False,
    ) -> Article:
        lang = base["lang"]
        outlets = OUTLETS[lang]
        if agency:
            source = base["agency"]
            host = dict(outlets).get(source, outlets[0][1])
        else:
            source, host = outlets[
                outlet if outlet is not None else self.rng.randrange(len(outlets))
            ]
        serial = next(self.serial)
        created = datetime.fromisoformat(base["date"]) + timedelta(hours=hours)
        return {
            "id": f"{base['id']}#{serial}",
            "title": title,
            "text": "\n\n".join(paragraphs),
            "source": source,
            "url": f"https://{host}/news/{created:%Y%m%d}/{base['id'].replace('_', '-')}-{serial}",
            "lang": lang,
            "created_at": created.isoformat(),
        }

    # -- edits outlets make ------------------------------------------------------------------
    def decorate(self, base: Article, paragraphs: list[str]) -> list[str]:
        """Dateline, byline and footer the way another outlet would print the same copy."""
        rng, lang, out = self.rng, base["lang"], list(paragraphs)
        if lang == "en":
            if rng.random() < 0.6:
                date = datetime.fromisoformat(base["date"])
                city = CITY.get(base["id"], "SEOUL")
                tag = rng.choice(["(Yonhap) --", f"({base['agency']}) -", "—"])
                stamp = f"{date:%b}. {date.day}" if rng.random() < 0.5 else ""
                out[0] = f"{city}{', ' + stamp if stamp else ''} {tag} {out[0]}"
            if rng.random() < 0.4:
                out.insert(0, rng.choice(EN_BYLINES))
            if rng.random() < 0.6:
                out.append(rng.choice(EN_FOOTERS))
        elif lang == "ko":
            if rng.random() < 0.7:
                out[0] = rng.choice(KO_DATELINES) + out[0]
            if rng.random() < 0.6:
                out.append(rng.choice(KO_FOOTERS))
        else:
            if rng.random() < 0.7:
                out[0] = rng.choice(JA_DATELINES) + out[0]
            if rng.random() < 0.5:
                out.append(rng.choice(JA_FOOTERS))
        return out

    def mark_title(self, base: Article, title: str) -> str:
        marks = {"en": EN_TITLE_MARKS, "ko": KO_TITLE_MARKS, "ja": JA_TITLE_MARKS}[base["lang"]]
        return self.rng.choice(marks) + title

    def trimmed(self, paragraphs: list[str]) -> list[str]:
        keep = max(3, round(len(paragraphs) * self.rng.uniform(0.55, 0.75)))
        return paragraphs[:keep]

    def with_local(self, base: Article, paragraphs: list[str]) -> list[str]:
        out = list(paragraphs)
        out.insert(self.rng.choice([2, 3, len(out)]), base["local"])
        return out

    def with_new_lead(self, base: Article, paragraphs: list[str]) -> list[str]:
        return [base["alt_lead"], *paragraphs[1:]]

    def updated(self, base: Article, paragraphs: list[str]) -> list[str]:
        out = [self.substitute(base, p) for p in paragraphs]
        out.insert(self.rng.choice([2, 3, len(out)]), base["update"])
        return out

    @staticmethod
    def substitute(base: Article, paragraph: str) -> str:
        for old, new in base.get("subs", []):
            paragraph = paragraph.replace(old, new)
        return paragraph

    def summary(self, base: Article, paragraphs: list[str]) -> list[str]:
        """What a feed without full content carries: the lead, often cut with an ellipsis."""
        lead = paragraphs[0]
        limit = {"en": 200, "ko": 90, "ja": 80}[base["lang"]]
        if len(lead) > limit and self.rng.random() < 0.5:
            cut = lead[:limit]
            if base["lang"] == "en":
                cut = cut.rsplit(" ", 1)[0]
            lead = cut + self.rng.choice([" […]", "…", " ...", " [&#8230;]"])
        return [lead]


def clean(base: Article) -> Article:
    """Folded YAML keeps line breaks inside Japanese text; join them without spaces."""
    for key in ("alt_lead", "local", "update"):
        value = " ".join(base[key].split())
        base[key] = value.replace(" ", "") if base["lang"] == "ja" else value
    return base


def positives(base: Article, make: Maker) -> list[dict[str, Any]]:
    rng, paras, title, alt = make.rng, base["paragraphs"], base["title"], base["alt_title"]
    original = make.article(base, title, paras, agency=True)

    def copy(title: str, body: list[str]) -> Article:
        """Another outlet's copy, a few hours later, with its own dateline/byline/footer."""
        return make.article(base, title, make.decorate(base, body), hours=rng.uniform(0.2, 8))

    def own(title: str, body: list[str], hours: float) -> Article:
        """The agency's own later version (an update, or the same text under a new URL)."""
        return make.article(base, title, body, agency=True, hours=hours)

    marked = make.mark_title(base, title)
    summary = make.summary(base, paras)
    combo = make.trimmed(make.with_new_lead(base, make.with_local(base, paras)))
    pairs = [
        ("wire_copy", original, copy(alt, paras)),
        ("new_lead", original, copy(title, make.with_new_lead(base, paras))),
        ("local_paragraph", original, copy(alt, make.with_local(base, paras))),
        ("trimmed", original, copy(title, make.trimmed(paras))),
        ("update", original, own(marked, make.updated(base, paras), rng.uniform(1, 5))),
        ("republished", original, own(title, make.decorate(base, paras), rng.uniform(0.1, 30))),
        ("combined_edits", original, copy(alt, combo)),
        ("two_outlets", copy(alt, paras), copy(title, make.trimmed(make.with_local(base, paras)))),
        ("summary_vs_full", original, make.article(base, marked, summary, hours=1)),
        ("summary_alt_title", original, make.article(base, alt, make.summary(base, paras))),
        ("summary_vs_summary", make.article(base, title, summary), own(marked, summary, 2)),
    ]
    return [{"a": a, "b": b, "same": True, "kind": kind} for kind, a, b in pairs]


def variants(base: Article, make: Maker) -> list[Article]:
    """A few realistic copies of one story, used as members of negative pairs."""
    paras = base["paragraphs"]
    return [
        make.article(base, base["title"], paras, agency=True),
        make.article(base, base["alt_title"], make.decorate(base, make.trimmed(paras)), hours=3),
        make.article(base, base["title"], make.summary(base, paras), hours=1),
    ]


def apart(x: Article, y: Article) -> str:
    days = abs(datetime.fromisoformat(x["date"]) - datetime.fromisoformat(y["date"])).days
    if days < 1:
        return "same_day"
    return "week_apart" if days <= 8 else "weeks_apart" if days <= 60 else "months_apart"


def negatives(bases: list[Article], make: Maker) -> list[dict[str, Any]]:
    rng = make.rng
    pairs: list[dict[str, Any]] = []
    by_id = {base["id"]: variants(base, make) for base in bases}

    def add(kind: str, a: Article, b: Article) -> None:
        pairs.append({"a": a, "b": b, "same": False, "kind": kind})

    for x, y in itertools.combinations(bases, 2):
        vx, vy = by_id[x["id"]], by_id[y["id"]]
        if x["group"] == y["group"]:
            kind = "same_topic_" + apart(x, y)
            add(kind, vx[0], vy[0])
            add(kind, vx[1], vy[0])
            add(kind + "_summary", vx[2], vy[2])
            add(kind + "_summary_vs_full", vx[2], vy[0])
        elif x["event"] == y["event"]:
            add("translation", vx[0], vy[0])
            add("translation", vx[1], vy[2])
        elif x["lang"] == y["lang"] and {x["group"], y["group"]} <= SECURITY:
            add("related_topic", vx[0], vy[rng.randrange(2)])
            add("related_topic_summary", vx[2], vy[2])
        elif x["lang"] == y["lang"] and rng.random() < 0.06:
            add("unrelated", vx[rng.randrange(3)], vy[rng.randrange(3)])
    return pairs


def build() -> list[dict[str, Any]]:
    """Every labelled pair, in a fixed order (the generator is seeded)."""
    make = Maker(random.Random(20191122))
    bases = [clean(base) for base in load_bases()]
    pairs = [pair for base in bases for pair in positives(base, make)]
    return pairs + negatives(bases, make)


def main() -> None:
    pairs = build()
    with OUT.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    same = sum(p["same"] for p in pairs)
    print(f"{OUT.name}: {len(pairs)} pairs ({same} same story, {len(pairs) - same} different)")


if __name__ == "__main__":
    main()
