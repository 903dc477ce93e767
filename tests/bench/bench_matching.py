"""Benchmark: the query engine against the one-rule-at-a-time reference evaluator.

Run:  python -m tests.bench.bench_matching            (10,000 and 100,000 rules)
      python -m tests.bench.bench_matching --quick    (smaller, for a smoke run)
      python -m tests.bench.bench_matching --json     (machine-readable)

Analyst-style rules (OR lists of names, phrases, AND/NEAR combinations, Korean and Japanese
terms) are matched against generated ~5 KB articles (one in five Korean or Japanese) on one core.
The baseline is `reference_match` called for every rule on every article, measured in the same
run on a few articles, so the ratio does not depend on the machine. Targets: ≥ 3,000 articles/s
with 10,000 rules, ≥ 500× the baseline, ≥ 1,000 articles/s with 100,000 rules.
Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests` and `watcher` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._rulegen import BenchWorld, analyst_rules, bench_articles
from watcher.cpu import tune_gc
from watcher.query import CompiledRule, Engine, parse, reference_match


def _rss() -> int:
    """Resident set size in bytes (Linux /proc; psutil when available)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def calibration() -> float:
    """Microseconds for a fixed pure-Python loop, to compare machines (about 5 on a 2023 laptop)."""
    best = float("inf")
    for _ in range(50):
        started = time.process_time()
        sum(range(1000))
        best = min(best, time.process_time() - started)
    return round(best * 1e6, 2)


def run(
    n_rules: int,
    n_articles: int,
    baseline_articles: int = 2,
    seed: int = 7,
    scale: int = 0,
    freeze: bool = False,
) -> dict:
    """Build an engine over `n_rules` generated rules and match `n_articles` articles.

    `freeze`: call gc.freeze() after building, so the cyclic GC stops traversing the rules'
    hundreds of thousands of long-lived objects at every full collection.

    The garbage collector is set as the daemon sets it (`watcher.cpu.tune_gc`).
    Rates are per second of CPU time of this single thread (the machine may be shared; wall-clock
    rates are given too), measured on a second pass over the articles (steady state; the first
    pass, which also compiles rules on first use, is articles_per_s_cold).
    Returns: articles_per_s, articles_per_s_wall, articles_per_s_cold, baseline_articles_per_s
    (0 when baseline_articles=0), ratio, build_s, parse_s, engine_mb (RSS growth while
    building), engine_mb_after (after matching: compiled rules too), matches_per_article,
    candidates_per_article, anchors, unanchored, calibration_us, gc_freeze.
    """
    threshold = gc.get_threshold()
    tune_gc()  # as the daemon runs (watcher.cpu.GC_YOUNG_THRESHOLD)
    try:
        return _run(n_rules, n_articles, baseline_articles, seed, scale, freeze)
    finally:
        gc.set_threshold(*threshold)


