"""Source health through `db.feeds.record_outcome` on a real database: notices raised after the
error threshold, on a permanent error, after silence beyond the learned cadence; cleared by
recovery; listed by `notices(session)` for the digest."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from watcher import health
from watcher.config import HealthSettings, Settings
from watcher.db import feeds as feed_db
from watcher.db.engine import make_engine, session_scope
from watcher.db.models import Feed
from watcher.db.schema import ensure_schema
from watcher.opml import FeedSpec

T0 = datetime.now(UTC).replace(microsecond=0)  # feeds are created "now" (created_at)
URL = "https://news.example/rss.xml"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(Settings(data_dir=tmp_path, rules_dir=tmp_path))
    ensure_schema(made)
    with session_scope(made) as session:
        feed_db.sync_feed_list(
            session,
            [FeedSpec(URL, "News"), FeedSpec("https://quiet.example/rss", "Quiet")],
            T0,
        )
    yield made
    made.dispose()


def record(
    engine: Engine,
    at: datetime,
    url: str = URL,
    policy: health.HealthPolicy | None = None,
    **fields,
) -> Feed:
    """One check of the feed at `at`, recorded as the pipeline records it."""
    with session_scope(engine) as session:
        feed = feed_db.find_feed(session, url)
        assert feed is not None and feed.id is not None
        outcome = feed_db.FeedOutcome(
            feed_id=feed.id, checked_at=at, next_check_at=at + timedelta(minutes=15), **fields
        )
        row = feed_db.record_outcome(session, outcome, policy)
        assert row is not None
        session.flush()
        session.expunge(row)
        return row


def ok(engine: Engine, at: datetime, new: int = 0, **fields) -> Feed:
    return record(engine, at, status=200, new_entries=new, new_articles=new, primed=True, **fields)


def fail(engine: Engine, at: datetime, **fields) -> Feed:
    return record(engine, at, status=503, error=f"{URL}: HTTP 503 Service Unavailable", **fields)


def notices(engine: Engine) -> list[health.HealthNotice]:
    with session_scope(engine) as session:
        return health.notices(session)


# -- errors -------------------------------------------------------------------------------------


def test_errors_shorter_than_the_threshold_raise_nothing(engine: Engine):
    ok(engine, T0, new=5)
    for hours in (1, 3, 7, 15, 23):
        feed = fail(engine, T0 + timedelta(hours=hours))
    assert feed.consecutive_failures == 5 and feed.health_notice is None
    assert notices(engine) == []


def test_errors_longer_than_the_threshold_raise_a_notice_that_clears_on_recovery(engine: Engine):
    ok(engine, T0, new=5)
    first_error = T0 + timedelta(hours=1)
    for hours in (1, 5, 13, 26):
        feed = fail(engine, T0 + timedelta(hours=hours))
    assert feed.health_notice is not None
    assert feed.health_notice.startswith("failing for 1 day (4 checks in a row)")
    assert "HTTP 503" in feed.health_notice and feed.health_since == first_error
    feed = fail(engine, T0 + timedelta(hours=50))
    assert feed.health_notice.startswith("failing for 2 days (5 checks in a row)")
    assert feed.health_since == first_error  # when the problem began, not when last seen

    [notice] = notices(engine)
    assert (notice.kind, notice.title, notice.url, notice.since) == (
        "failing",
        "News",
        URL,
        first_error,
    )
    assert notice.message == feed.health_notice

    feed = ok(engine, T0 + timedelta(hours=51), not_modified=True)  # a 304 is a recovery too
    assert (feed.health_notice, feed.health_since, feed.failing_since) == (None, None, None)
    assert notices(engine) == []


def test_a_permanent_error_disables_the_feed_with_a_notice_at_once(engine: Engine):
    ok(engine, T0, new=3)
    gone = f"{URL}: HTTP 410 Gone (the feed was removed)"
    feed = record(engine, T0 + timedelta(hours=1), status=410, error=gone, permanent=True)
    assert not feed.enabled and feed.disabled_reason == gone
    assert feed.health_notice.startswith("disabled: ") and gone in feed.health_notice
    assert f"watcher feeds enable {URL}" in feed.health_notice
    [notice] = notices(engine)  # listed although the feed is disabled: nobody would notice
    assert (notice.kind, notice.since) == ("disabled", T0 + timedelta(hours=1))

    with session_scope(engine) as session:
        row = feed_db.find_feed(session, URL)
        feed_db.set_enabled(session, row, True, T0 + timedelta(days=3))
        health.clear(row)
    assert notices(engine) == []
    feed = ok(engine, T0 + timedelta(days=3, minutes=1), new=1)
    assert feed.enabled and feed.health_notice is None


def test_a_feed_the_analyst_disabled_is_no_problem(engine: Engine):
    for hours in (0, 12, 30):
        fail(engine, T0 + timedelta(hours=hours))
    assert len(notices(engine)) == 1
    with session_scope(engine) as session:
        feed_db.sync_feed_list(
            session,
            [FeedSpec(URL, "News", enabled=False), FeedSpec("https://quiet.example/rss", "Quiet")],
            T0 + timedelta(days=2),
        )
    assert notices(engine) == []


# -- silence ------------------------------------------------------------------------------------


def test_cadence_is_learned_from_the_gaps_between_new_articles(engine: Engine):
    ok(engine, T0, new=20)  # first check: everything is new at once, no interval yet
    at = T0
    for _ in range(6):
        at += timedelta(hours=6)
        feed = ok(engine, at, new=2)
    assert feed.cadence_seconds == pytest.approx(6 * 3600)
    for _ in range(3):  # quieter now: the average follows
        at += timedelta(hours=12)
        feed = ok(engine, at, new=1)
    assert 6 * 3600 < feed.cadence_seconds < 12 * 3600


def test_silence_beyond_five_times_the_cadence_raises_a_notice_that_clears(engine: Engine):
    ok(engine, T0, new=20)
    at = T0
    for _ in range(4):
        at += timedelta(hours=12)
        ok(engine, at, new=1)
    last_new = at  # cadence 12 h: 5 × 12 h = 60 h > the 2-day floor
    feed = ok(engine, last_new + timedelta(hours=59), not_modified=True)
    assert feed.health_notice is None
    feed = ok(engine, last_new + timedelta(hours=61), not_modified=True)
    assert feed.health_notice == ("silent for 2.5 days: no new articles (usually every 12 hours)")
    assert feed.health_since == last_new
    feed = ok(engine, last_new + timedelta(hours=80))  # 200 with nothing new: still silent
    assert feed.health_notice.startswith("silent for 3.3 days")
    assert [n.kind for n in notices(engine)] == ["silent"]
    feed = ok(engine, last_new + timedelta(hours=81), new=1)
    assert feed.health_notice is None and notices(engine) == []


def test_a_busy_feed_is_silent_after_the_two_day_floor_not_after_minutes(engine: Engine):
    ok(engine, T0, new=50)
    at = T0
    for _ in range(8):
        at += timedelta(minutes=15)
        ok(engine, at, new=3)
    assert ok(engine, at + timedelta(hours=20)).health_notice is None
    assert ok(engine, at + timedelta(days=2, minutes=1)).health_notice.startswith("silent for 2 d")


def test_a_feed_without_a_learned_cadence_gets_a_week(engine: Engine):
    quiet = "https://quiet.example/rss"
    ok(engine, T0 + timedelta(hours=1), url=quiet)  # empty feed: nothing ever new
    assert ok(engine, T0 + timedelta(days=6), url=quiet).health_notice is None
    feed = ok(engine, T0 + timedelta(days=7, hours=1), url=quiet)
    assert feed.health_notice == (
        "silent for 7 days: no articles since it was added (no publishing rhythm learned yet)"
    )


def test_notices_list_disabled_then_failing_then_silent(engine: Engine):
    quiet, gone = "https://quiet.example/rss", "https://gone.example/rss"
    with session_scope(engine) as session:
        specs = [FeedSpec(URL, "News"), FeedSpec(quiet, "Quiet"), FeedSpec(gone, "Gone")]
        feed_db.sync_feed_list(session, specs, T0)
    ok(engine, T0, url=quiet)
    ok(engine, T0 + timedelta(days=8), url=quiet)
    for hours in (0, 30):
        fail(engine, T0 + timedelta(hours=hours))
    record(engine, T0 + timedelta(days=9), url=gone, status=410, error="410", permanent=True)
    assert [(n.kind, n.title) for n in notices(engine)] == [
        ("disabled", "Gone"),
        ("failing", "News"),
        ("silent", "Quiet"),
    ]
    assert health.notice_kind("silent for 3 days: …") == "silent"


# -- helpers ------------------------------------------------------------------------------------


def test_cadence_from_publish_dates_is_the_median_gap():
    dates = [T0 + timedelta(hours=h) for h in (0, 2, 4, 6, 30)] + [None, T0]
    assert health.cadence_from_dates(dates) == 2 * 3600
    assert health.cadence_from_dates([T0, T0 + timedelta(hours=1)]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30 seconds"),
        (60, "1 minute"),
        (5400, "1.5 hours"),
        (86400, "1 day"),
        (3 * 86400, "3 days"),
        (9 * 86400, "9 days"),
        (21 * 86400, "3 weeks"),
    ],
)
def test_describe_span(seconds: float, text: str):
    assert health.describe_span(seconds) == text


def test_threshold_policy():
    assert health.silence_threshold(None) == timedelta(days=7)
    assert health.silence_threshold(3600) == timedelta(days=2)
    assert health.silence_threshold(86400) == timedelta(days=5)


def test_health_settings_move_the_thresholds(engine: Engine):
    policy = health.HealthPolicy.from_settings(
        HealthSettings(
            failing_after_hours=2, silence_factor=2, silence_floor_days=0.5,
            silence_unlearned_days=1,
        )
    )  # fmt: skip
    assert policy.silence_unlearned == timedelta(days=1)
    ok(engine, T0, new=5)
    failed = record(engine, T0 + timedelta(hours=1), policy=policy, status=503, error="HTTP 503")
    assert failed.health_notice is None
    failed = record(engine, T0 + timedelta(hours=4), policy=policy, status=503, error="HTTP 503")
    assert (failed.health_notice or "").startswith("failing for 3 hours")  # default: after 24 h
    quiet = "https://quiet.example/rss"
    record(engine, T0, url=quiet, policy=policy, status=200, new_entries=3, primed=True)
    for day in (1, 2, 3):  # cadence: a day
        record(engine, T0 + timedelta(days=day), quiet, policy, status=200, new_entries=1)
    silent = record(engine, T0 + timedelta(days=5, hours=1), quiet, policy, status=304)
    assert (silent.health_notice or "").startswith("silent for 2 days")  # default: 5 days


def test_recording_many_outcomes_at_once_writes_what_one_at_a_time_writes(engine: Engine):
    """The pipeline records a batch of feeds' outcomes at once (`record_outcomes`): a feed's row
    ends up as it does when its outcomes are recorded alone, and an unknown feed is skipped."""
    quiet = "https://quiet.example/rss"
    checks: list[dict] = [
        dict(status=200, new_entries=5, primed=True, etag='"v1"', last_modified="Mon",
             title="Got a title", site_url="https://news.example/"),
        dict(status=304, not_modified=True),
        dict(status=503, error="HTTP 503 Service Unavailable"),
        dict(status=503, error="HTTP 503 Service Unavailable"),  # 30 hours on: failing
        dict(status=200, new_entries=1, etag='"v2"', parse_warning="bad date"),
        dict(status=200, new_url="https://news.example/moved.xml"),
        dict(status=410, error="HTTP 410 Gone", permanent=True),
    ]  # fmt: skip
    hours = [0, 1, 2, 32, 33, 34, 40]
    with session_scope(engine) as session:
        ids = {feed.opml_url: feed.id for feed in feed_db.list_feeds(session)}
    for fields, hour in zip(checks, hours, strict=True):
        at = T0 + timedelta(hours=hour)
        outcome = dict(checked_at=at, next_check_at=at + timedelta(minutes=15), **fields)
        record(engine, at, URL, **fields)  # one at a time
        with session_scope(engine) as session:  # batched, with a second outcome of another feed
            feed_db.record_outcomes(
                session,
                [
                    feed_db.FeedOutcome(feed_id=ids[quiet], **outcome),
                    feed_db.FeedOutcome(feed_id=999_999, **outcome),  # no such feed: skipped
                ],
            )
    with session_scope(engine) as session:
        one, batched = (session.get(Feed, ids[url]) for url in (URL, quiet))
        assert one is not None and batched is not None
        assert one.health_notice and one.health_notice.startswith("disabled")
        batched.health_notice = (batched.health_notice or "").replace(quiet, URL)
        differ = {"id", "opml_url", "title", "created_at"}  # the feed list's own values
        assert {k: v for k, v in one.model_dump().items() if k not in differ} == {
            k: v for k, v in batched.model_dump().items() if k not in differ
        }
