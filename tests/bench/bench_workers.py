"""Scale-out benchmark: one vs two workers on PostgreSQL, and SQLite vs PostgreSQL for one worker.

Each worker is a real `watcher poll --all` process; K of them start together on one database and
share the feeds through lease claims. The figure is the wall time until every worker has exited.
Run: `python -m tests.bench.bench_workers [--feeds 300]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine

from tests.conftest import PG_ADMIN_URL, Workspace, postgres_available
from tests.feedsite import FeedSite, items


def _env(workspace: Workspace, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(
        WATCHER_DATA_DIR=str(workspace.data_dir),
        WATCHER_RULES_DIR=str(workspace.rules_dir),
        WATCHER_DATABASE_URL=url,
        WATCHER_EXTRACT__ENABLED="false",
        WATCHER_FETCH__PER_HOST_CONCURRENCY="32",
    )
    return env


def _cycle(workspace: Workspace, url: str, workers: int) -> float:
    env = _env(workspace, url)
    command = [sys.executable, "-m", "watcher"]
    subprocess.run([*command, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*command, "feeds"], env=env, check=True, capture_output=True)  # sync the list
    started = time.perf_counter()
    procs = [
        subprocess.Popen([*command, "poll", "--all", "--json"], env=env, stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - started


def _pg_schema() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    return schema, f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"


def _drop(schema: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def run(n_feeds: int = 300) -> dict[str, float | str]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        site = FeedSite(server)
        feeds = {f"F{n}": site.add_feed(f"/b{n}.xml", items(f"b{n}", 10)) for n in range(n_feeds)}
        results: dict[str, float | str] = {"feeds": n_feeds}
        with tempfile.TemporaryDirectory() as root:
            ws = Workspace(Path(root) / "sqlite")
            ws.write_feeds(feeds)
            results["sqlite_1_worker_s"] = _cycle(ws, f"sqlite:///{ws.data_dir}/watcher.db", 1)
            reason = postgres_available()
            if reason:
                results["postgresql"] = f"skipped: {reason}"
                return results
            for workers in (1, 2):
                schema, url = _pg_schema()
                try:
                    ws = Workspace(Path(root) / f"pg{workers}")
                    ws.write_feeds(feeds)
                    results[f"postgresql_{workers}_worker_s"] = _cycle(ws, url, workers)
                finally:
                    _drop(schema)
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=300)
    figures = run(parser.parse_args().feeds)
    for key, value in figures.items():
        print(f"{key:28} {value:.2f}" if isinstance(value, float) else f"{key:28} {value}")
    one, two = figures.get("postgresql_1_worker_s"), figures.get("postgresql_2_worker_s")
    sqlite = figures.get("sqlite_1_worker_s")
    if isinstance(one, float) and isinstance(two, float) and isinstance(sqlite, float):
        print(f"{'2 workers vs 1 (PostgreSQL)':28} {one / two:.2f}x")
        print(f"{'PostgreSQL vs SQLite (1)':28} {sqlite / one:.2f}x")


if __name__ == "__main__":
    main()
