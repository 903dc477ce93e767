"""Feed bytes → `ParsedFeed` of plain `Entry` values (no feedparser objects leak out).

RSS 0.9x/1.0/2.0 and Atom go through feedparser; JSON Feed 1.0/1.1 is parsed here because
feedparser 6 does not know it. Everything is pure CPU and picklable: the pipeline runs
`parse_feed` in a process pool.

Choices worth knowing:
- The body is decoded here, not by feedparser: valid UTF-8 wins over a contrary declaration
  (servers and CMSs mislabel UTF-8 as ISO-8859-1 all the time, while Latin-1 text is almost never
  valid UTF-8); otherwise the XML declaration, then the HTTP charset, then a statistical guess.
  feedparser then sees UTF-8 only, so it never applies RFC 3023's "text/xml means US-ASCII" rule.
- feedparser gets a file object, never raw bytes: given bytes it first tries them as a file name.
- Dates more than a day in the future are clamped to the parse time; `published` falls back to
  `updated` (RSS 1.0 carries only dc:date, which feedparser files as "updated").
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from watcher.errors import ParseError
from watcher.text import (
    charset_from_content_type,
    collapse_whitespace,
    decode_strict,
    detect_language,
    guess_encoding,
    html_to_text,
    is_utf8,
    normalise_charset,
    normalise_lang,
    reconcile_lang,
)

FUTURE_TOLERANCE = timedelta(days=1)
# A feed listing its whole archive (50,000 entries) would cost feedparser ~30 s and a page fetch per
# entry on a first poll; real feeds list tens. The first MAX_ENTRIES are read, with a warning.
MAX_ENTRIES = 1000
# Longer title/summary/content markup is cut (with a warning): libxml2 silently returns nothing for
# a text node over 10 MB, and no news article is a million characters long.
MAX_TEXT_CHARS = 1_000_000


@dataclass(slots=True)
class Entry:
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str | None
    published: datetime | None
    updated: datetime | None
    lang: str | None


@dataclass(slots=True)
class ParsedFeed:
    title: str
    site_url: str | None
    lang: str | None
    format: str
    entries: list[Entry] = field(default_factory=list)
    warning: str | None = None


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse one fetched feed; raises ParseError naming what is wrong when nothing is usable."""
    if not body or not body.strip():
        raise ParseError("empty response body")
    if _is_json(body, content_type):
        return _parse_json_feed(body, url=url, content_type=content_type)
    text, notes = _decode_xml(body, content_type)
    _refuse_non_feed(text, url)
    return _parse_xml(text, url=url, notes=notes)


# --- decoding and sniffing ----------------------------------------------------------------------

_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
# (how the body starts, its encoding, bytes to drop): byte-order marks, then BOM-less UTF-16
# recognised by "<?" as the XML specification's appendix F does.
_SIGNATURES = (
    (b"\xef\xbb\xbf", "utf-8", 3),
    (b"\xff\xfe\x00\x00", "utf-32-le", 4),
    (b"\x00\x00\xfe\xff", "utf-32-be", 4),
    (b"\xff\xfe", "utf-16-le", 2),
    (b"\xfe\xff", "utf-16-be", 2),
    (b"<\x00?\x00", "utf-16-le", 0),
    (b"\x00<\x00?", "utf-16-be", 0),
)


