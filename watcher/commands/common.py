"""What every command needs: the settings loaded by the main callback, and a database."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from watcher.config import Settings, load_settings
from watcher.db.engine import make_engine
from watcher.db.schema import ensure_schema

console = Console()
err_console = Console(stderr=True)


def settings_of(ctx: typer.Context | None) -> Settings:
    """The settings the main callback loaded (or the defaults when a command runs on its own)."""
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict) and isinstance(obj.get("settings"), Settings):
        return obj["settings"]
    return load_settings()


@contextmanager
def open_database(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    try:
        ensure_schema(engine, auto_upgrade=settings.auto_upgrade)
        yield engine
    finally:
        engine.dispose()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def when(value: Any) -> str:
    """A timestamp for tables: local-looking UTC, or a dash."""
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"
