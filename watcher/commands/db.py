"""`watcher db upgrade | current`: schema migrations (Alembic, shipped in the package)."""

from __future__ import annotations

import typer

from watcher.commands.common import console, settings_of
from watcher.config import redact_url
from watcher.db.engine import make_engine
from watcher.db.schema import current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema: upgrade, current revision.")


@app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Apply every pending migration (safe to run while other workers are stopped or running)."""
    settings = settings_of(ctx)
    engine = make_engine(settings)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"schema already at {after} (head) on {redact_url(settings.db_url)}")
    else:
        console.print(
            f"schema upgraded {before or '(empty)'} → {after} on {redact_url(settings.db_url)}"
        )


@app.command("current")
def current_command(ctx: typer.Context) -> None:
    """Show the database's schema revision and the one this version needs."""
    settings = settings_of(ctx)
    engine = make_engine(settings)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if current == head else "needs `watcher db upgrade`"
    console.print(f"database: {current or '(empty)'}  code: {head}  — {state}")
