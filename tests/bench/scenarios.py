"""The scenarios: each measures our figure and its baseline in the same run and returns rows.

Order matters and is fixed: the feed-level baselines (plain fetch loop, feedparser floor,
rss2email cold and warm) run before our passes, on the same unpublished feeds; our cold, warm and
extraction passes run in one fresh process (as a daemon would run them); the end-to-end scenario
runs in another fresh process on the same database, so its peak memory is its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.baselines import (
    Rss2Email,
    Timed,
    feedparser_floor,
    fetch_all,
    sequential_304,
    trafilatura_alone,
)
from tests.bench.feedserver import FeedServer
from tests.bench.memory import run_memory
from tests.bench.workspace import BenchWorkspace, run_json

SCENARIOS = ("cold", "warm", "extract", "matching", "e2e", "memory", "stories")


@dataclass(frozen=True)
class Sizes:
    feeds: int = 500
    warm_repeats: int = 3
    memory_feeds: int = 1000
    memory_items: int = 5  # items per feed in the memory scenario (keeps priming short)
    memory_rules: int = 10_000
    match_rules: tuple[int, ...] = (10_000, 100_000)
    match_articles: int = 1000
    stories_stored: int = 50_000  # 100,000 takes over two minutes on this machine
    stories_new: int = 500


FULL = Sizes()
QUICK = Sizes(
    feeds=40,
    warm_repeats=2,
    memory_feeds=60,
    memory_rules=1000,
    match_rules=(1000, 10_000),
    match_articles=200,
    stories_stored=5000,
    stories_new=200,
)
TINY = Sizes(  # the smoke test: proves the machinery, measures nothing worth reading
    feeds=5,
    warm_repeats=1,
    memory_feeds=5,
    memory_items=2,
    memory_rules=20,
    match_rules=(50,),
    match_articles=10,
    stories_stored=200,
    stories_new=20,
)


@dataclass
class Row:
    scenario: str  # short key: cold, warm, ...
    title: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: no target, or the baseline could not run
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    sizes: Sizes
    workdir: Path
    server: FeedServer
    rss2email: bool = True
    profile_dir: Path | None = None
    log: Callable[[str], None] = print
    facts: dict[str, Any] = field(default_factory=dict)  # server throughput, versions, ...


def _secs(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:,.0f}×"


# -- 1, 2, 3: cold, warm and extraction passes --------------------------------------------------


def feed_passes(ctx: Context, wanted: set[str]) -> list[Row]:
    n = ctx.sizes.feeds
    urls = ctx.server.feed_urls(n)
    ctx.log(f"plain fetch loop over {n} feeds (server throughput, and the floor's bytes)")
    server_cpu = ctx.server.cpu_seconds()
    fetched = fetch_all(urls)
    server_cpu = ctx.server.cpu_seconds() - server_cpu
    seq_304 = sequential_304(urls, fetched.etags)
    ctx.facts["server"] = {
        "concurrent_200_requests_per_s": round(fetched.requests_per_s),
        "concurrent_200_mb_per_s": round(fetched.wire_bytes / 2**20 / fetched.wall_s, 1),
        "server_busy_share": round(server_cpu / fetched.wall_s, 2),
        "sequential_304_requests_per_s": round(n / seq_304.wall_s),
        "feed_kb_mean": round(sum(map(len, fetched.bodies)) / n / 1024, 1),
    }
    floor = None
    if "cold" in wanted:
        ctx.log("feedparser floor (one core)")
        floor = feedparser_floor(fetched.bodies)
    r2e = _rss2email(ctx, urls) if wanted & {"cold", "warm"} else {}

    ctx.log(f"our passes over {n} feeds (fresh process)")
    space = BenchWorkspace.create(ctx.workdir / "passes", urls)
    steps: list[dict[str, Any]] = [{"kind": "poll", "name": "cold", "extract": False}]
    steps += [{"kind": "poll", "name": "warm"} for _ in range(ctx.sizes.warm_repeats)]
    if "extract" in wanted or "e2e" in wanted:
        steps += [
            {"kind": "publish", "params": {"count": 1, "feeds": n}},
            {"kind": "poll", "name": "extract", "extract": True},
        ]
    _profile(ctx, steps)
    server_cpu = ctx.server.cpu_seconds()
    ours = run_json(
        "tests.bench.passes",
        {"port": ctx.server.port, "settings": space.settings(), "steps": steps},
    )
    ctx.facts["server"]["cpu_during_our_passes_s"] = round(ctx.server.cpu_seconds() - server_cpu, 1)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for step in ours["steps"]:
        by_name.setdefault(step["name"], []).append(step)
    ctx.facts["passes"] = ours

    rows: list[Row] = []
    if "cold" in wanted:
        assert floor is not None
        rows += _cold_rows(by_name["cold"][0], floor, r2e, n)
    if "warm" in wanted:
        rows += _warm_rows(by_name["warm"], seq_304, r2e, n)
    if "extract" in wanted:
        rows.append(_extract_row(ctx, by_name["extract"][0], n))
    if "e2e" in wanted:
        rows.append(_e2e_row(ctx, space, n))
    return rows


def _profile(ctx: Context, steps: list[dict[str, Any]]) -> None:
    if ctx.profile_dir is None:
        return
    ctx.profile_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for step in steps:
        if step["kind"] != "publish" and step["name"] not in seen:
            step["profile"] = str(ctx.profile_dir / f"{step['name']}.txt")
            seen.add(step["name"])


def _rss2email(ctx: Context, urls: list[str]) -> dict[str, Any]:
    if not ctx.rss2email or not Rss2Email.available():
        return {"note": "rss2email not installed (python -m venv /tmp/r2e-venv && "
                "/tmp/r2e-venv/bin/pip install rss2email)"}  # fmt: skip
    ctx.log("rss2email cold and warm (r2e run --no-send)")
    r2e = Rss2Email(ctx.workdir / "r2e", urls)
    cold = r2e.run()
    warm = r2e.run()
    version = Rss2Email.version()
    ctx.facts["rss2email"] = {"version": version, "cold": asdict(cold), "warm": asdict(warm)}
    return {"cold": cold, "warm": warm}


def _pass_figures(step: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "wall_s",
        "cpu_main_s",
        "cpu_workers_s",
        "cores_used",
        "peak_main_mb",
        "peak_workers_mb",
    )
    return {k: round(step[k], 3) for k in keep} | {"summary": step.get("summary")}


def _cpu(step: dict[str, Any]) -> float:
    return step["cpu_main_s"] + step["cpu_workers_s"]


def _ours(step: dict[str, Any]) -> str:
    """Wall time, and CPU time of the daemon + its workers (less distorted on a busy machine)."""
    return (
        f"{_secs(step['wall_s'])} wall; CPU {step['cpu_main_s']:.1f} s + "
        f"{step['cpu_workers_s']:.1f} s workers ({step['cores_used']:.1f} cores)"
    )


def _versus_r2e(kind: str, step: dict[str, Any], r2e: dict[str, Any], n: int) -> Row:
    title = f"{kind} pass, {n} feeds — vs rss2email"
    if kind not in r2e:
        return Row(kind, title, _secs(step["wall_s"]), "—", "—", "≥ 4× faster", None,
                   note=r2e.get("note", ""))  # fmt: skip
    theirs: Timed = r2e[kind]
    speedup = theirs.wall_s / step["wall_s"]
    cpu_speedup = theirs.cpu_s / _cpu(step)
    return Row(
        kind,
        title,
        _secs(step["wall_s"]),
        f"{_secs(theirs.wall_s)} r2e run --no-send (CPU {theirs.cpu_s:.1f} s)",
        f"{_times(speedup)} faster (CPU: {_times(cpu_speedup)})",
        "≥ 4× faster",
        speedup >= 4,
        {"wall_s": step["wall_s"], "cpu_s": _cpu(step), "rss2email": asdict(theirs)},
    )


def _cold_rows(step: dict[str, Any], floor: Timed, r2e: dict[str, Any], n: int) -> list[Row]:
    ours = step["wall_s"]
    articles = step["summary"]["new_articles"]
    floor_row = Row(
        "cold",
        f"cold pass, {n} feeds ({articles:,} articles), no extraction — vs feedparser alone",
        _ours(step),
        f"{_secs(floor.wall_s)} feedparser.parse, {floor.where}",
        f"{ours / floor.wall_s:.2f}× the floor (CPU: {_cpu(step) / floor.cpu_s:.2f}×)",
        "≤ 1.5× the floor",
        ours <= 1.5 * floor.wall_s,
        _pass_figures(step) | {"floor": asdict(floor)},
    )
    return [floor_row, _versus_r2e("cold", step, r2e, n)]


def _warm_rows(
    steps: list[dict[str, Any]], seq_304: Timed, r2e: dict[str, Any], n: int
) -> list[Row]:
    walls = [s["wall_s"] for s in steps]
    middle = sorted(steps, key=lambda s: s["wall_s"])[len(steps) // 2]
    ours = middle["wall_s"]
    limit = 0.3 * n / 500
    loop_row = Row(
        "warm",
        f"warm pass, {n} feeds, all 304 — vs a sequential httpx loop (median of {len(walls)})",
        _ours(middle),
        f"{_secs(seq_304.wall_s)} httpx.Client loop (CPU {seq_304.cpu_s:.2f} s)",
        f"{seq_304.wall_s / ours:.1f}× faster",
        f"≤ {limit:.3g} s",
        ours <= limit,
        _pass_figures(middle) | {"walls_s": walls, "httpx_loop": asdict(seq_304)},
    )
    return [loop_row, _versus_r2e("warm", middle, r2e, n)]


def _extract_row(ctx: Context, step: dict[str, Any], n: int) -> Row:
    seq = ctx.server.per_feed  # the first published item of every feed
    pages_urls = [ctx.server.page_url(i, seq) for i in range(n)]
    ctx.log(f"trafilatura alone on the same {n} pages (one core)")
    pages = fetch_all(pages_urls)
    baseline = trafilatura_alone(list(zip(pages_urls, pages.bodies, strict=True)))
    ratio = step["wall_s"] / baseline.wall_s
    kb = sum(map(len, pages.bodies)) / len(pages.bodies) / 1024
    source = "real pages" if ctx.server.real_pages else "generated pages"
    return Row(
        "extract",
        f"extraction pass, {n} new articles ({source}, {kb:.0f} KB mean), feeds re-parsed",
        _ours(step),
        f"{_secs(baseline.wall_s)} trafilatura, {baseline.where}",
        f"{ratio:.2f}× trafilatura's time (CPU: {_cpu(step) / baseline.cpu_s:.2f}×)",
        "≤ 1.3×, both cores used",
        ratio <= 1.3 and step["cores_used"] >= 1.5,
        _pass_figures(step) | {"trafilatura": asdict(baseline), "page_kb_mean": round(kb, 1)},
    )


# -- 5: end to end ----------------------------------------------------------------------------


def _e2e_row(ctx: Context, space: BenchWorkspace, n: int) -> Row:
    ctx.log(f"end to end: 1 new item in each of {n} feeds → poll → match → digest (fresh process)")
    steps = [
        {"kind": "publish", "params": {"count": 1, "feeds": n}},
        {"kind": "e2e", "name": "e2e", "extract": True},
    ]
    _profile(ctx, steps)
    done = run_json(
        "tests.bench.passes",
        {"port": ctx.server.port, "settings": space.settings(), "steps": steps},
    )
    step = done["steps"][-1]
    summary = step["summary"]
    written = step.get("outbox_files", 0)
    return Row(
        "e2e",
        f"end to end: publish 1 item in {n} feeds → poll → match → digest written",
        f"{_secs(step['wall_s'])}; peak {step['peak_main_mb']:.0f} MB daemon + "
        f"{step['peak_workers_mb']:.0f} MB workers",
        f"{summary['new_articles']} new articles, {summary['matches']} matches, "
        f"{written} messages in the outbox",
        "—",
        "digest written",
        bool(written) and summary["new_articles"] == n,
        _pass_figures(step)
        | {
            "deliveries": step.get("deliveries"),
            "outbox_files": written,
            "prepare_s": done.get("prepare_s"),
        },
    )


# -- 4: matching, and stories ---------------------------------------------------------------------


def matching_rows(ctx: Context) -> list[Row]:
    rows = []
    for n_rules in ctx.sizes.match_rules:
        ctx.log(f"matching: {n_rules:,} rules (one core, fresh process)")
        articles = ctx.sizes.match_articles if n_rules <= 10_000 else ctx.sizes.match_articles // 2
        spec = {
            "target": "tests.bench.bench_matching:run",
            "kwargs": {"n_rules": n_rules, "n_articles": articles, "baseline_articles": 1},
            "one_core": True,
        }
        value = run_json("tests.bench.call", spec)["value"]
        rate, base = value["articles_per_s"], value["baseline_articles_per_s"]
        target = 3000 if n_rules <= 10_000 else 1000
        rows.append(
            Row(
                "matching",
                f"matching, {n_rules:,} rules, {value.get('article_bytes', 0) / 1000:.0f} KB "
                "articles, one core",
                f"{rate:,.0f} articles/s",
                f"{base:,.2f} articles/s one rule at a time",
                f"{_times(rate / base)}" if base else "—",
                f"≥ {target:,} articles/s",
                rate >= target,
                value,
            )
        )
    return rows


def _first(figures: dict[str, Any], *names: str) -> float:
    """The first figure present (bench_stories names its figures as it evolves)."""
    return next((float(figures[name]) for name in names if name in figures), 0.0)


def stories_row(ctx: Context) -> Row:
    stored, new = ctx.sizes.stories_stored, ctx.sizes.stories_new
    ctx.log(f"stories: {stored:,} stored, {new:,} new (one core, fresh process)")
    spec = {"target": "tests.bench.bench_stories:run", "args": [stored, new]}
    value = run_json("tests.bench.call", spec)["value"]
    assign = _first(value, "db_assign_cpu_ms_mean", "db_assign_ms_mean", "memory_path_ms_mean")
    index_mb = value.get("index_traced_mb", 0.0)
    lsh_mb = value.get("lsh_mb_extrapolated", 0.0)
    found = value.get("duplicates_found")
    return Row(
        "stories",
        f"stories: {new:,} new articles against {stored:,} stored",
        f"{assign:.2f} ms/article (SQLite); index {index_mb:.0f} MB",
        f"datasketch MinHashLSH ≈ {lsh_mb:.0f} MB, query {value.get('lsh_query_ms', 0):.2f} ms",
        f"memory ÷{lsh_mb / index_mb:.1f}" if index_mb else "—",
        "—",
        None,
        value,
        note=f"copies found {found:.0%}" if isinstance(found, float) else "",
    )


# -- 6: memory --------------------------------------------------------------------------------


def memory_row(ctx: Context) -> Row:
    n, rules = ctx.sizes.memory_feeds, ctx.sizes.memory_rules
    ctx.log(f"memory: a `watcher run` daemon with {n:,} feeds and {rules:,} generated rules")
    with FeedServer(n, per_feed=ctx.sizes.memory_items) as server:
        space = BenchWorkspace.create(ctx.workdir / "memory", server.feed_urls(), rules)
        value = run_memory(space, server.port, n)
    idle = value["idle_after_main_mb"]
    peak = value["pass_peak_main_mb"]
    return Row(
        "memory",
        f"daemon memory, {n:,} feeds + {rules:,} rules (watcher run)",
        f"idle {idle:.0f} MB, pass peak {peak:.0f} MB (main process)",
        f"workers: idle {value['idle_after_workers_mb']:.0f} MB, "
        f"pass peak {value['pass_peak_workers_mb']:.0f} MB",
        "—",
        "≤ 200 MB (main process)",
        peak <= 200 and value["exit_code"] == 0,
        value,
        note=f"{value['pass_new_articles']} new articles in the pass; "
        f"idle right after start {value['idle_start_main_mb']:.0f} MB",
    )


def run_scenarios(
    sizes: Sizes,
    only: set[str] | None = None,
    *,
    rss2email: bool = True,
    profile_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[Row], dict[str, Any]]:
    wanted = set(only or SCENARIOS)
    unknown = wanted - set(SCENARIOS)
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        workdir = Path(tmp)
        if wanted & {"cold", "warm", "extract", "e2e"}:
            log(f"starting the bench feed server ({sizes.feeds} feeds)")
            with FeedServer(sizes.feeds) as server:
                ctx = Context(sizes, workdir, server, rss2email, profile_dir, log)
                rows += feed_passes(ctx, wanted)
                facts = ctx.facts
        else:
            facts = {}
        ctx = Context(sizes, workdir, None, rss2email, profile_dir, log)  # type: ignore[arg-type]
        if "matching" in wanted:
            rows += matching_rows(ctx)
        if "stories" in wanted:
            rows.append(stories_row(ctx))
        if "memory" in wanted:
            rows.append(memory_row(ctx))
    return rows, facts
