"""Source health: each feed's publishing rhythm, and a notice when a feed breaks or goes quiet.

The commonest complaint about feed monitors is feeds that stop silently: a site moves its feed, or
it keeps answering 200 with an old file, and nobody notices for weeks. So every outcome of every
check updates the feed's health (`update_health`, called by `db.feeds.record_outcome`):

- errors for longer than `error_threshold` (one bad night is not news) raise a "failing" notice;
- a permanent error (410 Gone, redirect loop) that disabled the feed raises a "disabled" notice;
- no new articles for `silence_factor` × the feed's cadence (never less than `silence_floor`; a
  feed whose cadence is not learned yet gets `silence_unlearned`) raises a "silent" notice.

A notice clears by itself on the first check that shows the feed healthy again. The cadence is an
exponentially weighted average of the time between checks that brought new articles, so it
follows a feed that changes its rhythm without one odd gap dominating.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from watcher.db import feeds as feed_db
from watcher.db.models import Feed

if TYPE_CHECKING:
    from watcher.config import HealthSettings
    from watcher.db.feeds import FeedOutcome

FAILING, DISABLED, SILENT = "failing", "disabled", "silent"
_ORDER = {DISABLED: 0, FAILING: 1, SILENT: 2}


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds: the `[health]` settings (`from_settings`), these defaults otherwise."""

    error_threshold: timedelta = timedelta(hours=24)
    silence_factor: float = 5.0
    silence_floor: timedelta = timedelta(days=2)
    silence_unlearned: timedelta = timedelta(days=7)
    cadence_weight: float = 0.3  # weight of the newest interval in the moving average
    max_interval: timedelta = timedelta(days=30)  # one long pause counts as at most this

    @classmethod
    def from_settings(cls, settings: HealthSettings) -> HealthPolicy:
        return cls(
            error_threshold=timedelta(hours=settings.failing_after_hours),
            silence_factor=settings.silence_factor,
            silence_floor=timedelta(days=settings.silence_floor_days),
            silence_unlearned=timedelta(days=settings.silence_unlearned_days),
        )


DEFAULT_POLICY = HealthPolicy()


@dataclass(frozen=True, slots=True)
class HealthNotice:
    """One feed's problem, as the digest and `watcher feeds` show it."""

    feed_id: int
    title: str
    url: str
    kind: str  # "disabled" | "failing" | "silent"
    message: str
    since: datetime | None  # when the problem began


def update_health(
    feed: Feed, outcome: FeedOutcome, now: datetime, policy: HealthPolicy = DEFAULT_POLICY
) -> None:
    """Learn the cadence and raise or clear the notice. Called with the row as it was BEFORE this
    outcome is written (so the previous `last_new_entry_at` and `failing_since` are visible)."""
    if outcome.error is not None:
        _after_error(feed, outcome, now, policy)
        return
    if outcome.new_entries:  # entries, not articles: a feed's items may reach us via another
        _learn_cadence(feed, outcome.checked_at, policy)
        _set(feed, None)
        return
    _set(feed, _silence(feed, now, policy))


def clear(feed: Feed) -> None:
    """Forget the notice (a feed re-enabled by hand starts with a clean record)."""
    _set(feed, None)


def notices(session: Session) -> list[HealthNotice]:
    """Current notices of listed feeds, disabled first, then failing, then silent; oldest first.

    A feed the analyst disabled in feeds.opml is not a problem and is left out.
    """
    found = []
    for feed in feed_db.list_feeds(session):
        if not feed.health_notice or feed.id is None:
            continue
        kind = notice_kind(feed.health_notice)
        if not feed.enabled and kind != DISABLED:
            continue
        found.append(
            HealthNotice(
                feed_id=feed.id,
                title=feed.title or feed.url,
                url=feed.url,
                kind=kind,
                message=feed.health_notice,
                since=feed.health_since,
            )
        )
    return sorted(found, key=lambda n: (_ORDER.get(n.kind, 9), _timestamp(n.since)))


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("inf")


