"""The `watcher` command. Thin: it loads settings, calls the core, and turns a WatcherError into
one actionable line and an exit code (`--debug` shows the traceback)."""

from __future__ import annotations

import asyncio
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from watcher import __version__
from watcher.commands import db, feeds
from watcher.commands import deliveries as deliveries_cmd
from watcher.commands import digest as digest_cmd
from watcher.commands import rules as rules_cmd
from watcher.commands import stories as stories_cmd
from watcher.commands.common import (
    console,
    err_console,
    open_database,
    print_json,
    settings_of,
    when,
)
from watcher.config import load_settings, redacted
from watcher.errors import WatcherError
from watcher.logs import setup_logging
from watcher.status import collect_status

if TYPE_CHECKING:  # the pipeline is heavy to import; only `run` and `poll` need it
    from watcher.pipeline import PollSummary

app = typer.Typer(
    help="news-watcher: polls news feeds, matches your rules, delivers digests and alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.")
app.add_typer(config_app, name="config")
app.add_typer(feeds.app, name="feeds")
app.add_typer(db.app, name="db")
app.add_typer(digest_cmd.app, name="digest")
app.add_typer(deliveries_cmd.app, name="deliveries")
app.add_typer(stories_cmd.app, name="stories")
app.add_typer(rules_cmd.app, name="rules")


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="settings file (default: $WATCHER_CONFIG, ./watcher.toml)"
    ),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks and debug logs"),
    log_format: str | None = typer.Option(None, "--log-format", help="text or json"),
) -> None:
    ctx.obj = {"debug": debug}
    overrides: dict[str, Any] = {}
    if log_format is not None:
        overrides["log"] = {"format": log_format}
    settings = load_settings(config, **overrides)
    ctx.obj["settings"] = settings
    setup_logging(settings.log.level, settings.log.format, debug=debug)


@app.command()
def run(
    ctx: typer.Context,
    http: str | None = typer.Option(
        None, "--http", help='serve /healthz, /readyz, /metrics on "host:port"'
    ),
) -> None:
    """Run the daemon: poll feeds on schedule, match, deliver. Stops cleanly on SIGTERM/Ctrl-C."""
    settings = settings_of(ctx)
    if http is not None:
        settings = settings.model_copy(
            update={"http": settings.http.model_copy(update={"listen": http})}
        )
    from watcher.daemon import Daemon

    Daemon(settings, extra_jobs=_daemon_jobs()).run()


def _daemon_jobs() -> list[Any]:
    """Jobs other modules add to the daemon's scheduler (delivery ticks, digests, HTTP server)."""
    from watcher.deliver.service import daemon_jobs as delivery_jobs  # outbox tick, digest crons
    from watcher.web import serve_http  # /healthz, /readyz, /metrics when http.listen is set

    jobs: list[Any] = [serve_http, delivery_jobs]
    return jobs


@app.command()
def poll(
    ctx: typer.Context,
    all_feeds: bool = typer.Option(False, "--all", help="every feed, due or not"),
    feed: str | None = typer.Option(None, "--feed", help="only this feed URL"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """One pass over the due feeds (or --all, or --feed URL), then exit."""
    settings = settings_of(ctx)
    summary = asyncio.run(_poll(settings, all_feeds, feed, show_progress=not as_json))
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary)


async def _poll(
    settings: Any, force: bool, feed: str | None, *, show_progress: bool
) -> PollSummary:
    from watcher.daemon import Watcher

    watcher = Watcher(settings)
    watcher.prepare()
    async with watcher:
        if not (show_progress and sys.stderr.isatty()):
            return await watcher.poll(force=force, feed_url=feed)
        columns = (TextColumn("polling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("feeds", total=None)
            return await watcher.poll(
                force=force, feed_url=feed, progress=lambda *_: bar.advance(task)
            )


def _print_summary(summary: PollSummary) -> None:
    table = Table(title="poll")
    counts = summary.counts()
    for name in counts:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(str(value) for value in counts.values()))
    console.print(table)
    for failure in summary.failures:
        console.print(f"[red]error[/red] {failure['feed']}: {failure['error']}", soft_wrap=True)


@app.command()
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Database, counts, the active rule set, the last poll, workers seen recently."""
    settings = settings_of(ctx)
    with open_database(settings) as engine:
        data = collect_status(settings, engine)
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]news-watcher {__version__}[/bold]  database: {data['database']['url']}")
    for section in ("counts", "feeds", "deliveries"):
        values = ", ".join(f"{k} {v}" for k, v in data.get(section, {}).items())
        console.print(f"{section}: {values or '—'}")
    rules = data.get("ruleset") or {}
    console.print(f"rules: {rules.get('rules', 0)} active (version {rules.get('version') or '—'})")
    if rules.get("error"):
        console.print("[red]last rule reload failed; previous set active:[/red]")
        for line in rules["error"]:
            console.print(f"  {line}", soft_wrap=True)
    last = data.get("last_poll") or {}
    console.print(
        f"last poll: {last.get('finished_at') or '—'} — {last.get('feeds', 0)} feeds, "
        f"{last.get('errors', 0)} errors, {last.get('new_articles', 0)} new articles"
    )
    for worker in data.get("workers", []):
        console.print(f"worker {worker['id']} (heartbeat {when(worker['heartbeat_at'])})")


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The effective settings (file + environment + defaults), secrets shown as ***."""
    data = redacted(settings_of(ctx))
    if as_json:
        print_json(data)
        return
    import tomli_w  # small, only needed here

    console.print(tomli_w.dumps(_drop_none(data)), highlight=False, markup=False)


def _drop_none(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_none(v) for v in data]
    return data


def main() -> None:
    """Console-script entry point."""
    debug = "--debug" in sys.argv
    try:
        app()
    except WatcherError as exc:
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OperationalError as exc:  # the database went away under a command
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/red] database unavailable: {exc.orig}", soft_wrap=True)
        sys.exit(3)
    except Exception as exc:  # a bug: one line, the traceback on request
        if debug:
            traceback.print_exc()
        err_console.print(
            f"[red]internal error:[/red] {exc!r} (run with --debug for the traceback)",
            soft_wrap=True,
            highlight=False,
        )
        sys.exit(1)
