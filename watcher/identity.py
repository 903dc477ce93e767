"""How an entry is recognised on the next poll: guid, else canonical URL, else a content hash.

Canonical URLs exist to tell "the same article" apart from "a different article", never to fetch:
the fetcher keeps using the link as published. The rules, and why:
- scheme and host are lower-cased (IDN hosts in punycode), a default port (:80 for http, :443
  for https) is dropped, an empty path becomes "/"; the path keeps its case and its trailing
  slash (servers treat /a and /a/ as different resources often enough that merging them would
  join unrelated pages);
- the fragment goes (it never reaches the server), except a "#!" route, which names content;
- tracking parameters go (TRACKING_PARAMS and any name starting with TRACKING_PREFIXES); generic
  names that sites also use for content ("ref", "source", "src", "id", "page") stay, because
  removing them could merge two different articles, while keeping them at worst keeps one
  duplicate;
- the remaining query parameters are sorted by name (the order of repeated names is kept), raw
  non-ASCII is percent-encoded and escapes upper-cased, so "?b=2&a=1" and "?a=1&b=2" are one
  article.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from watcher.parse import Entry, ParsedFeed, parse_feed

TRACKING_PREFIXES = ("utm_", "at_", "ns_", "pk_", "mtm_", "hmb_", "oly_", "__hs")
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
        "ttclid", "li_fat_id", "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc",
        "_hsmi", "mkt_tok", "vero_id", "vero_conv", "ref_src", "ref_url", "cmpid", "cmp", "ocid",
        "smid", "smtyp", "sr_share", "wt_mc", "wt.mc_id", "xtor", "ito", "rss", "feedtype",
        "feedname", "partner", "emc", "wprss", "spm", "s_cid", "ncid", "sc_cid",
    }
)  # fmt: skip
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_KEY_LENGTH = 512
_URL_SAFE = "/%:@!$&'()*+,;=-._~?[]"
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def _is_tracking(raw_name: str) -> bool:
    name = unquote_plus(raw_name).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _upper_escapes(text: str) -> str:
    """Percent-encode raw non-ASCII and spaces, upper-case existing escapes: one spelling."""
    return _PERCENT_ESCAPE.sub(lambda m: m.group(0).upper(), quote(text, safe=_URL_SAFE))


def canonical_url(url: str) -> str:
    """One spelling per article URL (module docstring); non-http(s) input comes back stripped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.rstrip(".")
    if not host.isascii():
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{userinfo}@{host}"
    pairs = [p for p in parts.query.split("&") if p and not _is_tracking(p.split("=", 1)[0])]
    pairs.sort(key=lambda p: unquote_plus(p.split("=", 1)[0]))
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    path = _upper_escapes(parts.path) or "/"
    return urlunsplit((scheme, host, path, _upper_escapes("&".join(pairs)), fragment))


def _digest(*parts: str) -> str:
    """sha256 over whitespace- and Unicode-normalised text, so re-serialising a feed is no edit."""
    normal = "\x1f".join(collapse(p) for p in parts)
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def collapse(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text or "").split())


def _bounded(prefix: str, value: str) -> str:
    """Keys fit a database index: values too long are replaced by their sha256 ("url:sha256:…")."""
    key = f"{prefix}:{value}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{prefix}:sha256:{hashlib.sha256(value.encode('utf-8')).hexdigest()}"


def entry_key(entry: Entry) -> str:
    """ "guid:<guid>", else "url:<canonical link>", else "hash:<sha256 of title, summary, content>".

    The guid is used exactly as published (guids are opaque strings and publishers keep them stable
    when they rewrite links); parse_feed already dropped guids that several items share.
    """
    if entry.guid and entry.guid.strip():
        return _bounded("guid", entry.guid.strip())
    if entry.link:
        return _bounded("url", canonical_url(entry.link))
    return "hash:" + _digest(entry.title, entry.summary, entry.content)


def content_fingerprint(entry: Entry) -> str:
    """Changes when the entry's words change (an edited headline or body), not when markup does."""
    return _digest(entry.title, entry.content or entry.summary)


def text_fingerprint(title: str, text: str) -> str:
    """The same for an extracted article, to notice that a page was edited since it was stored."""
    return _digest(title, text)


@dataclass(frozen=True, slots=True)
class EntryIdentity:
    """What the daemon needs to know whether an entry is new or edited, computed with the parse."""

    key: str
    canonical: str | None
    fingerprint: str


def identify(entries: Sequence[Entry]) -> list[EntryIdentity]:
    return [
        EntryIdentity(
            entry_key(entry),
            canonical_url(entry.link) if entry.link else None,
            content_fingerprint(entry),
        )
        for entry in entries
    ]


def parse_and_identify(
    body: bytes, *, url: str, content_type: str | None = None
) -> tuple[ParsedFeed, list[EntryIdentity]]:
    """One trip to a CPU worker per feed: parse, then the entries' keys, canonical links and
    fingerprints (hashing and URL normalising were a tenth of the daemon's CPU in a cold pass)."""
    parsed = parse_feed(body, url=url, content_type=content_type)
    return parsed, identify(parsed.entries)