def notice_kind(message: str) -> str:
    """The kind a notice message starts with ("failing for 2 days: …" → "failing")."""
    return message.split(maxsplit=1)[0].rstrip(":") if message else ""


def silence_threshold(
    cadence_seconds: float | None, policy: HealthPolicy = DEFAULT_POLICY
) -> timedelta:
    if cadence_seconds is None:
        return policy.silence_unlearned
    return max(timedelta(seconds=cadence_seconds * policy.silence_factor), policy.silence_floor)


def cadence_from_dates(dates: Iterable[datetime | None]) -> float | None:
    """Median seconds between distinct publish dates (None with fewer than three dates).

    For a one-off look at a feed (`watcher feeds check`): the median ignores a single long gap.
    """
    ordered = sorted({d for d in dates if d is not None})
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    return statistics.median(gaps) if len(ordered) >= 3 else None


def describe_span(seconds: float) -> str:
    """A human duration: "40 minutes", "5 hours", "1.5 days", "3 weeks"."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * (2 if unit == "week" else 1):
            value = round(seconds / size, 1)
            text = f"{value:g}"
            return f"{text} {unit}" + ("" if text == "1" else "s")
    return f"{max(int(seconds), 0)} seconds"


# -- the rules ----------------------------------------------------------------------------------


def _after_error(feed: Feed, outcome: FeedOutcome, now: datetime, policy: HealthPolicy) -> None:
    if outcome.permanent:
        message = (
            f"{DISABLED}: {outcome.error} — no longer polled; once fixed, "
            f"`watcher feeds enable {feed.opml_url or feed.url}` resumes it"
        )
        _set(feed, (message, outcome.checked_at), keep_since=True)
        return
    since = feed.failing_since or outcome.checked_at
    if now - since < policy.error_threshold:
        return  # a passing outage: the notice (if any) stays as it was
    failures = feed.consecutive_failures + 1
    span = describe_span((now - since).total_seconds())
    message = f"{FAILING} for {span} ({failures} checks in a row): {outcome.error}"
    _set(feed, (message, since))


def _silence(feed: Feed, now: datetime, policy: HealthPolicy) -> tuple[str, datetime] | None:
    last = feed.last_new_entry_at or feed.created_at
    quiet = now - last
    if quiet < silence_threshold(feed.cadence_seconds, policy):
        return None
    rhythm = (
        f"usually every {describe_span(feed.cadence_seconds)}"
        if feed.cadence_seconds
        else "no publishing rhythm learned yet"
    )
    what = "no new articles" if feed.last_new_entry_at else "no articles since it was added"
    return f"{SILENT} for {describe_span(quiet.total_seconds())}: {what} ({rhythm})", last


def _learn_cadence(feed: Feed, checked_at: datetime, policy: HealthPolicy) -> None:
    """Fold the time since the previous new article into the moving average.

    The first check of a feed brings everything it lists at once, so it is no interval.
    """
    if not feed.primed or feed.last_new_entry_at is None:
        return
    seconds = (checked_at - feed.last_new_entry_at).total_seconds()
    seconds = min(max(seconds, 1.0), policy.max_interval.total_seconds())
    if feed.cadence_seconds is None:
        feed.cadence_seconds = seconds
    else:
        weight = policy.cadence_weight
        feed.cadence_seconds = weight * seconds + (1 - weight) * feed.cadence_seconds


def _set(feed: Feed, problem: tuple[str, datetime] | None, *, keep_since: bool = False) -> None:
    if problem is None:
        feed.health_notice = feed.health_since = None
        return
    message, since = problem
    same_kind = feed.health_notice and notice_kind(feed.health_notice) == notice_kind(message)
    if not (keep_since and same_kind and feed.health_since):
        feed.health_since = since
    feed.health_notice = message
