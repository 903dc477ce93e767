"""The catalogue of hostile feeds: what each serves, and what the user must be told about it.

`expect` are words that must all appear in the feed's `last_error` (kind "error") or
`parse_warning` (kind "warning"); kind "ok" means the feed is used as it is and the test checks
what was stored instead. The README table "What news-watcher survives" lists the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Case:
    path: str
    kind: Literal["error", "warning", "ok"]
    expect: tuple[str, ...] = ()
    disables: bool = False  # the feed is disabled (permanent failure)

    @property
    def name(self) -> str:
        return self.path.strip("/").removesuffix(".xml")


CASES = (
    Case("/malformed.xml", "warning", ("malformed XML at line 3", "recovered 2 entries")),
    Case("/truncated.xml", "warning", ("malformed XML at line 1", "unclosed token")),
    Case("/cp1251-declared-utf8.xml", "warning", ("declares utf-8", "read as cp1251")),
    Case("/euckr-declared-latin1.xml", "warning", ("declares ISO-8859-1", "read as cp949")),
    Case("/sjis-undeclared.xml", "warning", ("declares no encoding", "read as cp932")),
    Case("/sjis-declared-eucjp.xml", "warning", ("declares EUC-JP", "read as cp932")),
    Case("/entity-bomb.xml", "warning", ("declares its own XML entities", "neither loaded")),
    Case("/quadratic-blowup.xml", "warning", ("declares its own XML entities",)),
    Case("/xxe.xml", "warning", ("declares its own XML entities", "neither loaded")),
    Case("/xxe-page-feed.xml", "ok"),
    Case("/gzip-bomb.xml", "error", ("response larger than", "after decompression")),
    Case("/endless.xml", "error", ("response larger than", "on the wire")),
    Case("/slow.xml", "error", ("timed out after 3 s", "fetch.total_timeout")),
    Case("/short-body.xml", "error", ("broke the HTTP protocol", "received 50 bytes")),
    Case("/endless-headers.xml", "error", ("broke the HTTP protocol",)),
    Case("/not-http.xml", "error", ("broke the HTTP protocol", "illegal status line")),
    Case("/loop-a.xml", "error", ("redirect loop",), disables=True),
    Case("/to-file.xml", "error", ("redirect to a non-HTTP URL (file:///etc/passwd) refused",)),
    Case("/to-ftp.xml", "error", ("redirect to a non-HTTP URL (ftp://",)),
    Case("/status-404.xml", "error", ("HTTP 404 Not Found", "check the URL")),
    Case("/status-410.xml", "error", ("HTTP 410 Gone", "disabled", "feeds enable"), disables=True),
    Case("/status-429.xml", "error", ("HTTP 429 Too Many Requests", "retry after 7200 s")),
    Case("/status-500.xml", "error", ("HTTP 500 Internal Server Error",)),
    Case("/status-429-odd-retry.xml", "error", ("HTTP 429 Too Many Requests",)),
    Case("/status-503.xml", "error", ("HTTP 503 Service Unavailable", "retry after")),
    Case("/html.xml", "error", ("not a feed: the server sent an HTML page", "Hostile Home")),
    Case("/empty.xml", "error", ("empty response body",)),
    Case("/huge-item.xml", "warning", ("more than 1,000,000 characters", "cut to that length")),
    Case("/many.xml", "warning", ("lists 50000 entries", "only the first 1000 are read")),
    Case("/no-ids.xml", "ok"),
    Case("/future.xml", "ok"),
    Case("/dup-guids.xml", "warning", ("3 entries share an id", "told apart by link")),
    Case("/javascript-links.xml", "ok"),
    Case("/injection.xml", "ok"),
)

GOOD = "/good.xml"
BY_PATH = {case.path: case for case in CASES}