def _is_json(body: bytes, content_type: str | None) -> bool:
    """JSON by its first byte; the Content-Type only decides when the body's start is unusual."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        return True
    if head == b"<":
        return False
    return "json" in (content_type or "").lower()


def _decode_xml(body: bytes, content_type: str | None) -> tuple[str, list[str]]:
    """Decode feed bytes to text, returning notes for the warning when a declaration was wrong."""
    for signature, codec, skip in _SIGNATURES:
        if body.startswith(signature):
            return body[skip:].decode(codec, errors="replace"), []
    match = _XML_DECL_ENCODING.match(body[:512])
    labels = [match.group(1).decode("ascii")] if match else []
    header = charset_from_content_type(content_type)
    labels += [header] if header else []
    if is_utf8(body):
        wrong = [lbl for lbl in labels if normalise_charset(lbl) not in ("utf-8", None)]
        notes = []
        if wrong and not body.isascii():
            notes.append(f"the feed declares {wrong[0]} but is UTF-8; read as UTF-8")
        return body.decode("utf-8"), notes
    for label in labels:
        codec = normalise_charset(label)
        text = decode_strict(body, codec) if codec else None
        if text is not None:
            better = _misdeclared_western(body, codec)
            if better:
                return body.decode(better), [
                    f"the feed declares {label} but its text is {better}; read as {better}"
                ]
            return text, []
    guessed = guess_encoding(body) or "cp1252"
    if labels:
        note = f"the feed declares {labels[0]} but is not valid {labels[0]}; read as {guessed}"
    else:
        note = f"the feed declares no encoding and is not UTF-8; read as {guessed}"
    return body.decode(guessed, errors="replace"), [note]


_WESTERN = frozenset({"cp1252", "iso8859-1", "iso8859-15"})
_MULTIBYTE = frozenset({"gb18030", "cp949", "cp932", "euc_jp", "big5hkscs"})


def _misdeclared_western(body: bytes, codec: str | None) -> str | None:
    """A Western single-byte label decodes any bytes at all, so Korean or Japanese labelled
    ISO-8859-1 would turn into mojibake without a word; a multi-byte guess that decodes every
    byte wins (Latin-1 text almost never forms valid multi-byte sequences)."""
    if codec not in _WESTERN:
        return None
    guessed = guess_encoding(body)
    if guessed in _MULTIBYTE and decode_strict(body, guessed) is not None:
        return guessed
    return None


_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ROOT_TAG = re.compile(r"<([A-Za-z_][\w:.-]*)")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_FEED_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE)


def _root_name(text: str) -> str | None:
    """Local name of the document's first element (after prolog, comments and DOCTYPE)."""
    match = _ROOT_TAG.search(_COMMENT.sub("", text[:65536]))
    return match.group(1).rsplit(":", 1)[-1].lower() if match else None


def _refuse_non_feed(text: str, url: str) -> None:
    """An HTML page or plain text is the commonest wrong URL; say so plainly instead of 'bozo'."""
    root = _root_name(text)
    if root in ("html", "head", "body"):
        title_match = _HTML_TITLE.search(text[:65536])
        title = html_to_text(title_match.group(1), one_line=True)[:100] if title_match else ""
        what = f"(<title>{title}</title>)" if title else "(no <title>)"
        advertised = _advertised_feed(text, url)
        hint = (
            f"the page links a feed at {advertised}; subscribe to that URL instead"
            if advertised
            else "subscribe to the site's RSS, Atom or JSON Feed URL, not to a web page"
        )
        raise ParseError(f"not a feed: the server sent an HTML page {what}", hint=hint)
    if root is None and "<!ENTITY" in text[:65536]:
        raise ParseError(
            "not a feed: more than 64 KB of DOCTYPE and entity declarations before any element "
            "(an entity-expansion attack?)"
        )
    if root is None:
        start = collapse_whitespace(text[:60])
        raise ParseError(
            f"not a feed: no XML element or JSON object in the body (it starts {start!r})"
        )


def _advertised_feed(page: str, url: str) -> str | None:
    """The first <link rel="alternate" type="…rss/atom/json…"> of an HTML page, absolute."""
    for tag in _FEED_LINK.findall(page[:200000]):
        lowered = tag.lower()
        if "alternate" in lowered and re.search(r"(rss|atom|feed\+json)", lowered):
            href = re.search(r"""href\s*=\s*["']?([^"'\s>]+)""", tag, re.IGNORECASE)
            link = _safe_link(html_to_text(href.group(1), one_line=True), url) if href else None
            if link:
                return link
    return None


# --- XML feeds (feedparser) ---------------------------------------------------------------------


