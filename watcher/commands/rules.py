"""`watcher rules`: check rule files, explain a rule, test rules on articles, backfill a rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from watcher.commands.common import console, err_console, open_database, print_json, settings_of
from watcher.domain import Article
from watcher.errors import RuleError, WatcherError
from watcher.query import explain
from watcher.rules import Rule, RuleFileError, RuleProblem, RuleSet, load_ruleset
from watcher.timeutil import ago, parse_duration

app = typer.Typer(help="Rules: check rule files, explain a rule, test and backfill rules.")


def _rules_dir(ctx: typer.Context, rules_dir: Path | None) -> Path:
    return rules_dir if rules_dir is not None else settings_of(ctx).rules_dir


def _print_problem(problem: RuleProblem) -> None:
    colour = "red" if problem.severity == "error" else "yellow"
    lines = problem.render().split("\n")
    head = f"[bold]{escape(str(problem.file))}:{problem.line}:{problem.col}:[/bold]"
    console.print(
        f"{head} [{colour}]{problem.severity}:[/{colour}] {escape(problem.message)}",
        soft_wrap=True,
        highlight=False,
    )
    for line in lines[1:]:
        console.print(
            escape(line),
            soft_wrap=True,
            highlight=False,
            style="dim" if "^" not in line else colour,
        )


@app.command()
def check(
    ctx: typer.Context,
    rules_dir: Path | None = typer.Argument(
        None, help="rules directory (default: settings.rules_dir)"
    ),
) -> None:
    """Validate every rule file: print each error and warning (file:line:col); exit 1 on errors."""
    directory = _rules_dir(ctx, rules_dir)
    try:
        ruleset = load_ruleset(directory)
    except RuleFileError as exc:
        for problem in exc.problems:
            _print_problem(problem)
        errors = sum(p.severity == "error" for p in exc.problems)
        warnings = len(exc.problems) - errors
        console.print(
            f"[red]{errors} error{'s' * (errors != 1)}[/red], {warnings} warning"
            f"{'s' * (warnings != 1)} in {escape(str(directory))}; no rule changed",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    except RuleError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    for problem in ruleset.problems:
        _print_problem(problem)
    routes = _route_warnings(ctx, ruleset)
    for line in routes:
        console.print(line, soft_wrap=True, highlight=False)
    enabled = len(ruleset.enabled)
    count = len(ruleset.problems) + len(routes)
    console.print(
        f"[green]ok[/green]: {len(ruleset.rules)} rules ({enabled} enabled), {count} warning"
        f"{'s' * (count != 1)} in {escape(str(directory))}; version {ruleset.version}",
        highlight=False,
        soft_wrap=True,
    )


def _route_warnings(ctx: typer.Context, ruleset: RuleSet) -> list[str]:
    """Destinations a rule names that the settings do not configure (the loader cannot know)."""
    configured = sorted(settings_of(ctx).effective_destinations())
    unknown = ruleset.unknown_destinations(configured)
    return [
        f"[bold]{escape(rule.origin)}:[/bold] [yellow]warning:[/yellow] rule {rule.id!r} "
        f"delivers to {escape(', '.join(unknown[rule.id]))}, not a configured destination "
        f"(configured: {escape(', '.join(configured))})"
        for rule in ruleset.rules
        if rule.id in unknown
    ]


def _load(ctx: typer.Context) -> RuleSet:
    return load_ruleset(settings_of(ctx).rules_dir)


def _rule(ruleset: RuleSet, rule_id: str) -> Rule:
    rule = ruleset.get(rule_id)
    if rule is None:
        known = ", ".join(r.id for r in ruleset.rules) or "none"
        raise RuleError(f"no rule with id {rule_id!r} (rules: {known})")
    return rule


@app.command("explain")
def explain_rule(ctx: typer.Context, rule_id: str = typer.Argument(..., help="rule id")) -> None:
    """Show a rule's settings, its parsed query tree and the anchor terms that pre-select it."""
    rule = _rule(_load(ctx), rule_id)
    compiled = rule.compiled()
    console.print(f"[bold]{escape(rule.id)}[/bold] — {escape(rule.title)}  ({escape(rule.origin)})")
    deliver = rule.deliver
    facts = {
        "enabled": rule.enabled,
        "priority": rule.priority,
        "languages": ", ".join(rule.languages or []) or "any",
        "fields": ", ".join(rule.fields or []) or "title, text",
        "deliver": f"digest {deliver.digest}, immediate {deliver.immediate}, destinations "
        + (", ".join(deliver.destinations) if deliver.destinations else "all"),
        "on_update": rule.on_update,
    }
    for key, value in facts.items():
        console.print(f"  {key}: {escape(str(value))}", highlight=False)
    for label, node in (("query", compiled.query), ("exclude", compiled.exclude)):
        if node is None:
            continue
        console.print(f"\n[bold]{label}[/bold]")
        console.print(escape(explain(node)), highlight=False, soft_wrap=True)  # ends with anchors


