"""Our side of the scenarios: passes of a real `Watcher`, in a fresh process, as a daemon runs them.

    python -m tests.bench.passes '<json plan>'      (prints one JSON object)

The plan names a settings dict and steps: `poll` (one pass over every feed, timed), `publish` (new
items on the bench feed server, not timed), `digest` (plan and write digests now, timed), `e2e`
(poll + digest, timed together), `due_in` (make every feed due N seconds from now, for the memory
scenario's daemon). Each timed step reports wall seconds, CPU seconds of this process and of its
process-pool workers, and their peak resident memory, sampled with psutil while the step runs.

The CPU pool is started before the first step: a daemon starts it once, not per pass.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from watcher.config import Settings


class Sampler:
    """Peak RSS of this process and of its descendants (the pool workers), every few ms."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.peak_main = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._known: list[psutil.Process] = []
        self._listed_at = -1.0

    def _children(self) -> list[psutil.Process]:
        """Descendants, listed again at most every half second (listing walks all of /proc)."""
        if time.monotonic() - self._listed_at > 0.5:
            try:
                self._known = self.process.children(recursive=True)
            except psutil.Error:
                self._known = []
            self._listed_at = time.monotonic()
        return self._known

    def sample(self) -> tuple[int, int]:
        main = self.process.memory_info().rss
        children = 0
        for child in self._children():
            try:
                children += child.memory_info().rss
            except psutil.Error:
                continue
        return main, children

    def _run(self) -> None:
        while not self._stop.is_set():
            main, children = self.sample()
            self.peak_main = max(self.peak_main, main)
            self.peak_children = max(self.peak_children, children)
            self._stop.wait(self.interval)

    def cpu_seconds(self) -> tuple[float, float]:
        own = self.process.cpu_times()
        children = 0.0
        for child in self._children():
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            children += times.user + times.system
        return own.user + own.system, children

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        main, children = self.sample()
        self.peak_main = max(self.peak_main, main)
        self.peak_children = max(self.peak_children, children)


def control(port: int, action: str, **params: int) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"http://127.0.0.1:{port}/_control/{action}?{query}"
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


async def measured(coro_factory: Any) -> tuple[Any, dict[str, float]]:
    """Run the step with the sampler on; wall, CPU and peak memory figures."""
    sampler = Sampler()
    cpu_main, cpu_children = sampler.cpu_seconds()
    with sampler:
        started = time.perf_counter()
        value = await coro_factory()
        wall = time.perf_counter() - started
        end_main, end_children = sampler.cpu_seconds()
    figures = {
        "wall_s": wall,
        "cpu_main_s": end_main - cpu_main,
        "cpu_workers_s": max(end_children - cpu_children, 0.0),
        "peak_main_mb": sampler.peak_main / 2**20,
        "peak_workers_mb": sampler.peak_children / 2**20,
    }
    figures["cores_used"] = (figures["cpu_main_s"] + figures["cpu_workers_s"]) / max(wall, 1e-9)
    return value, figures


async def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    from watcher.daemon import Watcher

    settings = Settings(**plan["settings"])
    watcher = Watcher(settings)
    results: dict[str, Any] = {"steps": []}
    started = time.perf_counter()
    watcher.prepare()
    results["prepare_s"] = time.perf_counter() - started
    try:
        async with watcher:
            started = time.perf_counter()
            await asyncio.gather(
                *(watcher.cpu.run(time.sleep, 0.2) for _ in range(watcher.cpu.workers))
            )
            results["pool_start_s"] = time.perf_counter() - started
            for step in plan["steps"]:
                results["steps"].append(await run_step(watcher, settings, plan, step))
    finally:
        watcher.engine.dispose()
    return results


async def run_step(
    watcher: Any, settings: Settings, plan: dict[str, Any], step: dict[str, Any]
) -> dict[str, Any]:
    kind = step["kind"]
    out: dict[str, Any] = {"kind": kind, "name": step.get("name", kind)}
    if kind == "publish":
        out["published"] = control(plan["port"], "publish", **step.get("params", {}))["published"]
        return out
    if "extract" in step:
        settings.extract.enabled = bool(step["extract"])

    async def poll() -> Any:
        return await watcher.poll(force=step.get("force", True))

    async def digest() -> Any:
        from watcher.deliver.service import DeliveryService

        service = DeliveryService(watcher.engine, settings, owner=f"bench:{socket.gethostname()}")
        return await service.tick(watcher.ruleset, digests="now")

    async def e2e() -> tuple[Any, Any]:
        return await poll(), await digest()

    action = {"poll": poll, "digest": digest, "e2e": e2e}[kind]
    profiler = _profiler(step.get("profile"))
    value, figures = await measured(action)
    if profiler is not None:
        profiler.stop()
        Path(step["profile"]).write_text(profiler.output_text(unicode=True, show_all=False))
        out["profile"] = step["profile"]
    out.update(figures)
    summaries = value if kind == "e2e" else (value,)
    for part in summaries:
        if hasattr(part, "as_dict"):
            summary = part.as_dict()
            out["summary"] = {
                k: summary[k]
                for k in ("feeds", "ok", "not_modified", "errors", "new_articles", "matches")
            }
            out["failures"] = summary["failures"][:3]
        elif hasattr(part, "results"):
            out["deliveries"] = [r.status for r in part.results]
            out["digests"] = len(part.digests)
            outbox = Path(settings.data_dir) / "outbox"
            out["outbox_files"] = len(list(outbox.glob("*.eml"))) if outbox.is_dir() else 0
    return out


def _profiler(path: str | None) -> Any:
    """pyinstrument over one step (`--profile` of the harness), when it is installed."""
    if not path:
        return None
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    profiler = Profiler(async_mode="disabled")
    profiler.start()
    return profiler


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    plan = json.loads(args[0])
    print(json.dumps(asyncio.run(run_plan(plan))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
