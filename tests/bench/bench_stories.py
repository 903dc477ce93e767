"""Story assignment benchmark: new articles against 100,000 stored ones in the window.

    .venv/bin/python tests/bench/bench_stories.py [--stored 100000] [--new 1000] [--no-db]

Pinned to one core. Measures (1) the in-memory path — signature, lookup, insert — per new
article; (2) `StoryClusterer.assign` on SQLite with the stored articles in the database
(refresh query, Story/ArticleSignature rows, flush); (3) memory of the index; and, as the baseline
measured in the same run, datasketch's MinHashLSH with the same bands over a sample of the same
signatures (its memory is extrapolated to n_stored). Half of the new articles are edited copies of
stored ones (they must find their story), half are new (they must not).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from watcher.config import Settings, StoriesSettings
from watcher.db.engine import make_engine, session_scope
from watcher.db.models import Article, ArticleSignature, Story
from watcher.db.schema import ensure_schema
from watcher.stories import StoryClusterer
from watcher.story_index import BAND_ROWS, BODY_BANDS, StoryIndex
from watcher.story_signature import Signature, signature

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
WINDOW = timedelta(days=StoriesSettings().window_days)


class Corpus:
    """Synthetic news-like texts: Zipf-distributed words, 150–600 words, a headline each."""

    def __init__(self, seed: int = 7, vocabulary: int = 40_000) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = self.rng.integers(2, 11, vocabulary)
        self.words = ["".join(self.rng.choice(letters, n)) for n in lengths]
        weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.05
        self.weights = weights / weights.sum()

    def text(self, n_words: int) -> str:
        ids = self.rng.choice(len(self.words), size=n_words, p=self.weights)
        return " ".join(self.words[i] for i in ids)

    def article(self) -> tuple[str, str]:
        return self.text(int(self.rng.integers(6, 14))), self.text(int(self.rng.integers(150, 600)))

    def edited(self, title: str, text: str) -> tuple[str, str]:
        """Another outlet's copy: new headline, new lead, a local paragraph, a trimmed ending."""
        words = text.split()
        cut = len(words) // 10
        kept = words[cut : len(words) - cut]
        return self.text(9), " ".join([self.text(cut), *kept, self.text(30)])


def pin_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"core {core}"


def stored_rows(corpus: Corpus, n: int) -> tuple[list[tuple[str, str]], list[Signature]]:
    articles = [corpus.article() for _ in range(n)]
    return articles, [signature(title, text) for title, text in articles]


def new_articles(
    corpus: Corpus, stored: list[tuple[str, str]], n: int
) -> list[tuple[str, str, int | None]]:
    """(title, text, index of the stored original or None), duplicates and new interleaved."""
    out: list[tuple[str, str, int | None]] = []
    for i in range(n):
        if i % 2 == 0:
            original = int(corpus.rng.integers(len(stored)))
            out.append((*corpus.edited(*stored[original]), original))
        else:
            out.append((*corpus.article(), None))
    return out


def created(i: int, n: int) -> datetime:
    return NOW - WINDOW * 0.9 + (WINDOW * 0.85) * (i / max(n, 1))


def bench_memory(sigs: list[Signature]) -> tuple[StoryIndex, dict[str, float]]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = StoryIndex(WINDOW, StoriesSettings().threshold)
    started = time.perf_counter()
    index.add_many([(i + 1, i + 1, created(i, len(sigs)), sig) for i, sig in enumerate(sigs)])
    build = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return index, {
        "index_build_s": build,
        "index_traced_mb": traced / 1e6,
        "index_arrays_mb": index.nbytes() / 1e6,
        "bytes_per_article": traced / max(len(sigs), 1),
    }


def timings(prefix: str, wall: list[float], cpu: list[float]) -> dict[str, float]:
    """Wall-clock p50/p99 and CPU time: on a busy machine the CPU time is the cost on one core
    (wall time then includes waiting for the core)."""
    return {
        f"{prefix}_cpu_ms_mean": statistics.fmean(cpu) * 1e3,
        f"{prefix}_ms_p50": statistics.median(wall) * 1e3,
        f"{prefix}_ms_p99": float(np.percentile(wall, 99)) * 1e3,
    }


