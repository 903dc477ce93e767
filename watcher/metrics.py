"""Prometheus metrics: process-local counters, and database numbers read at scrape time.

Two kinds, because they answer different questions:
- what THIS process did since it started (fetches, reloads, digests sent) — module-level metric
  objects in `REGISTRY`, updated by `observe_*` calls from the pipeline, daemon and delivery code;
- what the SHARED database says now (feeds by state, outbox, matches per rule) —
  `DatabaseCollector`, which queries at scrape time, at most once per `ttl` seconds however often it
  is scraped, so every worker of a scaled-out deployment reports the same current figures without
  hammering the database.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from watcher import __version__
from watcher.db import stats
from watcher.db.engine import session_scope
from watcher.health import DISABLED, FAILING, SILENT, notice_kind

if TYPE_CHECKING:
    from watcher.db.feeds import FeedOutcome
    from watcher.rules import RuleSet

log = logging.getLogger("watcher.metrics")

FETCH_RESULTS = ("ok", "not_modified", "error")
RELOAD_RESULTS = ("ok", "error")
DELIVERY_RESULTS = ("sent", "retrying", "dead")

REGISTRY = CollectorRegistry()
REGISTRY.register(PROCESS_COLLECTOR)
REGISTRY.register(PLATFORM_COLLECTOR)

BUILD_INFO = Gauge(
    "watcher_build_info",
    "Always 1; the running version is a label.",
    ["version"],
    registry=REGISTRY,
)
FEED_FETCHES = Counter(
    "watcher_feed_fetches",
    "Feed refreshes by result (ok, not_modified, error).",
    ["result"],
    registry=REGISTRY,
)
FEED_REFRESH_SECONDS = Histogram(
    "watcher_feed_refresh_seconds",
    "Time to refresh one feed: fetch, parse, extract new articles, match, store.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
LAST_REFRESH = Gauge(
    "watcher_last_refresh_timestamp_seconds",
    "Unix time this process last finished refreshing a feed (any result).",
    registry=REGISTRY,
)
ARTICLES_STORED = Counter(
    "watcher_articles_stored", "New articles this process stored.", registry=REGISTRY
)
MATCHES_STORED = Counter(
    "watcher_matches_stored", "Rule matches this process stored.", registry=REGISTRY
)
RULE_RELOADS = Counter(
    "watcher_rules_reloads",
    "Rule-set reloads by result; on error the previous rule set stays active.",
    ["result"],
    registry=REGISTRY,
)
DELIVERY_ATTEMPTS = Counter(
    "watcher_delivery_attempts",
    "Send attempts by destination, kind (digest, alert) and result (sent, retrying, dead).",
    ["destination", "kind", "result"],
    registry=REGISTRY,
)
DIGEST_SEND_SECONDS = Histogram(
    "watcher_digest_send_seconds",
    "Time to send one digest to one destination.",
    ["destination"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
DIGEST_LAST_SENT = Gauge(
    "watcher_digest_last_sent_timestamp_seconds",
    "Unix time a digest was last accepted by the destination.",
    ["destination"],
    registry=REGISTRY,
)

BUILD_INFO.labels(__version__).set(1)
for _result in FETCH_RESULTS:
    FEED_FETCHES.labels(_result)  # present at 0 from the start, so rate() and alerts work at once
for _result in RELOAD_RESULTS:
    RULE_RELOADS.labels(_result)

_last_refresh = 0.0


# -- what the rest of the code calls ---------------------------------------------------------


def observe_refresh(outcome: FeedOutcome, seconds: float) -> None:
    """One feed refreshed (pipeline.refresh_feed): result, duration, what it stored."""
    global _last_refresh
    if outcome.error is not None:
        result = "error"
    elif outcome.not_modified:
        result = "not_modified"
    else:
        result = "ok"
    FEED_FETCHES.labels(result).inc()
    FEED_REFRESH_SECONDS.observe(seconds)
    ARTICLES_STORED.inc(outcome.new_articles)
    MATCHES_STORED.inc(outcome.matches)
    _last_refresh = time.time()
    LAST_REFRESH.set(_last_refresh)


def last_refresh_time() -> float:
    """Unix time of the last finished feed refresh in this process (0.0: none yet)."""
    return _last_refresh


def observe_reload(ok: bool) -> None:
    """A rule-set reload finished (daemon.reload_rules)."""
    RULE_RELOADS.labels("ok" if ok else "error").inc()


def observe_delivery(destination: str, kind: str, result: str) -> None:
    """One send attempt of a delivery row: `result` is sent, retrying or dead."""
    DELIVERY_ATTEMPTS.labels(destination, kind, result).inc()


def observe_digest_sent(destination: str, seconds: float) -> None:
    """A digest was accepted by `destination` after `seconds` of rendering and sending."""
    DIGEST_SEND_SECONDS.labels(destination).observe(seconds)
    DIGEST_LAST_SENT.labels(destination).set(time.time())


# -- database numbers, at scrape time ---------------------------------------------------------


class DatabaseCollector(Collector):
    """Feeds by state, stored articles and matches, the outbox — queried at most once per `ttl`.

    A failed query is cached for `ttl` too (the scrape then reports `watcher_database_up 0`), so a
    database outage is not made worse by every scrape trying to connect.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ruleset: Callable[[], RuleSet] | None = None,
        ttl: float = 15.0,
        statement_timeout_ms: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ruleset = ruleset
        self.ttl = ttl
        self.statement_timeout_ms = statement_timeout_ms
        self.clock = clock
        self.queries = 0  # how many times the database was actually asked
        self._lock = threading.Lock()
        self._cached: tuple[float, stats.Snapshot | None, float] | None = None

    def describe(self) -> Iterator[Metric]:
        # Names only: registering must not query the database.
        return iter(self._families(None, 0.0, now=0.0))

    def collect(self) -> Iterator[Metric]:
        snapshot, took = self._snapshot()
        return iter(self._families(snapshot, took, now=time.time()))

    def _snapshot(self) -> tuple[stats.Snapshot | None, float]:
        with self._lock:  # concurrent scrapes wait for one query instead of each running one
            now = self.clock()
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1], self._cached[2]
            started = time.perf_counter()
            snapshot: stats.Snapshot | None
            try:
                with session_scope(self.engine) as session:
                    snapshot = stats.snapshot(
                        session, statement_timeout_ms=self.statement_timeout_ms
                    )
            except Exception as exc:  # any database failure is reported as a metric, not a 500
                log.warning("metrics: database query failed: %s", exc)
                snapshot = None
            self.queries += 1
            took = time.perf_counter() - started
            self._cached = (now, snapshot, took)
            return snapshot, took

    def _families(self, snap: stats.Snapshot | None, took: float, *, now: float) -> list[Metric]:
        up = GaugeMetricFamily(
            "watcher_database_up", "1 when the metrics query reached the database, else 0."
        )
        query = GaugeMetricFamily(
            "watcher_metrics_query_seconds", "How long the last metrics database query took."
        )
        up.add_metric([], 0.0 if snap is None else 1.0)
        query.add_metric([], took)
        families: list[Metric] = [up, query, *self._rule_families()]
        return families + _snapshot_families(snap, now)

    def _rule_families(self) -> list[Metric]:
        active = GaugeMetricFamily("watcher_rules_active", "Enabled rules in the active rule set.")
        if self.ruleset is not None:
            active.add_metric([], sum(1.0 for rule in self.ruleset().rules if rule.enabled))
        return [active]


