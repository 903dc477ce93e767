"""`watcher deliveries`: the outbox — what was sent, what is retrying, what is dead — and retry."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from watcher.commands.common import console, open_database, print_json, settings_of, when
from watcher.db import deliveries as outbox_db
from watcher.db.engine import session_scope
from watcher.db.models import Delivery
from watcher.errors import DeliveryError
from watcher.timeutil import utcnow

app = typer.Typer(help="The outbox: deliveries, their status and errors; retry dead ones.")


def as_row(delivery: Delivery, matches: int) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "status": delivery.status,
        "destination": delivery.destination,
        "kind": delivery.kind,
        "period": delivery.period_key,
        "subject": delivery.subject,
        "matches": matches,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
        "sent_at": delivery.sent_at,
        "idempotency_key": delivery.idempotency_key,
    }


@app.callback(invoke_without_command=True)
def deliveries(
    ctx: typer.Context,
    failed: bool = typer.Option(False, "--failed", help="only retrying and dead deliveries"),
    as_json: bool = typer.Option(False, "--json", help="one JSON array instead of a table"),
    show_all: bool = typer.Option(False, "--all", help="include empty digest periods"),
    limit: int = typer.Option(50, "--limit", help="newest N deliveries"),
) -> None:
    """List deliveries, newest first: status, destination, kind, attempts, last error."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    with open_database(settings) as engine, session_scope(engine) as session:
        rows = [
            as_row(delivery, count)
            for delivery, count in outbox_db.list_deliveries(
                session, failed=failed, include_empty=show_all, limit=limit
            )
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} deliveries" + (" (failed)" if failed else ""))
    for column in (
        "id",
        "status",
        "destination",
        "kind",
        "tries",
        "created",
        "sent",
        "subject / last error",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        detail = (
            row["last_error"] if row["status"] != "sent" and row["last_error"] else row["subject"]
        )
        table.add_row(
            str(row["id"]),
            row["status"],
            row["destination"],
            row["kind"],
            str(row["attempts"]),
            when(row["created_at"]),
            when(row["sent_at"]),
            detail or "",
        )
    console.print(table)


@app.command()
def retry(
    ctx: typer.Context,
    delivery_id: int = typer.Argument(..., metavar="ID", help="the delivery's id (see the list)"),
) -> None:
    """Put a dead or retrying delivery back to pending, due now (the next tick sends it)."""
    settings = settings_of(ctx)
    with open_database(settings) as engine, session_scope(engine) as session:
        row = outbox_db.get(session, delivery_id)
        if row is None:
            raise DeliveryError(
                f"no delivery {delivery_id}", hint="`watcher deliveries` lists them"
            )
        if row.status not in outbox_db.FAILED_STATUSES:
            raise DeliveryError(f"delivery {delivery_id} is {row.status}; {_why_not(row)}")
        outbox_db.requeue(session, delivery_id, utcnow())
    console.print(
        f"delivery {delivery_id} ({row.kind} to {row.destination}) is pending again; "
        "`watcher digest send` or the running daemon sends it"
    )


def _why_not(row: Delivery) -> str:
    if row.status == "sent":
        return f"it was accepted {when(row.sent_at)} UTC, nothing to retry"
    if row.status == "pending":
        return "it is already due (the next delivery tick sends it)"
    return "an empty digest period has nothing to send"
