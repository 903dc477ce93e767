"""`watcher feeds check URL`: one feed through fetch → parse → extract → match, storing nothing.

It answers "why does this feed give me nothing?" without touching the database: the HTTP status and
caching headers (is a 304 possible?), what the parser found, what extraction gets from the newest
article, and which rules the entries match today.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from watcher import health
from watcher.commands.common import console, when
from watcher.config import Settings
from watcher.domain import Article
from watcher.errors import ConfigError, ExtractError, FetchError, ParseError, RuleError
from watcher.extract import extract_article
from watcher.fetch import Fetcher
from watcher.opml_edit import FeedOutline, OpmlDocument, feed_list_path
from watcher.parse import Entry, ParsedFeed, parse_feed
from watcher.rules import RuleSet, load_ruleset

NEWEST = 5
PREVIEW_CHARS = 200


async def check_feed(settings: Settings, url: str, *, extract: bool = True) -> dict[str, Any]:
    """Everything `feeds check` shows, as plain data (the `--json` output)."""
    listed = _listed(settings, url)
    async with Fetcher(settings.fetch) as fetcher:
        result = await fetcher.fetch_feed(url)
        report: dict[str, Any] = {
            "url": url,
            "listed": listed.attributes() | {"folder": list(listed.folder)} if listed else None,
            "fetch": {
                "status": result.status,
                "final_url": result.final_url,
                "permanent_redirect": result.permanent_redirect,
                "content_type": result.headers.get("content-type"),
                "bytes": len(result.body),
                "seconds": round(result.elapsed, 3),
                "etag": result.etag,
                "last_modified": result.last_modified,
                "cache_control": result.headers.get("cache-control"),
                "conditional_get": bool(result.etag or result.last_modified),
            },
        }
        try:
            parsed = parse_feed(
                result.body, url=result.final_url, content_type=result.headers.get("content-type")
            )
        except ParseError as exc:
            report["error"] = f"{url}: {exc}"
            return report
        newest = newest_entries(parsed.entries)
        report["feed"] = _feed_summary(parsed)
        reason = _no_extraction(settings, listed, extract)
        first = next((e for e in newest if e.link), None)
        page_text: str | None = None
        if reason or first is None:
            extraction: dict[str, Any] = {"skipped": reason or "no entry has a link"}
        else:
            extraction, page_text = await _extract(fetcher, first, settings)
    report["extraction"] = extraction
    ruleset, rules_error = _rules(settings)
    report["rules"] = {"loaded": len(ruleset.enabled) if ruleset else 0, "error": rules_error}
    texts = {id(first): page_text} if first is not None and page_text else {}
    report["newest"] = [_entry_row(e, parsed, ruleset, texts.get(id(e))) for e in newest]
    report["matches"] = _all_matches(parsed, ruleset, texts)
    return report


def newest_entries(entries: list[Entry], count: int = NEWEST) -> list[Entry]:
    """Newest first by publish date; undated entries keep feed order after the dated ones."""
    dated = sorted((e for e in entries if e.published), key=lambda e: e.published, reverse=True)
    undated = [e for e in entries if not e.published]
    return [*dated, *undated][:count]


def _listed(settings: Settings, url: str) -> FeedOutline | None:
    """The feed's outline in feeds.opml, if listed (a missing or broken list is no error here)."""
    try:
        found = OpmlDocument.load(feed_list_path(settings.rules_dir)).find(url)
    except ConfigError:
        return None
    return found[1] if found else None


def _feed_summary(parsed: ParsedFeed) -> dict[str, Any]:
    cadence = health.cadence_from_dates(e.published for e in parsed.entries)
    return {
        "title": parsed.title,
        "site_url": parsed.site_url,
        "format": parsed.format,
        "lang": parsed.lang,
        "warning": parsed.warning,
        "entries": len(parsed.entries),
        "cadence_seconds": cadence,
        "cadence": health.describe_span(cadence) if cadence else None,
    }


def _no_extraction(settings: Settings, listed: FeedOutline | None, wanted: bool) -> str | None:
    if not wanted:
        return "--no-extract"
    if not settings.extract.enabled:
        return "extract.enabled = false in the settings"
    if listed is not None and not listed.extract:
        return 'extract="false" for this feed in feeds.opml'
    return None


async def _extract(
    fetcher: Fetcher, entry: Entry, settings: Settings
) -> tuple[dict[str, Any], str | None]:
    """The newest article's page, extracted; and the text the pipeline would match."""
    assert entry.link is not None
    feed_text = entry.content or entry.summary
    try:
        page = await fetcher.fetch_page(entry.link)
        extracted = extract_article(page.body, url=page.final_url, content_type=page.content_type)
    except (FetchError, ExtractError) as exc:
        return {"url": entry.link, "error": str(exc), "used": "feed text"}, None
    if extracted is None:
        return {"url": entry.link, "error": "no article text found", "used": "feed text"}, None
    enough = len(extracted.text) >= min(settings.extract.min_text_chars, max(len(feed_text), 1))
    info = {
        "url": entry.link,
        "status": page.status,
        "method": extracted.method,
        "chars": len(extracted.text),
        "feed_chars": len(feed_text),
        "lang": extracted.lang,
        "start": extracted.text[:PREVIEW_CHARS],
        "used": f"page text ({extracted.method})" if enough else "feed text (page text too short)",
    }
    return info, extracted.text if enough else None


