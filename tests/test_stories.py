"""Stories against a real database: clustering, restart, window, a second worker, edits, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from typer.testing import CliRunner

from tests.conftest import DATA
from watcher.commands.stories import app as stories_app
from watcher.config import Settings, StoriesSettings
from watcher.db.engine import make_engine, session_scope
from watcher.db.models import Article, ArticleSignature, Story
from watcher.db.schema import ensure_schema
from watcher.stories import StoryClusterer, describe_change
from watcher.story_index import StoryIndex
from watcher.story_signature import LEAD_PERM, NUM_PERM, Signature, signature

T0 = datetime(2019, 11, 22, 9, 30, tzinfo=UTC)


def _bases() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in ("base_en.yaml", "base_ko.yaml", "base_ja.yaml"):
        for base in yaml.safe_load((DATA / "story_pairs" / name).read_text(encoding="utf-8")):
            found[base["id"]] = base
    return found


BASES = _bases()
WIRE = BASES["gsomia_suspend"]
OUTLETS = ["Yonhap", "The Korea Herald", "The Korea Times", "Kyodo News", "The Japan Times"]


def copies(base: dict[str, Any], count: int) -> list[tuple[str, str, str]]:
    """How `count` outlets print one wire story: (title, text, source)."""
    paragraphs = base["text"].strip().split("\n\n")
    variants = [
        (base["title"], paragraphs),
        (base["alt_title"], ["SEOUL, Nov. 22 (Yonhap) -- " + paragraphs[0], *paragraphs[1:]]),
        ("(LEAD) " + base["title"], [*paragraphs[:5], "(END)"]),
        (base["alt_title"], ["By Kim Eun-jung", *paragraphs[:3], base["local"], *paragraphs[3:]]),
        (base["title"], [" ".join(base["alt_lead"].split()), *paragraphs[1:]]),
    ]
    assert count <= len(variants)
    return [
        (title, "\n\n".join(body), OUTLETS[i % len(OUTLETS)])
        for i, (title, body) in enumerate(variants[:count])
    ]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def engine_for(url: str) -> Engine:
    engine = make_engine(Settings(database_url=url))
    ensure_schema(engine, auto_upgrade=True)
    return engine


@pytest.fixture
def engine(settings: Settings) -> Engine:
    engine = make_engine(settings)
    ensure_schema(engine, auto_upgrade=True)
    yield engine
    engine.dispose()


def store(
    session: Session, title: str, text: str, *, source: str = "Yonhap", at: datetime = T0, **kw: Any
) -> int:
    number = session.exec(select(func.count()).select_from(Article)).one() + 1
    row = Article(
        url=f"https://news.example/{number}",
        title=title,
        text=text,
        source=source,
        created_at=at,
        **kw,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def add(
    clusterer: StoryClusterer,
    engine: Engine,
    title: str,
    text: str,
    *,
    source: str = "Yonhap",
    at: datetime = T0,
):
    """Store one article and assign its story in one transaction, as the pipeline does."""
    with session_scope(engine) as session:
        article_id = store(session, title, text, source=source, at=at)
        assignment = clusterer.assign(
            session, article_id=article_id, title=title, text=text, created_at=at
        )
    return article_id, assignment


def story_of(engine: Engine, article_id: int) -> int | None:
    with session_scope(engine) as session:
        article = session.get(Article, article_id)
        assert article is not None
        return article.story_id


# -- clustering ------------------------------------------------------------------------------


def test_five_copies_of_one_wire_story_are_one_story(database_url: str) -> None:
    engine = engine_for(database_url)
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    results = [
        add(clusterer, engine, title, text, source=source, at=T0 + timedelta(hours=i))
        for i, (title, text, source) in enumerate(copies(WIRE, 5))
    ]
    story_ids = {assignment.story_id for _, assignment in results}
    assert len(story_ids) == 1
    assert [assignment.is_new for _, assignment in results] == [True, False, False, False, False]
    first_id = results[0][0]
    assert all(a.similar_article_id is not None for _, a in results[1:])
    with session_scope(engine) as session:
        story = session.get(Story, story_ids.pop())
        assert story is not None
        assert (story.article_count, story.first_article_id, story.title) == (
            5,
            first_id,
            WIRE["title"],
        )
        assert story.updated_at == T0 + timedelta(hours=4)
        stored = session.exec(select(ArticleSignature)).all()
        assert {row.story_id for row in stored} == {story.id}
        assert {story_of(engine, article_id) for article_id, _ in results} == {story.id}
    # A different GSOMIA story the same day (Washington's reaction) is a story of its own.
    other = BASES["gsomia_us_reaction"]
    _, assignment = add(
        clusterer, engine, other["title"], other["text"], at=T0 + timedelta(hours=5)
    )
    assert assignment.is_new and assignment.story_id != results[0][1].story_id
    engine.dispose()


def test_unrelated_article_starts_a_new_story(engine: Engine) -> None:
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    _, first = add(clusterer, engine, WIRE["title"], WIRE["text"])
    typhoon = BASES["typhoon_khanun"]
    _, second = add(clusterer, engine, typhoon["title"], typhoon["text"])
    assert second.is_new and second.similar_article_id is None
    assert second.story_id != first.story_id


def test_a_restarted_clusterer_still_finds_the_story(engine: Engine) -> None:
    first_id, first = add(
        StoryClusterer(StoriesSettings(), refresh_seconds=0), engine, WIRE["title"], WIRE["text"]
    )
    title, text, source = copies(WIRE, 2)[1]
    restarted = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    _, again = add(restarted, engine, title, text, source=source, at=T0 + timedelta(hours=2))
    assert (again.story_id, again.is_new, again.similar_article_id) == (
        first.story_id,
        False,
        first_id,
    )


def test_articles_older_than_the_window_do_not_attract_new_ones(engine: Engine) -> None:
    clusterer = StoryClusterer(StoriesSettings(window_days=7), refresh_seconds=0)
    _, first = add(clusterer, engine, WIRE["title"], WIRE["text"])
    title, text, _ = copies(WIRE, 2)[1]
    _, late = add(clusterer, engine, title, text, at=T0 + timedelta(days=7, hours=1))
    assert late.is_new and late.story_id != first.story_id
    # …and a clusterer started later never loads the expired signature at all.
    fresh = StoryClusterer(StoriesSettings(window_days=1), refresh_seconds=0)
    _, later = add(fresh, engine, title, text, at=T0 + timedelta(days=9))
    assert later.is_new
    assert len(fresh.index) == 1  # only its own article: the others are outside one day


def test_a_second_worker_sees_rows_the_first_stored(database_url: str) -> None:
    """Two clusterers on one database, as two `watcher run` processes on PostgreSQL."""
    engine = engine_for(database_url)
    worker_a, worker_b = (
        StoryClusterer(StoriesSettings(), refresh_seconds=0),
        StoryClusterer(StoriesSettings(), refresh_seconds=0),
    )
    typhoon = BASES["typhoon_khanun"]
    add(worker_b, engine, typhoon["title"], typhoon["text"])  # B has loaded its index already
    first_id, first = add(worker_a, engine, WIRE["title"], WIRE["text"])
    title, text, source = copies(WIRE, 2)[1]
    _, second = add(worker_b, engine, title, text, source=source, at=T0 + timedelta(hours=1))
    assert (second.story_id, second.similar_article_id) == (first.story_id, first_id)
    engine.dispose()


def test_refresh_catches_an_id_that_commits_after_a_higher_one(engine: Engine) -> None:
    """On PostgreSQL ids are handed out before commit, so a lower id can appear later."""
    worker_a, worker_b = (
        StoryClusterer(StoriesSettings(), refresh_seconds=0),
        StoryClusterer(StoriesSettings(), refresh_seconds=0),
    )
    bok = BASES["bok_rate"]
    add(worker_b, engine, bok["title"], bok["text"])
    with session_scope(engine) as session:
        late_id = store(session, WIRE["title"], WIRE["text"])  # id reserved, story comes later
        typhoon = BASES["typhoon_khanun"]
        early_id = store(session, typhoon["title"], typhoon["text"])
        worker_a.assign(
            session,
            article_id=early_id,
            title=typhoon["title"],
            text=typhoon["text"],
            created_at=T0,
        )
    with session_scope(engine) as session:
        worker_b.refresh(session, T0)
    assert early_id in worker_b.index and late_id not in worker_b.index
    with session_scope(engine) as session:  # the lower id's signature is committed only now
        worker_a.assign(
            session, article_id=late_id, title=WIRE["title"], text=WIRE["text"], created_at=T0
        )
    title, text, _ = copies(WIRE, 3)[2]
    _, copy = add(worker_b, engine, title, text, at=T0 + timedelta(hours=1))
    assert copy.similar_article_id == late_id and not copy.is_new


def test_a_rolled_back_story_is_not_joined(engine: Engine) -> None:
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        article_id = store(session, WIRE["title"], WIRE["text"])
        clusterer.assign(
            session, article_id=article_id, title=WIRE["title"], text=WIRE["text"], created_at=T0
        )
        raise RuntimeError("the pipeline failed after assigning")
    title, text, _ = copies(WIRE, 2)[1]
    article_id, assignment = add(clusterer, engine, title, text, at=T0 + timedelta(hours=1))
    assert assignment.is_new
    with session_scope(engine) as session:
        story = session.get(Story, assignment.story_id)
        assert story is not None and story.first_article_id == article_id


def test_summary_only_and_headline_only_entries_join_recent_stories(engine: Engine) -> None:
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    _, full = add(clusterer, engine, WIRE["title"], WIRE["text"])
    lead = WIRE["text"].split("\n\n")[0]
    _, summary = add(clusterer, engine, WIRE["alt_title"], lead[:180] + " […]", at=T0)
    assert summary.story_id == full.story_id
    _, headline = add(clusterer, engine, "[Update] " + WIRE["title"], "", at=T0)
    assert headline.story_id == full.story_id
    # A bare headline three days later is too little evidence: a new story.
    _, late = add(clusterer, engine, WIRE["title"], "", at=T0 + timedelta(days=3))
    assert late.is_new


def test_korean_and_japanese_copies_cluster_but_translations_do_not(engine: Engine) -> None:
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    english = add(clusterer, engine, WIRE["title"], WIRE["text"])[1]
    stories = []
    for key in ("ko_gsomia_suspend", "ja_gsomia_suspend"):
        base = BASES[key]
        for title, text, _ in copies(base, 3):
            stories.append(add(clusterer, engine, title, text, at=T0 + timedelta(hours=1))[1])
    ko, ja = {a.story_id for a in stories[:3]}, {a.story_id for a in stories[3:]}
    assert len(ko) == 1 and len(ja) == 1
    assert len(ko | ja | {english.story_id}) == 3


# -- edits -----------------------------------------------------------------------------------


def test_update_keeps_the_story_and_refreshes_the_signature(engine: Engine) -> None:
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    article_id, first = add(clusterer, engine, WIRE["title"], WIRE["text"])
    edited = WIRE["text"].replace("six hours", "about six hours") + "\n\n" + WIRE["update"]
    with session_scope(engine) as session:
        before = session.get(ArticleSignature, article_id)
        assert before is not None
        old_bytes = before.signature
        clusterer.update(
            session, article_id=article_id, title="(LEAD) " + WIRE["title"], text=edited
        )
    with session_scope(engine) as session:
        after = session.get(ArticleSignature, article_id)
        story = session.get(Story, first.story_id)
        assert after is not None and story is not None
        assert after.story_id == first.story_id and after.signature != old_bytes
        assert story.article_count == 1  # an edit is not another article
        refreshed = Signature.from_bytes(after.signature, after.title_key)
        assert refreshed is not None
        assert refreshed.body.tolist() == signature(WIRE["title"], edited).body.tolist()
    assert story_of(engine, article_id) == first.story_id
    assert len(clusterer.index) == 1


def test_update_of_an_article_without_a_story_assigns_one(engine: Engine) -> None:
    with session_scope(engine) as session:
        article_id = store(session, WIRE["title"], WIRE["text"])
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    with session_scope(engine) as session:
        clusterer.update(session, article_id=article_id, title=WIRE["title"], text=WIRE["text"])
    assert story_of(engine, article_id) is not None


def test_describe_change_says_what_changed() -> None:
    old = "First paragraph.\n\nSecond paragraph says 3 people died.\n\nThird."
    new = (
        "First paragraph.\n\nSecond paragraph says 5 people died.\n\nThird.\n\n"
        "Police said on Monday the driver was arrested. More details later."
    )
    summary = describe_change("Crash kills 3", old, "Crash kills 5", new)
    assert summary == (
        "title changed: 'Crash kills 3' → 'Crash kills 5'; "
        "1 paragraph added: “Police said on Monday the driver was arrested.”; "
        "1 paragraph changed ('3' → '5')"
    )


def test_describe_change_counts_paragraphs_and_stays_short() -> None:
    paragraphs = WIRE["text"].strip().split("\n\n")
    new = "\n\n".join([*paragraphs[:2], WIRE["update"], WIRE["local"], *paragraphs[2:-1]])
    summary = describe_change(WIRE["title"], WIRE["text"], WIRE["title"], new)
    assert summary.startswith("2 paragraphs added: “Japanese Foreign Minister Toshimitsu Motegi")
    assert summary.endswith("1 paragraph removed")
    long_title = "x" * 500
    assert len(describe_change("a", "b", long_title, "c " * 400)) <= 300


def test_describe_change_on_single_block_texts_and_no_change() -> None:
    old = "North Korea fired a missile. It flew 300 km."
    new = "North Korea fired a missile. It flew 350 km. Japan protested."
    assert describe_change("t", old, "t", new) == (
        "1 sentence added: “Japan protested.”; 1 sentence changed ('300' → '350')"
    )
    assert describe_change("t", old, "t", old) == "no visible change"
    assert describe_change("t", old, "t", old.replace(" ", "  ")) == "no visible change"


# -- signatures ------------------------------------------------------------------------------


def test_signature_bytes_round_trip_and_foreign_rows_are_ignored() -> None:
    sig = signature(WIRE["title"], WIRE["text"])
    back = Signature.from_bytes(sig.to_bytes(), sig.title_key)
    assert back is not None
    assert (back.body.tolist(), back.lead.tolist(), back.n_body, back.n_lead, back.is_long) == (
        sig.body.tolist(),
        sig.lead.tolist(),
        sig.n_body,
        sig.n_lead,
        sig.is_long,
    )
    assert Signature.from_bytes(b"\x00" * 12, "") is None
    assert Signature.from_bytes(b"XXXX" + sig.to_bytes()[4:], "") is None


def test_title_key_drops_outlet_markers() -> None:
    from watcher.story_signature import title_key

    assert title_key("(LEAD) S. Korea suspends GSOMIA expiry") == "s korea suspends gsomia expiry"
    assert title_key("UPDATE 2-S. Korea suspends GSOMIA expiry") == "s korea suspends gsomia expiry"
    assert title_key("[속보] 北, 동해상으로 탄도미사일 발사") == title_key(
        "北, 동해상으로 탄도미사일 발사"
    )
    assert title_key("【速報】北朝鮮が弾道ミサイル発射（更新）") == title_key(
        "北朝鮮が弾道ミサイル発射"
    )


# -- the command -----------------------------------------------------------------------------


def test_watcher_stories_lists_stories_with_their_articles(
    settings: Settings, engine: Engine
) -> None:
    clusterer = StoryClusterer(StoriesSettings(), refresh_seconds=0)
    now = datetime.now(UTC)
    for i, (title, text, source) in enumerate(copies(WIRE, 3)):
        add(clusterer, engine, title, text, source=source, at=now - timedelta(hours=3 - i))
    typhoon = BASES["typhoon_khanun"]
    add(clusterer, engine, typhoon["title"], typhoon["text"], source="NHK World", at=now)
    old = BASES["bok_rate"]
    add(clusterer, engine, old["title"], old["text"], at=now - timedelta(days=3))
    runner = CliRunner()
    result = runner.invoke(stories_app, ["--json"], obj={"settings": settings})
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [story["title"] for story in listed] == [typhoon["title"], WIRE["title"]]
    wire = listed[1]
    assert (wire["article_count"], wire["outlet_count"]) == (3, 3)
    assert wire["outlets"] == sorted(OUTLETS[:3])
    assert [a["source"] for a in wire["articles"]] == OUTLETS[:3]
    assert all(a["url"].startswith("https://news.example/") for a in wire["articles"])
    week = json.loads(
        runner.invoke(stories_app, ["--json", "--since", "7d"], obj={"settings": settings}).stdout
    )
    assert len(week) == 3
    table = runner.invoke(stories_app, ["--since", "24h"], obj={"settings": settings})
    assert table.exit_code == 0 and "  3 articles, 3 outlets · first seen" in table.output
    assert f"The Korea Times: (LEAD) {WIRE['title'][:30]}" in table.output
    bad = runner.invoke(stories_app, ["--since", "yesterday"], obj={"settings": settings})
    assert bad.exit_code == 2 and "not a duration" in bad.output


# -- the in-memory index -----------------------------------------------------------------------


def random_signature(rng: np.random.Generator) -> Signature:
    body = rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32)
    lead = rng.integers(0, 2**32, LEAD_PERM, dtype=np.uint64).astype(np.uint32)
    return Signature(body, lead, 300, 45, "", True)


def test_index_grows_merges_and_compacts() -> None:
    rng = np.random.default_rng(1)
    index = StoryIndex(timedelta(days=7), 0.5)
    sigs = [random_signature(rng) for _ in range(5000)]  # > capacity, > MERGE_AT
    for number, sig in enumerate(sigs, start=1):
        index.add(number, number, T0, sig)
    assert len(index) == 5000
    for number in (1, 2048, 2049, 5000):
        found = index.best(sigs[number - 1], T0)
        assert found is not None and (found.article_id, found.score) == (number, 1.0)
    for number in range(1, 4501):  # the 4096th removal compacts the slots
        index.remove(number)
    assert len(index) == 500 and index.size == 5000 - 4096
    assert index.best(sigs[0], T0) is None
    found = index.best(sigs[4999], T0)
    assert found is not None and found.article_id == 5000


def test_index_forgets_articles_older_than_the_window() -> None:
    rng = np.random.default_rng(2)
    index = StoryIndex(timedelta(days=7), 0.5)
    old, recent = random_signature(rng), random_signature(rng)
    index.add(1, 1, T0, old)
    index.add(2, 2, T0 + timedelta(days=3), recent)
    assert index.expire(T0 + timedelta(days=7, hours=12)) == 1
    assert 1 not in index and 2 in index
    assert index.best(old, T0 + timedelta(days=7, hours=12)) is None


@pytest.mark.parametrize("size", [0, 1, 7, 400, 5000])
def test_our_minhash_gives_datasketchs_values(size: int) -> None:
    """Signatures stored by earlier versions (datasketch affine32, seed 1) must stay comparable."""
    datasketch = pytest.importorskip("datasketch", minversion="2.0")
    from watcher.story_signature import minhash

    rng = np.random.default_rng(size)
    hashes = np.unique(rng.integers(0, 2**32, size, dtype=np.uint64).astype(np.uint32))
    reference = datasketch.MinHash(num_perm=NUM_PERM, seed=1, hashfunc=int)
    if size:
        reference.update_batch(hashes.tolist())
    assert minhash(hashes, NUM_PERM).tolist() == reference.hashvalues.tolist()


def test_signatures_count_distinct_shingles_and_ignore_repeats() -> None:
    """A sketch is computed over the shingles as they come (repeats included) and the sizes
    counted without building the set: both must be what the set gives."""
    from watcher.story_signature import WORD_SHINGLE, minhash, rolling_hashes, tokens

    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**32, 400, dtype=np.uint64).astype(np.uint32)
    repeated = np.concatenate([hashes, hashes[::3], hashes[:7]])
    assert np.array_equal(minhash(repeated, NUM_PERM), minhash(np.unique(hashes), NUM_PERM))
    text = " ".join(["the talks resumed in Seoul"] * 30 + [f"word{n}" for n in range(300)])
    sig = signature("Talks", text)
    shingles = np.unique(rolling_hashes(tokens(text), WORD_SHINGLE))
    assert sig.n_body == len(shingles) < len(tokens(text))
    assert np.array_equal(sig.body, minhash(shingles, NUM_PERM))


def test_band_keys_computed_in_a_worker_change_nothing() -> None:
    """The CPU pool precomputes each signature's LSH band keys; an index fed those must find
    exactly what one computing them itself finds."""
    from watcher.story_index import with_band_keys

    at = datetime(2026, 11, 21, tzinfo=UTC)
    import random

    rng = random.Random(7)
    words = [f"w{rng.randrange(5000)}" for _ in range(3000)]
    texts = []  # 40 texts from 8 stories: each story's copies differ by a few words
    for n in range(40):
        start = (n % 8) * 300
        copy = words[start : start + 300]
        copy[n % 50] = f"edit{n}"
        texts.append((f"Story {n}", " ".join(copy)))
    plain, ahead = StoryIndex(timedelta(days=7), 0.6), StoryIndex(timedelta(days=7), 0.6)
    for n, (title, text) in enumerate(texts):
        sig = signature(title, text)
        keyed = with_band_keys(sig)
        assert keyed.body_keys is not None
        assert np.array_equal(keyed.body_keys, plain.body_bands.band_keys(sig.body))
        assert plain.best(sig, at) == ahead.best(keyed, at)
        plain.add(n, n, at, sig)
        ahead.add(n, n, at, keyed)
    assert plain.best(sig, at) is not None  # the texts do cluster: the comparison meant something


def _story_texts(count: int, stories: int, seed: int) -> list[tuple[str, str]]:
    """`count` texts from `stories` stories; copies of one story differ by a word or two."""
    import random

    rng = random.Random(seed)
    words = [f"w{rng.randrange(5000)}" for _ in range(stories * 300)]
    texts = []
    for n in range(count):
        start = rng.randrange(stories) * 300
        copy = words[start : start + (300 if n % 3 else 40)]  # a third are short: leads only
        copy[n % len(copy)] = f"edit{n}"
        texts.append((f"Story {n}", " ".join(copy)))
    return texts


@pytest.mark.parametrize("merge_at", [7, 2048])
def test_a_batch_lookahead_finds_what_lookups_one_at_a_time_find(
    merge_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feed's articles look up their band hits together; each must still find what a lookup of
    its own finds, including articles of its own batch added just before it and across merges
    of the pending entries (merge_at=7: several merges inside one batch)."""
    from watcher import story_index
    from watcher.story_index import with_band_keys

    monkeypatch.setattr(story_index, "MERGE_AT", merge_at)
    at = datetime(2026, 11, 21, tzinfo=UTC)
    sigs = [with_band_keys(signature(t, x)) for t, x in _story_texts(300, 12, seed=3)]
    alone, batched = StoryIndex(timedelta(days=7), 0.6), StoryIndex(timedelta(days=7), 0.6)
    joined = 0
    for start in range(0, len(sigs), 20):
        batch = sigs[start : start + 20]
        ahead = batched.lookahead(batch, [at] * len(batch))
        for n, (sig, lookahead) in enumerate(zip(batch, ahead, strict=True), start):
            expected = alone.best(sig, at)
            assert batched.best(sig, at, lookahead) == expected, n
            joined += expected is not None
            story = expected.story_id if expected else n
            alone.add(n, story, at, sig)
            batched.add(n, story, at, sig)
    assert joined > 200  # most copies found their story: the comparison meant something


