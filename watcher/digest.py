"""Digests and alerts: group matches by rule and story, render HTML, plain text, chat and JSON.

A digest is grouped by rule (priority high → low, then name) and, within a rule, by story: the
same story from several outlets is shown once, with its first outlet and "also in: B, C". All
feed-supplied text is escaped (Jinja2 autoescape), highlights are inserted by code that escapes
around them, and only http(s) links become links. Rendering happens once, when a delivery is
planned; the result is stored, so every attempt sends the same message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from watcher.db.models import Article, Match
from watcher.deliver import payloads
from watcher.deliver.schedule import Period

PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}
SNIPPETS_PER_ITEM = 2
CHAT_STORIES_PER_RULE = 5
CHAT_MAX_CHARS = 3500
SUBJECT_RULES = 4
_SPACE = re.compile(r"\s")


class RuleLike(Protocol):
    id: str
    name: str
    priority: str


# -- the data a digest or alert shows --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    title: str
    priority: str

    @classmethod
    def of(cls, rule_id: str, rule: RuleLike | None) -> RuleInfo:
        if rule is None:
            return cls(rule_id, rule_id, "normal")
        return cls(rule.id, one_line(rule.name or rule.id), rule.priority)


@dataclass(slots=True)
class Entry:
    """One matched article, with everything the templates need."""

    match_id: int
    article_id: int
    rule_id: str
    story_id: int | None
    title: str
    url: str
    link: str | None  # the URL when it is http(s), else None (shown as text, never a link)
    source: str
    published_at: datetime | None
    when: str  # published (else matched) time in the user's zone
    snippets: list[dict[str, Any]]
    terms: list[str]
    change: str | None
    matched_at: datetime
    lang: str | None = None
    author: str | None = None

    @property
    def title_spans(self) -> list[list[int]]:
        for snippet in self.snippets:
            if snippet.get("field") == "title" and snippet.get("text") == self.title:
                return snippet.get("highlights") or []
        return []

    @property
    def body_snippets(self) -> list[dict[str, Any]]:
        shown = [s for s in self.snippets if s.get("field") != "title" and s.get("text")]
        return shown[:SNIPPETS_PER_ITEM]


@dataclass(slots=True)
class StoryGroup:
    """One story in one rule: its articles, first outlet first."""

    story_id: int | None
    entries: list[Entry]

    @property
    def lead(self) -> Entry:
        return self.entries[0]

    @property
    def also(self) -> list[Entry]:
        """One article per further outlet (the lead's outlet excluded)."""
        seen = {self.lead.source}
        found = []
        for entry in self.entries[1:]:
            if entry.source not in seen:
                seen.add(entry.source)
                found.append(entry)
        return found

    @property
    def also_in(self) -> list[str]:
        return [entry.source or "?" for entry in self.also]

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(term for entry in self.entries for term in entry.terms))

    @property
    def change(self) -> str | None:
        """What changed, when one of the story's articles is an update (the latest change)."""
        changes = [e for e in self.entries if e.change]
        return max(changes, key=lambda e: e.matched_at).change if changes else None

    @property
    def newest(self) -> datetime:
        return max(entry.published_at or entry.matched_at for entry in self.entries)


@dataclass(slots=True)
class Section:
    rule: RuleInfo
    stories: list[StoryGroup]
    articles: int  # distinct articles (an updated article's versions count once)
    not_listed: int = 0  # stories beyond digest.max_items_per_rule


@dataclass(slots=True)
class Notice:
    feed: str
    url: str
    message: str


@dataclass(slots=True)
class Digest:
    destination: str
    period: Period
    created_at: datetime
    zone: ZoneInfo
    sections: list[Section]
    notices: list[Notice] = field(default_factory=list)

    @property
    def articles(self) -> int:
        return sum(section.articles for section in self.sections)

    @property
    def match_ids(self) -> list[int]:
        return [e.match_id for s in self.sections for g in s.stories for e in g.entries]

    @property
    def summary(self) -> str:
        """`12 new — GSOMIA 3 · Dokdo/Takeshima 9`."""
        if not self.sections:
            return "nothing new"
        parts = [f"{s.rule.title} {s.articles}" for s in self.sections[:SUBJECT_RULES]]
        if len(self.sections) > SUBJECT_RULES:
            parts.append(f"+{len(self.sections) - SUBJECT_RULES} more")
        return f"{self.articles} new — " + " · ".join(parts)

    @property
    def subject(self) -> str:
        return f"news-watcher: {self.summary} ({self.period.label})"


@dataclass(slots=True)
class Alert:
    destination: str
    rule: RuleInfo
    story: StoryGroup
    created_at: datetime
    zone: ZoneInfo

    @property
    def subject(self) -> str:
        prefix = "update" if self.story.change else "alert"
        return f"news-watcher {prefix}: {self.rule.title} — {shorten(self.story.lead.title, 120)}"


# -- building --------------------------------------------------------------------------------------


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def shorten(text: str, limit: int) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_link(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL; anything else (javascript:, data:, relative)
    is not linked."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    ok = parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    return url if ok and not any(ord(ch) < 32 for ch in url) else None


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b %H:%M} {local.tzname()}"