def _rules(settings: Settings) -> tuple[RuleSet | None, str | None]:
    try:
        return load_ruleset(settings.rules_dir), None
    except RuleError as exc:
        return None, str(exc)


def _article(entry: Entry, parsed: ParsedFeed, text: str | None) -> Article:
    return Article(
        url=entry.link or "",
        title=entry.title,
        text=text or entry.content or entry.summary,
        source=parsed.title,
        lang=entry.lang or parsed.lang,
        author=entry.author,
        published_at=entry.published,
        summary=entry.summary,
    )


def _rule_ids(entry: Entry, parsed: ParsedFeed, ruleset: RuleSet | None, text: str | None) -> list:
    if ruleset is None:
        return []
    return [m.rule_id for m in ruleset.match(_article(entry, parsed, text))]


def _entry_row(
    entry: Entry, parsed: ParsedFeed, ruleset: RuleSet | None, text: str | None
) -> dict[str, Any]:
    return {
        "title": entry.title,
        "published": entry.published,
        "link": entry.link,
        "rules": _rule_ids(entry, parsed, ruleset, text),
    }


def _all_matches(
    parsed: ParsedFeed, ruleset: RuleSet | None, texts: dict[int, str]
) -> list[dict[str, Any]]:
    rows = []
    for entry in parsed.entries:
        rules = _rule_ids(entry, parsed, ruleset, texts.get(id(entry)))
        if rules:
            rows.append({"title": entry.title, "link": entry.link, "rules": rules})
    return rows


# -- printing -----------------------------------------------------------------------------------


def print_check(report: dict[str, Any]) -> None:
    fetch = report["fetch"]
    out = console.print
    out(f"[bold]{report['url']}[/bold]", soft_wrap=True, highlight=False)
    moved = f" → {fetch['final_url']}" if fetch["final_url"] != report["url"] else ""
    out(
        f"HTTP {fetch['status']}{moved}  {fetch['content_type'] or '?'}  {fetch['bytes']} bytes  "
        f"{fetch['seconds']} s",
        highlight=False,
        soft_wrap=True,
    )
    if fetch["permanent_redirect"]:
        out(f"moved permanently to {fetch['permanent_redirect']}", highlight=False)
    for name in ("etag", "last_modified", "cache_control"):
        out(f"  {name.replace('_', '-')}: {fetch[name] or '—'}", highlight=False, soft_wrap=True)
    if not fetch["conditional_get"]:
        out("  no ETag or Last-Modified: every poll downloads the whole feed", highlight=False)
    listed = report["listed"]
    out(f"in feeds.opml: {'yes, as ' + repr(listed['title']) if listed else 'no'}", highlight=False)
    if "error" in report:
        out(f"[red]not usable:[/red] {report['error']}", soft_wrap=True, highlight=False)
        return
    _print_feed(report)


def _print_feed(report: dict[str, Any]) -> None:
    feed, out = report["feed"], console.print
    out(
        f"feed: {feed['title']!r} ({feed['format']}, lang {feed['lang'] or '?'}), "
        f"{feed['entries']} entries"
        + (f", about one every {feed['cadence']}" if feed["cadence"] else ""),
        highlight=False,
    )
    if feed["warning"]:
        out(f"  warning: {feed['warning']}", highlight=False, soft_wrap=True)
    table = Table(title=f"newest {len(report['newest'])} entries")
    for column in ("published", "title", "link", "rules"):
        table.add_column(column, overflow="fold")
    for row in report["newest"]:
        published: datetime | None = row["published"]
        table.add_row(when(published), row["title"], row["link"] or "", ", ".join(row["rules"]))
    out(table)
    extraction = report["extraction"]
    if "skipped" in extraction:
        out(f"extraction: skipped ({extraction['skipped']})", highlight=False)
    elif "error" in extraction:
        out(
            f"extraction of {extraction['url']}: {extraction['error']}; the feed text is used",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out(
            f"extraction of {extraction['url']}: {extraction['method']}, {extraction['chars']} "
            f"characters (feed has {extraction['feed_chars']}); {extraction['used']} is matched",
            highlight=False,
            soft_wrap=True,
        )
        out(f"  {extraction['start']!r}", highlight=False, soft_wrap=True)
    rules = report["rules"]
    if rules["error"]:
        out(f"[red]rules not loaded:[/red] {rules['error']}", highlight=False, soft_wrap=True)
        return
    out(
        f"rules: {len(report['matches'])} of {feed['entries']} entries match "
        f"({rules['loaded']} rule{'' if rules['loaded'] == 1 else 's'} active)",
        highlight=False,
    )
    for match in report["matches"]:
        out(f"  {', '.join(match['rules'])}: {match['title']}", highlight=False, soft_wrap=True)
