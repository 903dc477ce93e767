"""Webhooks against a real HTTP receiver on 127.0.0.1: signature, idempotency, retries, dead."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.deliverkit import (
    NOW,
    Corpus,
    Receiver,
    deliveries,
    items_of,
    open_engine,
    rule,
    ruleset,
    settings_for,
)
from watcher import metrics
from watcher.db import deliveries as outbox_db
from watcher.db.engine import session_scope
from watcher.deliver.service import DeliveryService
from watcher.timeutil import utcnow

pytestmark = pytest.mark.usefixtures("each_backend")  # SQLite and PostgreSQL

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def setup(tmp_path: Path, url: str, database_url: str | None = None, **values):
    settings = settings_for(
        tmp_path,
        database_url,
        timezone="Asia/Seoul",
        destinations={
            "hook": {
                "type": "webhook",
                "url": url,
                "secret": SECRET,
                "timeout": 2,
                "headers": {"X-Team": "analysts"},
            }
        },
        **values,
    )
    engine = open_engine(settings)
    return settings, engine, Corpus(engine)


def tick(settings, engine, rules, now):
    service = DeliveryService(engine, settings, owner="test")
    return asyncio.run(service.tick(rules, now=now))


def attempts(destination: str, result: str) -> float:
    labels = {"destination": destination, "kind": "alert", "result": result}
    return metrics.REGISTRY.get_sample_value("watcher_delivery_attempts_total", labels) or 0.0


def verify(header: str, body: bytes, secret: str) -> bool:
    """What a receiver does (the README's example): recompute HMAC-SHA256 over t + "." + body."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), fields["v1"])


def test_an_alert_is_posted_signed_with_the_v1_schema(tmp_path: Path, receiver: Receiver):
    settings, engine, corpus = setup(tmp_path, receiver.url)
    rules = ruleset(rule("gsomia", "GSOMIA", priority="high", immediate=True, digest="off"))
    ids = corpus.story(
        "GSOMIA <b>stays</b>",
        ["Yonhap", "Kyodo"],
        ["gsomia"],
        term="GSOMIA",
        snippet="Seoul keeps the GSOMIA pact with Tokyo.",
    )
    report = tick(settings, engine, rules, NOW)
    assert [r.status for r in report.results] == ["sent"]
    (request,) = receiver.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert verify(headers["x-watcher-signature"], request.body, SECRET)
    assert not verify(headers["x-watcher-signature"], request.body + b" ", SECRET)
    assert not verify(headers["x-watcher-signature"], request.body, "wrong secret")
    assert headers["idempotency-key"] == deliveries(engine)[0].idempotency_key
    assert headers["x-watcher-event"] == "alert" and headers["x-team"] == "analysts"
    assert headers["content-type"].startswith("application/json")
    body = request.json()
    assert body["schema"] == "news-watcher.alert/v1"
    assert body["rule"] == {"id": "gsomia", "name": "GSOMIA", "priority": "high"}
    assert body["story"]["also_in"] == ["Kyodo"]
    lead = body["story"]["matches"][0]
    assert lead["id"] == ids[0] and lead["article"]["title"] == "GSOMIA <b>stays</b>"
    assert lead["article"]["source"] == "Yonhap"
    snippet = next(s for s in lead["snippets"] if s["field"] == "text")
    start, end = snippet["highlights"][0]
    assert snippet["text"][start:end] == "GSOMIA"


def test_a_digest_is_posted_with_the_digest_schema(tmp_path: Path, receiver: Receiver):
    settings, engine, corpus = setup(tmp_path, receiver.url)
    rules = ruleset(rule("gsomia", "GSOMIA"), rule("dokdo", "Dokdo", priority="high"))
    corpus.story("GSOMIA stays", ["Yonhap", "Kyodo"], ["gsomia"])
    corpus.story("Dokdo patrol", ["KBS"], ["dokdo"])
    tick(settings, engine, rules, NOW)
    (request,) = receiver.requests
    body = request.json()
    assert body["schema"] == "news-watcher.digest/v1"
    assert body["period"] == "daily:2026-11-21" and body["time_zone"] == "Asia/Seoul"
    assert body["articles"] == 3
    assert [r["rule"]["id"] for r in body["rules"]] == ["dokdo", "gsomia"]  # high priority first
    gsomia = body["rules"][1]
    assert gsomia["articles"] == 2 and len(gsomia["stories"]) == 1
    assert gsomia["stories"][0]["also_in"] == ["Kyodo"]


def test_a_500_twice_then_200_sends_the_same_key_three_times_and_delivers_once(tmp_path: Path):
    with Receiver([500, 500, 200]) as receiver:
        settings, engine, corpus = setup(tmp_path, receiver.url)
        rules = ruleset(rule("gsomia", immediate=True, digest="off"))
        ids = corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
        statuses = []
        now = NOW
        before = {r: attempts("hook", r) for r in ("retrying", "sent")}
        for _ in range(3):
            statuses += [r.status for r in tick(settings, engine, rules, now).results]
            now += timedelta(hours=2)  # past any back-off
        assert statuses == ["retrying", "retrying", "sent"]
        assert attempts("hook", "retrying") - before["retrying"] == 2  # /metrics counts them
        assert attempts("hook", "sent") - before["sent"] == 1
        keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
        bodies = {r.body for r in receiver.requests}
        assert len(receiver.requests) == 3 and len(keys) == 1 and len(bodies) == 1
        (delivery,) = deliveries(engine)
        assert (delivery.status, delivery.attempts) == ("sent", 3)
        assert items_of(engine, delivery.id) == ids
        assert "500" in (delivery.last_error or "")  # the last failure stays on record
        assert tick(settings, engine, rules, now).results == []  # delivered once


def test_a_404_is_dead_at_once_with_the_answer_and_can_be_retried(tmp_path: Path):
    with Receiver([404]) as receiver:
        settings, engine, corpus = setup(tmp_path, receiver.url)
        rules = ruleset(rule("gsomia", immediate=True, digest="off"))
        corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
        (result,) = tick(settings, engine, rules, NOW).results
        assert result.status == "dead"
        (delivery,) = deliveries(engine)
        assert "404" in delivery.last_error and "scripted failure" in delivery.last_error
        assert tick(settings, engine, rules, NOW + timedelta(days=1)).results == []
        with session_scope(engine) as session:
            outbox_db.requeue(session, delivery.id, NOW + timedelta(days=1))
        (again,) = tick(settings, engine, rules, NOW + timedelta(days=1)).results
        assert again.status == "sent" and len(receiver.requests) == 2


def test_429_honours_retry_after_and_a_slow_receiver_is_a_timeout(tmp_path: Path):
    with Receiver([429]) as receiver:
        settings, engine, corpus = setup(tmp_path, receiver.url)
        rules = ruleset(rule("gsomia", immediate=True, digest="off"))
        corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
        receiver.statuses = [429]
        original = receiver.server.RequestHandlerClass.send_header

        def with_retry_after(handler, key, value):
            original(handler, key, value)
            if key == "Content-Type":
                original(handler, "Retry-After", "600")

        receiver.server.RequestHandlerClass.send_header = with_retry_after
        (result,) = tick(settings, engine, rules, NOW).results
        assert result.status == "retrying"
        (delivery,) = deliveries(engine)
        assert delivery.next_attempt_at - NOW >= timedelta(seconds=600)
        receiver.server.RequestHandlerClass.send_header = original
        receiver.hold.clear()  # the receiver now reads the request and never answers in time
        (slow,) = tick(settings, engine, rules, NOW + timedelta(hours=1)).results
        receiver.hold.set()
        assert slow.status == "retrying" and "no answer within 2s" in slow.error


def test_a_delivery_retrying_past_max_age_goes_dead(tmp_path: Path):
    with Receiver([503] * 10) as receiver:
        settings, engine, corpus = setup(tmp_path, receiver.url, delivery={"max_age_hours": 1})
        rules = ruleset(rule("gsomia", immediate=True, digest="off"))
        corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
        first = tick(settings, engine, rules, NOW).results
        last = tick(settings, engine, rules, NOW + timedelta(hours=2)).results
        assert [r.status for r in first + last] == ["retrying", "dead"]
        assert "503" in deliveries(engine)[0].last_error
        assert len(receiver.requests) == 2


def test_payload_schema_is_published(tmp_path: Path):
    from watcher.deliver.payloads import json_schemas

    schemas = json_schemas()
    alert = schemas["news-watcher.alert/v1"]
    assert alert["properties"]["schema"]["const"] == "news-watcher.alert/v1"
    assert {"rule", "story", "idempotency_key"} <= set(alert["required"])
    json.dumps(schemas)


def test_the_readme_verification_example_accepts_a_real_delivery(tmp_path: Path, receiver):
    """The Python example in the README's Webhook payload section works as printed."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Webhook payload", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    verify_example = namespace["verify"]
    settings, engine, corpus = setup(tmp_path, receiver.url)
    corpus.story("GSOMIA", ["Yonhap"], ["gsomia"])
    tick(settings, engine, ruleset(rule("gsomia", immediate=True, digest="off")), NOW)
    (request,) = receiver.requests
    header = request.headers["X-Watcher-Signature"]
    assert verify_example(request.body, header, SECRET) is True
    assert verify_example(request.body.replace(b"GSOMIA", b"GS0MIA"), header, SECRET) is False
    assert verify_example(request.body, header, SECRET, tolerance=-1) is False


def test_cli_lists_a_dead_delivery_and_retry_sends_it_again(tmp_path: Path):
    from typer.testing import CliRunner

    from watcher.cli import app

    with Receiver([404]) as receiver:
        rules_dir = tmp_path / "rules"
        rules_dir.mkdir()
        (rules_dir / "gsomia.yaml").write_text(
            "id: gsomia\nname: GSOMIA\nquery: GSOMIA\ndeliver: {digest: off, immediate: true}\n",
            encoding="utf-8",
        )
        config = tmp_path / "watcher.toml"
        config.write_text(
            f'data_dir = "{tmp_path / "data"}"\nrules_dir = "{rules_dir}"\n'
            f'[destinations.hook]\ntype = "webhook"\nurl = "{receiver.url}"\n',
            encoding="utf-8",
        )
        _, engine, _ = setup(tmp_path, receiver.url)
        Corpus(engine, now=utcnow()).story("GSOMIA", ["Yonhap"], ["gsomia"])
        runner = CliRunner()

        def watcher(*args: str):
            return runner.invoke(app, ["--config", str(config), *args])

        failed = watcher("digest", "send")
        assert failed.exit_code == 1 and "1 of 1 deliveries failed" in str(failed.exception)
        listed = json.loads(watcher("deliveries", "--failed", "--json").stdout)
        assert [(d["status"], d["kind"], d["attempts"]) for d in listed] == [("dead", "alert", 1)]
        assert "404" in listed[0]["last_error"]
        retried = watcher("deliveries", "retry", str(listed[0]["id"]))
        assert retried.exit_code == 0 and "pending again" in retried.stdout
        assert watcher("digest", "send").exit_code == 0
        assert json.loads(watcher("deliveries", "--failed", "--json").stdout) == []
        (delivery,) = deliveries(engine)
        assert (delivery.status, delivery.attempts) == ("sent", 2)
        assert len({r.headers["Idempotency-Key"] for r in receiver.requests}) == 1