def _parse_xml(text: str, *, url: str, notes: list[str]) -> ParsedFeed:
    text = text.lstrip()  # whitespace before <?xml ...?> makes expat give up
    if _declares_entities(text):
        notes.append(
            "the feed declares its own XML entities (<!DOCTYPE … [<!ENTITY …>]); they are "
            "neither loaded nor expanded"
        )
    text = _cap_entries(text, notes)
    data = text.encode("utf-8")
    # No content-location: feedparser would resolve permalink guids ("20210209000915") against it,
    # and a guid must stay what the publisher wrote. Links are resolved in _safe_link instead.
    headers = {"content-type": "application/xml; charset=utf-8"}
    import feedparser  # here, not at the top: the daemon imports this module for its types only

    try:
        parsed = feedparser.parse(
            io.BytesIO(data),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # a feedparser bug must not take the worker down with it
        raise ParseError(f"feed parser failed: {type(exc).__name__}: {exc}") from exc
    version = parsed.get("version") or ""
    # feedparser puts its own declaration on a line of its own when the document has none
    shift = 0 if text.startswith("<?xml") else 1
    problem = _describe_bozo(parsed.get("bozo_exception"), shift) if parsed.get("bozo") else None
    if not parsed.entries and not version:
        if problem and _root_name(text) in ("rss", "feed", "rdf", "channel"):
            raise ParseError(problem)
        raise ParseError(
            f"not a feed: the root element is <{_root_name(text)}>, not <rss>, <feed> or <rdf:RDF>"
        )
    feed_info = parsed.feed
    feed_lang = normalise_lang(feed_info.get("language")) or normalise_lang(
        (feed_info.get("title_detail") or {}).get("language")
    )
    now = datetime.now(UTC)
    entries = [_entry_from_feedparser(raw, url, feed_lang, now) for raw in parsed.entries]
    _note_clipped(notes, (_texts(raw) for raw in parsed.entries))
    usable = sum(1 for entry in entries if _has_content(entry))
    if problem and usable:
        notes.append(f"{problem} (recovered {_count(usable, 'entry')} with a lenient parser)")
    elif problem:
        notes.append(problem)
    return _finish(
        title=html_to_text(feed_info.get("title"), one_line=True),
        site_url=_safe_link(feed_info.get("link"), url),
        lang=feed_lang,
        fmt=version or "rss",
        entries=entries,
        notes=notes,
    )


def _declares_entities(text: str) -> bool:
    start = text.find("<!DOCTYPE", 0, 4096)
    end = text.find("]>", start) if start >= 0 else -1
    return end > start and "<!ENTITY" in text[start:end]


_ENTRY_END = re.compile(r"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")


def _cap_entries(text: str, notes: list[str]) -> str:
    """The document with only its first MAX_ENTRIES entries. What follows the last entry (the
    closing tags) is kept, so the document stays well-formed and feedparser never sees the rest."""
    cut = last = -1
    count = 0
    for count, match in enumerate(_ENTRY_END.finditer(text), 1):
        if count == MAX_ENTRIES:
            cut = match.end()
        last = match.end()
    if cut < 0 or last == cut:
        return text
    notes.append(f"the feed lists {count} entries; only the first {MAX_ENTRIES} are read")
    return text[:cut] + text[last:]


def _texts(raw: Any) -> list[Any]:
    contents = [part.get("value") for part in raw.get("content") or []]
    return [raw.get("title"), raw.get("summary"), *contents]


def _clip(markup: Any) -> Any:
    return markup[:MAX_TEXT_CHARS] if isinstance(markup, str) else markup


def _note_clipped(notes: list[str], entries: Iterable[list[Any]]) -> None:
    clipped = sum(
        any(isinstance(v, str) and len(v) > MAX_TEXT_CHARS for v in values) for values in entries
    )
    if clipped:
        notes.append(
            f"{_count(clipped, 'entry has', 'entries have')} more than {MAX_TEXT_CHARS:,} "
            "characters of text; cut to that length"
        )


def _describe_bozo(exc: BaseException | None, line_shift: int = 0) -> str:
    """feedparser's bozo exception in words an analyst can act on."""
    if exc is None:
        return "the feed is not well-formed"
    get_line = getattr(exc, "getLineNumber", None)
    if get_line is not None:
        message = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
        line = max(1, get_line() - line_shift)
        return f"malformed XML at line {line}, column {exc.getColumnNumber()}: {message}"
    name = type(exc).__name__
    if name == "UndeclaredNamespace":
        return f"the feed uses an undeclared XML namespace ({exc})"
    return f"the feed is not well-formed ({name}: {exc})"


def _entry_from_feedparser(raw: Any, base: str, feed_lang: str | None, now: datetime) -> Entry:
    title = html_to_text(_clip(raw.get("title")), one_line=True)
    summary = html_to_text(_clip(raw.get("summary")))
    contents = [html_to_text(_clip(part.get("value"))) for part in raw.get("content") or []]
    content = max(contents, key=len, default="")
    author = (raw.get("author_detail") or {}).get("name") or raw.get("author")
    published = _feed_date(raw, "published", now)
    updated = _feed_date(raw, "updated", now)
    declared = normalise_lang((raw.get("title_detail") or {}).get("language")) or feed_lang
    return Entry(
        guid=collapse_whitespace(raw.get("id") or "") or None,
        link=_safe_link(raw.get("link"), base),
        title=title,
        summary=summary,
        content=content,
        author=html_to_text(author, one_line=True) or None,
        published=published or updated,
        updated=updated,
        lang=_entry_lang(declared, f"{title}\n{summary[:600]}"),
    )


# --- JSON Feed ----------------------------------------------------------------------------------


def _parse_json_feed(body: bytes, *, url: str, content_type: str | None) -> ParsedFeed:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1)."""
    doc = _load_json(body, content_type)
    if not isinstance(doc, dict):
        raise ParseError(f"not a feed: the JSON document is a {type(doc).__name__}, not an object")
    version = doc.get("version")
    items = doc.get("items")
    is_json_feed = isinstance(version, str) and "jsonfeed.org" in version
    if not is_json_feed and not isinstance(items, list):
        raise ParseError(
            'not a feed: a JSON document without a JSON Feed "version" '
            '(https://jsonfeed.org/version/1.1) or "items"'
        )
    if not isinstance(items, list):
        raise ParseError('JSON Feed without items (the "items" array is missing)')
    notes = [] if is_json_feed else ['no JSON Feed "version"; read as JSON Feed anyway']
    if len(items) > MAX_ENTRIES:
        notes.append(f"the feed lists {len(items)} entries; only the first {MAX_ENTRIES} are read")
        items = items[:MAX_ENTRIES]
    keys = ("title", "summary", "content_html", "content_text")
    _note_clipped(notes, ([i.get(k) for k in keys] for i in items if isinstance(i, dict)))
    feed_lang = normalise_lang(_string(doc.get("language")))
    now = datetime.now(UTC)
    entries = [
        _entry_from_json(item, url, feed_lang, now) for item in items if isinstance(item, dict)
    ]
    if len(entries) < len(items):
        skipped = len(items) - len(entries)
        notes.append(f"{_count(skipped, 'item is', 'items are')} not a JSON object, skipped")
    return _finish(
        title=html_to_text(_string(doc.get("title")), one_line=True),
        site_url=_safe_link(_string(doc.get("home_page_url")), url),
        lang=feed_lang,
        fmt="json",
        entries=entries,
        notes=notes,
    )


def _load_json(body: bytes, content_type: str | None) -> Any:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        codec = normalise_charset(charset_from_content_type(content_type)) or "utf-8"
        text = body.decode(codec, errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise ParseError("malformed JSON: nested too deeply to be a feed") from exc


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _json_authors(item: dict[str, Any]) -> str | None:
    authors = item.get("authors")
    if not isinstance(authors, list):
        authors = [item.get("author")]
    names = [
        a.get("name") for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)
    ]
    return html_to_text(", ".join(names), one_line=True) or None


def _entry_from_json(
    item: dict[str, Any], base: str, feed_lang: str | None, now: datetime
) -> Entry:
    raw_id = item.get("id")
    guid = (
        collapse_whitespace(str(raw_id))
        if isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
        else ""
    )
    title = html_to_text(_clip(_string(item.get("title"))), one_line=True)
    summary = html_to_text(_clip(_string(item.get("summary"))))
    bodies = [html_to_text(_clip(_string(item.get(k)))) for k in ("content_html", "content_text")]
    published = _iso_date(_string(item.get("date_published")), now)
    updated = _iso_date(_string(item.get("date_modified")), now)
    declared = normalise_lang(_string(item.get("language"))) or feed_lang
    return Entry(
        guid=guid or None,
        link=_safe_link(_string(item.get("url")) or _string(item.get("external_url")), base),
        title=title,
        summary=summary,
        content=max(bodies, key=len),
        author=_json_authors(item),
        published=published or updated,
        updated=updated,
        lang=_entry_lang(declared, f"{title}\n{(summary or bodies[0])[:600]}"),
    )


# --- shared helpers -----------------------------------------------------------------------------


def _entry_lang(declared: str | None, sample: str) -> str | None:
    return reconcile_lang(declared, detect_language(sample), sample)


def _safe_link(link: str | None, base: str) -> str | None:
    """Absolute http(s) URL or None: relative links resolve against the feed URL, and javascript:,
    data: or mailto: links never reach the fetcher or a digest."""
    if not link or not isinstance(link, str):
        return None
    link = re.sub(r"[\x00-\x1f\x7f]", "", link).strip()  # NUL breaks PostgreSQL text columns
    try:
        absolute = urljoin(base, link) if base else link
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return absolute


def _finish(
    *,
    title: str,
    site_url: str | None,
    lang: str | None,
    fmt: str,
    entries: list[Entry],
    notes: list[str],
) -> ParsedFeed:
    """Drop empty entries, free shared guids, and fill in the feed's language."""
    kept = [e for e in entries if _has_content(e)]
    if len(kept) < len(entries):
        notes.append(f"{_count(len(entries) - len(kept), 'empty entry', 'empty entries')} skipped")
    _free_shared_guids(kept, notes)
    if lang is None:
        lang = detect_language(" ".join([title, *(e.title for e in kept[:20])]))
        for entry in kept:
            entry.lang = entry.lang or lang
    return ParsedFeed(
        title=title,
        site_url=site_url,
        lang=lang,
        format=fmt,
        entries=kept,
        warning="; ".join(notes) or None,
    )


