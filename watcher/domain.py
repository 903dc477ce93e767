"""Plain data handed between pipeline stages (no ORM objects, no feedparser objects).

`Article` is what the matcher sees; `RuleMatch` is what it returns. Both are pure values so the
matcher stays a pure function of (RuleSet, Article) and can run in any process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit


@dataclass(slots=True)
class Article:
    """One news article as the matcher and the digest see it."""

    url: str
    title: str
    text: str
    source: str = ""  # outlet name (the feed's title unless the OPML names it)
    lang: str | None = None  # ISO 639-1 code when known ("en", "ko", "ja")
    author: str | None = None
    published_at: datetime | None = None
    summary: str = ""
    id: int | None = None
    feed_id: int | None = None
    story_id: int | None = None

    @property
    def host(self) -> str:
        """The article's host without a leading "www.", used by `source:` / `site:` queries."""
        host = (urlsplit(self.url).hostname or "").lower()
        return host.removeprefix("www.")


@dataclass(frozen=True, slots=True)
class Snippet:
    """Keyword-in-context text; `highlights` are (start, end) offsets into `text`."""

    field: str
    text: str
    highlights: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule matching one article: which fields and terms hit, and snippets for the digest."""

    rule_id: str
    fields: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    snippets: tuple[Snippet, ...] = field(default_factory=tuple)