def _read_jsonl(path: Path) -> Iterator[tuple[str, Article]]:
    """(id, Article) per line; a malformed line is an error naming the file and line number."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise WatcherError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                yield str(data.get("id", number)), _article(data)
            except (ValueError, TypeError) as exc:
                raise WatcherError(
                    f"{path}:{number}: not a valid article line: {exc}",
                    hint='one JSON object per line: {"id": …, "title": …, "text": …}',
                ) from None


def _article(data: dict[str, Any]) -> Article:
    for key in ("title", "text"):
        if not isinstance(data.get(key, ""), str):
            raise ValueError(f"{key!r} must be a string")
    if not (data.get("title") or data.get("text")):
        raise ValueError('needs a "title" or a "text"')
    return Article(
        url=str(data.get("url") or ""),
        title=data.get("title") or "",
        text=data.get("text") or "",
        source=str(data.get("source") or ""),
        lang=data.get("lang") or None,
        author=data.get("author") or None,
    )


def _only(ruleset: RuleSet, rule_id: str) -> RuleSet:
    """A set holding just this rule, enabled — so a disabled rule can be tried before enabling."""
    rule = _rule(ruleset, rule_id)
    return RuleSet(rules=(rule.model_copy(update={"enabled": True}),), version=ruleset.version)


@app.command("test")
def test_rules(
    ctx: typer.Context,
    rule_id: str | None = typer.Argument(None, help="only this rule"),
    input_file: Path | None = typer.Option(
        None, "--input", "-i", help="JSON lines: {id, title, text, lang?, url?, source?}"
    ),
    since: str | None = typer.Option(None, "--since", help="stored articles this recent, e.g. 7d"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per article"),
) -> None:
    """Which rules match: articles from --input FILE.jsonl, or stored ones (RULE_ID --since 7d)."""
    ruleset = _load(ctx)
    if rule_id is not None:
        ruleset = _only(ruleset, rule_id)
    if input_file is not None:
        rows = ((key, ruleset.match(article), article) for key, article in _read_jsonl(input_file))
        _report(rows, as_json, every=True)
    elif rule_id is not None and since is not None:
        _check_duration(since)
        _test_stored(ctx, ruleset, since, as_json)
    else:
        raise WatcherError("give --input FILE.jsonl, or a RULE_ID with --since (e.g. 7d)")


def _check_duration(since: str) -> None:
    try:
        parse_duration(since)
    except ValueError as exc:
        raise WatcherError(f"--since: {exc}") from None


def _test_stored(ctx: typer.Context, ruleset: RuleSet, since: str, as_json: bool) -> None:
    from watcher.db import rule_queries
    from watcher.db.engine import session_scope

    with open_database(settings_of(ctx)) as engine, session_scope(engine) as session:
        scanned = 0
        hits = []
        for article in rule_queries.stored_articles(session, ago(since)):
            scanned += 1
            matches = ruleset.match(article)
            if matches:
                hits.append((str(article.id), matches, article))
    _report(iter(hits), as_json, every=False)
    if not as_json:
        console.print(
            f"{len(hits)} of {scanned} stored articles since {since} match", highlight=False
        )


def _report(rows: Any, as_json: bool, *, every: bool) -> None:
    table = Table("id", "rules", "title", "terms") if not as_json else None
    for key, matches, article in rows:
        rules = [m.rule_id for m in matches]
        if as_json:
            print_json({"id": key, "rules": rules})
            continue
        if every or rules:
            terms = sorted({t for m in matches for t in m.terms})
            assert table is not None
            table.add_row(
                escape(key),
                escape(", ".join(rules) or "—"),
                escape(article.title),
                escape(", ".join(terms)),
            )
    if table is not None:
        console.print(table)


@app.command()
def backfill(
    ctx: typer.Context,
    rule_id: str = typer.Argument(..., help="rule to apply to stored articles"),
    since: str = typer.Option("30d", "--since", help="how far back, e.g. 30d"),
) -> None:
    """Apply a rule to stored articles; new matches go into the next digest, never an alert."""
    from watcher.db import rule_queries
    from watcher.db.engine import session_scope

    _check_duration(since)
    ruleset = _load(ctx)
    rule = _rule(ruleset, rule_id)
    if not rule.enabled:
        raise RuleError(f"rule {rule_id!r} is disabled: enable it before backfilling")
    single = _only(ruleset, rule_id)
    with open_database(settings_of(ctx)) as engine, session_scope(engine) as session:
        result = rule_queries.backfill(session, single, ago(since))
    console.print(
        f"{rule_id}: {result.scanned} articles since {since}, {result.matched} match, "
        f"{result.added} new matches queued for the next digest",
        highlight=False,
    )