def _snapshot_families(snap: stats.Snapshot | None, now: float) -> list[Metric]:
    feeds = GaugeMetricFamily(
        "watcher_feeds",
        "Listed feeds by state (ok, failing, disabled, unchecked).",
        labels=["state"],
    )
    articles = GaugeMetricFamily("watcher_articles", "Articles in the database.")
    matches = GaugeMetricFamily("watcher_matches", "Stored matches per rule.", labels=["rule"])
    deliveries = GaugeMetricFamily(
        "watcher_deliveries",
        "Outbox rows by destination and status (pending, retrying, sent, dead).",
        labels=["destination", "status"],
    )
    outbox_age = GaugeMetricFamily(
        "watcher_outbox_oldest_age_seconds",
        "Age of the oldest pending or retrying delivery; 0 when the outbox is empty.",
    )
    last_success = GaugeMetricFamily(
        "watcher_feed_last_success_timestamp_seconds",
        "Unix time any feed was last fetched successfully (any worker).",
    )
    notices = GaugeMetricFamily(
        "watcher_feed_notices",
        "Feeds with a health notice: failing (for long), disabled, silent (no new articles).",
        labels=["kind"],
    )
    reload_failed = GaugeMetricFamily(
        "watcher_rules_reload_failing",
        "1 when the last rule-set reload failed (the previous set stays active), else 0.",
    )
    families: list[Metric] = [
        feeds,
        articles,
        matches,
        deliveries,
        outbox_age,
        last_success,
        notices,
        reload_failed,
    ]
    if snap is None:
        return families
    for name, count in snap.feeds.items():
        feeds.add_metric([name], count)
    articles.add_metric([], snap.articles)
    for rule, count in sorted(snap.matches_by_rule.items()):
        matches.add_metric([rule], count)
    for (destination, status), count in sorted(snap.deliveries.items()):
        deliveries.add_metric([destination, status], count)
    outbox_age.add_metric([], _age(snap.oldest_open_delivery_at, now))
    if snap.last_feed_success_at is not None:
        last_success.add_metric([], snap.last_feed_success_at.timestamp())
    kinds = collections.Counter(notice_kind(message) for message in snap.health_notices)
    for kind in sorted({FAILING, DISABLED, SILENT} | set(kinds)):
        notices.add_metric([kind], kinds[kind])
    reload_failed.add_metric([], 1.0 if _reload_error(snap.ruleset) else 0.0)
    return families


def _age(since: datetime | None, now: float) -> float:
    return 0.0 if since is None else max(0.0, now - since.timestamp())


def _reload_error(recorded: dict[str, Any] | None) -> bool:
    return bool(recorded and recorded.get("error"))


def server_registry(collector: DatabaseCollector | None = None) -> CollectorRegistry:
    """What one /metrics endpoint serves: the process metrics plus, optionally, the database's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(REGISTRY)  # type: ignore[arg-type]  (a registry is a collector)
    if collector is not None:
        registry.register(collector)
    return registry
