"""Chat through Apprise, against a real local HTTP receiver (Apprise's json:// service posts
there the way its Slack, Discord, Teams … plugins post to those services)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from tests.deliverkit import NOW, Corpus, Receiver, open_engine, rule, ruleset, settings_for
from watcher.deliver.service import DeliveryService

pytestmark = pytest.mark.usefixtures("each_backend")  # SQLite and PostgreSQL


def json_url(receiver: Receiver) -> str:
    return receiver.url.replace("http://", "json://")


def setup(tmp_path: Path, urls: list[str]):
    settings = settings_for(
        tmp_path, timezone="Asia/Seoul", destinations={"chat": {"type": "chat", "urls": urls}}
    )
    engine = open_engine(settings)
    return settings, engine, Corpus(engine)


def tick(settings, engine, rules, now=NOW):
    return asyncio.run(DeliveryService(engine, settings, owner="t").tick(rules, now=now)).results


def test_an_alert_reaches_chat_as_a_short_text(tmp_path: Path):
    with Receiver() as receiver:
        settings, engine, corpus = setup(tmp_path, [json_url(receiver)])
        corpus.story("GSOMIA stays", ["Yonhap", "Kyodo"], ["gsomia"], url="https://yna.example/1")
        rules = ruleset(rule("gsomia", "GSOMIA", immediate=True, digest="off"))
        assert [r.status for r in tick(settings, engine, rules)] == ["sent"]
    (request,) = receiver.requests
    posted = request.json()
    assert posted["title"] == "GSOMIA: GSOMIA stays"
    body = posted["message"]
    assert "[GSOMIA] GSOMIA stays" in body and "Yonhap" in body and "also in: Kyodo" in body
    assert "https://yna.example/1" in body
    assert len(body) < 500


def test_a_digest_reaches_chat_as_a_summary(tmp_path: Path):
    with Receiver() as receiver:
        settings, engine, corpus = setup(tmp_path, [json_url(receiver)])
        for n in range(8):
            corpus.story(f"Dokdo story {n}", ["KBS"], ["dokdo"])
        assert [r.status for r in tick(settings, engine, ruleset(rule("dokdo", "Dokdo")))] == [
            "sent"
        ]
    body = receiver.requests[0].json()["message"]
    assert body.startswith("8 new — Dokdo 8 (21 Nov)")
    assert body.count("• ") == 5 and "… 3 more" in body


def test_a_failing_chat_service_is_retried_without_repeating_the_ones_that_accepted(
    tmp_path: Path,
):
    with Receiver() as good, Receiver([500]) as flaky:
        settings, engine, corpus = setup(tmp_path, [json_url(good), json_url(flaky)])
        corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
        rules = ruleset(rule("gsomia", immediate=True, digest="off"))
        (first,) = tick(settings, engine, rules)
        (second,) = tick(settings, engine, rules, NOW + timedelta(hours=1))
    assert (first.status, second.status) == ("retrying", "sent")
    assert "json://127.0.0.1" in first.error
    assert len(good.requests) == 1 and len(flaky.requests) == 2


def test_a_url_apprise_does_not_know_is_dead_at_once(tmp_path: Path):
    settings, engine, corpus = setup(tmp_path, ["nosuchservice://token@x"])
    corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
    (result,) = tick(settings, engine, ruleset(rule("gsomia", immediate=True, digest="off")))
    assert result.status == "dead" and "Apprise" in result.error
    assert "token" not in result.error  # URLs carry secrets: never echoed
