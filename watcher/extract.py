"""Article page bytes → `Extracted` main text and metadata, with trafilatura.

Pure CPU and picklable, for the pipeline's process pool. trafilatura runs exactly once per page:
the only work added around it is decoding (which trafilatura would otherwise do itself, with a
slower and less careful guess) and a script count for the language.

Charset order: byte-order mark, the Content-Type header, <meta charset> / http-equiv, then a guess.
A declared single-byte charset loses to bytes that are valid UTF-8 with multi-byte sequences: pages
mislabelled "ISO-8859-1" are common, Latin-1 text that happens to be valid UTF-8 is not.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from watcher.parse import Entry
from watcher.text import (
    charset_from_content_type,
    decode_strict,
    detect_language,
    guess_encoding,
    is_utf8,
    normalise_charset,
    normalise_lang,
    reconcile_lang,
)

__all__ = ["Extracted", "detect_language", "extract_article", "from_feed"]

log = logging.getLogger(__name__)

MIN_TEXT_CHARS = 20  # below this the "article" is a cookie notice or an empty shell
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)
_HTML_LANG = re.compile(
    r"""<html\b[^>]*?\blang\s*=\s*["']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)""", re.I
)
_META_LANG = re.compile(
    r"""<meta[^>]+(?:http-equiv\s*=\s*["']?content-language|property\s*=\s*["']?og:locale)"""
    r"""[^>]*content\s*=\s*["']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)""",
    re.I,
)
_SINGLE_BYTE = frozenset({"cp1252", "iso8859-1", "iso8859-15", "latin-1", "cp1250", "iso8859-2"})
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


@dataclass(slots=True)
class Extracted:
    text: str
    title: str | None
    author: str | None
    published: datetime | None
    lang: str | None
    method: str  # "trafilatura", or "feed" when the feed's own text stands in for the page


def extract_article(html: bytes, *, url: str, content_type: str | None = None) -> Extracted | None:
    """Main text and metadata of an article page; None when nothing usable came out.

    Never raises: a page that breaks the extractor is the same to the pipeline as an empty page
    (it falls back to the feed's text), and one bad page must not kill a pool worker.
    """
    try:
        return _extract(html, url=url, content_type=content_type)
    except Exception as exc:
        log.debug("extraction failed for %s: %s: %s", url, type(exc).__name__, exc)
        return None


def _extract(html: bytes, *, url: str, content_type: str | None) -> Extracted | None:
    if not html or not html.strip():
        return None
    from trafilatura import bare_extraction  # here: the daemon's own process never extracts

    page = decode_page(html, content_type)
    doc = bare_extraction(
        page,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    raw = (getattr(doc, "text", None) or "") if doc is not None else ""
    text = "\n".join(line.strip() for line in raw.splitlines() if line.strip())
    if len("".join(text.split())) < MIN_TEXT_CHARS:
        return None
    declared = _declared_lang(page)
    return Extracted(
        text=text,
        title=_clean(doc.title),
        author=_clean(doc.author),
        published=_date(doc.date),
        lang=reconcile_lang(declared, detect_language(text), text[:4000]),
        method="trafilatura",
    )


def from_feed(entry: Entry) -> Extracted:
    """The fallback when the page cannot be fetched or extracted: the feed's richest text."""
    text = entry.content if len(entry.content) >= len(entry.summary) else entry.summary
    return Extracted(
        text=text,
        title=entry.title or None,
        author=entry.author,
        published=entry.published,
        lang=entry.lang,
        method="feed",
    )


def decode_page(html: bytes, content_type: str | None = None) -> str:
    """Bytes → text: BOM, Content-Type charset, <meta charset>, then a guess (module docstring)."""
    for bom, codec in _BOMS:
        if html.startswith(bom):
            return html[len(bom) :].decode(codec, errors="replace")
    meta = _META_CHARSET.search(html[:8192])
    labels = [charset_from_content_type(content_type), meta.group(1).decode() if meta else None]
    utf8 = is_utf8(html)
    for label in labels:
        codec = normalise_charset(label)
        if codec is None:
            continue
        if codec in _SINGLE_BYTE and utf8 and not html.isascii():
            return html.decode("utf-8")
        text = decode_strict(html, codec)
        if text is not None:
            return text
    if utf8:
        return html.decode("utf-8")
    declared = next(filter(None, map(normalise_charset, labels)), None)
    return html.decode(declared or guess_encoding(html) or "cp1252", errors="replace")


def _declared_lang(page: str) -> str | None:
    head = page[:16384]
    for pattern in (_HTML_LANG, _META_LANG):
        match = pattern.search(head)
        lang = normalise_lang(match.group(1)) if match else None
        if lang:
            return lang
    return None


def _clean(value: str | None) -> str | None:
    cleaned = " ".join((value or "").split())
    return cleaned or None


def _date(value: str | None) -> datetime | None:
    """trafilatura gives "YYYY-MM-DD": midnight UTC that day (the feed's date is usually better)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None
