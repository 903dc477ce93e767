"""/healthz, /readyz and /metrics over a real HTTP server on 127.0.0.1, against a real database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine

from tests.feedsite import FeedSite, items
from watcher import metrics
from watcher.config import Settings
from watcher.db.engine import make_engine, session_scope
from watcher.db.feeds import FeedOutcome
from watcher.db.models import Article, Delivery, Feed, Match
from watcher.db.schema import ensure_schema
from watcher.errors import ConfigError
from watcher.rules import RuleSet, load_ruleset
from watcher.timeutil import utcnow
from watcher.web import DaemonProbes, HealthServer, parse_listen, serve_http

RULE = "id: test\nname: Test\nquery: GSOMIA\n"


# -- helpers ---------------------------------------------------------------------------------


def get(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, content type, body) — 4xx/5xx are answers here, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_settings(root: Path, database_url: str | None = None) -> Settings:
    rules = root / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(RULE, encoding="utf-8")
    return Settings(
        data_dir=root / "data", rules_dir=rules, database_url=database_url, poll_tick_seconds=10
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def both_backends(tmp_path: Path, database_url: str) -> Settings:
    """For the tests whose SQL matters: SQLite and PostgreSQL (the `database_url` fixture)."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    ensure_schema(engine)
    yield engine
    engine.dispose()


def daemon_like(settings: Settings, engine: Engine, ruleset: RuleSet | None = None) -> Any:
    """The attributes DaemonProbes and serve_http read from a Daemon (the real one needs the whole
    pipeline; these tests are about the HTTP side)."""
    ruleset = load_ruleset(settings.rules_dir) if ruleset is None else ruleset
    watcher = SimpleNamespace(engine=engine, ruleset=ruleset, settings=settings)
    return SimpleNamespace(settings=settings, watcher=watcher, last_tick=utcnow())


@pytest.fixture
def server(settings: Settings, engine: Engine) -> Iterator[tuple[HealthServer, Any]]:
    yield from serve(settings, engine)


@pytest.fixture
def server_on_both(both_backends: Settings) -> Iterator[tuple[HealthServer, Any]]:
    engine = make_engine(both_backends)
    ensure_schema(engine)
    yield from serve(both_backends, engine)
    engine.dispose()


def serve(settings: Settings, engine: Engine) -> Iterator[tuple[HealthServer, Any]]:
    daemon = daemon_like(settings, engine)
    collector = metrics.DatabaseCollector(engine, ruleset=lambda: daemon.watcher.ruleset, ttl=0)
    with HealthServer(
        "127.0.0.1:0", DaemonProbes(daemon), metrics.server_registry(collector)
    ) as running:
        yield running, daemon


# -- listen address --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9400", ("127.0.0.1", 9400)),
        ("0.0.0.0:9400", ("0.0.0.0", 9400)),
        (":9400", ("0.0.0.0", 9400)),
        ("[::1]:9400", ("::1", 9400)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]):
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9400", "127.0.0.1", "127.0.0.1:http", "host:70000", ""])
def test_parse_listen_rejects_with_the_setting_named(value: str):
    with pytest.raises(ConfigError, match=r"http\.listen"):
        parse_listen(value)


