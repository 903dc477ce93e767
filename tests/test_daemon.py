"""The daemon as a user runs it: a real `watcher run` process, signals, lock, reloads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Workspace

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(workspace: Workspace, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_DATA_DIR=str(workspace.data_dir),
        WATCHER_RULES_DIR=str(workspace.rules_dir),
        WATCHER_POLL_TICK_SECONDS="0.5",
        WATCHER_RELOAD_CHECK_SECONDS="0.5",
        WATCHER_EXTRACT__WORKERS="1",
        WATCHER_FETCH__CONNECT_TIMEOUT="1",
        WATCHER_FETCH__DEFAULT_INTERVAL="30",
        **extra,
    )
    return env


def watcher(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_daemon(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def status(env: dict[str, str], cwd: Path) -> dict:
    result = watcher("status", "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def test_unreachable_network_keeps_running_and_records_errors(workspace: Workspace):
    dead = [f"http://127.0.0.1:{free_port()}/feed{i}.xml" for i in range(3)]
    workspace.write_feeds({f"Dead {i}": url for i, url in enumerate(dead)})
    env = env_for(workspace)
    daemon = start_daemon(env, workspace.root)
    try:

        def all_failed():
            result = watcher("feeds", "--json", env=env, cwd=workspace.root)
            feeds = json.loads(result.stdout) if result.returncode == 0 else []
            return len(feeds) == 3 and all(f["consecutive_failures"] >= 1 for f in feeds) and feeds

        feeds = wait_for(all_failed)
        assert all("refused" in f["last_error"].lower() for f in feeds), feeds
        assert daemon.poll() is None, "the daemon must keep running"
    finally:
        output = stop(daemon)
    assert "stopped" in output


def test_second_daemon_on_the_same_sqlite_file_refuses(workspace: Workspace):
    env = env_for(workspace)
    first = start_daemon(env, workspace.root)
    try:
        wait_for(lambda: "started" in _peek_log(workspace, env) or first.poll() is not None)
        second = watcher("run", env=env, cwd=workspace.root)
        assert second.returncode == 3
        assert "already running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stop(first)


def _peek_log(workspace: Workspace, env: dict[str, str]) -> str:
    result = watcher("status", "--json", env=env, cwd=workspace.root)
    return "started" if result.returncode == 0 and json.loads(result.stdout)["workers"] else ""


def test_invalid_rule_edit_keeps_the_previous_rules(workspace: Workspace):
    env = env_for(workspace)
    daemon = start_daemon(env, workspace.root)
    try:
        wait_for(lambda: status(env, workspace.root)["workers"])
        (workspace.rules_dir / "broken.yaml").write_text("id: broken\nname: B\nquery: (GSOMIA\n")
        report = wait_for(lambda: (status(env, workspace.root)["ruleset"] or {}).get("error"))
        assert any("broken.yaml" in line for line in report)
        ruleset = status(env, workspace.root)["ruleset"]
        assert ruleset["rules"] == 1  # the previous set (gsomia) stays active
        (workspace.rules_dir / "broken.yaml").write_text("id: fixed\nname: F\nquery: Dokdo\n")
        wait_for(lambda: (status(env, workspace.root)["ruleset"] or {}).get("rules") == 2)
    finally:
        stop(daemon)


def test_invalid_setting_stops_start_up_with_exit_code_2(workspace: Workspace):
    env = env_for(workspace, WATCHER_FETCH__READ_TIMEOUT="soon")
    result = watcher("run", env=env, cwd=workspace.root)
    assert result.returncode == 2
    assert "fetch.read_timeout" in result.stderr and "WATCHER_FETCH__READ_TIMEOUT" in result.stderr


def test_the_daemon_and_its_workers_collect_garbage_less_often(workspace: Workspace):
    """With 10,000 rules loaded, young collections every 700 objects led to full collections
    that took up to a third of matching time; the daemon and its pool workers raise the
    threshold (watcher.cpu.GC_YOUNG_THRESHOLD)."""
    import asyncio
    import gc

    from watcher.cpu import GC_YOUNG_THRESHOLD
    from watcher.daemon import Watcher

    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    watcher = Watcher(workspace.settings())
    try:
        watcher.prepare()
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD

        async def worker_threshold() -> tuple[int, int, int]:
            async with watcher:
                return await watcher.cpu.run(gc.get_threshold)

        assert asyncio.run(worker_threshold())[0] == GC_YOUNG_THRESHOLD
    finally:
        gc.set_threshold(*before)
        watcher.engine.dispose()


def test_the_daemon_gives_freed_memory_back_after_a_pass(
    workspace: Workspace, httpserver, monkeypatch: pytest.MonkeyPatch
):
    """After loading the rules and after each poll that refreshed feeds, freed heap pages are
    returned to the system (watcher.malloc), so the idle daemon's resident size is what it
    holds: 202 → 188 MB in the memory bench."""
    import asyncio

    from tests.feedsite import FeedSite, items
    from watcher import malloc
    from watcher.daemon import Daemon

    calls: list[str] = []
    monkeypatch.setattr(malloc, "trim", lambda: calls.append("trim") or True)
    site = FeedSite(httpserver)
    workspace.write_feeds({"Outlet": site.add_feed("/a.xml", items("a", 2))})
    daemon = Daemon(workspace.settings())
    try:
        daemon.watcher.prepare()
        assert calls == ["trim"]  # after the rules are loaded

        async def two_ticks() -> None:
            async with daemon.watcher:
                await daemon.poll_tick()  # the feed is new: due, refreshed
                await daemon.poll_tick()  # nothing due: nothing to give back

        asyncio.run(two_ticks())
        assert calls == ["trim", "trim"]
    finally:
        daemon.watcher.engine.dispose()


def test_a_killed_daemon_leaves_no_worker_processes_behind(workspace: Workspace, httpserver):
    """SIGKILL (the OOM killer, systemd's last resort) gives the daemon no chance to stop its
    pool: the workers notice their daemon is gone and exit, and the forkserver with them."""
    import psutil

    from tests.feedsite import FeedSite, items

    site = FeedSite(httpserver)
    workspace.write_feeds({"Outlet": site.add_feed("/a.xml", items("a", 2))})
    env = env_for(workspace, WATCHER_EXTRACT__ENABLED="false")
    daemon = start_daemon(env, workspace.root)
    try:
        handle = psutil.Process(daemon.pid)

        def workers_started() -> list[psutil.Process]:
            found = handle.children(recursive=True)
            return found if len(found) >= 3 else []  # forkserver, resource tracker, worker

        descendants = wait_for(workers_started)
    finally:
        daemon.kill()
        daemon.communicate(timeout=30)

    def all_gone() -> bool:
        return not [p for p in descendants if p.is_running() and p.status() != "zombie"]

    wait_for(all_gone, timeout=30)
