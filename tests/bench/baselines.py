"""The baselines, measured in the same run on the same bytes: what a user would pick instead, and
what news-watcher's own parts allow.

- `fetch_all`: a plain concurrent httpx loop over every feed (how fast the bench server serves;
  it also collects the bytes the floor is measured on);
- `sequential_304`: a sequential httpx loop of conditional GETs (the warm-pass baseline);
- `feedparser_floor`: `feedparser.parse` alone on the same feed bytes, one core;
- `trafilatura_alone`: trafilatura alone on the same article pages, one core, with the options
  news-watcher uses;
- `Rss2Email`: rss2email's `r2e run --no-send` on the same feeds, from its own virtualenv
  (BENCH_R2E, default /tmp/r2e-venv/bin/r2e), or None when it is not installed.
"""

from __future__ import annotations

import asyncio
import io
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

R2E = Path(os.environ.get("BENCH_R2E", "/tmp/r2e-venv/bin/r2e"))


@contextmanager
def one_core() -> Iterator[str]:
    """Pin this process to one core for the block (Linux); says which, or that it could not."""
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned"
        return
    before = os.sched_getaffinity(0)
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield f"core {core}"
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Fetched:
    bodies: list[bytes] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    wire_bytes: int = 0

    @property
    def requests_per_s(self) -> float:
        return len(self.bodies) / self.wall_s if self.wall_s else 0.0


def fetch_all(urls: list[str], concurrency: int = 32) -> Fetched:
    """GET every URL, `concurrency` at a time (gzip accepted): bodies in order, wall time."""

    async def run() -> Fetched:
        result = Fetched(bodies=[b""] * len(urls), etags=[""] * len(urls))
        slots = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

            async def one(index: int) -> None:
                async with slots:
                    response = await client.get(urls[index])
                    response.raise_for_status()
                    result.bodies[index] = response.content
                    result.etags[index] = response.headers.get("etag", "")
                    result.wire_bytes += int(response.headers.get("content-length", 0))

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(len(urls))))
            result.wall_s = time.perf_counter() - started
        return result

    return asyncio.run(run())


@dataclass
class Timed:
    """Wall and CPU seconds of a baseline (CPU time is what a busy machine distorts least)."""

    wall_s: float
    cpu_s: float
    where: str = ""


def sequential_304(urls: list[str], etags: list[str]) -> Timed:
    """One conditional GET per feed, one after another on a keep-alive client."""
    with httpx.Client(trust_env=False) as client:
        client.get(urls[0], headers={"If-None-Match": etags[0]})  # connect outside the timing
        started, cpu = time.perf_counter(), time.process_time()
        for url, etag in zip(urls, etags, strict=True):
            response = client.get(url, headers={"If-None-Match": etag})
            if response.status_code != 304:
                raise RuntimeError(f"{url}: expected 304, got {response.status_code}")
        return Timed(time.perf_counter() - started, time.process_time() - cpu)


def feedparser_floor(bodies: list[bytes]) -> Timed:
    """`feedparser.parse` over every body on one core (the cold pass's floor)."""
    import feedparser

    feedparser.parse(io.BytesIO(bodies[0]))  # first-call set-up outside the timing
    with one_core() as where:
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            feedparser.parse(io.BytesIO(body))
        return Timed(time.perf_counter() - started, time.process_time() - cpu, where)


def trafilatura_alone(pages: list[tuple[str, bytes]]) -> Timed:
    """trafilatura over every page on one core, with watcher.extract's options."""
    from trafilatura import bare_extraction

    def extract(url: str, html: bytes) -> None:
        bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            favor_precision=True,
        )

    extract(*pages[0])  # first-call set-up outside the timing
    with one_core() as where:
        started, cpu = time.perf_counter(), time.process_time()
        for url, html in pages:
            extract(url, html)
        return Timed(time.perf_counter() - started, time.process_time() - cpu, where)


class Rss2Email:
    """rss2email 3 on the same feeds: `r2e run --no-send`, timed as a user's cron job runs it."""

    def __init__(self, workdir: Path, urls: list[str]) -> None:
        self.workdir = workdir
        self.config = workdir / "r2e.cfg"
        self.data = workdir / "r2e.json"
        workdir.mkdir(parents=True, exist_ok=True)
        sections = "".join(f"[feed.f{i}]\nurl = {url}\n\n" for i, url in enumerate(urls))
        self.config.write_text(f"[DEFAULT]\nto = bench@example.invalid\n\n{sections}")
        self.data.unlink(missing_ok=True)

    @staticmethod
    def available() -> bool:
        return R2E.is_file() and os.access(R2E, os.X_OK)

    @staticmethod
    def version() -> str | None:
        if not Rss2Email.available():
            return None
        done = subprocess.run([str(R2E), "--version"], capture_output=True, text=True)
        return (done.stdout or done.stderr).strip() or None

    def run(self) -> Timed:
        command = [str(R2E), "-c", str(self.config), "-d", str(self.data), "run", "--no-send"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"r2e failed ({done.returncode}): {done.stderr[-500:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return Timed(elapsed, cpu)
