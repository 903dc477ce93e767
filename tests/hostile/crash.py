"""A crash rig: feeds that keep publishing, a webhook receiver that records Idempotency-Keys, and a
real `watcher run` daemon killed with SIGKILL at random moments while it polls and delivers.

`tests/test_crash.py` runs a few kills; `tests/bench/crash_soak.py` runs many. The checks are the
delivery guarantee as DESIGN.md states it: nothing lost (every published item has its article and
its match, and every match reached the receiver), and a repeat only with the same key, at most one
per crash.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.deliverkit import Receiver
from tests.feedsite import FeedSite, Item, opml
from tests.hostile.proc import Daemon, daemon_env, wait_until

RULE = "id: gsomia\nname: GSOMIA\nquery: GSOMIA\ndeliver: {digest: 'off', immediate: true}\n"
WORDS = [
    "alliance",
    "border",
    "cabinet",
    "defence",
    "envoy",
    "frigate",
    "garrison",
    "harbour",
    "intelligence",
    "junta",
    "kremlin",
    "ledger",
    "ministry",
    "navy",
    "outpost",
    "parliament",
    "quarantine",
    "radar",
    "satellite",
    "treaty",
    "uranium",
    "vessel",
    "warship",
    "exercise",
    "yield",
    "zone",
    "archive",
    "budget",
    "corridor",
    "drone",
    "embargo",
    "fishery",
    "grain",
    "hydrogen",
    "island",
    "journalist",
    "kilometre",
    "lighthouse",
    "missile",
    "nuclear",
    "ocean",
    "pipeline",
    "quota",
    "reactor",
    "summit",
    "tariff",
    "uplink",
    "volcano",
    "whaling",
]


@dataclass
class Report:
    kills: int
    published: int
    articles: int
    matches: int
    deliveries: int  # sent
    dead: int
    received: int
    repeats: int
    lost: list[str] = field(default_factory=list)
    undelivered: list[int] = field(default_factory=list)
    integrity: str = ""

    def line(self) -> str:
        return (
            f"{self.kills} kills: {self.published} items published, {self.matches} matches, "
            f"{self.deliveries} deliveries sent ({self.dead} dead), {self.received} webhook posts "
            f"received, "
            f"{self.repeats} repeats (same key), {len(self.lost)} items lost, "
            f"{len(self.undelivered)} matches undelivered, integrity_check {self.integrity}"
        )


class CrashRig:
    def __init__(self, root: Path, *, feeds: int = 4, seed: int = 0) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self._counter = 0
        self.rules_dir = root / "rules"
        self.data_dir = root / "data"
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.rules_dir / "gsomia.yaml").write_text(RULE, encoding="utf-8")
        self.http = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.http.start()
        self.site = FeedSite(self.http)
        self.receiver = Receiver().__enter__()
        self.receiver.server.handle_error = lambda *args: None  # a killed client: expected
        self.paths = [f"/feed-{n}.xml" for n in range(feeds)]
        for path in self.paths:
            self.site.add_feed(path, [self._item(path)], title=path)
        listed = {path: self.site.url(path) for path in self.paths}
        (self.rules_dir / "feeds.opml").write_text(opml(listed), encoding="utf-8")
        (root / "watcher.toml").write_text(
            f'[destinations.hook]\ntype = "webhook"\nurl = "{self.receiver.url}"\ntimeout = 5\n',
            encoding="utf-8",
        )
        self.published: list[str] = []  # guids of items that must end up matched and delivered
        self.kills = 0
        self.env = daemon_env(
            self.data_dir,
            self.rules_dir,
            WATCHER_CONFIG=str(root / "watcher.toml"),
            WATCHER_DELIVERY__TICK_SECONDS="1",
            WATCHER_DELIVERY__INITIAL_BACKOFF="1",
            WATCHER_DELIVERY__MAX_BACKOFF="2",
            WATCHER_DB__LEASE_SECONDS="10",
            WATCHER_FETCH__ALLOW_PRIVATE_ADDRESSES="true",
        )
        self.log = root / "daemon.log"

    # -- the world ---------------------------------------------------------------------------------
    def _item(self, path: str) -> Item:
        self._counter += 1
        words = " ".join(self.rng.sample(WORDS, 12))
        slug = f"{path.strip('/').removesuffix('.xml')}-{self._counter}"
        return Item(
            slug=slug,
            title=f"GSOMIA {words[:60]} {slug}",
            body=f"Item {slug}: GSOMIA and {words}. " + " ".join(self.rng.sample(WORDS, 20)),
            published=datetime.now(UTC) - timedelta(minutes=self._counter),
            guid=slug,
        )

    def publish(self, count: int) -> None:
        """`count` new items, spread over random feeds; all of them must be matched."""
        for _ in range(count):
            path = self.rng.choice(self.paths)
            item = self._item(path)
            self.site.publish(path, item)
            self.published.append(item.guid or item.slug)

    def make_feeds_due(self) -> None:
        """Feeds are polled every 30 s at the fastest; the rig brings their next check forward
        (their leases, if a killed daemon held any, are left to expire as they would)."""
        with sqlite3.connect(self.data_dir / "watcher.db") as connection:
            connection.execute("UPDATE feed SET next_check_at = '2000-01-01 00:00:00.000000'")

    # -- the daemon --------------------------------------------------------------------------------
    def start(self) -> Daemon:
        return Daemon(self.env, self.root, self.log)

    def prime(self) -> None:
        """First poll of every feed (stored as seen, nothing alerted), then a clean stop."""
        daemon = self.start()
        daemon.wait_for("poll: ", timeout=90)
        daemon.stop()

    def crash_round(self, *, mid_send: bool) -> str:
        """Publish, start, SIGKILL: at a random moment, or while a webhook post is in flight (the
        receiver has the message, the daemon never hears back: the repeat case)."""
        self.publish(self.rng.randint(2, 5))
        self.make_feeds_due()
        if mid_send:
            self.receiver.hold.clear()
            self.receiver.arrived.clear()
        daemon = self.start()
        try:
            if mid_send:
                if not self.receiver.arrived.wait(60):
                    raise AssertionError("no webhook post arrived:\n" + daemon.output()[-3000:])
                moment = "mid-send"
            else:
                daemon.wait_for("started", timeout=60)
                delay = self.rng.uniform(0.0, 2.0)
                time.sleep(delay)
                phase = "delivering" if "poll: " in daemon.output() else "polling"
                moment = f"{delay:.1f} s after start ({phase})"
        finally:
            daemon.kill()
            self.receiver.hold.set()
        self.kills += 1
        return moment

    def settle(self, timeout: float = 90) -> None:
        """A last run until every published item is matched and every delivery sent."""
        self.make_feeds_due()
        daemon = self.start()
        wait_until(self._done, timeout, what="all items matched and delivered")
        daemon.stop()

    def _done(self) -> bool:
        with sqlite3.connect(self.data_dir / "watcher.db") as connection:
            guids = {row[0] for row in connection.execute(_MATCHED_GUIDS)}
            waiting = connection.execute(
                "SELECT count(*) FROM delivery WHERE status IN ('pending', 'retrying')"
            ).fetchone()[0]
            unplanned = connection.execute(_UNPLANNED).fetchone()[0]
        return set(self.published) <= guids and not waiting and not unplanned

    # -- the verdict -------------------------------------------------------------------------------
    def report(self) -> Report:
        with sqlite3.connect(self.data_dir / "watcher.db") as connection:
            integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
            guids = {row[0] for row in connection.execute(_MATCHED_GUIDS)}
            articles = connection.execute("SELECT count(*) FROM article").fetchone()[0]
            matches = connection.execute(
                "SELECT count(*) FROM match WHERE NOT suppressed"
            ).fetchone()[0]
            deliveries = dict(
                connection.execute("SELECT idempotency_key, status FROM delivery").fetchall()
            )
            covered = connection.execute(_DELIVERED).fetchall()
        received = Counter(r.headers.get("Idempotency-Key") for r in self.receiver.requests)
        bodies: dict[str, set[bytes]] = {}
        for request in self.receiver.requests:
            bodies.setdefault(request.headers.get("Idempotency-Key", ""), set()).add(request.body)
        assert all(len(b) == 1 for b in bodies.values()), "a repeat carried a different body"
        undelivered = [
            match_id
            for match_id, key, status in covered
            if key is None or status != "sent" or received[key] == 0
        ]
        return Report(
            kills=self.kills,
            published=len(self.published),
            articles=articles,
            matches=matches,
            deliveries=sum(status == "sent" for status in deliveries.values()),
            dead=sum(status == "dead" for status in deliveries.values()),
            received=sum(received.values()),
            repeats=sum(count - 1 for count in received.values()),
            lost=sorted(set(self.published) - guids),
            undelivered=undelivered,
            integrity=integrity,
        )

    def close(self) -> None:
        self.receiver.__exit__(None, None, None)
        self.http.clear()
        if self.http.is_running():
            self.http.stop()


_MATCHED_GUIDS = """
SELECT article.guid FROM match JOIN article ON article.id = match.article_id
WHERE match.rule_id = 'gsomia' AND NOT match.suppressed
"""
# every unsuppressed match, with the delivery that carries it (NULL when none does)
_DELIVERED = """
SELECT match.id, delivery.idempotency_key, delivery.status FROM match
LEFT JOIN deliveryitem ON deliveryitem.match_id = match.id
LEFT JOIN delivery ON delivery.id = deliveryitem.delivery_id
WHERE NOT match.suppressed
"""
_UNPLANNED = """
SELECT count(*) FROM match LEFT JOIN deliveryitem ON deliveryitem.match_id = match.id
WHERE NOT match.suppressed AND deliveryitem.delivery_id IS NULL
"""
