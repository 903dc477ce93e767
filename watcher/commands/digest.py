"""`watcher digest`: preview a digest without sending it, or send what is due now."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import typer
from rich.table import Table

from watcher.commands.common import console, err_console, open_database, settings_of
from watcher.config import Settings
from watcher.deliver.outbox import describe
from watcher.deliver.service import DeliveryService, check_routes, preview
from watcher.errors import DeliveryError, WatcherError
from watcher.rules import load_ruleset
from watcher.timeutil import ago

app = typer.Typer(help="Digests: preview one, or send what is due.", no_args_is_help=True)


def _destination(settings: Settings, name: str | None) -> str:
    configured = settings.effective_destinations()
    if name is None:
        return next(iter(configured))
    if name not in configured:
        raise DeliveryError(
            f"no destination {name!r} (configured: {', '.join(configured)})",
            hint="see [destinations.<name>] in the README's Delivery section",
        )
    return name


@app.command("preview")
def preview_command(
    ctx: typer.Context,
    destination: str | None = typer.Option(
        None, "--destination", "-d", help="whose digest (default: the first destination)"
    ),
    since: str = typer.Option("24h", "--since", help="matches from this long ago (e.g. 24h, 7d)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the HTML version here"),
    text: bool = typer.Option(False, "--text", help="print the plain-text version"),
) -> None:
    """Render the digest for recent matches without sending or recording anything."""
    settings = settings_of(ctx)
    name = _destination(settings, destination)
    try:
        start = ago(since)
    except ValueError as exc:
        raise WatcherError(f"--since: {exc}") from None
    ruleset = load_ruleset(settings.rules_dir)
    with open_database(settings) as engine:
        message = preview(engine, settings, ruleset, name, since=start)
    if out is not None:
        out.write_text(message["html"], encoding="utf-8")
        err_console.print(f"wrote {out} — {message['subject']}", highlight=False)
    if text or out is None:
        console.print(message["text"], markup=False, highlight=False, soft_wrap=True)


@app.command("send")
def send_command(
    ctx: typer.Context,
    now: bool = typer.Option(
        False, "--now", help="send everything undelivered now, not only the digests that are due"
    ),
) -> None:
    """Plan due alerts and digests (or, with --now, everything undelivered) and send them."""
    settings = settings_of(ctx)
    ruleset = load_ruleset(settings.rules_dir)
    for problem in check_routes(ruleset, settings):
        err_console.print(f"[red]error:[/red] {problem}", soft_wrap=True, highlight=False)
    owner = f"{socket.gethostname()}:{os.getpid()}:cli"
    with open_database(settings) as engine:
        service = DeliveryService(engine, settings, owner=owner)
        report = asyncio.run(service.tick(ruleset, digests="now" if now else "due"))
    if not report.results:
        console.print("nothing to send")
        return
    table = Table(title=f"{len(report.results)} deliveries")
    for column in ("id", "destination", "kind", "status", "subject / error"):
        table.add_column(column, overflow="fold")
    for result in map(describe, report.results):
        table.add_row(
            str(result["id"]),
            result["destination"],
            result["kind"],
            result["status"],
            result["error"] or result["subject"],
        )
    console.print(table)
    if report.failed:
        raise DeliveryError(
            f"{len(report.failed)} of {len(report.results)} deliveries failed",
            hint="`watcher deliveries --failed` lists them; the daemon retries the retrying ones",
        )