def bench_memory_path(
    index: StoryIndex, fresh: list[tuple[str, str, int | None]], n_stored: int
) -> dict[str, float]:
    wall, cpu, hits, false_hits = [], [], 0, 0
    for i, (title, text, original) in enumerate(fresh):
        started, cpu_started = time.perf_counter(), time.process_time()
        sig = signature(title, text)
        found = index.best(sig, NOW)
        index.add(n_stored + i + 1, found.story_id if found else n_stored + i + 1, NOW, sig)
        cpu.append(time.process_time() - cpu_started)
        wall.append(time.perf_counter() - started)
        if original is not None:
            hits += found is not None and found.story_id == original + 1
        else:
            false_hits += found is not None
    duplicates = sum(1 for *_, original in fresh if original is not None)
    return timings("memory_path", wall, cpu) | {
        "duplicates_found": hits / max(duplicates, 1),
        "new_wrongly_joined": false_hits / max(len(fresh) - duplicates, 1),
    }


def bench_signature(fresh: list[tuple[str, str, int | None]]) -> dict[str, float]:
    started = time.process_time()
    for title, text, _ in fresh:
        signature(title, text)
    return {"signature_cpu_ms": (time.process_time() - started) / max(len(fresh), 1) * 1e3}


def fill_database(settings: Settings, sigs: list[Signature]) -> None:
    engine = make_engine(settings)
    ensure_schema(engine, auto_upgrade=True)
    n = len(sigs)
    with engine.begin() as connection:
        for start in range(0, n, 5000):
            chunk = range(start, min(n, start + 5000))
            when = [created(i, n) for i in chunk]
            connection.execute(
                Article.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "id": i + 1,
                        "url": f"https://x.example/{i}",
                        "title": "",
                        "summary": "",
                        "text": "",
                        "source": "bench",
                        "content_hash": "",
                        "text_method": "feed",
                        "version": 1,
                        "created_at": at,
                        "updated_at": at,
                        "story_id": i + 1,
                    }
                    for i, at in zip(chunk, when, strict=True)
                ],
            )
            connection.execute(
                Story.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "id": i + 1,
                        "first_article_id": i + 1,
                        "title": "",
                        "article_count": 1,
                        "created_at": at,
                        "updated_at": at,
                    }
                    for i, at in zip(chunk, when, strict=True)
                ],
            )
            connection.execute(
                ArticleSignature.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "article_id": i + 1,
                        "story_id": i + 1,
                        "signature": sigs[i].to_bytes(),
                        "title_key": sigs[i].title_key,
                        "created_at": at,
                    }
                    for i, at in zip(chunk, when, strict=True)
                ],
            )
    engine.dispose()


def bench_database(
    sigs: list[Signature], fresh: list[tuple[str, str, int | None]], batch: int = 50
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        started = time.perf_counter()
        fill_database(settings, sigs)
        filled = time.perf_counter() - started
        engine = make_engine(settings)
        clusterer = StoryClusterer(settings.stories)
        with session_scope(engine) as session:
            started = time.perf_counter()
            clusterer.refresh(session, NOW)
            load = time.perf_counter() - started
        wall, cpu = [], []
        for start in range(0, len(fresh), batch):
            with session_scope(engine) as session:  # one feed's worth per transaction
                for title, text, _ in fresh[start : start + batch]:
                    row = Article(url="", title=title, text=text, created_at=NOW, updated_at=NOW)
                    session.add(row)
                    session.flush()
                    assert row.id is not None
                    began, cpu_began = time.perf_counter(), time.process_time()
                    clusterer.assign(
                        session, article_id=row.id, title=title, text=text, created_at=NOW
                    )
                    cpu.append(time.process_time() - cpu_began)
                    wall.append(time.perf_counter() - began)
        engine.dispose()
    return timings("db_assign", wall, cpu) | {"db_fill_s": filled, "db_initial_load_s": load}


def bench_datasketch_lsh(sigs: list[Signature], n_stored: int) -> dict[str, float]:
    """Baseline: datasketch MinHashLSH, same 32 bands × 2 rows, on a sample of the signatures."""
    from datasketch import MinHash, MinHashLSH

    perms = BODY_BANDS * BAND_ROWS
    template = MinHash(num_perm=perms, seed=1, hashfunc=int)
    sketches = [
        MinHash(hashvalues=sig.body[:perms], permutations=template.permutations, scheme="affine32")
        for sig in sigs
    ]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    lsh = MinHashLSH(num_perm=perms, params=(BODY_BANDS, BAND_ROWS))
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch, check_duplication=False)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    started = time.perf_counter()
    for sketch in sketches[:1000]:
        lsh.query(sketch)
    query = (time.perf_counter() - started) / min(len(sketches), 1000)
    return {
        "lsh_sample": len(sigs),
        "lsh_bytes_per_article": traced / len(sigs),
        "lsh_mb_extrapolated": traced / len(sigs) * n_stored / 1e6,
        "lsh_query_ms": query * 1e3,
    }