def test_one_batch_starts_and_joins_its_own_stories(database_url: str) -> None:
    """A feed's new articles are placed in one batch and its new Story rows written together:
    copies inside the batch join the story the first one started, with real ids everywhere."""
    from watcher.stories import NewArticle

    engine = engine_for(database_url)
    clusterer = StoryClusterer(StoriesSettings())
    wire = copies(WIRE, 3)
    other = next(base for key, base in BASES.items() if key != "gsomia_suspend")
    texts = [*wire, (other["title"], other["text"], "Kyodo News")]
    with session_scope(engine) as session:
        items = [
            NewArticle(store(session, t, x, source=s), t, T0, signature(t, x)) for t, x, s in texts
        ]
        assignments = clusterer.assign_many(session, items)
    wire_story = assignments[0].story_id
    assert wire_story > 0 and [a.story_id for a in assignments[:3]] == [wire_story] * 3
    assert [a.is_new for a in assignments] == [True, False, False, True]
    assert assignments[3].story_id not in (wire_story, 0) and assignments[3].story_id > 0
    with session_scope(engine) as session:
        counts = {s.id: s.article_count for s in session.exec(select(Story))}
        assert counts == {wire_story: 3, assignments[3].story_id: 1}
        assert [session.get(Article, i.article_id).story_id for i in items] == [
            a.story_id for a in assignments
        ]
    title, text, source = copies(WIRE, 5)[4]  # a later copy finds the story by its real id
    _, later = add(clusterer, engine, title, text, source=source)
    assert later.story_id == wire_story and not later.is_new
    engine.dispose()


