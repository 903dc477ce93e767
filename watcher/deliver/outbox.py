"""The outbox: plan deliveries, claim the due ones, send, retry, dead-letter.

Planning writes a delivery row and its items in the same transaction that selects the matches, and
renders the message into the row: from then on the delivery exists even if the process dies, and
every attempt sends the same bytes. Sending happens outside any transaction; a delivery is marked
`sent` only after the destination accepted it. A crash between "accepted" and "recorded" therefore
repeats one send — with the same Message-ID / Idempotency-Key, so the receiver can drop it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session

from watcher import metrics
from watcher.config import Settings
from watcher.db import deliveries as outbox_db
from watcher.db.engine import session_scope
from watcher.db.models import Article, Match
from watcher.deliver.base import Destination, Outgoing, SendFailure
from watcher.deliver.schedule import (
    FREQUENCIES,
    LOOKBACK,
    Period,
    QuietHours,
    backoff,
    latest_period,
    manual_period,
)
from watcher.digest import (
    Notice,
    RuleInfo,
    build_alert,
    build_digest,
    notices_of,
    render_alert,
    render_digest,
)
from watcher.errors import DeliveryError
from watcher.timeutil import utcnow

log = logging.getLogger("watcher.deliver")


class DeliverLike(Protocol):
    destinations: list[str] | None
    digest: str
    immediate: bool


class RuleLike(Protocol):
    id: str
    name: str
    priority: str
    enabled: bool
    deliver: DeliverLike


# -- routing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routing:
    """Which enabled rule goes to which configured destination, and how."""

    rules: dict[str, RuleLike]
    destinations: tuple[str, ...]

    @classmethod
    def of(cls, rules: Iterable[RuleLike], destinations: Iterable[str]) -> Routing:
        return cls({r.id: r for r in rules if r.enabled}, tuple(destinations))

    def targets(self, rule: RuleLike) -> list[str]:
        wanted = rule.deliver.destinations
        if wanted is None:
            return list(self.destinations)
        return [name for name in wanted if name in self.destinations]

    def digest_rules(self, destination: str, frequencies: Iterable[str]) -> list[str]:
        wanted = set(frequencies)
        return [
            rule_id
            for rule_id, rule in self.rules.items()
            if rule.deliver.digest in wanted and destination in self.targets(rule)
        ]

    def alert_rules(self, destination: str) -> list[str]:
        return [
            rule_id
            for rule_id, rule in self.rules.items()
            if rule.deliver.immediate and destination in self.targets(rule)
        ]

    def frequencies(self, destination: str) -> list[str]:
        used = {
            rule.deliver.digest for rule in self.rules.values() if destination in self.targets(rule)
        }
        return [frequency for frequency in FREQUENCIES if frequency in used]


def unknown_routes(rules: Iterable[RuleLike], destinations: Iterable[str]) -> list[str]:
    """One message per rule naming a destination that is not configured."""
    known = sorted(destinations)
    problems = []
    for rule in rules:
        for name in rule.deliver.destinations or ():
            if name not in known:
                origin = getattr(rule, "origin", "") or ""
                where = f" ({origin})" if origin else ""
                problems.append(
                    f"rule {rule.id!r}{where} delivers to destination {name!r}, which is not "
                    f"configured (configured: {', '.join(known) or 'none'}); add "
                    f"[destinations.{name}] to the settings or fix the rule"
                )
    return problems


# -- planning --------------------------------------------------------------------------------------


def health_notices(session: Session) -> list[Notice]:
    """Feeds needing attention, from `watcher.health.notices(session)` when that module exists."""
    try:
        from watcher import health  # type: ignore[attr-defined]
    except ImportError:
        return []
    notices = getattr(health, "notices", None)
    if notices is None:
        return []
    try:
        with session.begin_nested():
            return notices_of(notices(session))
    except Exception:  # a broken health check must not stop the digest
        log.exception("watcher.health.notices failed; digest sent without source notices")
        return []


def _story_key(match: Match) -> str:
    story = str(match.story_id) if match.story_id is not None else f"a{match.article_id}"
    if match.change_summary:
        story += f":update:{match.article_id}.{match.article_version}"
    return story


class Planner:
    """Writes deliveries for one moment (`now`), each in the caller's transaction."""

    def __init__(self, settings: Settings, routing: Routing, now: datetime) -> None:
        self.settings = settings
        self.routing = routing
        self.now = now
        self.zone = settings.zone
        self.quiet = QuietHours.parse(settings.alerts.quiet_hours)

    # alerts ---------------------------------------------------------------------------------------
    def plan_alerts(self, session: Session) -> list[int]:
        """One delivery per (destination, rule, story); later copies are recorded as covered."""
        planned = []
        since = self.now - timedelta(hours=self.settings.delivery.max_age_hours)
        for destination in self.routing.destinations:
            rule_ids = self.routing.alert_rules(destination)
            rows = outbox_db.undelivered_matches(
                session,
                destination=destination,
                kind="alert",
                rule_ids=rule_ids,
                since=since,
                until=self.now,
                include_backfill=False,
            )
            groups: dict[tuple[str, str], list[tuple[Match, Article]]] = {}
            for match, article in rows:
                groups.setdefault((match.rule_id, _story_key(match)), []).append((match, article))
            for (rule_id, story), members in groups.items():
                key = f"alert:{destination}:{rule_id}:{story}"
                delivery_id = self._plan_alert(session, destination, rule_id, key, members)
                if delivery_id is not None:
                    planned.append(delivery_id)
        return planned

    def _plan_alert(
        self,
        session: Session,
        destination: str,
        rule_id: str,
        key: str,
        members: list[tuple[Match, Article]],
    ) -> int | None:
        match_ids = [match.id for match, _ in members if match.id is not None]
        due = self.quiet.release(self.now, self.zone) if self.quiet else self.now
        delivery_id = outbox_db.create(
            session, destination=destination, kind="alert", key=key, now=self.now, due=due
        )
        if delivery_id is None:  # this story already alerted for this rule: covered
            existing = outbox_db.find(session, key)
            if existing is not None and existing.id is not None:
                outbox_db.add_items(session, existing.id, destination, "alert", match_ids)
            return None
        attached = set(outbox_db.add_items(session, delivery_id, destination, "alert", match_ids))
        rows = [(m, a) for m, a in members if m.id in attached]
        if not rows:
            outbox_db.set_message(session, delivery_id, "(nothing left to send)", {}, "empty")
            return None
        rule = RuleInfo.of(rule_id, self.routing.rules.get(rule_id))
        alert = build_alert(rows, rule, destination=destination, now=self.now, zone=self.zone)
        message = render_alert(alert, key)
        outbox_db.set_message(session, delivery_id, message["subject"], message, "pending")
        return delivery_id

    # digests --------------------------------------------------------------------------------------
    def due_periods(self, session: Session) -> list[tuple[str, Period, list[str]]]:
        """(destination, period, frequencies) of each digest slot that is due and not planned."""
        wanted = []
        for destination in self.routing.destinations:
            for frequency in self.routing.frequencies(destination):
                period = latest_period(frequency, self.now, self.zone, self.settings.digest)
                wanted.append((destination, period, [frequency]))
        keys = [f"digest:{d}:{p.key}" for d, p, _ in wanted]
        done = outbox_db.existing_keys(session, keys)
        return [item for item, key in zip(wanted, keys, strict=True) if key not in done]

    def plan_due_digests(self, session: Session) -> list[int]:
        planned = []
        for destination, period, frequencies in self.due_periods(session):
            delivery_id = self.plan_digest(session, destination, period, frequencies)
            if delivery_id is not None:
                planned.append(delivery_id)
        return planned

    def plan_digests_now(self, session: Session) -> list[int]:
        """`digest send --now`: one digest per destination with everything undelivered."""
        period = manual_period(self.now, self.zone)
        planned = []
        for destination in self.routing.destinations:
            frequencies = self.routing.frequencies(destination)
            if frequencies:
                delivery_id = self.plan_digest(session, destination, period, frequencies)
                if delivery_id is not None:
                    planned.append(delivery_id)
        return planned

    def plan_digest(
        self, session: Session, destination: str, period: Period, frequencies: Sequence[str]
    ) -> int | None:
        """Plan one digest; an empty period is recorded as `empty` so it is not planned again."""
        key = f"digest:{destination}:{period.key}"
        rule_ids = self.routing.digest_rules(destination, frequencies)
        since = self.now - max(LOOKBACK[f] for f in frequencies)
        rows = outbox_db.undelivered_matches(
            session,
            destination=destination,
            kind="digest",
            rule_ids=rule_ids,
            since=since,
            until=self.now,
        )
        send_empty = self.settings.digest.send_empty
        delivery_id = outbox_db.create(
            session,
            destination=destination,
            kind="digest",
            key=key,
            now=self.now,
            period_key=period.key,
            status="pending" if rows or send_empty else "empty",
        )
        if delivery_id is None or not (rows or send_empty):
            return None
        match_ids = [match.id for match, _ in rows if match.id is not None]
        attached = set(outbox_db.add_items(session, delivery_id, destination, "digest", match_ids))
        rows = [(m, a) for m, a in rows if m.id in attached]
        if not rows and not send_empty:
            outbox_db.set_message(session, delivery_id, "(nothing left to send)", {}, "empty")
            return None
        digest = build_digest(
            rows,
            self.routing.rules,
            destination=destination,
            period=period,
            now=self.now,
            zone=self.zone,
            max_items=self.settings.digest.max_items_per_rule,
            notices=health_notices(session),
        )
        message = render_digest(digest, key)
        outbox_db.set_message(session, delivery_id, message["subject"], message, "pending")
        return delivery_id


