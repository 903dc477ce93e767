"""Reading the feed list (`rules/feeds.opml`): standard OPML, importable into any reader.

Per-feed options are outline attributes that other readers ignore: `interval` (seconds, or a
duration such as `30m`), `extract="false"` for feeds that carry full text, `enabled="false"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from watcher.errors import ConfigError
from watcher.timeutil import parse_duration

FEED_TYPES = {"rss", "atom", "json", "rdf", ""}


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One feed as the analyst listed it."""

    url: str
    title: str = ""
    site_url: str | None = None
    category: str | None = None
    interval_seconds: int | None = None
    extract: bool = True
    enabled: bool = True


def _bool(value: str | None, *, default: bool, where: str) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"true", "yes", "1", "on"}:
        return True
    if lowered in {"false", "no", "0", "off"}:
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _interval(value: str | None, *, where: str) -> int | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = int(text) if text.isdigit() else int(parse_duration(text).total_seconds())
    except ValueError as exc:
        raise ConfigError(f"{where}: interval {value!r}: {exc}") from None
    if seconds < 30:
        raise ConfigError(f"{where}: interval {value!r} is shorter than 30 seconds")
    return seconds


def parse_opml(data: bytes, *, source: str = "feeds.opml") -> list[FeedSpec]:
    """Feed outlines in document order; nested outlines give their folder as `category`."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{source}: not valid OPML: {exc}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(f"{source}: not an OPML document (expected <opml><body>…)")
    specs: dict[str, FeedSpec] = {}
    _walk(body, None, specs, source)
    return list(specs.values())


def _walk(
    node: etree._Element, category: str | None, out: dict[str, FeedSpec], source: str
) -> None:
    for outline in node.iterfind("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        title = (outline.get("title") or outline.get("text") or "").strip()
        if not url:
            _walk(outline, title or category, out, source)
            continue
        where = f"{source}:{outline.sourceline}: outline {title or url!r}"
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: xmlUrl must be an http(s) URL, got {url!r}")
        if url in out:
            continue  # listed twice (e.g. in two folders): one feed
        out[url] = FeedSpec(
            url=url,
            title=title,
            site_url=(outline.get("htmlUrl") or "").strip() or None,
            category=category,
            interval_seconds=_interval(outline.get("interval"), where=where),
            extract=_bool(outline.get("extract"), default=True, where=where),
            enabled=_bool(outline.get("enabled"), default=True, where=where),
        )


def load_feed_list(path: Path) -> list[FeedSpec]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: feed list not found (create it, or set rules_dir)") from None
    return parse_opml(data, source=str(path))


# Public names for the feed-list editor (watcher.opml_edit), which must accept exactly what this
# reader accepts.
parse_interval = _interval
parse_flag = _bool