def entry_of(match: Match, article: Article, zone: ZoneInfo) -> Entry:
    assert match.id is not None and article.id is not None
    shown = article.published_at or match.created_at
    return Entry(
        match_id=match.id,
        article_id=article.id,
        rule_id=match.rule_id,
        story_id=match.story_id if match.story_id is not None else article.story_id,
        title=one_line(article.title) or article.url,
        url=article.url,
        link=safe_link(article.url),
        source=one_line(article.source),
        published_at=article.published_at,
        when=local_time(shown, zone),
        snippets=list(match.snippets or []),
        terms=list(match.terms or []),
        change=one_line(match.change_summary) or None,
        matched_at=match.created_at,
        lang=article.lang,
        author=article.author,
    )


def group_stories(entries: Iterable[Entry]) -> list[StoryGroup]:
    """Articles of one story together, first outlet first; newest story first."""
    groups: dict[Any, list[Entry]] = {}
    for entry in entries:
        key = entry.story_id if entry.story_id is not None else ("article", entry.article_id)
        groups.setdefault(key, []).append(entry)
    stories = []
    for members in groups.values():
        members.sort(key=lambda e: (e.published_at or e.matched_at, e.article_id))
        stories.append(StoryGroup(members[0].story_id, members))
    stories.sort(key=lambda g: (g.newest, g.lead.article_id), reverse=True)
    return stories


def build_digest(
    rows: Iterable[tuple[Match, Article]],
    rules: Mapping[str, RuleLike],
    *,
    destination: str,
    period: Period,
    now: datetime,
    zone: ZoneInfo,
    max_items: int,
    notices: Sequence[Notice] = (),
) -> Digest:
    by_rule: dict[str, list[Entry]] = {}
    for match, article in rows:
        by_rule.setdefault(match.rule_id, []).append(entry_of(match, article, zone))
    sections = []
    for rule_id, entries in by_rule.items():
        stories = group_stories(entries)
        section = Section(
            RuleInfo.of(rule_id, rules.get(rule_id)),
            stories[:max_items],
            len({e.article_id for e in entries}),
        )
        section.not_listed = max(len(stories) - max_items, 0)
        sections.append(section)
    sections.sort(key=lambda s: (PRIORITY_ORDER.get(s.rule.priority, 1), s.rule.title.lower()))
    return Digest(destination, period, now, zone, sections, list(notices))


def build_alert(
    rows: Sequence[tuple[Match, Article]],
    rule: RuleInfo,
    *,
    destination: str,
    now: datetime,
    zone: ZoneInfo,
) -> Alert:
    """One story for one rule; the earliest article leads, the others are "also in"."""
    entries = [entry_of(match, article, zone) for match, article in rows]
    story = group_stories(entries)[0] if len({e.story_id for e in entries}) == 1 else None
    if story is None:  # rows without a shared story id: keep them together anyway
        entries.sort(key=lambda e: (e.published_at or e.matched_at, e.article_id))
        story = StoryGroup(entries[0].story_id, entries)
    return Alert(destination, rule, story, now, zone)


def notices_of(items: Iterable[Any]) -> list[Notice]:
    """Adapt `watcher.health.notices()` items (objects or mappings) to Notice."""

    def pick(item: Any, *names: str) -> str:
        for name in names:
            value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
            if value:
                return one_line(str(value))
        return ""

    return [
        Notice(
            feed=pick(item, "feed_title", "title", "feed", "url"),
            url=pick(item, "url", "feed_url"),
            message=pick(item, "message", "notice", "problem"),
        )
        for item in items
    ]


# -- highlighting ----------------------------------------------------------------------------------