def test_busy_port_is_a_config_error_naming_the_setting(settings: Settings, engine: Engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer(
            f"127.0.0.1:{port}", DaemonProbes(daemon_like(settings, engine)), metrics.REGISTRY
        )
        with pytest.raises(ConfigError, match=rf"http.listen: cannot listen on 127.0.0.1:{port}"):
            server.start()


# -- /healthz and /readyz ----------------------------------------------------------------------


def test_healthz_is_200_while_the_scheduler_ticks(server):
    running, _ = server
    status, content_type, body = get(running.url + "/healthz")
    assert (status, content_type) == (200, "application/json")
    data = json.loads(body)
    assert data["status"] == "alive"
    assert data["limit_seconds"] == 3 * 10 + 60


def test_healthz_is_503_when_the_scheduler_stopped_ticking(server, monkeypatch):
    running, daemon = server
    monkeypatch.setattr(metrics, "_last_refresh", 0.0)  # no refresh finished in this process
    daemon.last_tick = utcnow() - timedelta(seconds=91)
    status, _, body = get(running.url + "/healthz")
    assert status == 503
    assert json.loads(body)["status"].startswith("stalled")
    # a feed refresh finishing proves a long poll is still moving
    metrics.observe_refresh(FeedOutcome(feed_id=1, checked_at=utcnow(), next_check_at=utcnow()), 1)
    assert get(running.url + "/healthz")[0] == 200


def test_readyz_is_200_with_database_and_rules(server_on_both):
    running, _ = server_on_both
    status, _, body = get(running.url + "/readyz")
    data = json.loads(body)
    assert status == 200, data
    assert data["checks"]["database"] == {"ok": True, "detail": "reachable"}
    assert data["checks"]["rules"]["detail"].startswith("1 enabled rules")


def test_readyz_is_503_without_rules_and_says_so(server):
    running, daemon = server
    daemon.watcher.ruleset = RuleSet()
    status, _, body = get(running.url + "/readyz")
    data = json.loads(body)
    assert status == 503
    assert data["status"] == "not ready"
    assert data["checks"]["rules"]["ok"] is False
    assert "no enabled rules" in data["checks"]["rules"]["detail"]
    assert data["checks"]["database"]["ok"] is True


def test_readyz_and_metrics_when_the_database_is_unreachable(settings: Settings):
    dead = create_engine(
        f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none",
        connect_args={"connect_timeout": 2},
    )
    daemon = daemon_like(settings, dead)
    registry = metrics.server_registry(metrics.DatabaseCollector(dead, ttl=0))
    with HealthServer("127.0.0.1:0", DaemonProbes(daemon), registry) as running:
        status, _, body = get(running.url + "/readyz")
        data = json.loads(body)
        assert status == 503
        assert data["checks"]["database"]["ok"] is False
        assert "cannot reach the database" in data["checks"]["database"]["detail"]
        # a scrape still answers, and says the database is down
        status, _, page = get(running.url + "/metrics")
        assert status == 200
        assert samples(page)[("watcher_database_up", ())] == 0.0
        assert get(running.url + "/healthz")[0] == 200  # alive: a database outage is not a hang
    dead.dispose()


def test_a_failing_probe_is_a_500_and_the_server_keeps_serving(settings: Settings, engine: Engine):
    class Broken(DaemonProbes):
        def readiness(self) -> tuple[bool, dict[str, Any]]:
            raise RuntimeError("probe bug")

    with HealthServer(
        "127.0.0.1:0", Broken(daemon_like(settings, engine)), metrics.REGISTRY
    ) as running:
        assert get(running.url + "/readyz")[0] == 500
        assert get(running.url + "/healthz")[0] == 200


def test_unknown_path_is_404_and_head_has_no_body(server):
    running, _ = server
    assert get(running.url + "/nope")[0] == 404
    request = urllib.request.Request(running.url + "/healthz", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 0
        assert response.read() == b""


# -- /metrics ----------------------------------------------------------------------------------


def seed(engine: Engine) -> None:
    """Feeds in every state, two articles, matches for two rules, an outbox with an old row."""
    now = utcnow()
    with session_scope(engine) as session:
        session.add_all(
            [
                Feed(
                    opml_url="http://a/ok",
                    url="http://a/ok",
                    last_checked_at=now,
                    last_success_at=now - timedelta(minutes=5),
                ),
                Feed(
                    opml_url="http://a/ok2",
                    url="http://a/ok2",
                    last_checked_at=now,
                    health_notice="silent for 9 days (usually a new article every 6 hours)",
                ),
                Feed(
                    opml_url="http://a/bad",
                    url="http://a/bad",
                    consecutive_failures=3,
                    last_checked_at=now,
                    health_notice="failing for 2 days: HTTP 503",
                ),
                Feed(
                    opml_url="http://a/off",
                    url="http://a/off",
                    enabled=False,
                    health_notice="disabled: HTTP 410 Gone",
                ),
                Feed(opml_url="http://a/new", url="http://a/new"),
                Feed(  # no longer in feeds.opml: not counted anywhere
                    opml_url="http://a/gone",
                    url="http://a/gone",
                    listed=False,
                    health_notice="silent for 40 days",
                ),
            ]
        )
        first = Article(title="one", canonical_url="http://a/1")
        second = Article(title="two", canonical_url="http://a/2")
        session.add_all([first, second])
        session.flush()
        session.add_all(
            [
                Match(article_id=first.id, rule_id="gsomia"),
                Match(article_id=second.id, rule_id="gsomia"),
                Match(article_id=second.id, rule_id="acsa"),
                Delivery(
                    destination="team-email",
                    kind="digest",
                    idempotency_key="k1",
                    status="pending",
                    created_at=now - timedelta(hours=2),
                ),
                Delivery(
                    destination="team-email",
                    kind="digest",
                    idempotency_key="k2",
                    status="sent",
                    created_at=now - timedelta(days=3),
                ),
                Delivery(
                    destination="hook",
                    kind="alert",
                    idempotency_key="k3",
                    status="dead",
                    created_at=now - timedelta(days=9),
                ),
            ]
        )


def test_metrics_report_the_database_as_it_is(server_on_both):
    running, daemon = server_on_both
    seed(daemon.watcher.engine)
    status, content_type, page = get(running.url + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    found = samples(page)
    feeds = {
        state: found[("watcher_feeds", (("state", state),))]
        for state in ("ok", "failing", "disabled", "unchecked")
    }
    assert feeds == {"ok": 2, "failing": 1, "disabled": 1, "unchecked": 1}  # unlisted not counted
    assert found[("watcher_articles", ())] == 2
    assert found[("watcher_matches", (("rule", "gsomia"),))] == 2
    assert found[("watcher_matches", (("rule", "acsa"),))] == 1
    assert (
        found[("watcher_deliveries", (("destination", "team-email"), ("status", "pending")))] == 1
    )
    assert found[("watcher_deliveries", (("destination", "hook"), ("status", "dead")))] == 1
    assert 2 * 3600 - 60 < found[("watcher_outbox_oldest_age_seconds", ())] < 2 * 3600 + 600
    last_success = found[("watcher_feed_last_success_timestamp_seconds", ())]
    assert abs(last_success - (utcnow() - timedelta(minutes=5)).timestamp()) < 5
    notices = {k: found[("watcher_feed_notices", (("kind", k),))] for k in ("failing", "silent")}
    assert notices == {"failing": 1, "silent": 1}
    assert found[("watcher_feed_notices", (("kind", "disabled"),))] == 1
    assert found[("watcher_database_up", ())] == 1
    assert found[("watcher_rules_active", ())] == 1
    assert found[("watcher_rules_reload_failing", ())] == 0
    # process-local families are on the same page
    assert ("watcher_feed_fetches_total", (("result", "error"),)) in found
    assert ("watcher_build_info", (("version", metrics.__version__),)) in found


def test_empty_outbox_has_age_zero(server):
    running, _ = server
    found = samples(get(running.url + "/metrics")[2])
    assert found[("watcher_outbox_oldest_age_seconds", ())] == 0
    assert found[("watcher_feeds", (("state", "ok"),))] == 0


def test_openmetrics_is_served_when_asked_for(server):
    running, _ = server
    status, content_type, page = get(
        running.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert page.rstrip().endswith("# EOF")


def test_scrapes_within_the_ttl_reuse_one_query(engine: Engine):
    clock = [1000.0]
    collector = metrics.DatabaseCollector(engine, ttl=15, clock=lambda: clock[0])
    registry = metrics.server_registry(collector)

    def feeds_unchecked() -> float:
        value = registry.get_sample_value("watcher_feeds", {"state": "unchecked"})
        assert value is not None
        return value

    assert feeds_unchecked() == 0
    with session_scope(engine) as session:
        session.add(Feed(opml_url="http://b/1", url="http://b/1"))
    clock[0] += 10
    assert feeds_unchecked() == 0  # cached
    assert collector.queries == 1
    clock[0] += 6
    assert feeds_unchecked() == 1
    assert collector.queries == 2


def test_registering_the_collector_does_not_query(engine: Engine):
    collector = metrics.DatabaseCollector(engine)
    from prometheus_client import CollectorRegistry

    CollectorRegistry(auto_describe=True).register(collector)
    assert collector.queries == 0


def test_observe_functions_move_the_process_counters():
    value = metrics.REGISTRY.get_sample_value

    def fetches(result: str) -> float:
        return value("watcher_feed_fetches_total", {"result": result}) or 0.0

    before = {r: fetches(r) for r in metrics.FETCH_RESULTS}
    stored_before = value("watcher_articles_stored_total") or 0.0
    now = utcnow()
    metrics.observe_refresh(
        FeedOutcome(feed_id=1, checked_at=now, next_check_at=now, new_articles=3, matches=1), 0.4
    )
    metrics.observe_refresh(
        FeedOutcome(feed_id=1, checked_at=now, next_check_at=now, not_modified=True), 0.1
    )
    metrics.observe_refresh(
        FeedOutcome(feed_id=1, checked_at=now, next_check_at=now, error="HTTP 500"), 2.0
    )
    assert {r: fetches(r) - before[r] for r in metrics.FETCH_RESULTS} == {
        "ok": 1,
        "not_modified": 1,
        "error": 1,
    }
    assert (value("watcher_articles_stored_total") or 0.0) - stored_before == 3
    reloads = value("watcher_rules_reloads_total", {"result": "error"}) or 0.0
    metrics.observe_reload(False)
    assert value("watcher_rules_reloads_total", {"result": "error"}) == reloads + 1
    metrics.observe_digest_sent("team-email", 1.5)
    assert (value("watcher_digest_send_seconds_count", {"destination": "team-email"}) or 0) >= 1
    assert value("watcher_digest_last_sent_timestamp_seconds", {"destination": "team-email"})
    metrics.observe_delivery("hook", "alert", "dead")
    assert value(
        "watcher_delivery_attempts_total",
        {"destination": "hook", "kind": "alert", "result": "dead"},
    )


# -- the daemon hook ---------------------------------------------------------------------------


def test_serve_http_starts_with_the_scheduler_and_stops_with_it(settings: Settings, engine):
    port = free_port()
    settings.http.listen = f"127.0.0.1:{port}"
    daemon = daemon_like(settings, engine)
    scheduler = BackgroundScheduler()
    serve_http(daemon, scheduler)
    scheduler.start()
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    finally:
        scheduler.shutdown(wait=False)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_serve_http_does_nothing_without_a_listen_address(settings: Settings, engine):
    scheduler = BackgroundScheduler()
    serve_http(daemon_like(settings, engine), scheduler)
    assert scheduler._listeners == []


# -- the real daemon ---------------------------------------------------------------------------


@pytest.mark.slow
def test_running_daemon_serves_moving_metrics_and_stops_cleanly(workspace, httpserver):
    """`watcher --log-format json run --http …` against a local feed: counters move during the
    poll, /healthz and /readyz answer 200, a bad rule edit is counted, SIGTERM exits 0."""
    site = FeedSite(httpserver)
    feed = site.add_feed("/politics.xml", items("e2e", 4))
    workspace.write_feeds({"E2E Outlet": feed})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_DATA_DIR=str(workspace.data_dir),
        WATCHER_RULES_DIR=str(workspace.rules_dir),
        WATCHER_POLL_TICK_SECONDS="0.5",
        WATCHER_RELOAD_CHECK_SECONDS="0.5",
        WATCHER_EXTRACT__WORKERS="1",
        WATCHER_FETCH__ALLOW_PRIVATE_ADDRESSES="true",
    )
    log_file = workspace.root / "daemon.log"
    with log_file.open("w") as log_output:
        command = ["--log-format", "json", "run", "--http", f"127.0.0.1:{port}"]
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher", *command],
            env=env,
            cwd=workspace.root,
            stdout=log_output,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        assert process.poll() is None, log_file.read_text()
        try:
            status, _, page = get(base + "/metrics")
        except (urllib.error.URLError, ConnectionError):
            return None  # not listening yet
        assert status == 200
        return samples(page)

    def wait_for(predicate, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"not reached in {timeout} s:\n{log_file.read_text()}")

    def fetched(found) -> float:
        return found[("watcher_feed_fetches_total", (("result", "ok"),))]

    try:
        first = wait_for(scrape)
        after = wait_for(lambda: (found := scrape()) and fetched(found) > 0 and found)
        assert ("watcher_feed_fetches_total", (("result", "error"),)) in first  # 0 from the start
        assert after[("watcher_feed_refresh_seconds_count", ())] >= 1
        assert after[("watcher_articles_stored_total", ())] == 4
        # the database side, from the same scrape
        assert after[("watcher_database_up", ())] == 1
        assert after[("watcher_rules_active", ())] == 1
        feeds = sum(v for (name, _), v in after.items() if name == "watcher_feeds")
        assert feeds == 1
        assert get(base + "/healthz")[0] == 200
        status, _, body = get(base + "/readyz")
        assert status == 200, body
        # an invalid rule edit: counted, and the daemon stays ready on the previous rules
        (workspace.rules_dir / "broken.yaml").write_text("id: broken\nname: B\nquery: (GSOMIA\n")
        errors = ("watcher_rules_reloads_total", (("result", "error"),))
        wait_for(lambda: (found := scrape()) and found[errors] >= 1)
        assert get(base + "/readyz")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    output = log_file.read_text()
    assert process.returncode == 0, output
    records = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    assert any(r.get("feed") == feed and r["logger"] == "watcher.pipeline" for r in records)
    assert any(r["message"] == "stopped" for r in records)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "/healthz", timeout=5)
