"""Finding a site's feed from its address, so an analyst can paste what is in the browser's bar.

Tried in order, stopping at the first that yields something:
1. the address itself (it may already be a feed);
2. the page's `<link rel="alternate" type="application/rss+xml|atom+xml|feed+json">` elements;
3. the paths feeds usually live at (/feed, /rss, /rss.xml, …), next to the page and at the root;
4. links in the page that look like feeds (news sites' "RSS" pages list dozens).

Several candidates are ranked: a comments feed never wins, "all"/main/top-level feeds beat section
feeds, RSS/Atom beat JSON. When the best is not clear (two sections, no main feed) nothing is
chosen and the caller lists the candidates — guessing wrong would watch the wrong source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import lxml.html
from lxml import etree

from watcher.errors import FetchError, ParseError, WatcherError
from watcher.extract import decode_page
from watcher.fetch import Fetcher, FetchResult
from watcher.parse import ParsedFeed, parse_feed

COMMON_PATHS = (
    "feed",
    "rss",
    "rss.xml",
    "atom.xml",
    "feed.xml",
    "index.xml",
    "feeds/posts/default",
)
LINK_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/rdf+xml": "rdf",
    "application/feed+json": "json",
    "application/json": "json",
}
MAX_ANCHORS = 60
_COMMENTS = re.compile(r"comment|コメント|댓글|评论|評論", re.IGNORECASE)
_MAIN_WORDS = re.compile(
    r"\b(all|main|latest|everything|headlines?|top\s*stories|home)\b"
    r"|전체|최신|주요|総合|すべて|全て|新着|主要|トップ|全部",
    re.IGNORECASE,
)
_MAIN_STEMS = {"all", "index", "main", "total", "latest", "allnews", "all-news", "news-all"}
_FORMAT_WORDS = re.compile(r"\b(rss|atom|json|feeds?|xml|rdf|\d\.\d+)\b", re.IGNORECASE)
_FEEDISH_PATH = re.compile(r"(\.(rss|rdf|atom|xml)$|(^|/)(rss|feeds?|atom)(/|$|\.))", re.I)


class NoFeedFoundError(WatcherError):
    """The address is neither a feed nor a page that leads to one."""


@dataclass(frozen=True, slots=True)
class FeedCandidate:
    url: str
    title: str = ""
    kind: str = ""  # rss | atom | rdf | json ("" when only a link's look suggests a feed)
    found_by: str = "link"  # address | link | path | anchor


@dataclass(slots=True)
class Discovery:
    """What an address led to; `chosen` is None when nothing was found or the choice is unclear."""

    url: str
    page_title: str | None = None
    candidates: list[FeedCandidate] = field(default_factory=list)
    chosen: FeedCandidate | None = None
    parsed: ParsedFeed | None = None  # the chosen feed, when discovery already fetched it

    @property
    def ambiguous(self) -> bool:
        return self.chosen is None and len(self.candidates) > 1


async def discover(fetcher: Fetcher, url: str) -> Discovery:
    """The feed(s) behind `url`; raises FetchError when the address itself cannot be fetched."""
    result = await fetcher.fetch_feed(url)
    parsed = _try_parse(result)
    if parsed is not None:
        address = result.permanent_redirect or url
        chosen = FeedCandidate(address, parsed.title, feed_kind(parsed.format), "address")
        return Discovery(url, None, [chosen], chosen, parsed)
    page = _html(result)
    base = _base_url(page, result.final_url) if page is not None else result.final_url
    title = _page_title(page)
    links = alternate_links(page, base) if page is not None else []
    if links:
        return Discovery(url, title, links, pick(links))
    found = await _probe(fetcher, base)
    if found is not None:
        candidate, feed = found
        return Discovery(url, title, [candidate], candidate, feed)
    anchors = feed_anchors(page, base, exclude=result.final_url) if page is not None else []
    if not anchors:
        raise NoFeedFoundError(
            f'{url}: no feed found — the page names none (<link rel="alternate">), none of '
            f"{', '.join('/' + p for p in COMMON_PATHS)} answered with a feed, and no link on the "
            "page looks like one",
            hint="find the site's RSS page and pass the feed's own URL",
        )
    return Discovery(url, title, anchors, pick(anchors))


async def fetch_and_parse(fetcher: Fetcher, url: str) -> tuple[FetchResult, ParsedFeed]:
    """Fetch and parse one feed, as the pipeline would; errors name the URL."""
    result = await fetcher.fetch_feed(url)
    try:
        return result, parse_feed(
            result.body, url=result.final_url, content_type=result.headers.get("content-type")
        )
    except ParseError as exc:
        raise ParseError(f"{url}: {exc.message}", hint=exc.hint) from None


def feed_kind(fmt: str) -> str:
    """parse_feed's format ("rss20", "atom10", "rss10", "json11") → rss | atom | rdf | json."""
    lowered = fmt.lower()
    if "atom" in lowered or "json" in lowered:
        return "atom" if "atom" in lowered else "json"
    return "rdf" if lowered in ("rss10", "rss090", "rdf") else "rss"


