"""Health and metrics over HTTP: /healthz (alive), /readyz (ready), /metrics (Prometheus text).

A ThreadingHTTPServer in a daemon thread, not a route on the asyncio loop: a scrape never waits on
the loop, so /healthz still answers — with 503 — when the loop is stuck, which is exactly when a
supervisor needs the answer.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from watcher import __version__, metrics
from watcher.db.engine import check_connection
from watcher.errors import ConfigError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from watcher.daemon import Daemon

log = logging.getLogger("watcher.web")

INDEX = b"news-watcher: /healthz (alive), /readyz (ready), /metrics (Prometheus)\n"


class Probes(Protocol):
    """What the endpoints ask: each answer is (healthy?, a small JSON-able body saying why)."""

    def liveness(self) -> tuple[bool, dict[str, Any]]: ...

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


class DaemonProbes:
    """Alive while the scheduler ticks; ready while the database answers and rules are loaded."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        # A poll tick can run long on many feeds; finished refreshes prove it is still moving.
        self.live_limit = 3 * daemon.settings.poll_tick_seconds + 60

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        last = max(self.daemon.last_tick.timestamp(), metrics.last_refresh_time())
        age = time.time() - last
        alive = age <= self.live_limit
        return alive, {
            "status": "alive" if alive else "stalled: the scheduler has not ticked",
            "last_activity": datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds"),
            "seconds_since_activity": round(age, 1),
            "limit_seconds": self.live_limit,
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        watcher = self.daemon.watcher
        checks = {"database": _database_check(watcher), "rules": _rules_check(watcher)}
        ready = all(check["ok"] for check in checks.values())
        return ready, {"status": "ready" if ready else "not ready", "checks": checks}


def _database_check(watcher: Any) -> dict[str, Any]:
    try:
        check_connection(watcher.engine)
    except Exception as exc:  # any failure to reach it means not ready; the text says which
        return {"ok": False, "detail": str(exc)}
    return {"ok": True, "detail": "reachable"}


def _rules_check(watcher: Any) -> dict[str, Any]:
    ruleset = watcher.ruleset
    enabled = sum(1 for rule in ruleset.rules if rule.enabled)
    if not enabled:
        return {"ok": False, "detail": f"no enabled rules in {watcher.settings.rules_dir}"}
    return {"ok": True, "detail": f"{enabled} enabled rules (version {ruleset.version})"}


# -- the server --------------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) → (host, port), else ConfigError."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f'setting http.listen: {value!r} is not "host:port"',
            hint='e.g. "127.0.0.1:9400", "0.0.0.0:9400" or "[::1]:9400"',
        )
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: HealthServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """The endpoints on `listen`; `start()` binds (ConfigError when it cannot), `stop()` closes."""

    def __init__(self, listen: str, probes: Probes, registry: CollectorRegistry) -> None:
        self.listen = listen
        self.host, self.port = parse_listen(listen)
        self.probes = probes
        self.registry = registry
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        server_class = _Server6 if ":" in self.host else _Server
        try:
            server = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"setting http.listen: cannot listen on {self.listen}: {exc.strerror or exc}",
                hint="choose a free port, or stop what is using it",
            ) from None
        server.app = self
        self.port = server.server_address[1]  # the real one when 0 was asked for
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="watcher-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"news-watcher/{__version__}"
    timeout = 10  # a client that stalls loses its thread, not ours

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    def _dispatch(self, *, body: bool) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                self._json(*app.probes.liveness(), body=body)
            elif path == "/readyz":
                self._json(*app.probes.readiness(), body=body)
            elif path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, content_type, encoder(app.registry), body=body)
            elif path == "/":
                self._send(200, "text/plain; charset=utf-8", INDEX, body=body)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n" + INDEX, body=body)
        except Exception:  # a broken probe must show up as an error, never kill the server
            log.exception("http: %s failed", path)
            self._send(500, "text/plain; charset=utf-8", b"internal error\n", body=body)

    def _json(self, ok: bool, data: dict[str, Any], *, body: bool) -> None:
        payload = json.dumps(data, ensure_ascii=False).encode() + b"\n"
        self._send(200 if ok else 503, "application/json", payload, body=body)

    def _send(self, status: int, content_type: str, payload: bytes, *, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s " + format, self.address_string(), *args)


# -- the daemon hook ---------------------------------------------------------------------------


def serve_http(daemon: Daemon, scheduler: BaseScheduler) -> None:
    """A daemon job (cli._daemon_jobs): serve the endpoints when `http.listen` is set."""
    listen = daemon.settings.http.listen
    if not listen:
        return
    collector = metrics.DatabaseCollector(
        daemon.watcher.engine, ruleset=lambda: daemon.watcher.ruleset
    )
    server = HealthServer(listen, DaemonProbes(daemon), metrics.server_registry(collector))
    server.start()
    from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN

    scheduler.add_listener(lambda _event: server.stop(), EVENT_SCHEDULER_SHUTDOWN)
    log.info("health and metrics on %s (/healthz, /readyz, /metrics)", server.url)
