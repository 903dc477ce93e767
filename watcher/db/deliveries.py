"""The outbox: delivery rows, the matches they carry, claiming and recording attempts.

Unique constraints decide races: `Delivery.idempotency_key` (a digest period or an alert is planned
once per destination) and `DeliveryItem(match_id, destination, kind)` (a match is planned once per
destination and kind). Claims use `FOR UPDATE SKIP LOCKED` plus a lease, so on PostgreSQL several
workers share the outbox and a dead worker's claims expire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, update
from sqlmodel import Session, col, select

from watcher.db.insert import insert_ignore
from watcher.db.models import Article, Delivery, DeliveryItem, Match

DUE_STATUSES = ("pending", "retrying")
FAILED_STATUSES = ("retrying", "dead")


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A claimed delivery, detached from the session that claimed it."""

    id: int
    destination: str
    kind: str
    idempotency_key: str
    subject: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def undelivered_matches(
    session: Session,
    *,
    destination: str,
    kind: str,
    rule_ids: Iterable[str],
    since: datetime,
    until: datetime | None = None,
    include_backfill: bool = True,
) -> list[tuple[Match, Article]]:
    """Deliverable matches of these rules not yet planned for (destination, kind), oldest first.
    Suppressed matches (first poll of a new feed) are never deliverable."""
    rule_ids = list(rule_ids)
    if not rule_ids:
        return []
    planned = exists().where(
        DeliveryItem.match_id == Match.id,
        DeliveryItem.destination == destination,
        DeliveryItem.kind == kind,
    )
    query = (
        select(Match, Article)
        .join(Article, col(Article.id) == col(Match.article_id))
        .where(
            col(Match.rule_id).in_(rule_ids),
            col(Match.suppressed).is_(False),
            col(Match.created_at) >= since,
            ~planned,
        )
        .order_by(col(Match.id))
    )
    if until is not None:
        query = query.where(col(Match.created_at) <= until)
    if not include_backfill:
        query = query.where(col(Match.backfill).is_(False))
    return [(match, article) for match, article in session.exec(query)]


def matches_since(
    session: Session, *, rule_ids: Iterable[str], since: datetime
) -> list[tuple[Match, Article]]:
    """Deliverable matches in a window, delivered or not (for previews)."""
    query = (
        select(Match, Article)
        .join(Article, col(Article.id) == col(Match.article_id))
        .where(
            col(Match.rule_id).in_(list(rule_ids)),
            col(Match.suppressed).is_(False),
            col(Match.created_at) >= since,
        )
        .order_by(col(Match.id))
    )
    return [(match, article) for match, article in session.exec(query)]


def get(session: Session, delivery_id: int) -> Delivery | None:
    return session.get(Delivery, delivery_id)


def find(session: Session, key: str) -> Delivery | None:
    return session.exec(select(Delivery).where(Delivery.idempotency_key == key)).first()


def existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    query = select(Delivery.idempotency_key).where(col(Delivery.idempotency_key).in_(list(keys)))
    return set(session.exec(query))


def create(
    session: Session,
    *,
    destination: str,
    kind: str,
    key: str,
    now: datetime,
    period_key: str | None = None,
    status: str = "pending",
    due: datetime | None = None,
) -> int | None:
    """Insert a delivery unless one with this key exists; its id, or None when it existed."""
    values = {
        "destination": destination,
        "kind": kind,
        "period_key": period_key,
        "idempotency_key": key,
        "status": status,
        "attempts": 0,
        "subject": "",
        "payload": {},
        "created_at": now,
        "next_attempt_at": due or now,
    }
    if not insert_ignore(session, Delivery, values, ["idempotency_key"]):
        return None
    found = find(session, key)
    assert found is not None and found.id is not None
    return found.id


def add_items(
    session: Session, delivery_id: int, destination: str, kind: str, match_ids: Iterable[int]
) -> list[int]:
    """Attach matches to a delivery; returns the ones attached (others were planned already)."""
    attached = []
    for match_id in match_ids:
        values = {
            "delivery_id": delivery_id,
            "match_id": match_id,
            "destination": destination,
            "kind": kind,
        }
        if insert_ignore(session, DeliveryItem, values, ["match_id", "destination", "kind"]):
            attached.append(match_id)
    return attached