# -- the page -----------------------------------------------------------------------------------


def _try_parse(result: FetchResult) -> ParsedFeed | None:
    try:
        return parse_feed(
            result.body, url=result.final_url, content_type=result.headers.get("content-type")
        )
    except ParseError:
        return None


def _html(result: FetchResult) -> lxml.html.HtmlElement | None:
    text = decode_page(result.body, result.headers.get("content-type"))
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def _base_url(page: lxml.html.HtmlElement, url: str) -> str:
    base = page.find(".//base[@href]")
    return urljoin(url, base.get("href").strip()) if base is not None else url


def _page_title(page: lxml.html.HtmlElement | None) -> str | None:
    node = page.find(".//title") if page is not None else None
    if node is None:
        return None
    return " ".join(node.text_content().split()) or None


def _absolute(base: str, href: str | None) -> str | None:
    if not href:
        return None
    try:
        url = urljoin(base, re.sub(r"\s", "", href))
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit(parts._replace(fragment=""))


def alternate_links(page: lxml.html.HtmlElement, base: str) -> list[FeedCandidate]:
    """`<link rel="alternate">` feeds in document order, each URL once."""
    found: dict[str, FeedCandidate] = {}
    for link in page.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = LINK_TYPES.get((link.get("type") or "").split(";")[0].strip().lower())
        url = _absolute(base, link.get("href"))
        if "alternate" not in rel or kind is None or url is None or url in found:
            continue
        if kind == "json" and "feed" not in url.lower() and "feed" not in (link.get("title") or ""):
            continue  # oEmbed and API documents are application/json too
        found[url] = FeedCandidate(url, " ".join((link.get("title") or "").split()), kind, "link")
    return list(found.values())


def feed_anchors(page: lxml.html.HtmlElement, base: str, *, exclude: str) -> list[FeedCandidate]:
    """`<a href>` links whose path looks like a feed (…/rss, …/feed, *.xml), each URL once."""
    found: dict[str, FeedCandidate] = {}
    for anchor in page.iter("a"):
        url = _absolute(base, anchor.get("href"))
        if url is None or url == exclude or url in found:
            continue
        if _FEEDISH_PATH.search(urlsplit(url).path):
            title = " ".join(anchor.text_content().split()) or anchor.get("title") or ""
            found[url] = FeedCandidate(url, title, "", "anchor")
            if len(found) >= MAX_ANCHORS:
                break
    return list(found.values())


async def _probe(fetcher: Fetcher, base: str) -> tuple[FeedCandidate, ParsedFeed] | None:
    """The first common feed path that answers with a feed: next to the page, then at the root."""
    for url in probe_urls(base):
        try:
            result = await fetcher.fetch_feed(url)
        except FetchError:
            continue
        parsed = _try_parse(result)
        if parsed is not None and not _COMMENTS.search(parsed.title):  # WordPress post comments
            address = result.permanent_redirect or url
            return FeedCandidate(address, parsed.title, feed_kind(parsed.format), "path"), parsed
    return None


def probe_urls(base: str) -> list[str]:
    """Common paths under the page's own path ("/blog" → /blog/feed …), then under the root."""
    parts = urlsplit(base)
    root = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    path = parts.path or "/"
    if not path.endswith("/"):
        last = path.rsplit("/", 1)[-1]
        path = path[: -len(last)] if "." in last else path + "/"
    folder = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    bases = [folder, root] if folder != root else [root]
    return [urljoin(b, common) for b in bases for common in COMMON_PATHS]


# -- choosing -----------------------------------------------------------------------------------


def score(candidate: FeedCandidate) -> int:
    """Higher is more likely the feed of the whole site."""
    path = urlsplit(candidate.url).path
    text = f"{candidate.title} {path}"
    if _COMMENTS.search(text):
        return -10
    points = 0
    stem = path.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    if _MAIN_WORDS.search(candidate.title) or stem in _MAIN_STEMS:
        points += 3
    if len([p for p in path.split("/") if p]) <= 1:
        points += 2  # /feed, /rss.xml: the site's own feed, not a section's
    if candidate.kind in ("rss", "atom", "rdf"):
        points += 1
    return points


def _topic(candidate: FeedCandidate) -> str:
    """The title without format words: "Blog - Atom" and "Blog - RSS" are one feed twice."""
    words = _FORMAT_WORDS.sub(" ", candidate.title.casefold())
    return " ".join(re.sub(r"[^\w]+", " ", words).split())


def pick(candidates: list[FeedCandidate]) -> FeedCandidate | None:
    """The clear best candidate, or None when there is none or several could be meant."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    best = max(score(c) for c in candidates)
    top = [c for c in candidates if score(c) == best]
    if len(top) == 1 or (top[0].title and len({_topic(c) for c in top}) == 1):
        return top[0]
    return None
