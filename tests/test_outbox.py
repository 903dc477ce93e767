"""The outbox: planning is idempotent and complete, alerts fire once per story, claims are
exclusive — on SQLite and on PostgreSQL (scratch schema; skipped when no server answers)."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from tests.deliverkit import (
    NOW,
    Corpus,
    deliveries,
    items_of,
    open_engine,
    rule,
    ruleset,
    settings_for,
)
from watcher.config import DigestSettings
from watcher.db import deliveries as outbox_db
from watcher.db.engine import session_scope
from watcher.db.models import DeliveryItem
from watcher.deliver.outbox import Planner, Routing
from watcher.deliver.schedule import QuietHours, backoff, latest_period
from watcher.deliver.service import DeliveryService, check_routes
from watcher.errors import ConfigError

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
def env(tmp_path: Path, database_url: str):
    """Settings (Seoul time, outbox folder), an engine on the backend under test, a corpus."""
    settings = settings_for(tmp_path, database_url, timezone="Asia/Seoul")
    engine = open_engine(settings)
    yield settings, engine, Corpus(engine)
    engine.dispose()


def service(settings, engine) -> DeliveryService:
    return DeliveryService(engine, settings, owner="test-worker")


def tick(settings, engine, rules, now, **kw):
    return asyncio.run(service(settings, engine).tick(rules, now=now, **kw))


# -- schedule (pure) ---------------------------------------------------------------------------


def test_daily_period_is_named_by_the_local_slot():
    digest = DigestSettings(at="07:30")
    before = datetime(2026, 11, 20, 22, 29, tzinfo=UTC)  # 07:29 on 21 Nov in Seoul
    after = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 07:30 on 21 Nov in Seoul
    assert latest_period("daily", before, SEOUL, digest).key == "daily:2026-11-20"
    assert latest_period("daily", after, SEOUL, digest).key == "daily:2026-11-21"
    assert latest_period("hourly", after, SEOUL, digest).key == "hourly:2026-11-21T07"
    weekly = latest_period("weekly", after, SEOUL, DigestSettings(at="07:30", weekday="mon"))
    assert weekly.key == "weekly:2026-W47"  # Monday 16 Nov is in ISO week 47
    assert weekly.at.date().isoformat() == "2026-11-16"


def test_daily_slot_keeps_its_wall_clock_time_across_daylight_saving():
    york = ZoneInfo("America/New_York")
    digest = DigestSettings(at="07:30")
    summer = latest_period("daily", datetime(2026, 10, 31, 12, tzinfo=UTC), york, digest)
    winter = latest_period("daily", datetime(2026, 11, 2, 13, tzinfo=UTC), york, digest)
    assert (summer.at.hour, summer.at.minute) == (winter.at.hour, winter.at.minute) == (7, 30)
    assert summer.at.utcoffset() != winter.at.utcoffset()


def test_quiet_hours_release_at_the_end_of_the_quiet_period():
    quiet = QuietHours.parse("22:00-07:00")
    assert quiet is not None
    late = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)  # 23:30 Seoul
    early = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)  # 05:00 Seoul, 22 Nov
    day = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)  # 12:00 Seoul
    released = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # 07:00 Seoul, 22 Nov
    assert quiet.release(late, SEOUL) == released
    assert quiet.release(early, SEOUL) == released
    assert quiet.release(day, SEOUL) == day
    with pytest.raises(ConfigError, match=r"alerts\.quiet_hours"):
        QuietHours.parse("22-7")


def test_backoff_doubles_up_to_the_cap(tmp_path: Path):
    delivery = settings_for(tmp_path, delivery={"initial_backoff": 30, "max_backoff": 100}).delivery
    assert [backoff(n, delivery).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


# -- digests -----------------------------------------------------------------------------------


def test_a_digest_period_is_planned_once_and_carries_each_match_once(env):
    settings, engine, corpus = env
    rules = ruleset(rule("gsomia", "GSOMIA"), rule("dokdo", "Dokdo/Takeshima"))
    first = corpus.story("GSOMIA stays in force", ["Yonhap", "Kyodo"], ["gsomia"])
    first += corpus.story("Dokdo patrol", ["KBS"], ["dokdo"])
    report = service(settings, engine).plan(rules, now=NOW)
    again = service(settings, engine).plan(rules, now=NOW + timedelta(minutes=5))
    assert len(report.digests) == 1 and again.digests == []
    (digest,) = deliveries(engine)
    assert digest.idempotency_key == "digest:outbox:daily:2026-11-21"  # 09:10 Seoul ≥ 07:30
    assert items_of(engine, digest.id) == sorted(first)
    # a match arriving later in the same period waits for the next period's digest
    later = corpus.story("GSOMIA talks", ["NHK"], ["gsomia"], matched_at=NOW + timedelta(hours=3))
    assert service(settings, engine).plan(rules, now=NOW + timedelta(hours=4)).digests == []
    next_day = service(settings, engine).plan(rules, now=NOW + timedelta(days=1))
    (second,) = next_day.digests
    assert items_of(engine, second) == later
    with Session(engine) as session:
        items = list(session.exec(select(DeliveryItem)))
    assert len(items) == len({(i.match_id, i.destination, i.kind) for i in items}) == 4


def test_an_empty_period_sends_nothing_unless_send_empty(env, tmp_path: Path):
    settings, engine, _ = env
    rules = ruleset(rule("gsomia"))
    report = tick(settings, engine, rules, NOW)
    assert report.results == []
    assert [(d.status, d.subject) for d in deliveries(engine)] == [("empty", "")]
    assert not (settings.outbox_dir).exists()
    loud = settings.model_copy(update={"digest": DigestSettings(send_empty=True)})
    report = tick(loud, engine, rules, NOW + timedelta(days=1))
    assert [r.status for r in report.results] == ["sent"]
    assert "nothing new" in report.results[0].subject


def test_suppressed_matches_are_never_delivered_and_backfill_never_alerts(env):
    settings, engine, corpus = env
    rules = ruleset(rule("gsomia", immediate=True))
    suppressed = corpus.story("GSOMIA old news", ["Yonhap"], ["gsomia"], suppressed=True)
    backfill = corpus.story("GSOMIA archive piece", ["Kyodo"], ["gsomia"], backfill=True)
    live = corpus.story("GSOMIA today", ["NHK"], ["gsomia"])
    report = tick(settings, engine, rules, NOW)
    by_kind = {d.kind: items_of(engine, d.id) for d in deliveries(engine)}
    assert by_kind == {"alert": live, "digest": sorted(backfill + live)}
    assert [r.status for r in report.results] == ["sent", "sent"]
    assert not set(suppressed) & {m for ids in by_kind.values() for m in ids}


def test_hourly_and_daily_rules_get_their_own_digests(env):
    settings, engine, corpus = env
    rules = ruleset(
        rule("fast", digest="hourly"), rule("slow", digest="daily"), rule("never", digest="off")
    )
    fast = corpus.story("fast news", ["A"], ["fast"])
    slow = corpus.story("slow news", ["B"], ["slow"])
    corpus.story("never news", ["C"], ["never"])
    service(settings, engine).plan(rules, now=NOW)
    planned = {d.period_key: items_of(engine, d.id) for d in deliveries(engine)}
    assert planned == {"hourly:2026-11-21T09": fast, "daily:2026-11-21": slow}


def test_each_destination_gets_the_rules_routed_to_it(env, tmp_path: Path, caplog):
    settings, engine, corpus = env
    settings = settings.model_copy(
        update={
            "destinations": settings_for(
                tmp_path,
                destinations={
                    "team": {"type": "folder", "path": str(tmp_path / "team")},
                    "boss": {"type": "folder", "path": str(tmp_path / "boss")},
                },
            ).destinations
        }
    )
    rules = ruleset(
        rule("gsomia", destinations=["team"]),
        rule("dokdo"),
        rule("acsa", destinations=["board", "boss"]),
    )
    gsomia = corpus.story("GSOMIA", ["A"], ["gsomia"])
    dokdo = corpus.story("Dokdo", ["B"], ["dokdo"])
    acsa = corpus.story("ACSA", ["C"], ["acsa"])
    with caplog.at_level(logging.ERROR, logger="watcher.deliver"):
        service(settings, engine).plan(rules, now=NOW)
    planned = {d.destination: items_of(engine, d.id) for d in deliveries(engine)}
    assert planned == {"team": sorted(gsomia + dokdo), "boss": sorted(dokdo + acsa)}
    (problem,) = check_routes(rules, settings)
    assert "'acsa'" in problem and "'board'" in problem and "boss, team" in problem
    assert problem in caplog.text


def test_concurrent_planners_produce_one_digest(env):
    """Two workers planning the same period at once: one digest, every match in it once."""
    settings, engine, corpus = env
    rules = ruleset(rule("gsomia"))
    ids = corpus.story("GSOMIA", ["A", "B", "C"], ["gsomia"])
    routing = Routing.of(rules.rules, ["outbox"])
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def plan() -> None:
        planner = Planner(settings, routing, NOW)
        try:
            with session_scope(engine) as session:
                outbox_db.undelivered_matches(
                    session,
                    destination="outbox",
                    kind="digest",
                    rule_ids=["gsomia"],
                    since=NOW - timedelta(days=1),
                )
                barrier.wait(5)
                planner.plan_due_digests(session)
        except OperationalError as exc:  # SQLite: the loser may be told the database is locked
            errors.append(exc)

    workers = [threading.Thread(target=plan) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    (digest,) = deliveries(engine)
    assert items_of(engine, digest.id) == sorted(ids)
    assert len(errors) <= 1


# -- alerts ------------------------------------------------------------------------------------


def test_an_alert_fires_once_per_story_and_rule(env):
    settings, engine, corpus = env
    rules = ruleset(rule("gsomia", "GSOMIA", immediate=True, digest="off"))
    first = corpus.story("GSOMIA ends", ["Yonhap", "Kyodo"], ["gsomia"])
    report = tick(settings, engine, rules, NOW)
    (alert,) = deliveries(engine)
    assert alert.idempotency_key.startswith("alert:outbox:gsomia:")
    assert [r.status for r in report.results] == ["sent"]
    assert "also in: Kyodo" in alert.payload["text"]
    # a third outlet's copy of the same story, matched later: covered, not alerted again
    late = corpus.story(
        "GSOMIA ends (copy)", ["NHK"], ["gsomia"], story_id=corpus.last_story, matched_at=NOW
    )
    again = tick(settings, engine, rules, NOW + timedelta(minutes=1))
    assert again.alerts == [] and again.results == []
    assert items_of(engine, alert.id) == sorted(first + late)
    assert len(deliveries(engine)) == 1


def test_an_updated_article_alerts_again_with_the_change(env):
    settings, engine, corpus = env
    rules = ruleset(rule("gsomia", immediate=True, digest="off"))
    (match_id,) = corpus.story("GSOMIA ends", ["Yonhap"], ["gsomia"])
    tick(settings, engine, rules, NOW)
    revised = corpus.revise(match_id, "title: 'ends' → 'ends today'")
    tick(settings, engine, rules, NOW + timedelta(minutes=1))
    _, update = deliveries(engine)
    assert items_of(engine, update.id) == [revised]
    assert ":update:" in update.idempotency_key and update.status == "sent"
    assert update.subject.startswith("news-watcher update: ")
    assert "updated: title: 'ends' → 'ends today'" in update.payload["text"]


def test_alerts_wait_for_the_end_of_quiet_hours(env):
    settings, engine, corpus = env
    settings = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"quiet_hours": "22:00-07:00"})}
    )
    rules = ruleset(rule("gsomia", immediate=True, digest="off"))
    night = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)  # 23:30 in Seoul
    corpus.now = night
    corpus.story("GSOMIA at night", ["Yonhap"], ["gsomia"])
    report = tick(settings, engine, rules, night)
    assert report.alerts and report.results == []
    (alert,) = deliveries(engine)
    assert alert.next_attempt_at == datetime(2026, 11, 21, 22, 0, tzinfo=UTC)  # 07:00 Seoul
    assert tick(settings, engine, rules, night + timedelta(hours=7)).results == []
    morning = tick(settings, engine, rules, datetime(2026, 11, 21, 22, 0, 5, tzinfo=UTC))
    assert [r.status for r in morning.results] == ["sent"]


# -- claiming and isolation ---------------------------------------------------------------------


def test_a_claim_is_exclusive_until_its_lease_expires(env):
    settings, engine, corpus = env
    corpus.story("GSOMIA", ["A"], ["gsomia"])
    service(settings, engine).plan(ruleset(rule("gsomia")), now=NOW)
    lease = timedelta(seconds=settings.db.lease_seconds)
    with session_scope(engine) as session:
        (job,) = outbox_db.claim_due(session, owner="a", now=NOW, lease=lease, limit=10)
    with session_scope(engine) as session:
        assert outbox_db.claim_due(session, owner="b", now=NOW, lease=lease, limit=10) == []
    later = NOW + lease + timedelta(seconds=1)
    with session_scope(engine) as session:
        (again,) = outbox_db.claim_due(session, owner="b", now=later, lease=lease, limit=10)
    assert (again.id, job.attempts, again.attempts) == (job.id, 1, 2)


def test_a_failing_destination_does_not_hold_up_the_others(env, tmp_path: Path):
    settings, engine, corpus = env
    destinations = settings_for(
        tmp_path,
        destinations={
            "down": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "timeout": 2},
            "box": {"type": "folder", "path": str(tmp_path / "box")},
        },
    ).destinations
    settings = settings.model_copy(update={"destinations": destinations})
    corpus.story("GSOMIA", ["A"], ["gsomia"])
    report = tick(settings, engine, ruleset(rule("gsomia")), NOW)
    outcome = {r.destination: r.status for r in report.results}
    assert outcome == {"down": "retrying", "box": "sent"}
    assert len(list((tmp_path / "box").glob("*.eml"))) == 1
    (failed,) = [d for d in deliveries(engine) if d.destination == "down"]
    assert "127.0.0.1:9" in failed.last_error
    delay = failed.next_attempt_at - NOW  # initial back-off, counted from the failed attempt
    initial = timedelta(seconds=settings.delivery.initial_backoff)
    assert initial <= delay < initial + timedelta(seconds=10)


def test_invalid_quiet_hours_stop_the_service_at_start(tmp_path: Path):
    settings = settings_for(tmp_path, alerts={"quiet_hours": "late-early"})
    engine = open_engine(settings)
    with pytest.raises(ConfigError, match=r"alerts\.quiet_hours: 'late-early'"):
        DeliveryService(engine, settings, owner="t")
