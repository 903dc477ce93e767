"""Shared fixtures. Third-party real-world files are read in place from ../shared (never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def shared_fixtures() -> Path:
    """../shared/fixtures, or a skip saying why the real-world leg did not run."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real-world fixtures not present at {FIXTURES} (../shared is absent)")
    return FIXTURES


# -- databases ------------------------------------------------------------------------------
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_base_url() -> str:
    import os

    return os.environ.get("WATCHER_TEST_DATABASE_URL", PG_ADMIN_URL)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(_pg_base_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {_pg_base_url()} does not answer: {type(exc).__name__}"
    return None


@pytest.fixture
def pg_url():
    """A PostgreSQL URL on a scratch schema dropped afterwards (skips when no server answers)."""
    import uuid

    import sqlalchemy

    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(_pg_base_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in _pg_base_url() else "?"
    yield f"{_pg_base_url()}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends: the pipeline and delivery suites must hold on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'watcher.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def each_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Runs a whole module on both backends without touching its tests: on the PostgreSQL leg
    `WATCHER_DATABASE_URL` is set, so every Settings the tests build (and every `watcher` process
    they start) uses the scratch schema. Use with `pytestmark = usefixtures("each_backend")`."""
    if request.param == "sqlite":
        monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
        return None
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("WATCHER_DATABASE_URL", url)
    return url


# -- a workspace: rules dir + data dir ------------------------------------------------------
GSOMIA_RULE = """id: gsomia
name: Korea–Japan GSOMIA
query: GSOMIA OR "General Security of Military Information Agreement"
"""


class Workspace:
    """A temporary rules/ and data/ pair, and settings pointing at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rules_dir = root / "rules"
        self.data_dir = root / "data"
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.rules_dir / "gsomia.yaml").write_text(GSOMIA_RULE, encoding="utf-8")
        self.write_feeds({})

    def write_feeds(self, feeds: dict[str, str], **attributes: dict[str, str]) -> None:
        from tests.feedsite import opml

        (self.rules_dir / "feeds.opml").write_text(opml(feeds, **attributes), encoding="utf-8")

    def settings(self, **overrides):
        values = {
            "data_dir": self.data_dir,
            "rules_dir": self.rules_dir,
            "fetch": {"allow_private_addresses": True, "per_host_concurrency": 16},
            "extract": {"workers": 1},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}
            else:
                values[key] = value
        from watcher.config import Settings

        return Settings(**values)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def threaded_httpserver():
    """A pytest-httpserver that serves requests concurrently (the default one is serial)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


# -- running the pipeline in-process ---------------------------------------------------------
def poll_once(settings, **options):
    """One `watcher poll` in this process (a fresh Watcher: schema, rules, feed list, pool)."""
    import asyncio

    from watcher.daemon import Watcher

    async def run():
        watcher = Watcher(settings)
        watcher.prepare()
        try:
            async with watcher:
                return await watcher.poll(**options)
        finally:
            watcher.engine.dispose()

    return asyncio.run(run())


def stored_rows(settings, model) -> list:
    """Every row of a table, read through a fresh engine."""
    from sqlmodel import select

    from watcher.db.engine import make_engine, session_scope

    engine = make_engine(settings)
    try:
        with session_scope(engine) as session:
            return list(session.exec(select(model)))
    finally:
        engine.dispose()