def _has_content(entry: Entry) -> bool:
    return bool(entry.guid or entry.link or entry.title or entry.summary or entry.content)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular.replace('entry', 'entries')}"


def _free_shared_guids(entries: list[Entry], notes: list[str]) -> None:
    """A guid that several different items carry (some CMSs put the feed URL in every <guid>)
    identifies nothing, so those items lose it and are told apart by link. An item the feed simply
    lists twice keeps its guid; the pipeline counts one key once."""
    variants: dict[str, set[tuple[str | None, str]]] = defaultdict(set)
    for entry in entries:
        if entry.guid:
            variants[entry.guid].add((entry.link, entry.title))
    shared = {guid for guid, seen in variants.items() if len(seen) > 1}
    if not shared:
        return
    affected = [e for e in entries if e.guid in shared]
    for entry in affected:
        entry.guid = None
    example = sorted(shared)[0][:80]
    notes.append(f"{len(affected)} entries share an id (e.g. {example!r}); told apart by link")


# --- dates --------------------------------------------------------------------------------------

_SLASH_DATE = re.compile(
    r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)
# Month and weekday names feeds write in their own language (Portuguese, Italian, Spanish, French,
# German), mapped to English so feedparser's RFC 822 parser reads them.
_MONTHS = {
    "jan": "Jan", "janv": "Jan", "gen": "Jan", "ene": "Jan",
    "fev": "Feb", "févr": "Feb", "fevr": "Feb", "feb": "Feb",
    "mar": "Mar", "mars": "Mar", "mär": "Mar", "mrz": "Mar",
    "abr": "Apr", "avr": "Apr", "apr": "Apr",
    "mai": "May", "mag": "May", "may": "May",
    "jun": "Jun", "juin": "Jun", "giu": "Jun",
    "jul": "Jul", "juil": "Jul", "lug": "Jul",
    "ago": "Aug", "août": "Aug", "aout": "Aug", "aug": "Aug",
    "set": "Sep", "sept": "Sep", "sep": "Sep",
    "out": "Oct", "ott": "Oct", "okt": "Oct", "oct": "Oct",
    "nov": "Nov",
    "dez": "Dec", "dic": "Dec", "déc": "Dec", "dec": "Dec",
}  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+\.?")


