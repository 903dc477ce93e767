"""The operator's own services going away under a running daemon: the mail server, the webhook
receiver, the database (at start-up and while running). Each gives a clear log line, is retried
with back-off, and once it is back everything goes out — nothing lost, nothing sent twice.

PostgreSQL cannot be stopped from a test, so the daemon reaches it through a TCP proxy the test
closes (cutting every connection) and reopens."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy

from tests.conftest import Workspace
from tests.feedsite import FeedSite, Item, items
from tests.hostile.proc import Daemon, daemon_env, free_port, wait_until, watcher
from tests.hostile.servers import Mailbox, TcpProxy, WebhookReceiver, smtp_server

pytestmark = pytest.mark.slow
ALERT_RULE = "id: gsomia\nname: GSOMIA\nquery: GSOMIA\ndeliver: {digest: 'off', immediate: true}\n"


def setup(workspace: Workspace, site: FeedSite, destinations: str, **env: str) -> dict[str, str]:
    """One feed with two GSOMIA items; every match is an immediate alert to every destination."""
    (workspace.rules_dir / "gsomia.yaml").write_text(ALERT_RULE, encoding="utf-8")
    workspace.write_feeds({"Outlet": site.add_feed("/a.xml", items("a", 6))})
    config = workspace.root / "watcher.toml"
    config.write_text(destinations, encoding="utf-8")
    return daemon_env(
        workspace.data_dir,
        workspace.rules_dir,
        WATCHER_CONFIG=str(config),
        WATCHER_BACKFILL="true",  # the first poll's matches are alerted
        WATCHER_EXTRACT__ENABLED="false",
        WATCHER_LOG__FORMAT="json",
        WATCHER_DELIVERY__TICK_SECONDS="1",
        WATCHER_DELIVERY__INITIAL_BACKOFF="1",
        WATCHER_DELIVERY__MAX_BACKOFF="4",
        WATCHER_DB__LEASE_SECONDS="10",
        **env,
    )


def records(output: str) -> list[dict[str, Any]]:
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def retry_delays(output: str, destination: str) -> dict[int, float]:
    """attempt → seconds between the failure's log record and the retry it scheduled."""
    delays: dict[int, float] = {}
    pattern = re.compile(r"failed \(attempt (\d+)\), retrying at (\S+):")
    for record in records(output):
        match = pattern.search(record["message"])
        if match and record.get("destination") == destination:
            logged = datetime.fromisoformat(record["time"])
            retry = datetime.fromisoformat(match.group(2))
            delays.setdefault(int(match.group(1)), (retry - logged).total_seconds())
    return delays


def test_mail_server_and_webhook_receiver_down_then_back(workspace: Workspace, threaded_httpserver):
    site = FeedSite(threaded_httpserver)
    smtp_port, hook_port = free_port(), free_port()
    env = setup(
        workspace,
        site,
        f'[destinations.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        f'to = ["desk@example.com"]\ntimeout = 3\n'
        f'[destinations.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:{hook_port}/hook"\n',
    )
    mailbox = Mailbox()
    with Daemon(env, workspace.root, workspace.root / "daemon.log") as daemon:
        daemon.wait_for("failed (attempt 3)", count=4, timeout=60)  # 2 alerts x 2 destinations
        output = daemon.output()
        failures = [r["message"] for r in records(output) if "failed (attempt 1)" in r["message"]]
        mail_line = next(m for m in failures if "to mail" in m)
        hook_line = next(m for m in failures if "to hook" in m)
        assert f"127.0.0.1:{smtp_port}" in mail_line and "refused" in mail_line.lower()
        assert f"127.0.0.1:{hook_port}/hook" in hook_line and "ConnectError" in hook_line
        for destination in ("mail", "hook"):
            delays = retry_delays(output, destination)
            assert delays[1] < delays[3], f"no back-off for {destination}: {delays}"

        controller = smtp_server(smtp_port, mailbox)  # both come back
        receiver = WebhookReceiver(port=hook_port)
        try:
            wait_until(lambda: len(mailbox.messages) == 2, 60, what="both alerts by mail")
            wait_until(lambda: len(receiver.posts) == 2, 60, what="both alerts by webhook")
            daemon.wait_for("sent alert", count=4, timeout=30)
        finally:
            receiver.close()
            controller.stop()
        assert daemon.running()
        daemon.stop()
    assert len({m["Message-ID"] for m in mailbox.messages}) == 2
    assert len({post.key for post in receiver.posts}) == 2
    listed = watcher("deliveries", "--json", env=env, cwd=workspace.root)
    rows = json.loads(listed.stdout)
    assert len(rows) == 4 and all(r["status"] == "sent" and r["attempts"] >= 3 for r in rows)
    assert "Traceback" not in daemon.output()