def set_message(
    session: Session, delivery_id: int, subject: str, payload: dict[str, Any], status: str
) -> None:
    session.execute(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id)
        .values(subject=subject, payload=payload, status=status)
    )


def claim_due(
    session: Session, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[DeliveryJob]:
    """Lease up to `limit` due deliveries to `owner`; each claim counts as an attempt (so a
    worker killed mid-send still shows in `attempts`)."""
    query = (
        select(Delivery)
        .where(
            col(Delivery.status).in_(DUE_STATUSES),
            col(Delivery.next_attempt_at) <= now,
            or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
        )
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(query))
    jobs = []
    for row in rows:
        assert row.id is not None
        row.lease_owner, row.lease_until = owner, now + lease
        row.attempts += 1
        row.last_attempt_at = now
        jobs.append(
            DeliveryJob(
                row.id,
                row.destination,
                row.kind,
                row.idempotency_key,
                row.subject,
                dict(row.payload or {}),
                row.attempts,
                row.created_at,
            )
        )
    session.flush()
    return jobs


def give_back(session: Session, delivery_ids: Sequence[int]) -> None:
    """Unsent claims back to the queue at shutdown, their attempt not counted: another worker
    (or the next run) takes them at once instead of after the lease."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(delivery_ids), col(Delivery.status).in_(DUE_STATUSES))
            .values(lease_owner=None, lease_until=None, attempts=col(Delivery.attempts) - 1)
        )


def release_leases(session: Session, owner: str) -> int:
    """Every delivery lease an owner still holds, given back (its attempt stays counted: it may
    have been on the wire)."""
    result = session.execute(
        update(Delivery)
        .where(col(Delivery.lease_owner) == owner, col(Delivery.status).in_(DUE_STATUSES))
        .values(lease_owner=None, lease_until=None)
    )
    return int(result.rowcount or 0)


def mark_sent(session: Session, delivery_id: int, now: datetime) -> None:
    _finish(session, delivery_id, status="sent", sent_at=now)  # last_error stays: history


def mark_failed(
    session: Session,
    delivery_id: int,
    *,
    error: str,
    retry_at: datetime | None,
    progress: dict[str, Any] | None = None,
) -> None:
    """`retry_at` None: dead. `progress` is merged into the payload (parts already sent)."""
    values: dict[str, Any] = {"last_error": error[:2000]}
    if retry_at is None:
        values["status"] = "dead"
    else:
        values.update(status="retrying", next_attempt_at=retry_at)
    if progress:
        row = session.get(Delivery, delivery_id)
        if row is not None:
            values["payload"] = {
                **row.payload,
                "progress": {**row.payload.get("progress", {}), **progress},
            }
    _finish(session, delivery_id, **values)


def _finish(session: Session, delivery_id: int, **values: Any) -> None:
    session.execute(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.status).in_(DUE_STATUSES))
        .values(lease_owner=None, lease_until=None, **values)
    )


def requeue(session: Session, delivery_id: int, now: datetime) -> Delivery | None:
    """A dead or retrying delivery back to pending, due now (other rows are returned unchanged).
    None if there is no such row. A pending row may be mid-send under a lease: left alone."""
    row = session.get(Delivery, delivery_id)
    if row is None:
        return None
    if row.status in FAILED_STATUSES:
        row.status, row.next_attempt_at = "pending", now
        row.lease_owner = row.lease_until = None
        session.flush()
    return row


def list_deliveries(
    session: Session, *, failed: bool = False, include_empty: bool = False, limit: int = 100
) -> list[tuple[Delivery, int]]:
    """Newest first, each with the number of matches it carries."""
    items = (
        select(func.count())
        .select_from(DeliveryItem)
        .where(DeliveryItem.delivery_id == Delivery.id)
        .scalar_subquery()
    )
    query = select(Delivery, items).order_by(col(Delivery.id).desc()).limit(limit)
    if failed:
        query = query.where(col(Delivery.status).in_(FAILED_STATUSES))
    elif not include_empty:
        query = query.where(col(Delivery.status) != "empty")
    return [(row, count) for row, count in session.exec(query)]