def run(n_stored: int = 100_000, n_new: int = 1000, *, database: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"n_stored": n_stored, "n_new": n_new, "cpu": pin_one_core()}
    corpus = Corpus()
    started = time.perf_counter()
    stored, sigs = stored_rows(corpus, n_stored)
    result["corpus_s"] = time.perf_counter() - started
    fresh = new_articles(corpus, stored, n_new)
    result |= bench_signature(fresh)
    index, memory = bench_memory(sigs)
    result |= memory
    result |= bench_memory_path(index, fresh, n_stored)
    del index
    if database:
        result |= bench_database(sigs, fresh)
    result |= bench_datasketch_lsh(sigs[: min(n_stored, 20_000)], n_stored)
    result["rss_max_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def report(r: dict[str, Any]) -> str:
    ratio = r["lsh_bytes_per_article"] / r["bytes_per_article"]
    lines = [
        f"stories bench: {r['n_stored']:,} stored in the window, {r['n_new']:,} new "
        f"(half edited copies), {r['cpu']}",
        f"  signature alone            {r['signature_cpu_ms']:.3f} ms CPU per article",
        f"  assign, in memory          {r['memory_path_cpu_ms_mean']:.3f} ms CPU mean; wall "
        f"{r['memory_path_ms_p50']:.3f} p50, {r['memory_path_ms_p99']:.3f} p99 "
        "(signature + lookup + insert)",
    ]
    if "db_assign_cpu_ms_mean" in r:
        lines.append(
            f"  assign, SQLite             {r['db_assign_cpu_ms_mean']:.3f} ms CPU mean; wall "
            f"{r['db_assign_ms_p50']:.3f} p50, {r['db_assign_ms_p99']:.3f} p99 "
            f"(initial load of the window {r['db_initial_load_s']:.2f} s)"
        )
    lines += [
        f"  copies found               {r['duplicates_found']:.1%}; "
        f"new articles wrongly joined {r['new_wrongly_joined']:.1%}",
        f"  index memory               {r['index_traced_mb']:.1f} MB traced "
        f"({r['bytes_per_article']:.0f} B/article; arrays {r['index_arrays_mb']:.1f} MB), "
        f"built in {r['index_build_s']:.2f} s",
        f"  baseline MinHashLSH        {r['lsh_bytes_per_article']:.0f} B/article "
        f"(≈ {r['lsh_mb_extrapolated']:.0f} MB at {r['n_stored']:,}; measured on "
        f"{r['lsh_sample']:,}), query {r['lsh_query_ms']:.3f} ms",
        f"  ratio                      memory ÷{ratio:.1f} vs MinHashLSH",
        f"  process max RSS            {r['rss_max_mb']:.0f} MB",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--no-db", action="store_true", help="skip the SQLite leg")
    args = parser.parse_args()
    print(report(run(args.stored, args.new, database=not args.no_db)))


if __name__ == "__main__":
    main()
