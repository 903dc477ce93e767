"""Several `watcher run` workers on one PostgreSQL database: every feed fetched once per cycle,
nothing duplicated, each digest sent once, and a worker killed mid-cycle loses nothing (its
leases expire)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import Workspace
from tests.feedsite import FeedSite, items
from tests.hostile.servers import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def worker_env(workspace: Workspace, pg_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_DATA_DIR=str(workspace.data_dir),
        WATCHER_RULES_DIR=str(workspace.rules_dir),
        WATCHER_DATABASE_URL=pg_url,
        WATCHER_POLL_TICK_SECONDS="0.5",
        WATCHER_EXTRACT__ENABLED="false",
        WATCHER_EXTRACT__WORKERS="1",
        WATCHER_FETCH__DEFAULT_INTERVAL="3600",
        WATCHER_FETCH__CONCURRENCY="8",
        WATCHER_FETCH__PER_HOST_CONCURRENCY="8",
        WATCHER_DELIVERY__TICK_SECONDS="3600",
        **extra,
    )
    return env


def start_workers(count: int, env: dict[str, str], cwd) -> list[subprocess.Popen[bytes]]:
    """`watcher db upgrade` once (as an operator would), then the workers.

    Their logs go to files, not pipes: nobody reads a pipe while they run, and a full one blocks.
    """
    upgrade = [sys.executable, "-m", "watcher", "db", "upgrade"]
    subprocess.run(upgrade, env=env, cwd=cwd, check=True, capture_output=True, timeout=120)
    workers = []
    for n in range(count):
        with open(Path(cwd) / f"worker{n}.log", "wb") as log:  # the child keeps its own handle
            command = [sys.executable, "-m", "watcher", "run"]
            worker = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log
            )
        workers.append(worker)
    return workers


def worker_logs(cwd) -> list[str]:
    """The tail of each worker's log, for an assertion message."""
    logs = sorted(Path(cwd).glob("worker*.log"))
    return [path.read_text(errors="replace")[-500:] for path in logs]


def stop_all(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()


def scalar(pg_url: str, sql: str) -> int:
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        value = connection.execute(text(sql)).scalar_one()
    engine.dispose()
    return int(value)


def wait_until(check: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError("workers did not finish the cycle in time")


def feed_paths(count: int) -> list[str]:
    return [f"/w{n}.xml" for n in range(count)]


def test_three_workers_fetch_each_feed_once_and_send_each_digest_once(
    threaded_httpserver, workspace, pg_url
):
    site = FeedSite(threaded_httpserver)
    paths = feed_paths(300)
    workspace.write_feeds({p: site.add_feed(p, items(p.strip("/.xml"), 2)) for p in paths})
    # backfill: the first poll's matches are deliverable, so the digest below has something in it
    env = worker_env(workspace, pg_url, WATCHER_BACKFILL="true")
    workers = start_workers(3, env, workspace.root)
    try:
        done = "SELECT count(*) FROM feed WHERE last_success_at IS NOT NULL"
        registered = "SELECT count(DISTINCT id) FROM worker"
        # on a loaded machine two workers may finish the cycle before the third has registered;
        # waiting for all three keeps the third in play for any late duplicate fetch
        wait_until(
            lambda: (
                scalar(pg_url, "SELECT count(*) FROM feed") == 300
                and scalar(pg_url, done) == 300
                and scalar(pg_url, registered) == 3
            )
        )
        time.sleep(2)  # a late duplicate fetch would show up here
    finally:
        stop_all(workers)
    assert {site.hits[p] for p in paths} == {1}, "every feed fetched exactly once in the cycle"
    assert scalar(pg_url, "SELECT count(*) FROM article") == 600
    assert scalar(pg_url, "SELECT count(DISTINCT canonical_url) FROM article") == 600
    assert scalar(pg_url, "SELECT count(*) FROM feedentry") == 600
    duplicates = (
        "SELECT count(*) FROM (SELECT article_id, rule_id FROM match"
        " GROUP BY 1, 2 HAVING count(*) > 1) d"
    )
    assert scalar(pg_url, duplicates) == 0
    assert all(w.returncode == 0 for w in workers), worker_logs(workspace.root)
    digest_sent_once_by_three_workers(workspace, pg_url, matched=300)


def digest_sent_once_by_three_workers(workspace: Workspace, pg_url: str, matched: int) -> None:
    """Three workers start together with a webhook destination: each one's first delivery tick
    plans the same daily period at the same moment; one digest is planned, claimed and posted."""
    receiver = WebhookReceiver()
    config = workspace.root / "watcher.toml"
    config.write_text(f'[destinations.hook]\ntype = "webhook"\nurl = "{receiver.url}"\n')
    env = worker_env(workspace, pg_url, WATCHER_CONFIG=str(config), WATCHER_BACKFILL="true")
    env["WATCHER_DELIVERY__TICK_SECONDS"] = "1"
    sent = "SELECT count(*) FROM delivery WHERE destination = 'hook' AND status = 'sent'"
    workers = start_workers(3, env, workspace.root)
    try:
        wait_until(
            lambda: (
                scalar(pg_url, sent) >= 1
                and scalar(pg_url, "SELECT count(DISTINCT id) FROM worker") == 3
            )
        )
        time.sleep(3)  # three ticks of every worker: a second digest would show up here
    finally:
        stop_all(workers)
        receiver.close()
    assert scalar(pg_url, "SELECT count(*) FROM delivery WHERE destination = 'hook'") == 1
    assert len(receiver.posts) == 1, [post.key for post in receiver.posts]
    digest = json.loads(receiver.posts[0].body)
    assert digest["schema"] == "news-watcher.digest/v1" and digest["articles"] == matched
    assert all(w.returncode == 0 for w in workers), worker_logs(workspace.root)


def test_a_killed_worker_loses_nothing(threaded_httpserver, workspace, pg_url):
    site = FeedSite(threaded_httpserver)
    paths = feed_paths(120)
    workspace.write_feeds({p: site.add_feed(p, items(p.strip("/.xml"), 2)) for p in paths})
    slow = site.handle

    def handle_slowly(request):  # each feed takes a while, so a cycle is in flight when we kill
        time.sleep(0.15)
        return slow(request)

    site.handle = handle_slowly  # type: ignore[method-assign]
    threaded_httpserver.clear()
    import re

    threaded_httpserver.expect_request(re.compile(r"/.+")).respond_with_handler(handle_slowly)
    env = worker_env(workspace, pg_url, WATCHER_DB__LEASE_SECONDS="10")
    victim, *survivors = start_workers(3, env, workspace.root)
    try:
        wait_until(lambda: sum(site.hits.values()) >= 30, timeout=120)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        done = "SELECT count(*) FROM feed WHERE last_success_at IS NOT NULL"
        wait_until(lambda: scalar(pg_url, done) == 120, timeout=180)
    finally:
        stop_all(survivors)
    assert all(site.hits[p] >= 1 for p in paths)
    # only feeds the victim had in flight may have been fetched twice
    assert sum(site.hits[p] - 1 for p in paths) <= 8 * 4
    assert scalar(pg_url, "SELECT count(*) FROM article") == 240
    assert scalar(pg_url, "SELECT count(*) FROM feedentry") == 240
    assert scalar(pg_url, "SELECT count(*) FROM feed WHERE lease_owner IS NOT NULL") == 0
