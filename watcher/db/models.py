"""Tables. Unique constraints, not application checks, make duplicates impossible under races.

Times are stored as naive UTC and returned as aware UTC (`UTCDateTime`), so SQLite and PostgreSQL
behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    LargeBinary,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware-UTC datetimes on every backend (SQLite drops time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _time(index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, index=index, nullable=nullable)


def _text(default: str | None = "") -> Any:
    return Field(default=default, sa_type=Text)


def _json(default: Any) -> Any:
    return Field(default_factory=lambda: type(default)(default), sa_column=Column(JSON))


class Feed(SQLModel, table=True):
    """A feed from rules/feeds.opml; the row is also its schedule and its health record."""

    id: int | None = Field(default=None, primary_key=True)
    opml_url: str = Field(sa_type=Text, unique=True)  # as listed in feeds.opml (the sync key)
    url: str = Field(sa_type=Text)  # where it is fetched now (301s update it)
    title: str = _text()
    site_url: str | None = _text(None)
    category: str | None = _text(None)
    interval_seconds: int | None = None  # None: settings.fetch.default_interval
    extract: bool = True  # False for full-content feeds: no article page fetch
    listed: bool = True  # still in feeds.opml
    enabled: bool = True
    disabled_reason: str | None = _text(None)
    # caching
    etag: str | None = _text(None)
    last_modified: str | None = _text(None)
    # outcome of the last check
    last_status: int | None = None
    last_error: str | None = _text(None)
    parse_warning: str | None = _text(None)
    consecutive_failures: int = 0
    failing_since: datetime | None = _time()
    last_checked_at: datetime | None = _time()
    last_success_at: datetime | None = _time()
    last_new_entry_at: datetime | None = _time()
    primed: bool = False  # first successful poll done (its entries are not alerted)
    # schedule and claim
    next_check_at: datetime | None = _time(index=True)
    lease_owner: str | None = None
    lease_until: datetime | None = _time()
    # health
    cadence_seconds: float | None = None
    health_notice: str | None = _text(None)
    health_since: datetime | None = _time()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FeedEntry(SQLModel, table=True):
    """An entry seen in one feed, by its identity key; several entries may share one article."""

    __table_args__ = (UniqueConstraint("feed_id", "key", name="uq_feed_entry_key"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feed.id", index=True)
    key: str = Field(sa_type=Text)
    article_id: int | None = Field(default=None, foreign_key="article.id", index=True)
    fingerprint: str = ""
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Article(SQLModel, table=True):
    __table_args__ = (Index("ix_article_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = Field(default=None, foreign_key="feed.id", index=True)
    url: str = _text()
    canonical_url: str | None = Field(default=None, sa_type=Text, unique=True)
    guid: str | None = _text(None)
    title: str = _text()
    summary: str = _text()
    text: str = _text()
    text_method: str = "feed"  # "trafilatura" | "feed"
    extract_error: str | None = _text(None)
    author: str | None = _text(None)
    lang: str | None = None
    source: str = _text()
    published_at: datetime | None = _time()
    content_hash: str = Field(default="", index=True)
    story_id: int | None = Field(default=None, index=True)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Match(SQLModel, table=True):
    """One rule matching one article (version). Unique, so a race cannot store it twice."""

    __table_args__ = (
        UniqueConstraint("article_id", "rule_id", "article_version", name="uq_match"),
        Index("ix_match_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="article.id", index=True)
    rule_id: str = Field(index=True)
    article_version: int = 1
    story_id: int | None = Field(default=None, index=True)
    fields: list[str] = _json([])
    terms: list[str] = _json([])
    snippets: list[dict[str, Any]] = _json([])
    # suppressed: first poll of a new feed — stored, never delivered (settings.backfill = false),
    # so stored without terms and snippets
    suppressed: bool = False
    # backfill: from `rules backfill` — goes into the next digest, never an immediate alert
    backfill: bool = False
    change_summary: str | None = _text(None)  # set on an update of a known article
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Delivery(SQLModel, table=True):
    """An outbox row: one message to one destination, sent by the delivery tick."""

    __table_args__ = (Index("ix_delivery_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    destination: str
    kind: str  # "digest" | "alert"
    period_key: str | None = None  # e.g. "daily:2026-11-21" (unique per destination via the key)
    idempotency_key: str = Field(unique=True)
    status: str = "pending"  # pending | retrying | sent | dead
    attempts: int = 0
    subject: str = _text()
    payload: dict[str, Any] = _json({})
    last_error: str | None = _text(None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    next_attempt_at: datetime | None = _time()
    last_attempt_at: datetime | None = _time()
    sent_at: datetime | None = _time()
    lease_owner: str | None = None
    lease_until: datetime | None = _time()


class DeliveryItem(SQLModel, table=True):
    """Which matches a delivery carries; a match goes to a destination once per kind."""

    __table_args__ = (UniqueConstraint("match_id", "destination", "kind", name="uq_delivery_item"),)

    delivery_id: int = Field(foreign_key="delivery.id", primary_key=True)
    match_id: int = Field(foreign_key="match.id", primary_key=True)
    destination: str
    kind: str


class Story(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    first_article_id: int | None = Field(default=None, foreign_key="article.id")
    title: str = _text()
    article_count: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class ArticleSignature(SQLModel, table=True):
    """Near-duplicate signature of an article, so the story index survives restarts."""

    article_id: int = Field(foreign_key="article.id", primary_key=True)
    story_id: int = Field(index=True)
    signature: bytes = Field(sa_type=LargeBinary)
    title_key: str = _text()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class Worker(SQLModel, table=True):
    """A running daemon process (heartbeat), shown by `watcher status`."""

    id: str = Field(primary_key=True)  # host:pid:random
    hostname: str
    pid: int
    version: str
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class State(SQLModel, table=True):
    """Small named facts the daemon records (last poll summary, active rule set, reload error)."""

    key: str = Field(primary_key=True)
    value: dict[str, Any] = _json({})
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
