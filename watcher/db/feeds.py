"""Feed rows: syncing the feed list, claiming due feeds, recording every fetch outcome."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from watcher import health
from watcher.config import redact_url
from watcher.db.insert import insert_ignore
from watcher.db.models import Feed
from watcher.opml import FeedSpec

DISABLED_IN_OPML = "disabled in feeds.opml"
_FEEDS: Table = Feed.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class FeedJob:
    """What a refresh needs to know about a feed, detached from the session that claimed it."""

    id: int
    url: str
    title: str
    etag: str | None
    last_modified: str | None
    interval_seconds: int | None
    extract: bool
    primed: bool
    consecutive_failures: int

    @property
    def label(self) -> str:
        """The URL for logs and summaries: a password in it (basic auth) shown as ***."""
        return redact_url(self.url)


_JOB_COLUMNS = (
    Feed.id,
    Feed.url,
    Feed.title,
    Feed.etag,
    Feed.last_modified,
    Feed.interval_seconds,
    Feed.extract,
    Feed.primed,
    Feed.consecutive_failures,
)  # FeedJob's fields, in order


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: int
    updated: int
    unlisted: int


def sync_feed_list(session: Session, specs: Sequence[FeedSpec], now: datetime) -> SyncResult:
    """Make the feed rows match the list: new feeds are due at once; removed ones stop polling.

    Rows are never deleted, so a feed that comes back keeps its articles and caching state.
    """
    rows = {feed.opml_url: feed for feed in session.exec(select(Feed))}
    added = updated = 0
    for spec in specs:
        feed = rows.pop(spec.url, None)
        if feed is None:
            # insert-or-ignore: workers starting together all sync the same list
            row = Feed(
                opml_url=spec.url,
                url=spec.url,
                title=spec.title,
                site_url=spec.site_url,
                category=spec.category,
                interval_seconds=spec.interval_seconds,
                extract=spec.extract,
                enabled=spec.enabled,
                disabled_reason=None if spec.enabled else DISABLED_IN_OPML,
                next_check_at=now,
            )
            values = row.model_dump(exclude={"id"})
            added += insert_ignore(session, Feed, values, ["opml_url"])
            continue
        changed = _apply_spec(feed, spec)
        updated += changed
    unlisted = 0
    for feed in rows.values():
        if feed.listed:
            feed.listed = False
            unlisted += 1
    session.flush()
    return SyncResult(added=added, updated=updated, unlisted=unlisted)


def _apply_spec(feed: Feed, spec: FeedSpec) -> bool:
    wanted = {
        "title": spec.title or feed.title,
        "site_url": spec.site_url or feed.site_url,
        "category": spec.category,
        "interval_seconds": spec.interval_seconds,
        "extract": spec.extract,
        "listed": True,
    }
    changed = False
    for name, value in wanted.items():
        if getattr(feed, name) != value:
            setattr(feed, name, value)
            changed = True
    if not spec.enabled and feed.enabled:
        feed.enabled, feed.disabled_reason, changed = False, DISABLED_IN_OPML, True
    elif spec.enabled and not feed.enabled and feed.disabled_reason == DISABLED_IN_OPML:
        feed.enabled, feed.disabled_reason, changed = True, None, True
    return changed


def _due_filter(now: datetime) -> list:
    return [
        col(Feed.enabled),
        col(Feed.listed),
        or_(col(Feed.next_check_at).is_(None), col(Feed.next_check_at) <= now),
        or_(col(Feed.lease_until).is_(None), col(Feed.lease_until) < now),
    ]


def claim_due_feeds(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    force: bool = False,
    exclude: Collection[int] = (),
) -> list[FeedJob]:
    """Lease up to `limit` due feeds to `owner`. On PostgreSQL rows locked by another worker are
    skipped (FOR UPDATE SKIP LOCKED), so concurrent workers never fetch the same feed twice."""
    conditions = _due_filter(now)
    if force:
        conditions = [*conditions[:2], conditions[3]]
    if exclude:
        conditions.append(col(Feed.id).not_in(list(exclude)))
    query = (
        select(*_JOB_COLUMNS)
        .where(*conditions)
        .order_by(col(Feed.next_check_at).asc().nulls_first(), col(Feed.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # Columns, not ORM rows, and one UPDATE for all leases: claiming was a tenth of a warm pass.
    jobs = [FeedJob(*row) for row in session.connection().execute(query)]
    if jobs:
        _lease(session, [job.id for job in jobs], owner, now + lease)
    return jobs


def claim_feed_by_url(
    session: Session, url: str, *, owner: str, now: datetime, lease: timedelta
) -> FeedJob | None:
    query = (
        select(*_JOB_COLUMNS)
        .where(or_(Feed.url == url, Feed.opml_url == url))
        .limit(1)
        .with_for_update()
    )
    row = session.connection().execute(query).first()
    if row is None:
        return None
    job = FeedJob(*row)
    _lease(session, [job.id], owner, now + lease)
    return job


def _lease(session: Session, ids: list[int], owner: str, until: datetime) -> None:
    session.connection().execute(
        update(Feed).where(col(Feed.id).in_(ids)).values(lease_owner=owner, lease_until=until)
    )


def release_leases(session: Session, owner: str) -> int:
    """Give back every feed lease an owner holds (graceful shutdown: the work is re-doable)."""
    result = session.execute(
        update(Feed)
        .where(col(Feed.lease_owner) == owner)
        .values(lease_owner=None, lease_until=None)
    )
    return int(result.rowcount or 0)


@dataclass(slots=True)
class FeedOutcome:
    """How one refresh ended; `record_outcome` writes it on the feed row."""

    feed_id: int
    checked_at: datetime
    next_check_at: datetime
    status: int | None = None
    error: str | None = None
    permanent: bool = False
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    new_url: str | None = None
    title: str | None = None
    site_url: str | None = None
    parse_warning: str | None = None
    entries: int = 0
    new_entries: int = 0  # entries this feed had not listed before
    new_articles: int = 0  # of those, articles not stored before (via any feed)
    matches: int = 0
    primed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def record_outcome(
    session: Session, outcome: FeedOutcome, policy: health.HealthPolicy | None = None
) -> Feed | None:
    """Status, error, failure count and next check, saved whatever happened; releases the lease.
    `policy`: the health thresholds (`[health]` settings). Returns the row as now stored."""
    record_outcomes(session, [outcome], policy)
    return session.get(Feed, outcome.feed_id, populate_existing=True)


def record_outcomes(
    session: Session,
    outcomes: Sequence[FeedOutcome],
    policy: health.HealthPolicy | None = None,
) -> None:
    """What each feed's check found, saved on its row (`record_outcome` for many feeds): one
    SELECT and one UPDATE per set of changed columns. The rows are read as plain values, not ORM
    objects: loading, tracking and flushing 500 of those was a sixth of a warm pass."""
    ids = [outcome.feed_id for outcome in outcomes]
    if not ids:
        return
    query = sa_select(_FEEDS).where(_FEEDS.c.id.in_(ids))
    before = {row.id: dict(row._mapping) for row in session.connection().execute(query)}
    states = {feed_id: _FeedState(values) for feed_id, values in before.items()}
    for outcome in outcomes:
        state = states.get(outcome.feed_id)
        if state is not None:
            _apply_outcome(cast(Feed, state), outcome, policy)  # the same attributes as a Feed
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for feed_id, state in states.items():
        old = before[feed_id]
        changed = tuple(name for name, value in vars(state).items() if old[name] != value)
        if changed:
            values = {f"v_{name}": getattr(state, name) for name in changed}
            updates.setdefault(changed, []).append({"v_id": feed_id, **values})
    for changed, rows in updates.items():
        statement = (
            update(_FEEDS)
            .where(_FEEDS.c.id == bindparam("v_id"))
            .values({name: bindparam(f"v_{name}") for name in changed})
        )
        session.connection().execute(statement, rows)


class _FeedState:
    """A feed row's values as attributes, for `_apply_outcome` and `watcher.health`."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _apply_outcome(feed: Feed, outcome: FeedOutcome, policy: health.HealthPolicy | None) -> Feed:
    # update_health sees the row as it was before this outcome
    health.update_health(feed, outcome, outcome.checked_at, policy or health.DEFAULT_POLICY)
    feed.last_checked_at = outcome.checked_at
    feed.last_status = outcome.status
    feed.next_check_at = outcome.next_check_at
    feed.lease_owner = feed.lease_until = None
    if outcome.error is not None:
        feed.last_error = outcome.error
        feed.consecutive_failures += 1
        feed.failing_since = feed.failing_since or outcome.checked_at
        if outcome.permanent:
            feed.enabled = False
            feed.disabled_reason = outcome.error
        return feed
    feed.last_error = None
    feed.consecutive_failures = 0
    feed.failing_since = None
    feed.last_success_at = outcome.checked_at
    if outcome.new_url:
        feed.url = outcome.new_url
    if not outcome.not_modified:
        feed.etag, feed.last_modified = outcome.etag, outcome.last_modified
        feed.parse_warning = outcome.parse_warning
        if outcome.title and not feed.title:
            feed.title = outcome.title
        if outcome.site_url and not feed.site_url:
            feed.site_url = outcome.site_url
    if outcome.new_entries:
        feed.last_new_entry_at = outcome.checked_at
    feed.primed = feed.primed or outcome.primed
    return feed


def list_feeds(session: Session, *, include_unlisted: bool = False) -> list[Feed]:
    query = select(Feed).order_by(col(Feed.id))
    if not include_unlisted:
        query = query.where(col(Feed.listed))
    return list(session.exec(query))


def find_feed(session: Session, url: str) -> Feed | None:
    return session.exec(select(Feed).where(or_(Feed.url == url, Feed.opml_url == url))).first()


def set_enabled(session: Session, feed: Feed, enabled: bool, now: datetime) -> None:
    feed.enabled = enabled
    if enabled:
        feed.disabled_reason = None
        feed.consecutive_failures = 0
        feed.failing_since = None
        feed.next_check_at = now
