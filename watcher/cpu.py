"""A process pool for the CPU-bound stages (feed parsing, article extraction, text analysis).

Both are pure functions of bytes, so they run in worker processes and the daemon uses every core
while the event loop keeps fetching. `forkserver` is used because forking a process that already
runs threads (scheduler, HTTP client) is unsafe.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("watcher.cpu")
WORKER_NICENESS = 10  # the main process is the serial part of a pass: it gets a core first
# Young collections every 700 new objects promoted each article's short-lived matching and parsing
# objects, and the full collections that followed walked the whole heap: with 10,000 rules loaded
# they were up to a third of matching time (tests/bench). At 50,000 they die young; the price is
# a few MB of cyclic garbage waiting a little longer (2 MB in the memory scenario).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """The daemon's and its workers' garbage-collector setting (see GC_YOUNG_THRESHOLD)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _warm() -> None:
    """Import the heavy modules once per worker, not on the first article."""
    os.nice(WORKER_NICENESS)
    tune_gc()
    import feedparser  # noqa: F401 - parse imports it late: the daemon never parses
    import trafilatura  # noqa: F401 - extract_article imports it late: the daemon never extracts

    import watcher.analysis
    import watcher.extract
    import watcher.parse  # noqa: F401


def run_isolated(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` once in a short-lived process and return its (pickled) result.

    For work whose garbage outweighs its result: the heap it fragments leaves with the process
    instead of staying resident in a daemon for good. Exceptions cross over as they are (ours
    pickle). If the process cannot start or dies, `fn` runs here instead.
    """
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = None
        try:
            future = pool.submit(fn, *args)
            return future.result()  # fn's own exceptions, OSError included, propagate as they are
        except BrokenProcessPool as exc:
            problem: Exception = exc
        except OSError as exc:
            if future is not None and future.done():
                raise  # raised by fn in the child
            problem = exc  # the child could not be started
    log.warning("%s: no child process (%s); running it in this one", fn.__name__, problem)
    return fn(*args)


class CpuPool:
    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context, initializer=_warm
            )
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = partial(fn, *args, **kwargs)
        try:
            return await loop.run_in_executor(self._pool(), call)
        except BrokenProcessPool:
            # A worker died (e.g. killed for memory): start a fresh pool and try once more.
            self.close()
            return await loop.run_in_executor(self._pool(), call)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