def test_a_failed_batch_leaves_no_placeholder_in_the_index(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing a batch's stories fails (the transaction rolls back), the articles it indexed
    under placeholder ids are forgotten: the next batch must not join a story that never was."""
    from watcher.db import stories as story_db
    from watcher.stories import NewArticle

    clusterer = StoryClusterer(StoriesSettings())
    title, text, source = copies(WIRE, 1)[0]

    def refuse(session: Session, rows: Any) -> list[int]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(story_db, "new_stories", refuse)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        item = NewArticle(
            store(session, title, text, source=source), title, T0, signature(title, text)
        )
        clusterer.assign_many(session, [item])
    assert len(clusterer.index) == 0
    monkeypatch.undo()
    article_id, assignment = add(clusterer, engine, title, text, source=source)
    assert assignment.is_new and assignment.story_id > 0
    assert story_of(engine, article_id) == assignment.story_id


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=400))
@hypothesis_settings(max_examples=300, deadline=None)
def test_ascii_text_hashes_as_bytes_to_the_same_shingles(text: str) -> None:
    """ASCII text is tokenised and hashed as bytes (no encoding per word); its shingle hashes,
    hence stored signatures, must be exactly those of the str path."""
    from watcher.story_signature import WORD_SHINGLE, _hash_tokens, rolling_hashes, tokens

    as_bytes = _hash_tokens(text)
    assert [word.decode() for word in as_bytes] == tokens(text)  # type: ignore[union-attr]
    assert np.array_equal(
        rolling_hashes(as_bytes, WORD_SHINGLE), rolling_hashes(tokens(text), WORD_SHINGLE)
    )
