"""`watcher feeds`: the health table, and managing rules/feeds.opml (add, remove, import, export,
check, enable).

Edits go to the OPML file only; the running daemon notices the change and syncs its feed rows.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from watcher import health
from watcher.commands.common import (
    console,
    err_console,
    open_database,
    print_json,
    settings_of,
    when,
)
from watcher.commands.feed_check import check_feed, print_check
from watcher.config import Settings, redact_url
from watcher.db import feeds as feed_db
from watcher.db.engine import session_scope
from watcher.db.models import Feed
from watcher.discover import Discovery, FeedCandidate, discover, fetch_and_parse, score
from watcher.errors import WatcherError
from watcher.fetch import Fetcher
from watcher.opml import parse_interval
from watcher.opml_edit import (
    FeedOutline,
    OpmlDocument,
    Skipped,
    export,
    feed_key,
    feed_list_path,
    merge,
    remove_feed,
)
from watcher.parse import ParsedFeed
from watcher.timeutil import utcnow

app = typer.Typer(help="Feeds: health table, and managing rules/feeds.opml.")


def feed_health(feed: Feed) -> dict[str, Any]:
    return {
        "url": redact_url(feed.url),
        "title": feed.title,
        "category": feed.category,
        "enabled": feed.enabled,
        "disabled_reason": feed.disabled_reason,
        "last_status": feed.last_status,
        "last_error": feed.last_error,
        "parse_warning": feed.parse_warning,
        "consecutive_failures": feed.consecutive_failures,
        "failing_since": feed.failing_since,
        "last_checked_at": feed.last_checked_at,
        "last_success_at": feed.last_success_at,
        "last_new_entry_at": feed.last_new_entry_at,
        "next_check_at": feed.next_check_at,
        "cadence_seconds": feed.cadence_seconds,
        "health_notice": feed.health_notice,
        "health_since": feed.health_since,
    }


@app.callback(invoke_without_command=True)
def feeds(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="one JSON array instead of a table"),
    disabled: bool = typer.Option(False, "--disabled", help="only disabled feeds, with why"),
) -> None:
    """Show every feed: last status, last success, consecutive errors, next check, problems."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    with open_database(settings) as engine, session_scope(engine) as session:
        rows = [feed_health(feed) for feed in feed_db.list_feeds(session)]
    if disabled:
        rows = [row for row in rows if not row["enabled"]]
    if as_json:
        print_json(rows)
    elif disabled:
        _print_disabled(rows)
    else:
        _print_table(rows)


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"{len(rows)} feeds")
    for column in ("feed", "status", "last success", "errors", "next check", "problem"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = "disabled" if not row["enabled"] else str(row["last_status"] or "—")
        problem = row["health_notice"] or row["disabled_reason"] or row["last_error"] or ""
        table.add_row(
            row["title"] or row["url"],
            status,
            when(row["last_success_at"]),
            str(row["consecutive_failures"] or ""),
            when(row["next_check_at"]),
            problem,
        )
    console.print(table)


def _print_disabled(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no disabled feeds")
        return
    table = Table(title=f"{len(rows)} disabled feeds")
    for column in ("feed", "url", "since", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        since = row["health_since"] or row["last_checked_at"]
        table.add_row(row["title"] or "", row["url"], when(since), row["disabled_reason"] or "")
    console.print(table)
    console.print("re-enable one with `watcher feeds enable URL`", highlight=False)


# -- add ----------------------------------------------------------------------------------------


@app.command()
def add(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="a feed URL, or a site's address (its feed is found)"),
    name: str | None = typer.Option(None, "--name", help="title to list it under"),
    interval: str | None = typer.Option(None, "--interval", help='poll interval, e.g. "30m"'),
    folder: str | None = typer.Option(
        None,
        "--folder",
        help='folder, e.g. "English" or "News search/Korean" (default: by '
        "the feed's language, else none)",
    ),
    pick: int | None = typer.Option(None, "--pick", min=1, help="take candidate N of the list"),
    no_extract: bool = typer.Option(
        False, "--no-extract", help="the feed carries full text: do not fetch article pages"
    ),
) -> None:
    """Add a feed to rules/feeds.opml; given a web page, find its feed first."""
    settings = settings_of(ctx)
    path = feed_list_path(settings.rules_dir)
    url = _with_scheme(url)
    if interval is not None:
        parse_interval(interval, where=f"--interval {interval!r}")
    document = OpmlDocument.load(path)
    document.refuse_listed(url)  # before any network work
    found = asyncio.run(_discover(settings, url))
    candidate = _choose(found, pick)
    parsed = found.parsed if candidate is found.chosen and found.parsed else None
    if parsed is None:
        parsed = asyncio.run(_validate(settings, candidate.url))
    document.refuse_listed(candidate.url)
    outline = FeedOutline(
        url=candidate.url,
        title=name or parsed.title or candidate.title or urlsplit(candidate.url).netloc,
        site_url=parsed.site_url or (None if candidate.found_by == "address" else url),
        folder=tuple(p.strip() for p in folder.split("/") if p.strip())
        if folder
        else document.folder_for_language(parsed.lang),
        interval=interval,
        extract=not no_extract,
        language=parsed.lang,
    )
    document.add(outline)
    document.save(path)
    where = f" in folder {'/'.join(outline.folder)!r}" if outline.folder else ""
    console.print(
        f"added {outline.title!r} ({outline.url}){where} to {path}: "
        f"{len(parsed.entries)} entries now; the daemon picks it up on its next reload check",
        highlight=False,
        soft_wrap=True,
    )


def _with_scheme(url: str) -> str:
    url = url.strip()
    return url if "://" in url else f"https://{url}"


async def _discover(settings: Settings, url: str) -> Discovery:
    async with Fetcher(settings.fetch) as fetcher:
        return await discover(fetcher, url)


async def _validate(settings: Settings, url: str) -> ParsedFeed:
    async with Fetcher(settings.fetch) as fetcher:
        _, parsed = await fetch_and_parse(fetcher, url)
    return parsed


def _choose(found: Discovery, pick: int | None) -> FeedCandidate:
    candidates = found.candidates
    if pick is not None:
        if pick > len(candidates):
            raise WatcherError(f"--pick {pick}: {found.url} has {len(candidates)} candidate(s)")
        return candidates[pick - 1]
    if found.chosen is not None:
        return found.chosen
    _print_candidates(found)
    if sys.stdin.isatty() and sys.stdout.isatty():
        number = typer.prompt("add which one", type=typer.IntRange(1, len(candidates)))
        return candidates[number - 1]
    raise WatcherError(
        f"{found.url}: {len(candidates)} feeds found, none clearly the main one; nothing added",
        hint="run again with --pick N (N from the list above), or pass the feed URL itself",
    )


def _print_candidates(found: Discovery) -> None:
    """One candidate per line, URL unwrapped, so it can be copied whatever the terminal width."""
    console.print(f"feeds found at {found.url}:", highlight=False)
    for number, candidate in enumerate(found.candidates, 1):
        kind, found_by = candidate.kind or "?", candidate.found_by
        details = f"{kind}, found by {found_by}, score {score(candidate)}"
        console.print(f"  {number}. {candidate.title or '(untitled)'} ({details})", highlight=False)
        console.print(f"     {candidate.url}", highlight=False, soft_wrap=True)


# -- remove, import, export ---------------------------------------------------------------------


@app.command()
def remove(
    ctx: typer.Context, url: str = typer.Argument(..., help="the feed URL, as listed")
) -> None:
    """Take a feed out of rules/feeds.opml (its articles and history stay in the database)."""
    path = feed_list_path(settings_of(ctx).rules_dir)
    outline = remove_feed(path, _with_scheme(url))
    console.print(
        f"removed {outline.title or outline.url!r} ({outline.url}) from {path}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("import")
def import_feeds(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="an OPML export"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Merge an OPML export (Feedly, Inoreader, Miniflux, FreshRSS, …) into rules/feeds.opml."""
    path = feed_list_path(settings_of(ctx).rules_dir)
    report = merge(path, file.read_bytes(), source=str(file))
    if as_json:
        print_json(
            {
                "added": [o.attributes() | {"folder": list(o.folder)} for o in report.added],
                "skipped": [_skipped(s) for s in report.skipped],
            }
        )
        return
    console.print(
        f"{len(report.added)} feeds added to {path}, {len(report.skipped)} skipped",
        highlight=False,
    )
    for skipped in report.skipped:
        console.print(
            f"  skipped {skipped.title or skipped.url!r}: {skipped.reason}",
            highlight=False,
            soft_wrap=True,
        )


def _skipped(skipped: Skipped) -> dict[str, str]:
    return {"url": skipped.url, "title": skipped.title, "reason": skipped.reason}


@app.command("export")
def export_feeds(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, dir_okay=False, help="write here (default: stdout)"),
    title: str = typer.Option("news-watcher feeds", "--title", help="the OPML <title>"),
) -> None:
    """Write the feed list as OPML 2.0 for any feed reader (stdout by default)."""
    path = feed_list_path(settings_of(ctx).rules_dir)
    data = export(path, title=title)
    if file is None:
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return
    file.write_bytes(data)
    err_console.print(f"wrote {file}", highlight=False)


# -- check, enable ------------------------------------------------------------------------------


@app.command()
def check(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="a feed URL"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    no_extract: bool = typer.Option(False, "--no-extract", help="skip the article page"),
) -> None:
    """Fetch and parse one feed and show what the pipeline would do; stores nothing."""
    settings = settings_of(ctx)
    report = asyncio.run(check_feed(settings, _with_scheme(url), extract=not no_extract))
    if as_json:
        print_json(report)
    else:
        print_check(report)
    if "error" in report:
        raise typer.Exit(1)


@app.command()
def enable(
    ctx: typer.Context, url: str = typer.Argument(..., help="the feed URL, as listed")
) -> None:
    """Re-enable a feed the daemon disabled (410 Gone, redirect loop) or feeds.opml disabled."""
    settings = settings_of(ctx)
    url = _with_scheme(url)
    in_list = _enable_in_opml(feed_list_path(settings.rules_dir), url)
    with open_database(settings) as engine, session_scope(engine) as session:
        feed = _find(session, url)
        if feed is None and in_list:
            return  # not polled yet: the daemon's next sync takes the list as it is now
        if feed is None:
            raise WatcherError(
                f"{url}: no such feed in the database or feeds.opml",
                hint="`watcher feeds --disabled` lists the disabled feeds",
            )
        if feed.enabled:
            console.print(f"{feed.url} is already enabled", highlight=False)
            return
        feed_db.set_enabled(session, feed, True, utcnow())
        health.clear(feed)
        console.print(
            f"enabled {feed.title or feed.url!r} ({feed.url}): checked on the next poll",
            highlight=False,
            soft_wrap=True,
        )


def _find(session: Any, url: str) -> Feed | None:
    """The feed row by URL as listed or as fetched now, in any spelling."""
    feed = feed_db.find_feed(session, url)
    if feed is not None:
        return feed
    key = feed_key(url)
    rows = feed_db.list_feeds(session, include_unlisted=True)
    return next((f for f in rows if key in (feed_key(f.url), feed_key(f.opml_url))), None)


def _enable_in_opml(path: Path, url: str) -> bool:
    """Drop enabled="false" from the feed's outline; True when the list had it disabled."""
    if not path.is_file():
        return False
    document = OpmlDocument.load(path)
    found = document.find(url)
    if found is None or found[1].enabled:
        return False
    document.set_enabled(url, True)
    document.save(path)
    console.print(f'removed enabled="false" from {found[1].url} in {path}', highlight=False)
    return True
