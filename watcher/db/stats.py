"""The numbers /metrics reports from the database, read in one short transaction per scrape.

Every query is a GROUP BY over an indexed column or a single aggregate, so a scrape stays cheap on a
database that has run for months; on PostgreSQL a statement timeout bounds it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, not_, text
from sqlmodel import Session, col, select

from watcher.db import state
from watcher.db.models import Article, Delivery, Feed, Match

FEED_STATES = ("ok", "failing", "disabled", "unchecked")
DELIVERY_STATUSES = ("pending", "retrying", "sent", "dead")
OPEN_STATUSES = ("pending", "retrying")


@dataclass(frozen=True, slots=True)
class Snapshot:
    feeds: dict[str, int]  # state → listed feeds in it (every FEED_STATES key present)
    articles: int
    matches_by_rule: dict[str, int]
    deliveries: dict[tuple[str, str], int]  # (destination, status) → rows
    oldest_open_delivery_at: datetime | None  # created_at of the oldest pending/retrying delivery
    last_feed_success_at: datetime | None
    health_notices: list[str] = field(default_factory=list)  # of listed feeds (watcher.health)
    ruleset: dict[str, Any] | None = field(default=None)  # as recorded at the last rules load


def snapshot(session: Session, *, statement_timeout_ms: int | None = 5000) -> Snapshot:
    if statement_timeout_ms and session.get_bind().dialect.name == "postgresql":
        session.exec(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))  # type: ignore[call-overload]
    return Snapshot(
        feeds=_feeds_by_state(session),
        articles=session.exec(select(func.count()).select_from(Article)).one(),
        matches_by_rule=dict(
            session.exec(select(Match.rule_id, func.count()).group_by(Match.rule_id)).all()
        ),
        deliveries={
            (destination, status): count
            for destination, status, count in session.exec(
                select(Delivery.destination, Delivery.status, func.count()).group_by(
                    Delivery.destination, Delivery.status
                )
            ).all()
        },
        oldest_open_delivery_at=session.exec(
            select(func.min(Delivery.created_at)).where(col(Delivery.status).in_(OPEN_STATUSES))
        ).one(),
        last_feed_success_at=session.exec(select(func.max(Feed.last_success_at))).one(),
        health_notices=list(
            session.exec(
                select(Feed.health_notice).where(
                    col(Feed.listed), col(Feed.health_notice).is_not(None)
                )
            ).all()
        ),
        ruleset=state.get(session, "ruleset"),
    )


def _feeds_by_state(session: Session) -> dict[str, int]:
    feed_state = case(
        (not_(col(Feed.enabled)), "disabled"),
        (col(Feed.consecutive_failures) > 0, "failing"),
        (col(Feed.last_checked_at).is_(None), "unchecked"),
        else_="ok",
    ).label("state")
    rows = session.exec(
        select(feed_state, func.count()).where(col(Feed.listed)).group_by(feed_state)
    ).all()
    return {name: 0 for name in FEED_STATES} | dict(rows)