def _pg_through(proxy: TcpProxy, pg_url: str) -> str:
    return pg_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")


@pytest.mark.postgres
def test_database_down_at_start_and_while_running(
    workspace: Workspace, threaded_httpserver, pg_url: str
):
    site = FeedSite(threaded_httpserver)
    proxy = TcpProxy(5432)  # not listening yet: the database is "down"
    receiver = WebhookReceiver()
    env = setup(
        workspace,
        site,
        f'[destinations.hook]\ntype = "webhook"\nurl = "{receiver.url}"\n',
        WATCHER_DATABASE_URL=_pg_through(proxy, pg_url),
        WATCHER_DB__AUTO_UPGRADE="true",
    )
    direct = sqlalchemy.create_engine(pg_url)
    try:
        with Daemon(env, workspace.root, workspace.root / "daemon.log") as daemon:
            output = daemon.wait_for("cannot reach the database", count=2, timeout=60)
            line = next(r["message"] for r in records(output) if "cannot reach" in r["message"])
            assert f"127.0.0.1:{proxy.port}" in line and "retrying in" in line
            assert "retrying in 1 s" in output and "retrying in 2 s" in output  # back-off
            assert daemon.running()

            proxy.open()  # the database comes up: start-up completes, the feed is polled
            daemon.wait_for("started", timeout=60)
            wait_until(lambda: len(receiver.posts) == 2, 60, what="the first poll's two alerts")

            proxy.close()  # the database goes away while the daemon runs
            site.publish("/a.xml", Item("back", "GSOMIA news while the database was down", "x"))
            with direct.begin() as connection:
                connection.exec_driver_sql("UPDATE feed SET next_check_at = '2000-01-01'")
            output = daemon.wait_for("poll skipped (will retry in", count=3, timeout=90)
            waits = re.findall(r"poll skipped \(will retry in (\d+) s\)", output)
            assert [int(w) for w in waits[:3]] == [1, 2, 4], waits  # back-off, not every tick
            output = daemon.wait_for("delivery tick skipped (will retry in", count=3, timeout=90)
            waits = re.findall(r"delivery tick skipped \(will retry in (\d+) s\)", output)
            assert [int(w) for w in waits[:3]] == [1, 2, 4], waits
            assert daemon.running()
            assert len(receiver.posts) == 2

            proxy.open()  # back: the new item is polled, matched and alerted
            wait_until(lambda: len(receiver.posts) == 3, 90, what="the alert for the new item")
            output = daemon.stop()
    finally:
        proxy.stop()
        receiver.close()
        direct.dispose()
    assert len({post.key for post in receiver.posts}) == 3
    messages = [r["message"] for r in records(output)]
    assert any("database unavailable" in m and "will retry" in m for m in messages)
    assert "Traceback" not in output


def test_shutdown_waits_for_an_alert_in_flight(workspace: Workspace, threaded_httpserver):
    """SIGTERM while a webhook POST is on the wire: the daemon waits for the answer, records the
    delivery and exits cleanly; the next run sends only what is left (each alert exactly once)."""
    site = FeedSite(threaded_httpserver)
    receiver = WebhookReceiver(delay=5.0)  # SIGTERM lands while the first POST waits
    env = setup(workspace, site, f'[destinations.hook]\ntype = "webhook"\nurl = "{receiver.url}"\n')
    try:
        with Daemon(env, workspace.root, workspace.root / "daemon.log") as daemon:
            wait_until(lambda: receiver.arrived >= 1, 60, what="the first alert on the wire")
            output = daemon.stop()
        assert "finishing in-flight work" in output
        assert "Traceback" not in output and "CancelledError" not in output, output[-3000:]
        assert len(receiver.posts) == 1  # the POST in flight was answered, no new one started
        assert "1 claimed deliveries left for the next run" in output
        with sqlite3.connect(workspace.data_dir / "watcher.db") as db:
            rows = db.execute("SELECT status, attempts, lease_owner FROM delivery").fetchall()
        assert sorted(rows) == [("pending", 0, None), ("sent", 1, None)]  # no lease left behind

        receiver.delay = 0.0
        with Daemon(env, workspace.root, workspace.root / "daemon.log") as daemon:
            wait_until(lambda: len(receiver.posts) == 2, 60, what="the alert left for this run")
            daemon.stop()
        assert receiver.arrived == 2, [post.key for post in receiver.posts]
        assert len({post.key for post in receiver.posts}) == 2
    finally:
        receiver.close()
