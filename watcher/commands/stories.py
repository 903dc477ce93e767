"""`watcher stories`: recent stories — the same news across outlets — with their articles."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text

from watcher.commands.common import console, open_database, print_json, settings_of, when
from watcher.db import stories as story_db
from watcher.db.engine import session_scope
from watcher.timeutil import ago

app = typer.Typer(help="Stories: near-duplicate articles across outlets, grouped.")


def story_json(view: story_db.StoryView) -> dict[str, Any]:
    return {
        "id": view.id,
        "title": view.title,
        "first_seen": view.created_at.isoformat(),
        "updated_at": view.updated_at.isoformat(),
        "article_count": len(view.articles),
        "outlet_count": len(view.outlets),
        "outlets": view.outlets,
        "articles": [
            {
                "id": article.id,
                "title": article.title,
                "source": article.source,
                "url": article.url,
                "created_at": article.created_at.isoformat(),
            }
            for article in view.articles
        ],
    }


def print_story(view: story_db.StoryView) -> None:
    """A story, then its articles; plain lines (not a table) so long titles and URLs stay whole."""
    console.print(Text(view.title or "(untitled)", style="bold"))
    counts = f"{len(view.articles)} articles, {len(view.outlets)} outlets"
    seen = f"first seen {when(view.created_at)} UTC"
    console.print(Text(f"  {counts} · {seen} · {', '.join(view.outlets)}", style="dim"))
    for article in view.articles:
        console.print(Text(f"  {when(article.created_at)}  {article.source}: {article.title}"))
        console.print(Text(f"      {article.url}", style="dim"))
    console.print()


@app.callback(invoke_without_command=True)
def stories(
    ctx: typer.Context,
    since: str = typer.Option(
        "24h", "--since", help="stories that gained an article in this period (90m, 24h, 7d)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON array instead of a table"),
    limit: int = typer.Option(100, "--limit", min=1, help="at most this many stories"),
) -> None:
    """List recent stories: title, articles and outlets, first seen, and each article."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        start = ago(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    settings = settings_of(ctx)
    with open_database(settings) as engine, session_scope(engine) as session:
        views = story_db.recent_stories(session, start, limit)
    if as_json:
        print_json([story_json(view) for view in views])
    elif not views:
        console.print(f"no stories since {when(start)} UTC (try --since 7d)")
    else:
        for view in views:
            print_story(view)