def _feed_date(raw: Any, key: str, now: datetime) -> datetime | None:
    text = raw.get(key)
    slash = _SLASH_DATE.match(text) if isinstance(text, str) else None
    if slash:  # "2020/1/10 14:33:00": feedparser reads it as 2020-11-01
        year, month, day, hour, minute, second = (int(g or 0) for g in slash.groups())
        return _clamp(_make_date(year, month, day, hour, minute, second), now)
    parsed = raw.get(f"{key}_parsed")
    if parsed is None and isinstance(text, str):
        parsed = _parse_date(_translate_date(text))
    return _clamp(_make_date(*parsed[:6]), now) if parsed else None


def _parse_date(text: str) -> Any:
    """feedparser's date reader (any of the formats it knows), imported where parsing runs."""
    from feedparser.datetimes import _parse_date as read

    return read(text)


def _translate_date(text: str) -> str:
    """ "Seg, 24 Set 2018 19:42:40 -0300" → "24 Sep 2018 19:42:40 -0300" (weekday dropped)."""
    text = re.sub(r"^\s*[^\W\d_]+\.?,\s*", "", text)
    return _WORD.sub(lambda m: _MONTHS.get(m.group(0).rstrip(".").lower(), m.group(0)), text)


def _iso_date(text: str | None, now: datetime) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        parsed = _parse_date(text)
        return _clamp(_make_date(*parsed[:6]), now) if parsed else None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return _clamp(value, now)


def _make_date(*parts: int) -> datetime | None:
    try:
        year, month, day, hour, minute, second = parts
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _clamp(value: datetime | None, now: datetime) -> datetime | None:
    """A date more than a day ahead is a publisher's clock or time-zone error; pinning the entry to
    the top of every list until then would be worse than calling it 'now'."""
    if value is not None and value > now + FUTURE_TOLERANCE:
        return now
    return value
