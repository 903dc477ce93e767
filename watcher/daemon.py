"""The daemon: scheduler ticks over a database-held schedule, rule/feed reloads, signals.

The database holds the schedule (`feed.next_check_at`); one interval job claims due feeds in
batches and refreshes them. No per-feed APScheduler job is persisted, so several workers can share
one database and a restart loses nothing. Rule sets compile in a worker thread and swap in with one
assignment; an invalid edit keeps the previous set.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from watcher import __version__, malloc, metrics
from watcher.config import Settings, redact_url
from watcher.cpu import CpuPool, run_isolated, tune_gc
from watcher.db import deliveries as delivery_db
from watcher.db import feeds as feed_db
from watcher.db import state
from watcher.db.engine import DaemonLock, make_engine, session_scope, sqlite_path
from watcher.db.models import Worker
from watcher.db.schema import ensure_schema
from watcher.errors import RuleError, StorageError, WatcherError
from watcher.fetch import Fetcher
from watcher.opml import load_feed_list
from watcher.pipeline import IN_PROGRESS_PER_FETCH, Pipeline, PollSummary
from watcher.rules import RuleSet, load_ruleset
from watcher.stories import StoryClusterer
from watcher.timeutil import utcnow

log = logging.getLogger("watcher.daemon")

FEED_LIST = "feeds.opml"
# Rule files larger than this are read in a child process (see load_rules).
ISOLATED_RULES_BYTES = 256 * 1024


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Sources:
    """Modification stamps of rules/ so a change is noticed without inotify."""

    rules_dir: Path
    stamps: dict[str, tuple[float, int]] = field(default_factory=dict)

    def _read(self, pattern: str) -> dict[str, tuple[float, int]]:
        found = {}
        for path in sorted(self.rules_dir.glob(pattern)):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            found[path.name] = (info.st_mtime, info.st_size)
        return found

    def changed(self) -> tuple[bool, bool]:
        """(rules changed, feed list changed) since the last call."""
        rules, feeds = self._read("*.yaml") | self._read("*.yml"), self._read(FEED_LIST)
        old_rules = {k: v for k, v in self.stamps.items() if k != FEED_LIST}
        old_feeds = {k: v for k, v in self.stamps.items() if k == FEED_LIST}
        self.stamps = rules | feeds
        return rules != old_rules, feeds != old_feeds


class Backoff:
    """When to try again after the database failed: the wait doubles up to `longest`, so an outage
    costs one attempt and one log line per wait, not one per tick."""

    def __init__(self, first: float, longest: float = 60.0) -> None:
        self.first, self.longest = first, longest
        self.delay = 0.0
        self._next = float("-inf")

    def ready(self) -> bool:
        return time.monotonic() >= self._next

    def failed(self) -> float:
        self.delay = min(self.delay * 2, self.longest) if self.delay else self.first
        self._next = time.monotonic() + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay, self._next = 0.0, float("-inf")


def load_rules(rules_dir: Path) -> RuleSet:
    """`load_ruleset`, in a child process when the rule files are large.

    Reading ten thousand rules (YAML with positions, validation, parsing) churns through far more
    memory than the compiled set keeps, and the freed heap stays fragmented in a long-running
    daemon: 66 MB resident for 10,000 rules read here, 44 MB when they come from a child.
    """
    files = [*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")]
    size = sum(path.stat().st_size for path in files if path.is_file())
    if size < ISOLATED_RULES_BYTES:
        return load_ruleset(rules_dir)
    return run_isolated(load_ruleset, rules_dir)


class Watcher:
    """Everything one process needs to poll: engine, rules, fetcher, CPU pool, pipeline."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings)
        self.owner = worker_id()
        self.ruleset = RuleSet()
        self.cpu = CpuPool(settings.extract.workers)
        self.stories = StoryClusterer(settings.stories)
        self._stack = AsyncExitStack()
        self.pipeline: Pipeline | None = None

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Schema, rules and feed list; raises a WatcherError naming what is wrong."""
        malloc.tune()  # before the threads that would each grow an arena start
        ensure_schema(self.engine, auto_upgrade=self.settings.auto_upgrade)
        self.ruleset = load_rules(self.settings.rules_dir)
        self._record_rules(error=None)
        self.sync_feeds()
        gc.collect()  # what loading left behind, before collections become rarer
        tune_gc()
        malloc.trim()

    async def __aenter__(self) -> Watcher:
        fetcher = await self._stack.enter_async_context(Fetcher(self.settings.fetch))
        self.pipeline = Pipeline(
            self.settings,
            self.engine,
            lambda: self.ruleset,
            fetcher=fetcher,
            cpu=self.cpu,
            stories=self.stories,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        self.cpu.close()

    def sync_feeds(self) -> feed_db.SyncResult:
        specs = load_feed_list(self.settings.rules_dir / FEED_LIST)
        with session_scope(self.engine) as session:
            result = feed_db.sync_feed_list(session, specs, utcnow())
        log.info(
            "feed list: %d feeds (%d added, %d updated, %d removed)",
            len(specs),
            result.added,
            result.updated,
            result.unlisted,
        )
        return result

    def reload_rules(self) -> bool:
        """Swap in the rule files as they are now; on error keep the active set and say why."""
        try:
            ruleset = load_rules(self.settings.rules_dir)
        except RuleError as exc:
            log.error(
                "rules not reloaded, previous set stays active:\n  %s", "\n  ".join(exc.errors)
            )
            self._record_rules(error=exc.errors)
            metrics.observe_reload(ok=False)
            return False
        self.ruleset = ruleset
        self._record_rules(error=None)
        metrics.observe_reload(ok=True)
        log.info("rules reloaded: %d rules (version %s)", len(ruleset.rules), ruleset.version)
        return True

    def _record_rules(self, error: list[str] | None) -> None:
        value: dict[str, Any] = {
            "version": self.ruleset.version,
            "rules": len(self.ruleset.rules),
            "warnings": list(self.ruleset.warnings),
            "error": error,
        }
        with session_scope(self.engine) as session:
            state.put(session, "ruleset", value, utcnow())

    # -- polling -----------------------------------------------------------------------------
    async def poll(
        self,
        *,
        force: bool = False,
        feed_url: str | None = None,
        progress: Callable[[feed_db.FeedJob, feed_db.FeedOutcome], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> PollSummary:
        """Claim due feeds in batches and refresh them until none is due (or we are stopping).

        Batches overlap: the next is claimed as soon as half of the in-progress window is done,
        so the pool does not idle while a batch's last feeds are stored (waiting for whole
        batches, with stores run back to back, cost a cold pass a fifth of its time). A batch's
        lease starts when it is claimed, not long before.
        """
        assert self.pipeline is not None, "use `async with Watcher(...)`"
        total = PollSummary(started_at=utcnow())
        if feed_url is not None:
            total.merge(await self.pipeline.refresh_many([self._claim_url(feed_url)], progress))
        else:
            await self._poll_due(total, force, progress, should_stop)
        total.finished_at = utcnow()
        with session_scope(self.engine) as session:
            state.put(session, "last_poll", total.as_dict(), utcnow())
        return total

    def _claim_url(self, feed_url: str) -> feed_db.FeedJob:
        lease = timedelta(seconds=self.settings.db.lease_seconds)
        with session_scope(self.engine) as session:
            job = feed_db.claim_feed_by_url(
                session, feed_url, owner=self.owner, now=utcnow(), lease=lease
            )
        if job is None:
            raise WatcherError(f"no feed {feed_url} in {FEED_LIST}")
        return job

    def _claim_due(self, limit: int, force: bool, done: set[int]) -> list[feed_db.FeedJob]:
        lease = timedelta(seconds=self.settings.db.lease_seconds)
        with session_scope(self.engine) as session:
            jobs = feed_db.claim_due_feeds(
                session,
                owner=self.owner,
                now=utcnow(),
                lease=lease,
                limit=limit,
                force=force,
                exclude=done,
            )
        done.update(job.id for job in jobs)
        return jobs

    async def _poll_due(
        self,
        total: PollSummary,
        force: bool,
        progress: Callable[[feed_db.FeedJob, feed_db.FeedOutcome], None] | None,
        should_stop: Callable[[], bool],
    ) -> None:
        """Keep up to `window` feeds in progress, claiming a batch whenever a batch's worth is done
        (not when a whole batch is: its slowest feed would hold the next batch back)."""
        assert self.pipeline is not None
        window = self.settings.fetch.concurrency * IN_PROGRESS_PER_FETCH
        batch = max(window // 2, 1)  # fewer, larger claims and outcome writes (a warm pass)
        done: set[int] = set()
        running: set[asyncio.Future[Any]] = set()
        room = asyncio.Event()
        in_progress = 0

        def finished(job: feed_db.FeedJob, outcome: feed_db.FeedOutcome) -> None:
            nonlocal in_progress
            in_progress -= 1
            if in_progress <= window - batch:
                room.set()
            if progress is not None:
                progress(job, outcome)

        exhausted = False
        try:
            while True:
                while not exhausted and not should_stop() and in_progress <= window - batch:
                    jobs = self._claim_due(batch, force, done)
                    exhausted = not jobs
                    in_progress += len(jobs)
                    if jobs:
                        running.add(
                            asyncio.ensure_future(self.pipeline.refresh_many(jobs, finished))
                        )
                if not running:
                    return
                room.clear()
                wake = asyncio.ensure_future(room.wait())
                ended, _ = await asyncio.wait({*running, wake}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                for task in ended - {wake}:
                    running.discard(task)
                    total.merge(task.result())
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)


class Daemon:
    """`watcher run`: the scheduler loop around a Watcher, with signals and graceful shutdown."""

    def __init__(
        self,
        settings: Settings,
        *,
        extra_jobs: list[Callable[[Daemon, AsyncIOScheduler], None]] | None = None,
    ) -> None:
        self.settings = settings
        self.watcher = Watcher(settings)
        self.extra_jobs = extra_jobs or []
        self._stop = asyncio.Event()
        self._stopping = False
        self._lock: DaemonLock | None = None
        self._sources = Sources(settings.rules_dir)
        self.last_tick = utcnow()
        self._busy: set[asyncio.Task[Any]] = set()
        self._db_backoff = Backoff(first=max(settings.poll_tick_seconds, 1.0))

    def track(self) -> None:
        """Mark the running tick as in-flight work that shutdown waits for."""
        task = asyncio.current_task()
        if task is not None:
            self._busy.add(task)
            task.add_done_callback(self._busy.discard)

    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        db_file = sqlite_path(self.settings.db_url)
        if db_file is not None:
            self._lock = DaemonLock(db_file)
            self._lock.acquire()
        try:
            if not await self._prepare_with_retry():
                return
            self._sources.changed()
            async with self.watcher:
                await self._serve()
        finally:
            if self._lock is not None:
                self._lock.release()

    async def _prepare_with_retry(self, max_delay: float = 60.0) -> bool:
        """Wait for the database with back-off instead of dying: it may start after us.

        Rule and config errors still stop start-up at once: waiting would not fix them.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        backoff = Backoff(first=1.0, longest=max_delay)
        while True:
            try:
                self.watcher.prepare()
                return True
            except StorageError as exc:
                if "cannot reach the database" not in exc.message:
                    raise
                delay = backoff.failed()
                log.error("%s; retrying in %.0f s", exc.message, delay)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
                return False  # asked to stop while waiting
            except TimeoutError:
                continue

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        scheduler = AsyncIOScheduler(timezone=self.settings.zone)
        job_defaults = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
        scheduler.add_job(
            self.poll_tick,
            "interval",
            seconds=self.settings.poll_tick_seconds,
            next_run_time=utcnow(),
            id="poll",
            **job_defaults,
        )
        scheduler.add_job(
            self.reload_tick,
            "interval",
            seconds=self.settings.reload_check_seconds,
            id="reload",
            **job_defaults,
        )
        scheduler.add_job(
            self.heartbeat,
            "interval",
            seconds=self.settings.db.heartbeat_seconds,
            next_run_time=utcnow(),
            id="heartbeat",
            **job_defaults,
        )
        for add in self.extra_jobs:
            add(self, scheduler)
        scheduler.start()
        log.info(
            "news-watcher %s started (worker %s, database %s, %d rules)",
            __version__,
            self.watcher.owner,
            redact_url(self.settings.db_url),
            len(self.watcher.ruleset.rules),
        )
        await self._stop.wait()
        log.info("shutting down: finishing in-flight work")
        # Pause, not shut down: APScheduler's shutdown cancels the running ticks mid-send.
        scheduler.pause()
        await asyncio.sleep(0)  # ticks submitted just now start and register with track()
        await self._drain()
        scheduler.shutdown(wait=False)
        self._goodbye()

    @property
    def stopping(self) -> bool:
        """Set once shutdown begins: ticks finish what is on the wire and start nothing new."""
        return self._stopping

    def stop(self) -> None:
        self._stopping = True
        self._stop.set()

    def request_reload(self) -> None:
        log.info("SIGHUP: reloading rules and feeds")
        self._sources.stamps = {}

    async def _drain(self, grace: float = 30.0) -> None:
        """Let running ticks finish; past the grace period cancel them (their work is re-doable)."""
        ticks = [task for task in self._busy if not task.done()]
        if not ticks:
            return
        _, pending = await asyncio.wait(ticks, timeout=grace)
        for task in pending:
            log.warning("in-flight work still running after %.0f s, cancelled: %s", grace, task)
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _goodbye(self) -> None:
        try:
            with session_scope(self.watcher.engine) as session:
                feed_db.release_leases(session, self.watcher.owner)
                delivery_db.release_leases(session, self.watcher.owner)
                state.forget_worker(session, self.watcher.owner)
        except OperationalError as exc:
            log.warning("database unavailable at shutdown (leases will expire): %s", exc.orig)
        log.info("stopped")

    # -- ticks ---------------------------------------------------------------------------------
    async def poll_tick(self) -> None:
        self.track()
        self.last_tick = utcnow()
        if not self._db_backoff.ready():
            return
        try:
            summary = await self.watcher.poll(should_stop=lambda: self.stopping)
        except OperationalError as exc:
            delay = self._db_backoff.failed()
            log.error(
                "database unavailable, poll skipped (will retry in %.0f s): %s", delay, exc.orig
            )
            return
        except WatcherError as exc:
            log.error("poll failed: %s", exc)
            return
        self._db_backoff.succeeded()
        if summary.feeds:
            log.info("poll: %s", summary.describe())
            malloc.trim()  # what the pass freed, given back while the daemon waits

    async def reload_tick(self) -> None:
        rules_changed, feeds_changed = self._sources.changed()
        try:
            if rules_changed:
                await asyncio.to_thread(self.watcher.reload_rules)
            if feeds_changed:
                self.watcher.sync_feeds()
        except WatcherError as exc:
            log.error("feed list not reloaded, previous list stays active: %s", exc)
        except OperationalError as exc:
            log.error("database unavailable, reload postponed: %s", exc.orig)
            self._sources.stamps = {}  # try again on the next tick

    async def heartbeat(self) -> None:
        worker = Worker(
            id=self.watcher.owner,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
        )
        try:
            with session_scope(self.watcher.engine) as session:
                state.heartbeat(session, worker, utcnow())
        except OperationalError as exc:
            log.error("database unavailable (heartbeat): %s", exc.orig)
