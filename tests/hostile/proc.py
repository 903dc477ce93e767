"""Real `watcher` processes for the robustness tests: start, wait for a log line, stop, crash, and
measure the memory of a daemon and its worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_env(data_dir: Path, rules_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without WATCHER_* settings, plus fast ticks and the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_DATA_DIR=str(data_dir),
        WATCHER_RULES_DIR=str(rules_dir),
        WATCHER_POLL_TICK_SECONDS="0.5",
        WATCHER_RELOAD_CHECK_SECONDS="0.5",
        WATCHER_EXTRACT__WORKERS="1",
        WATCHER_FETCH__CONNECT_TIMEOUT="2",
        WATCHER_FETCH__DEFAULT_INTERVAL="30",
        WATCHER_LOG__FORMAT="text",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def watcher(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Daemon:
    """`python -m watcher run` with its output in a file the test can search while it runs."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path, *args: str) -> None:
        self.log = log
        self._handle = log.open("ab")
        self._offset = log.stat().st_size
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", *args, "run"],
            env=env,
            cwd=cwd,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What this process wrote (the file may hold earlier processes' output too)."""
        with self.log.open("rb") as handle:
            handle.seek(self._offset)
            return handle.read().decode("utf-8", "replace")

    def wait_for(self, text: str, timeout: float = 60.0, count: int = 1) -> str:
        def seen() -> str | None:
            out = self.output()
            if out.count(text) >= count:
                return out
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n{out[-3000:]}")
            return None

        return wait_until(seen, timeout, what=f"{text!r} in the daemon's log")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60) -> str:
        """SIGTERM and a clean exit (code 0) expected."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        self._handle.close()
        out = self.output()
        assert self.process.returncode == 0, out[-3000:]
        return out

    def kill(self) -> None:
        """SIGKILL the daemon and then its worker processes (each by its own pid)."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=10)
        self._handle.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running():
            self.kill()


def wait_until(check: Callable[[], T | None], timeout: float = 60.0, *, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s: {what}")
        time.sleep(0.2)


class RssSampler:
    """Peak resident memory of a process and of it plus its descendants, sampled every 50 ms."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_main = 0
        self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                main = root.memory_info().rss
                tree = main + sum(_rss(child) for child in root.children(recursive=True))
            except psutil.NoSuchProcess:
                return
            self.peak_main = max(self.peak_main, main)
            self.peak_tree = max(self.peak_tree, tree)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0