def _run(
    n_rules: int, n_articles: int, baseline_articles: int, seed: int, scale: int, freeze: bool
) -> dict:
    world = BenchWorld(seed, scale or max(1, n_rules // 10_000))
    queries = analyst_rules(world, n_rules, seed=seed + 4)
    started = time.process_time()
    rules = [CompiledRule(f"r{i}", parse(q)) for i, q in enumerate(queries)]
    parse_s = time.process_time() - started
    articles = bench_articles(world, max(n_articles, baseline_articles) + 3, seed=seed + 6)

    gc.collect()
    rss_before = _rss()
    started = time.process_time()
    engine = Engine(rules)
    build_s = time.process_time() - started
    gc.collect()
    engine_mb = (_rss() - rss_before) / 2**20
    if freeze:  # what a daemon can do once its rules are loaded: the GC stops rescanning them
        gc.freeze()

    for item in articles[-3:]:  # warm what is built once per process (folding tables)
        engine.match(item)
    # first pass: a fresh engine compiles each sub-query the first time it is a candidate
    cold_started = time.process_time()
    for item in articles[:n_articles]:
        engine.match(item)
    cold = time.process_time() - cold_started
    # second pass: steady state, as in a daemon that has been running for a while
    matches = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for item in articles[:n_articles]:
        matches += len(engine.match(item))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    gc.collect()
    compiled_mb = (_rss() - rss_before) / 2**20  # + closures of every rule compiled so far
    sample = articles[: min(n_articles, 50)]
    candidates = sum(len(engine.candidates(engine.index(item))) for item in sample)

    baseline_rate = 0.0
    if baseline_articles:
        started = time.process_time()
        for item in articles[:baseline_articles]:
            for compiled in rules:
                reference_match(compiled, item)
        baseline_rate = baseline_articles / (time.process_time() - started)
    if freeze:
        gc.unfreeze()
    rate = n_articles / cpu
    return {
        "rules": n_rules,
        "articles": n_articles,
        "articles_per_s": round(rate, 1),
        "articles_per_s_wall": round(n_articles / wall, 1),
        "articles_per_s_cold": round(n_articles / cold, 1),
        "baseline_articles_per_s": round(baseline_rate, 4),
        "ratio": round(rate / baseline_rate, 1) if baseline_rate else None,
        "build_s": round(build_s, 2),
        "parse_s": round(parse_s, 2),
        "engine_mb": round(engine_mb, 1),
        "engine_mb_after": round(compiled_mb, 1),
        "matches_per_article": round(matches / n_articles, 2),
        "candidates_per_article": round(candidates / len(sample), 1),
        "anchors": engine.anchor_count,
        "unanchored": len(engine.unanchored),
        "article_bytes": round(sum(len(a.text.encode()) for a in articles) / len(articles)),
        "calibration_us": calibration(),
        "gc_freeze": freeze,
        "gc_threshold": list(gc.get_threshold()),
    }


def _print(name: str, figures: dict) -> None:
    print(
        f"{name}: {figures['rules']:,} rules, {figures['articles']} articles "
        f"of ~{figures['article_bytes']:,} bytes"
    )
    print(
        f"  engine     {figures['articles_per_s']:>10,.0f} articles/s of CPU time "
        f"({figures['articles_per_s_wall']:,.0f}/s wall clock)"
    )
    print(
        f"  first pass {figures['articles_per_s_cold']:>10,.0f} articles/s (a fresh engine "
        "compiles each rule the first time it is a candidate)"
    )
    if figures["ratio"]:
        print(
            f"  baseline   {figures['baseline_articles_per_s']:>10,.3f} articles/s "
            "(reference_match over every rule)"
        )
        print(f"  ratio      {figures['ratio']:>10,.0f}×")
    print(f"  build      {figures['build_s']:>10.2f} s (parsing: {figures['parse_s']:.2f} s)")
    print(
        f"  memory     {figures['engine_mb']:>10.1f} MB (RSS growth while building; "
        f"{figures['engine_mb_after']:.1f} MB after the passes, with the rules compiled so far)"
    )
    print(
        f"  per article: {figures['matches_per_article']} matches, "
        f"{figures['candidates_per_article']} candidate sub-queries; "
        f"{figures['anchors']:,} anchors, {figures['unanchored']} unanchored rules"
    )
    freeze = ", gc.freeze() after the build" if figures["gc_freeze"] else ""
    print(f"  machine    sum(range(1000)) takes {figures['calibration_us']} µs{freeze}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 / 10,000 rules, fewer articles")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rules", type=int, help="one run with this many rules")
    parser.add_argument("--articles", type=int, default=200, help="articles for --rules")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the build")
    args = parser.parse_args(argv)
    small, large = (1_000, 10_000) if args.quick else (10_000, 100_000)
    articles = 200 if args.quick else 1_000
    if args.rules:
        results = {"run": run(args.rules, args.articles, 1, freeze=args.freeze)}
    else:
        results = {
            "small": run(small, articles, 2, freeze=args.freeze),
            "large": run(large, articles // 2, 0, freeze=args.freeze),
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            _print(name, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