# -- sending ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    delivery_id: int
    destination: str
    kind: str
    subject: str
    status: str  # sent | retrying | dead
    error: str | None = None


async def _attempt(
    job: outbox_db.DeliveryJob, destination: Destination | None
) -> SendFailure | None:
    """Send one claimed delivery; the failure (None when the destination accepted it)."""
    if destination is None:
        return SendFailure(
            f"destination {job.destination!r} is no longer configured", permanent=True
        )
    if not job.payload.get("subject"):
        return SendFailure(
            "delivery has no stored message (planned by a crashed worker?)", permanent=True
        )
    message = Outgoing(
        delivery_id=job.id,
        destination=job.destination,
        kind=job.kind,
        key=job.idempotency_key,
        payload=job.payload,
        progress=dict(job.payload.get("progress", {})),
    )
    try:
        await destination.send(message)
    except SendFailure as failure:
        return failure
    except DeliveryError as exc:
        return SendFailure(str(exc), permanent=exc.permanent)
    except Exception as exc:  # a bug in a destination must not stop the others; retried
        log.exception("destination %r crashed", job.destination, extra=message.log_extra)
        return SendFailure(f"{type(exc).__name__}: {exc}")
    return None


def record(
    engine: Engine,
    settings: Settings,
    job: outbox_db.DeliveryJob,
    failure: SendFailure | None,
    now: datetime,
) -> Result:
    """Write the outcome of one attempt: sent, retrying (with back-off) or dead."""
    extra = {"delivery": job.id, "destination": job.destination}
    if failure is None:
        with session_scope(engine) as session:
            outbox_db.mark_sent(session, job.id, now)
        log.info("sent %s %r to %s", job.kind, job.subject, job.destination, extra=extra)
        return Result(job.id, job.destination, job.kind, job.subject, "sent")
    error = str(failure)
    retry_at = _retry_at(settings, job, failure, now)
    with session_scope(engine) as session:
        outbox_db.mark_failed(
            session, job.id, error=error, retry_at=retry_at, progress=failure.progress
        )
    if retry_at is None:
        log.error("%s to %s is dead: %s", job.kind, job.destination, error, extra=extra)
        return Result(job.id, job.destination, job.kind, job.subject, "dead", error)
    log.warning(
        "%s to %s failed (attempt %d), retrying at %s: %s",
        job.kind,
        job.destination,
        job.attempts,
        retry_at.isoformat(timespec="seconds"),
        error,
        extra=extra,
    )
    return Result(job.id, job.destination, job.kind, job.subject, "retrying", error)


