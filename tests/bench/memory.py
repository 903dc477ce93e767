"""Scenario 6: resident memory of a real `python -m watcher run` with many feeds and rules loaded.

The database is primed first (one pass without extraction, in a separate process), one new item is
published in every feed, and every feed is scheduled far ahead. Then the daemon starts; after it
says it started, its memory is sampled while idle; then every feed is made due, the daemon's next
poll tick fetches them, extracts and matches the new articles (the pass), and memory is sampled
during it and while idle after it. The main process and its process-pool workers (the forkserver
and its children) are reported separately. The daemon is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from tests.bench.workspace import REPO, BenchWorkspace, bench_env, run_json

POLL_LINE = re.compile(r"poll: (\d+) feeds, .*?(\d+) new articles")


def make_due(db_url: str, seconds: float) -> None:
    """Schedule every feed `seconds` from now (the harness plays the clock, not the daemon)."""
    from sqlalchemy import create_engine, update
    from sqlmodel import Session

    from watcher.db.models import Feed
    from watcher.timeutil import utcnow

    engine = create_engine(db_url, connect_args={"timeout": 30})
    try:
        with Session(engine) as session:
            when = utcnow() + timedelta(seconds=seconds)
            session.execute(update(Feed).values(next_check_at=when))
            session.commit()
    finally:
        engine.dispose()


class Daemon:
    """The `watcher run` subprocess, its log, and memory samples of it and its workers."""

    def __init__(self, space: BenchWorkspace, config: Path) -> None:
        self.log_path = space.root / "daemon.log"
        self._log = self.log_path.open("w")
        command = [sys.executable, "-m", "watcher", "--config", str(config), "run"]
        self.process = subprocess.Popen(
            command, cwd=space.root, env=bench_env(), stdout=self._log, stderr=subprocess.STDOUT
        )
        self.handle = psutil.Process(self.process.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited early:\n{self.log()[-3000:]}")
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.2)
        return False

    def sample(self) -> tuple[float, float]:
        """(main MB, workers MB): RSS of the daemon, and the sum over its descendants."""
        main = self.handle.memory_info().rss
        workers = 0
        for child in self.handle.children(recursive=True):
            try:
                workers += child.memory_info().rss
            except psutil.Error:
                continue
        return main / 2**20, workers / 2**20

    def idle(self, seconds: float) -> tuple[float, float]:
        samples = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(self.sample())
            time.sleep(0.2)
        return (
            statistics.median(s[0] for s in samples),
            statistics.median(s[1] for s in samples),
        )

    def polled_feeds(self, since: int) -> tuple[int, int]:
        """(feeds, new articles) reported by poll lines after character `since` of the log."""
        feeds = articles = 0
        for found in POLL_LINE.finditer(self.log()[since:]):
            feeds += int(found.group(1))
            articles += int(found.group(2))
        return feeds, articles

    def stop(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code


def run_memory(space: BenchWorkspace, port: int, n_feeds: int) -> dict[str, Any]:
    settings = space.settings(poll_tick_seconds=1.0)
    prime = {
        "port": port,
        "settings": settings,
        "steps": [
            {"kind": "poll", "name": "prime", "extract": False},
            {"kind": "publish", "params": {"count": 1, "feeds": n_feeds}},
        ],
    }
    primed = run_json("tests.bench.passes", prime)
    make_due(space.db_url, 3600)
    config = space.write_config(settings)
    daemon = Daemon(space, config)
    result: dict[str, Any] = {"prime": primed["steps"][0]}
    try:
        started = time.monotonic()
        if not daemon.wait_for(r"news-watcher \S+ started", timeout=300):
            raise RuntimeError(f"the daemon did not start:\n{daemon.log()[-3000:]}")
        result["startup_s"] = time.monotonic() - started
        time.sleep(2.0)
        result["idle_start_main_mb"], result["idle_start_workers_mb"] = daemon.idle(2.0)
        mark = len(daemon.log())
        make_due(space.db_url, 0)
        peak_main = peak_workers = 0.0
        pass_started = time.monotonic()
        while daemon.polled_feeds(mark)[0] < n_feeds:
            if time.monotonic() - pass_started > 600:
                raise RuntimeError(f"the pass did not finish:\n{daemon.log()[-3000:]}")
            main, workers = daemon.sample()
            peak_main, peak_workers = max(peak_main, main), max(peak_workers, workers)
            time.sleep(0.05)
        result["pass_s"] = time.monotonic() - pass_started
        result["pass_feeds"], result["pass_new_articles"] = daemon.polled_feeds(mark)
        result["pass_peak_main_mb"], result["pass_peak_workers_mb"] = peak_main, peak_workers
        time.sleep(1.0)
        result["idle_after_main_mb"], result["idle_after_workers_mb"] = daemon.idle(3.0)
    finally:
        result["exit_code"] = daemon.stop()
    return result


__all__ = ["REPO", "run_memory"]