def _spans(text: str, highlights: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Valid, sorted, merged [start, end) spans."""
    spans = sorted(
        (max(0, int(s)), min(len(text), int(e)))
        for s, e, *_ in (h for h in highlights if len(h) >= 2)
    )
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def highlight_html(text: str, highlights: Iterable[Sequence[int]] = ()) -> Markup:
    """Escaped text with the highlighted spans in <mark> (explicit colours: dark-mode safe)."""
    text = _SPACE.sub(" ", text or "")
    out, pos = [], 0
    for start, end in _spans(text, highlights):
        out.append(escape(text[pos:start]))
        out.append(Markup(MARK).format(text[start:end]))
        pos = end
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def highlight_text(text: str, highlights: Iterable[Sequence[int]] = ()) -> str:
    text = _SPACE.sub(" ", text or "")
    out, pos = [], 0
    for start, end in _spans(text, highlights):
        out += [text[pos:start], "*", text[start:end], "*"]
        pos = end
    out.append(text[pos:])
    return " ".join("".join(out).split())


# <mark> for meaning; the <strong> inside keeps the highlight visible in clients (Outlook's Word
# engine) that ignore styles on elements they do not know.
MARK = (
    '<mark style="background-color:#ffe58f;color:#1f2933;padding:0 1px;border-radius:2px;">'
    '<strong style="background-color:#ffe58f;color:#1f2933;font-weight:bold;">{}</strong></mark>'
)

# -- rendering -------------------------------------------------------------------------------------

_env: Environment | None = None


def environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment(
            loader=PackageLoader("watcher", "templates"),
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        _env.filters["hl"] = lambda s: highlight_html(s.get("text", ""), s.get("highlights") or [])
        _env.filters["hl_text"] = lambda s: highlight_text(
            s.get("text", ""), s.get("highlights") or []
        )
        _env.filters["hl_title"] = lambda e: highlight_html(e.title, e.title_spans)
    return _env


def message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@news-watcher>"


def _file_stem(kind: str, key: str, moment: datetime, zone: ZoneInfo, label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")[:60]
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{moment.astimezone(zone):%Y%m%d-%H%M%S}-{kind}-{slug}-{digest}"


def _envelope(
    kind: str, key: str, destination: str, subject: str, now: datetime, zone: ZoneInfo, label: str
) -> dict[str, Any]:
    return {
        "format": 1,
        "kind": kind,
        "subject": subject,
        "date": format_datetime(now.astimezone(zone).replace(microsecond=0)),
        "message_id": message_id(key),
        "list_id": f"news-watcher {kind}s <{kind}.{destination}.news-watcher>",
        "file_stem": _file_stem(kind, key, now, zone, label),
    }


def render_digest(digest: Digest, key: str) -> dict[str, Any]:
    """The stored message: headers, plain text, HTML, chat text and webhook JSON."""
    env = environment()
    context = {"digest": digest, "subject": digest.subject, "zone_name": str(digest.zone)}
    chat = env.get_template("digest.chat.j2").render(context, per_rule=CHAT_STORIES_PER_RULE)
    return {
        **_envelope(
            "digest",
            key,
            digest.destination,
            digest.subject,
            digest.created_at,
            digest.zone,
            digest.period.key,
        ),
        "text": env.get_template("digest.txt.j2").render(context),
        "html": env.get_template("digest.html.j2").render(context),
        "chat_title": f"news-watcher: {digest.summary}",
        "chat_body": shorten_block(chat, CHAT_MAX_CHARS),
        "json": payloads.dump(digest_payload(digest, key)),
    }


def render_alert(alert: Alert, key: str) -> dict[str, Any]:
    env = environment()
    context = {"alert": alert, "subject": alert.subject, "zone_name": str(alert.zone)}
    return {
        **_envelope(
            "alert",
            key,
            alert.destination,
            alert.subject,
            alert.created_at,
            alert.zone,
            alert.rule.id,
        ),
        "text": env.get_template("alert.txt.j2").render(context),
        "html": env.get_template("alert.html.j2").render(context),
        "chat_title": f"{alert.rule.title}: {shorten(alert.story.lead.title, 200)}",
        "chat_body": env.get_template("alert.chat.j2").render(context).strip(),
        "json": payloads.dump(alert_payload(alert, key)),
    }


def shorten_block(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit("\n", 1)[0]
    return cut + "\n… (more in the email digest)"


# -- webhook JSON ------------------------------------------------------------------------------


def _rule_v1(rule: RuleInfo) -> payloads.RuleV1:
    priority = rule.priority if rule.priority in PRIORITY_ORDER else "normal"
    return payloads.RuleV1(id=rule.id, name=rule.title, priority=priority)  # type: ignore[arg-type]


def _match_v1(entry: Entry) -> payloads.MatchV1:
    return payloads.MatchV1(
        id=entry.match_id,
        article=payloads.ArticleV1(
            id=entry.article_id,
            url=entry.url,
            title=entry.title,
            source=entry.source,
            published_at=entry.published_at,
            lang=entry.lang,
            author=entry.author,
        ),
        terms=entry.terms,
        snippets=[
            payloads.SnippetV1(
                field=str(s.get("field", "")),
                text=str(s.get("text", "")),
                highlights=[(int(h[0]), int(h[1])) for h in s.get("highlights") or []],
            )
            for s in entry.snippets
        ],
        update=entry.change,
        matched_at=entry.matched_at,
    )


def _story_v1(story: StoryGroup) -> payloads.StoryV1:
    return payloads.StoryV1(
        id=story.story_id,
        title=story.lead.title,
        also_in=story.also_in,
        matches=[_match_v1(entry) for entry in story.entries],
    )


def alert_payload(alert: Alert, key: str) -> payloads.AlertV1:
    return payloads.AlertV1(
        idempotency_key=key,
        destination=alert.destination,
        created_at=alert.created_at,
        rule=_rule_v1(alert.rule),
        story=_story_v1(alert.story),
    )


def digest_payload(digest: Digest, key: str) -> payloads.DigestV1:
    return payloads.DigestV1(
        idempotency_key=key,
        destination=digest.destination,
        period=digest.period.key,
        created_at=digest.created_at,
        time_zone=str(digest.zone),
        articles=digest.articles,
        rules=[
            payloads.DigestRuleV1(
                rule=_rule_v1(section.rule),
                articles=section.articles,
                stories=[_story_v1(story) for story in section.stories],
                not_listed=section.not_listed,
            )
            for section in digest.sections
        ],
        notices=[
            payloads.NoticeV1(feed=n.feed, url=n.url, message=n.message) for n in digest.notices
        ],
    )