def _retry_at(
    settings: Settings, job: outbox_db.DeliveryJob, failure: SendFailure, now: datetime
) -> datetime | None:
    if failure.permanent:
        return None
    if now - job.created_at >= timedelta(hours=settings.delivery.max_age_hours):
        return None
    delay = backoff(job.attempts, settings.delivery)
    if failure.retry_after is not None:
        delay = max(
            delay, timedelta(seconds=min(failure.retry_after, settings.delivery.max_backoff))
        )
    retry_at = now + delay
    quiet = QuietHours.parse(settings.alerts.quiet_hours) if job.kind == "alert" else None
    return quiet.release(retry_at, settings.zone) if quiet else retry_at


async def send_jobs(
    engine: Engine,
    settings: Settings,
    jobs: Sequence[outbox_db.DeliveryJob],
    destinations: dict[str, Destination],
    now: datetime,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[Result]:
    """Destinations in parallel; one destination's deliveries in order, each recorded at once.

    Once `should_stop` says so, no new send starts (the one on the wire finishes and is recorded)
    and the unsent claims go back to the queue.
    """
    by_destination: dict[str, list[outbox_db.DeliveryJob]] = {}
    for job in jobs:
        by_destination.setdefault(job.destination, []).append(job)
    started = utcnow()
    unsent: list[int] = []

    async def serial(name: str, queue: list[outbox_db.DeliveryJob]) -> list[Result]:
        results = []
        for job in queue:
            if should_stop():
                unsent.append(job.id)
                continue
            clock = time.monotonic()
            failure = await _attempt(job, destinations.get(name))
            seconds = time.monotonic() - clock
            moment = now + (utcnow() - started)  # `now` may be a test's clock: keep its offset
            result = await asyncio.to_thread(record, engine, settings, job, failure, moment)
            metrics.observe_delivery(job.destination, job.kind, result.status)
            if result.status == "sent" and job.kind == "digest":
                metrics.observe_digest_sent(job.destination, seconds)
            results.append(result)
        return results

    batches = await asyncio.gather(*(serial(n, q) for n, q in by_destination.items()))
    if unsent:
        await asyncio.to_thread(_give_back, engine, unsent)
    return [result for batch in batches for result in batch]


def _give_back(engine: Engine, delivery_ids: list[int]) -> None:
    with session_scope(engine) as session:
        outbox_db.give_back(session, delivery_ids)
    log.info("shutting down: %d claimed deliveries left for the next run", len(delivery_ids))


def claim(
    engine: Engine, settings: Settings, owner: str, now: datetime, limit: int = 100
) -> list[outbox_db.DeliveryJob]:
    lease = timedelta(seconds=settings.db.lease_seconds)
    with session_scope(engine) as session:
        return outbox_db.claim_due(session, owner=owner, now=now, lease=lease, limit=limit)


def describe(result: Result) -> dict[str, Any]:
    return {
        "id": result.delivery_id,
        "destination": result.destination,
        "kind": result.kind,
        "status": result.status,
        "subject": result.subject,
        "error": result.error,
    }
