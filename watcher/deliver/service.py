"""What the daemon and the CLI call: plan what is due, send what is claimed, report.

One `DeliveryService` per process. Its tick plans immediate alerts and due digest periods, then
claims and sends due deliveries; ticks in one process never overlap (a lock), and several
processes on PostgreSQL coordinate through the database (unique keys, SKIP LOCKED, leases).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from watcher.config import Settings
from watcher.daemon import Backoff
from watcher.db import deliveries as outbox_db
from watcher.db.engine import session_scope
from watcher.deliver.base import Destination, build_all
from watcher.deliver.outbox import (
    Planner,
    Result,
    Routing,
    RuleLike,
    claim,
    health_notices,
    send_jobs,
    unknown_routes,
)
from watcher.deliver.schedule import FREQUENCIES, Period, QuietHours, cron_fields
from watcher.digest import build_digest, render_digest
from watcher.errors import WatcherError
from watcher.timeutil import utcnow

log = logging.getLogger("watcher.deliver")

DigestMode = Literal["due", "now", "none"]
CLAIM_BATCH = 100
MAX_ROUNDS = 20


def _rules_of(ruleset: Any) -> list[RuleLike]:
    return list(getattr(ruleset, "rules", ruleset))


def check_routes(ruleset: Any, settings: Settings) -> list[str]:
    """Problems with rules' `deliver.destinations`: each names the rule and the destination."""
    return unknown_routes(_rules_of(ruleset), settings.effective_destinations())


@dataclass
class TickReport:
    alerts: list[int] = field(default_factory=list)  # delivery ids planned
    digests: list[int] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status != "sent"]


class DeliveryService:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        owner: str,
        destinations: dict[str, Destination] | None = None,
    ) -> None:
        QuietHours.parse(settings.alerts.quiet_hours)  # a bad value stops start-up, not each tick
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.destinations = destinations if destinations is not None else build_all(settings)
        self._lock = asyncio.Lock()
        self._checked: object = None
        self.should_stop: Callable[[], bool] = lambda: False

    def plan(
        self, ruleset: Any, *, now: Any = None, digests: DigestMode = "due", alerts: bool = True
    ) -> TickReport:
        """Write deliveries for what is due (blocking: call it in a thread from async code)."""
        now = now or utcnow()
        self._check(ruleset)
        routing = Routing.of(_rules_of(ruleset), self.destinations)
        planner = Planner(self.settings, routing, now)
        report = TickReport()
        if alerts:
            with session_scope(self.engine) as session:
                report.alerts = planner.plan_alerts(session)
        if digests != "none":
            with session_scope(self.engine) as session:
                if digests == "now":
                    report.digests = planner.plan_digests_now(session)
                else:
                    report.digests = planner.plan_due_digests(session)
        return report

    async def send_due(self, *, now: Any = None) -> list[Result]:
        """Claim and send due deliveries until none is left (bounded rounds)."""
        results: list[Result] = []
        for _ in range(MAX_ROUNDS):
            moment = now or utcnow()
            jobs = await asyncio.to_thread(
                claim, self.engine, self.settings, self.owner, moment, CLAIM_BATCH
            )
            if not jobs:
                break
            results += await send_jobs(
                self.engine, self.settings, jobs, self.destinations, moment, self.should_stop
            )
            if len(jobs) < CLAIM_BATCH or self.should_stop():
                break
        return results

    async def tick(
        self, ruleset: Any, *, now: Any = None, digests: DigestMode = "due", alerts: bool = True
    ) -> TickReport:
        async with self._lock:
            report = await asyncio.to_thread(
                self.plan, ruleset, now=now, digests=digests, alerts=alerts
            )
            report.results = await self.send_due(now=now)
            return report

    def _check(self, ruleset: Any) -> None:
        """Log misrouted rules once per rule-set version."""
        version = getattr(ruleset, "version", None) or id(ruleset)
        if version == self._checked:
            return
        self._checked = version
        for problem in unknown_routes(_rules_of(ruleset), self.destinations):
            log.error(problem)


def preview(
    engine: Engine,
    settings: Settings,
    ruleset: Any,
    destination: str,
    *,
    since: datetime,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The digest `destination` would get for matches since `since` (sent or not): rendered,
    never recorded (the session is only read and then rolled back)."""
    now = now or utcnow()
    routing = Routing.of(_rules_of(ruleset), settings.effective_destinations())
    local = now.astimezone(settings.zone).replace(microsecond=0)
    period = Period("preview", f"preview:{local:%Y-%m-%dT%H:%M}", local)
    with Session(engine) as session:
        rows = outbox_db.matches_since(
            session, rule_ids=routing.digest_rules(destination, FREQUENCIES), since=since
        )
        digest = build_digest(
            rows,
            routing.rules,
            destination=destination,
            period=period,
            now=now,
            zone=settings.zone,
            max_items=settings.digest.max_items_per_rule,
            notices=health_notices(session),
        )
        session.rollback()
    return render_digest(digest, f"digest:{destination}:{period.key}")


def daemon_jobs(daemon: Any, scheduler: Any) -> None:
    """Add the delivery tick and the digest cron jobs to the daemon's scheduler.

    The tick runs every `delivery.tick_seconds` and also catches up on digest periods missed while
    the daemon was down; the cron jobs (local time, the scheduler's zone) make a digest leave at
    its minute rather than up to one tick later.
    """
    settings: Settings = daemon.settings
    service = DeliveryService(daemon.watcher.engine, settings, owner=daemon.watcher.owner)
    service.should_stop = lambda: daemon.stopping

    backoff = Backoff(first=max(settings.delivery.tick_seconds, 1.0))

    async def tick() -> None:
        daemon.track()
        if not backoff.ready():
            return
        try:
            await service.tick(daemon.watcher.ruleset)
        except OperationalError as exc:
            delay = backoff.failed()
            log.error(
                "database unavailable, delivery tick skipped (will retry in %.0f s): %s",
                delay,
                exc.orig,
            )
            return
        except WatcherError as exc:
            log.error("delivery tick failed: %s", exc)
        backoff.succeeded()

    defaults: dict[str, Any] = {"max_instances": 1, "coalesce": True}
    scheduler.add_job(
        tick,
        "interval",
        seconds=settings.delivery.tick_seconds,
        id="delivery",
        next_run_time=utcnow(),
        misfire_grace_time=60,
        **defaults,
    )
    for frequency in FREQUENCIES:
        scheduler.add_job(
            tick,
            "cron",
            id=f"digest-{frequency}",
            misfire_grace_time=3600,
            **cron_fields(frequency, settings.digest),
            **defaults,
        )
