"""The schema is managed by Alembic migrations shipped in the package (watcher/db/migrations).

`ensure_schema` is the one entry point: it upgrades when allowed (the default on SQLite), and
otherwise refuses to run on a schema older than the code, saying which command fixes it. On
PostgreSQL an advisory lock makes concurrent worker start-ups upgrade once.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from watcher.config import redact_url
from watcher.db import models  # noqa: F401  (registers the tables)
from watcher.db.engine import sqlite_path
from watcher.errors import StorageError

log = logging.getLogger("watcher.db")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_ID = 0x6E657773  # "news": serialises upgrades across workers on PostgreSQL


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """One migrator at a time across processes: an advisory lock on PostgreSQL, a file lock
    beside the SQLite database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_ID})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_ID})")
                connection.commit()
        return
    path = sqlite_path(str(engine.url))
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".migrate.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate under the cross-process lock (a no-op when another process got there first)."""
    with migration_lock(engine), engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def ensure_schema(engine: Engine, *, auto_upgrade: bool = True) -> None:
    """Make sure the database schema matches the code (or say exactly what to do).

    An empty database is always initialised; an older schema is upgraded only when allowed.
    """
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise StorageError(
            f"cannot reach the database {redact_url(str(engine.url))}: {exc.orig}"
        ) from None
    head = head_revision()
    if current == head:
        return
    if current is not None and not auto_upgrade:
        raise StorageError(
            f"the database schema is at revision {current}, "
            f"this version of news-watcher needs {head}",
            hint="run `watcher db upgrade` (or set db.auto_upgrade = true)",
        )
    log.info("upgrading database schema %s → %s", current or "(empty)", head)
    upgrade(engine)
