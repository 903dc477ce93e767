"""A sender killed with SIGKILL mid-delivery loses nothing and repeats at most one send, with the
same Idempotency-Key / Message-ID. No test hook in the product: the receiver itself blocks until
the test has killed the real `watcher digest send` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.deliverkit import Corpus, Receiver, deliveries, items_of, open_engine, settings_for
from tests.test_deliver_smtp import Mailbox, free_port
from watcher.deliver.service import DeliveryService
from watcher.rules import load_ruleset
from watcher.timeutil import utcnow

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("each_backend")]
REPO = Path(__file__).resolve().parents[1]
RULE = "id: gsomia\nname: GSOMIA\nquery: GSOMIA\ndeliver: {digest: off, immediate: true}\n"


def workspace(tmp_path: Path, destination: str) -> tuple[Path, Any]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "gsomia.yaml").write_text(RULE, encoding="utf-8")
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nrules_dir = "{rules}"\n'
        f"[destinations.target]\n{destination}\n",
        encoding="utf-8",
    )
    return config, settings_for(tmp_path)


def start_sender(config: Path) -> subprocess.Popen[bytes]:
    """The real CLI in its own process: plans the alert, claims it, starts sending it."""
    command = [
        sys.executable,
        "-c",
        "from watcher.cli import main; main()",
        "--config",
        str(config),
        "digest",
        "send",
    ]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_when(arrived: threading.Event, sender: subprocess.Popen[bytes]) -> None:
    if not arrived.wait(60):
        sender.kill()
        pytest.fail(f"the sender never reached the receiver: {sender.communicate()[0]!r}")
    os.kill(sender.pid, signal.SIGKILL)
    sender.wait(10)
    assert sender.returncode == -signal.SIGKILL


def restart(tmp_path: Path, config: Path) -> list[Any]:
    """A new worker, once the dead one's lease has expired (its clock is moved past the lease
    instead of sleeping five minutes)."""
    from watcher.config import load_settings

    settings = load_settings(config)
    engine = open_engine(settings)
    (delivery,) = deliveries(engine)
    assert delivery.status == "pending" and delivery.lease_until is not None  # claimed, not done
    later = delivery.lease_until + timedelta(seconds=1)
    service = DeliveryService(engine, settings, owner="restarted")
    results = asyncio.run(service.tick(load_ruleset(settings.rules_dir), now=later)).results
    engine.dispose()
    return results


@pytest.mark.parametrize("killed", ["before the receiver read it", "after the receiver took it"])
def test_webhook_sender_killed_mid_send(tmp_path: Path, killed: str):
    with Receiver() as receiver:
        config, settings = workspace(tmp_path, f'type = "webhook"\nurl = "{receiver.url}"')
        engine = open_engine(settings)
        ids = Corpus(engine, now=utcnow()).story("GSOMIA", ["Yonhap", "Kyodo"], ["gsomia"])
        receiver.hold.clear()
        receiver.hold_before_reading = killed.startswith("before")
        kill_when(receiver.arrived, start_sender(config))
        accepted_before_restart = len(receiver.requests)
        receiver.hold_before_reading = False
        receiver.hold.set()
        results = restart(tmp_path, config)
        assert [r.status for r in results] == ["sent"]
        assert accepted_before_restart == (0 if killed.startswith("before") else 1)
        keys = {request.headers["Idempotency-Key"] for request in receiver.requests}
        bodies = {request.body for request in receiver.requests}
        assert 1 <= len(receiver.requests) <= 2 and len(keys) == 1 and len(bodies) == 1
        (delivery,) = deliveries(engine)
        assert (delivery.status, delivery.attempts) == ("sent", 2)
        assert items_of(engine, delivery.id) == sorted(ids)  # nothing lost
        engine.dispose()


class BlockingMailbox(Mailbox):
    """Takes the message, then holds its reply until released (the sender dies meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == 1:
            self.arrived.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return reply


def test_smtp_sender_killed_after_the_server_took_the_message(tmp_path: Path):
    mailbox = BlockingMailbox()
    server = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    server.start()
    try:
        config, settings = workspace(
            tmp_path,
            f'type = "email"\nhost = "127.0.0.1"\nport = {server.port}\nto = ["a@example.org"]',
        )
        engine = open_engine(settings)
        ids = Corpus(engine, now=utcnow()).story("GSOMIA", ["Yonhap"], ["gsomia"])
        kill_when(mailbox.arrived, start_sender(config))
        mailbox.release.set()
        time.sleep(0.2)
        results = restart(tmp_path, config)
    finally:
        server.stop()
    assert [r.status for r in results] == ["sent"]
    first, second = (message for _, message in mailbox.messages)
    assert first["Message-ID"] == second["Message-ID"]
    assert first.as_bytes() == second.as_bytes()  # the repeat is the same message
    (delivery,) = deliveries(engine)
    assert delivery.status == "sent" and items_of(engine, delivery.id) == ids
    engine.dispose()


def test_the_running_daemon_delivers_on_its_tick_and_stops_cleanly(tmp_path: Path):
    """`watcher run` with the delivery jobs: a pending alert goes out within a tick."""
    config, settings = workspace(tmp_path, f'type = "folder"\npath = "{tmp_path / "box"}"')
    (tmp_path / "rules" / "feeds.opml").write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body/></opml>', encoding="utf-8"
    )
    with config.open("a", encoding="utf-8") as handle:
        handle.write("[delivery]\ntick_seconds = 1\n")
    engine = open_engine(settings)
    Corpus(engine, now=utcnow()).story("GSOMIA", ["Yonhap"], ["gsomia"])
    command = [
        sys.executable,
        "-c",
        "from watcher.cli import main; main()",
        "--config",
        str(config),
        "run",
    ]
    daemon = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "box").glob("*.eml")) and time.monotonic() < deadline:
            if daemon.poll() is not None:
                pytest.fail(f"the daemon exited: {daemon.communicate()[0]!r}")
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        output = daemon.communicate(timeout=60)[0].decode()
    assert len(list((tmp_path / "box").glob("*.eml"))) == 1, output
    assert daemon.returncode == 0, output
    assert "sent alert" in output
    (delivery,) = deliveries(engine)
    assert delivery.status == "sent"
    engine.dispose()
