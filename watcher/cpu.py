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
import select
import threading
import time
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
ORPHANED_EXIT = 3  # a worker's exit status when its daemon has gone
ORPHAN_CHECK_SECONDS = 2.0


def tune_gc() -> None:
    """The daemon's and its workers' garbage-collector setting (see GC_YOUNG_THRESHOLD)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _warm(daemon_pid: int | None = None) -> None:
    """Import the heavy modules once per worker, not on the first article; leave with the daemon."""
    os.nice(WORKER_NICENESS)
    tune_gc()
    if daemon_pid is not None:
        threading.Thread(
            target=_exit_with, args=(daemon_pid,), name="exit-with-daemon", daemon=True
        ).start()
    import feedparser  # noqa: F401 - parse imports it late: the daemon never parses
    import trafilatura  # noqa: F401 - extract_article imports it late: the daemon never extracts

    import watcher.analysis
    import watcher.extract
    import watcher.parse  # noqa: F401


def _exit_with(pid: int) -> None:
    """End this worker when the daemon `pid` has ended. A daemon killed outright (SIGKILL, the
    OOM killer) cannot shut its pool down: the workers would wait for work forever, each with
    its rule set loaded, and keep the forkserver alive with them."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(ORPHANED_EXIT)
    except (AttributeError, OSError):  # no pidfd (not Linux, or an old kernel): look now and then
        while process_running(pid):
            time.sleep(ORPHAN_CHECK_SECONDS)
    else:
        select.select([handle], [], [])  # readable once the process has ended
    os._exit(ORPHANED_EXIT)


def process_running(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, not ours to signal
        return True
    return True


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
                max_workers=self.workers,
                mp_context=context,
                initializer=_warm,
                initargs=(os.getpid(),),
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
