"""Migrations: they build exactly the models' schema, on SQLite and PostgreSQL, and the daemon
refuses an old schema unless it may upgrade."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from watcher.config import Settings
from watcher.db.engine import make_engine
from watcher.db.schema import current_revision, ensure_schema, head_revision, upgrade
from watcher.errors import StorageError


def test_migrations_match_the_models(database_url: str, tmp_path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data", database_url=database_url))
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"


def test_old_schema_is_refused_without_auto_upgrade(
    database_url: str, tmp_path, monkeypatch
) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data", database_url=database_url))
    ensure_schema(engine, auto_upgrade=False)  # an empty database is initialised
    assert current_revision(engine) == head_revision()
    monkeypatch.setattr("watcher.db.schema.head_revision", lambda: "9999_newer_code")
    with pytest.raises(StorageError, match="watcher db upgrade"):
        ensure_schema(engine, auto_upgrade=False)
    engine.dispose()


def test_unreachable_database_is_a_clear_error(tmp_path) -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="cannot reach the database"):
        ensure_schema(engine)


def test_workers_starting_together_record_state_and_heartbeats_without_conflict(
    database_url: str, tmp_path
) -> None:
    """Every worker writes the rule set and its heartbeat at start-up; a read-then-insert lost
    that race on PostgreSQL (duplicate key on `state`) and one of three workers died."""
    import threading
    from datetime import UTC, datetime

    from watcher.db import state
    from watcher.db.engine import session_scope
    from watcher.db.models import Worker

    engine = make_engine(Settings(data_dir=tmp_path / "data", database_url=database_url))
    ensure_schema(engine)
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        me = Worker(id=f"w{n % 3}", hostname="h", pid=n, version="t")
        try:
            start.wait(timeout=30)
            for round_ in range(5):
                now = datetime(2026, 11, 21, 0, round_, n, tzinfo=UTC)
                with session_scope(engine) as session:
                    state.put(session, "ruleset", {"worker": n}, now)
                    state.heartbeat(session, me, now)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with session_scope(engine) as session:
        assert state.get(session, "ruleset")["worker"] in range(6)
        ids = {
            w.id
            for w in state.recent_workers(
                session, datetime(2026, 11, 20, tzinfo=UTC), timedelta(days=2)
            )
        }
    assert ids == {"w0", "w1", "w2"}
    engine.dispose()
