"""Feed bodies for the hostile server: one good feed and every kind of broken or malicious one.

Pure functions of a base URL (and a marker file for the external-entity cases), so the same bytes
can be served, fuzzed or parsed directly.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

GOOD_ITEMS = 4
MANY_ENTRIES = 50_000
HUGE_ITEM_BYTES = 10 * 1024 * 1024
BOMB_GIB = 4  # inflated size of the gzip bomb


def rss(title: str, items: str, *, encoding: str | None = "utf-8", head: str = "") -> str:
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else '<?xml version="1.0"?>'
    return (
        f'{decl}\n{head}<rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://hostile.example/</link><description>hostile</description>\n"
        f"{items}</channel></rss>\n"
    )


def item(
    title: str,
    *,
    link: str | None = None,
    guid: str | None = None,
    date: datetime | None = None,
    description: str = "",
    raw_title: bool = False,
) -> str:
    parts = [f"<title>{title if raw_title else escape(title)}</title>"]
    if link is not None:
        parts.append(f"<link>{escape(link)}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{escape(guid)}</guid>')
    if date is not None:
        parts.append(f"<pubDate>{format_datetime(date)}</pubDate>")
    if description:
        parts.append(f"<description>{description}</description>")
    return "<item>" + "".join(parts) + "</item>\n"


def good(base: str, serial: int = 0) -> bytes:
    """A well-behaved feed whose every item mentions GSOMIA (the rule the tests use)."""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    items = "".join(
        item(
            f"Good outlet report {serial}-{n}: GSOMIA talks continue",
            link=f"{base}/articles/good-{serial}-{n}.html",
            guid=f"good-{serial}-{n}",
            date=start - timedelta(hours=n),
            description=escape(f"Seoul and Tokyo keep the GSOMIA pact, report {serial}-{n}."),
        )
        for n in range(GOOD_ITEMS)
    )
    return rss("Good Outlet", items).encode()


def good_page(slug: str) -> bytes:
    body = (
        f"<p>Report {slug}: officials in Seoul and Tokyo said the GSOMIA intelligence-sharing "
        "pact stays in force. Analysts expect further talks next month on missile warning data "
        "and on the logistics agreement that both governments have discussed since spring.</p>"
    ) * 3
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{slug}</title>'
        f"</head><body><article><h1>GSOMIA report {slug}</h1>{body}</article></body></html>"
    ).encode()


# -- malformed and mis-encoded ------------------------------------------------------------------


def malformed() -> bytes:
    """Raw ampersands and an unclosed tag: not XML, but entries are recoverable."""
    items = (
        "<item><title>Tom & Jerry GSOMIA story</title><link>http://hostile.example/a?x=1&y=2</link>"
        "<guid>m-1</guid><description><b>bold never closed</description></item>\n"
        "<item><title>Second malformed GSOMIA item</title><guid>m-2</guid></item>\n"
    )
    return rss("Malformed", items).encode()


def truncated() -> bytes:
    """Cut off in the middle of the first item: nothing usable."""
    return b'<?xml version="1.0"?><rss version="2.0"><channel><title>Cut</title><item><ti'


RUSSIAN = "Южная Корея и Япония продлили соглашение GSOMIA"
KOREAN = "한일 군사정보보호협정 지소미아 연장 합의"
JAPANESE = "日韓秘密軍事情報保護協定の延長で合意"


def mis_encoded(text: str, codec: str, declared: str | None) -> bytes:
    items = item(text, guid=f"{codec}-1", description=escape(text + " / " + text))
    return rss(escape(text[:12]), items, encoding=declared).encode(codec)


# -- entities -----------------------------------------------------------------------------------


def entity_bomb() -> bytes:
    """Billion laughs: ten levels of ten references, 10^9 "lol"s if expanded."""
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">' for n in range(1, 10)
    ]
    head = "<!DOCTYPE rss [\n" + "\n".join(levels) + "\n]>\n"
    items = item("Bomb &lol9; GSOMIA", guid="bomb-1", raw_title=True, description="&lol9;")
    return rss("Bomb &lol9;", items, head=head).encode()


def quadratic_blowup() -> bytes:
    """One 20 KB entity referenced 20,000 times: 400 MB if expanded (no nesting to detect)."""
    head = f'<!DOCTYPE rss [<!ENTITY big "{"A" * 20_000}">]>\n'
    items = item("Blowup GSOMIA", guid="blow-1", description="&big;" * 20_000)
    return rss("Blowup", items, head=head).encode()


def external_entity(marker_file: str, network_url: str) -> bytes:
    """XXE: entities naming a local file and a URL on our own server (which counts the hits)."""
    head = (
        "<!DOCTYPE rss [\n"
        f'<!ENTITY local SYSTEM "file://{marker_file}">\n'
        f'<!ENTITY remote SYSTEM "{network_url}">\n'
        f'<!ENTITY % param SYSTEM "file://{marker_file}">\n'
        "]>\n"
    )
    items = item(
        "Leak &local; &remote; GSOMIA",
        guid="xxe-1",
        raw_title=True,
        description="file: &local; url: &remote;",
    )
    return rss("XXE &local;", items, head=head).encode()


def xxe_page_feed(base: str) -> bytes:
    """A feed whose article page (not the feed) carries the external entity."""
    items = item(
        "Article page with an external entity, GSOMIA",
        link=f"{base}/articles/xxe-page.html",
        guid="xxe-page-1",
        description="GSOMIA teaser text from the feed",
    )
    return rss("XXE page", items).encode()


def xxe_page(marker_file: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE html [<!ENTITY local SYSTEM "file://{marker_file}">]>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><title>&local;</title></head>'
        "<body><article><h1>GSOMIA &local;</h1>"
        + "<p>Text of the article about GSOMIA and &local; in many words. </p>" * 10
        + "</article></body></html>"
    ).encode()


# -- sizes ----------------------------------------------------------------------------------------


def huge_item() -> bytes:
    """One item whose description is 10 MB of text (no link: nothing to fetch)."""
    words = "GSOMIA word salad from a broken CMS. "
    body = words * (HUGE_ITEM_BYTES // len(words) + 1)
    items = item("Huge item GSOMIA", guid="huge-1", description=f"<![CDATA[<p>{body}</p>]]>")
    return rss("Huge", items).encode()


def many_entries() -> bytes:
    """50,000 entries (a feed that lists its whole archive); no links, so nothing to fetch."""
    items = "".join(
        f"<item><guid>n{n}</guid><title>Archive entry {n}</title></item>\n"
        for n in range(MANY_ENTRIES)
    )
    return rss("Archive", items).encode()


class GzipBomb:
    """A gzip stream of BOMB_GIB GiB of zeros, about 1 KB per MiB, produced piece by piece.

    After a full flush, deflating another MiB of zeros gives the same bytes every time, so the
    stream is one head, a repeated middle and a 10-byte trailer (whose CRC is only computed if a
    client ever reads that far).
    """

    MIB = 1 << 20

    def __init__(self) -> None:
        zeros = b"\0" * self.MIB
        deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self.head = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
        self.middle = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
        self.chunks = BOMB_GIB * 1024
        self.length = len(self.head) + len(self.middle) * (self.chunks - 1) + 10

    def pieces(self) -> Iterator[bytes]:
        yield self.head
        for _ in range(self.chunks - 1):
            yield self.middle
        crc = 0
        zeros = b"\0" * self.MIB
        for _ in range(self.chunks):
            crc = zlib.crc32(zeros, crc)
        size = (self.chunks * self.MIB) & 0xFFFFFFFF
        yield b"\x03\x00" + crc.to_bytes(4, "little") + size.to_bytes(4, "little")


# -- content that is valid but hostile ------------------------------------------------------------


def no_ids() -> bytes:
    """Entries with neither link, guid nor date: known by their text alone."""
    items = "".join(
        item(f"Anonymous GSOMIA note {n}", description=escape(f"Unattributed GSOMIA text {n}."))
        for n in range(3)
    )
    return rss("No ids", items).encode()


def future_dates(base: str) -> bytes:
    items = "".join(
        item(
            f"From the future {n}: GSOMIA",
            guid=f"future-{n}",
            date=datetime(2099, 1, 1, tzinfo=UTC) + timedelta(days=n),
            description="GSOMIA in 2099",
        )
        for n in range(2)
    )
    return rss("Future", items).encode()


def duplicate_guids(base: str) -> bytes:
    """Three different stories sharing one guid (a CMS that puts the feed URL in every <guid>)."""
    items = "".join(
        item(
            f"Shared-guid story {n} on GSOMIA",
            link=f"{base}/articles/dup-{n}.html",
            guid="https://hostile.example/feed",
            description=f"Different story number {n} about GSOMIA.",
        )
        for n in range(3)
    )
    return rss("Dup guids", items).encode()


def javascript_links() -> bytes:
    items = (
        item("Script link GSOMIA one", link="javascript:alert('link1')", guid="js-1")
        + item("Script link GSOMIA two", link="  JaVaScRiPt:alert('link2')", guid="js-2")
        + item("Data link GSOMIA", link="data:text/html,<script>alert(3)</script>", guid="js-3")
        + item("Vbscript link GSOMIA", link="vbscript:msgbox(4)", guid="js-4")
    )
    return rss("JS links", items).encode()


INJECTION_MARK = "INJECTED"


def injection() -> bytes:
    """Script and HTML injection in titles, summaries, authors and the feed title."""
    payloads = [
        ("<script>alert('INJECTED-1')</script>GSOMIA title one", "<p>plain</p>"),
        ("<img src=x onerror=\"alert('INJECTED-2')\">GSOMIA title two", "x"),
        (
            "GSOMIA title three",
            '<a href="javascript:alert(\'INJECTED-3\')" onclick="alert(4)">GSOMIA link</a>'
            "<div onmouseover=\"alert('INJECTED-5')\">hover GSOMIA</div>",
        ),
        (
            "&lt;script&gt;alert('INJECTED-6')&lt;/script&gt;GSOMIA double-escaped",
            "&amp;lt;script&amp;gt;alert('INJECTED-7')&amp;lt;/script&amp;gt; GSOMIA twice",
        ),
        (
            "<svg onload=\"alert('INJECTED-8')\"/>GSOMIA svg",
            "<iframe src=\"javascript:alert('INJECTED-9')\"></iframe><style>*{x:1}</style>GSOMIA",
        ),
        (
            "\"><script>alert('INJECTED-10')</script> GSOMIA attribute break",
            "<a href=\"  java\tscript:alert('INJECTED-11')\">tabbed GSOMIA</a>",
        ),
    ]
    items = "".join(
        f"<item><title><![CDATA[{title}]]></title><guid>inj-{n}</guid>"
        f'<link>http://hostile.example/inj/{n}?q="&gt;&lt;script&gt;alert(1)&lt;/script&gt;</link>'
        f"<author>x@example.com (&lt;b onmouseover=alert(12)&gt;Evil&lt;/b&gt;)</author>"
        f"<description><![CDATA[{summary}]]></description></item>\n"
        for n, (title, summary) in enumerate(payloads)
    )
    return rss("<![CDATA[<script>alert('INJECTED-feed')</script>Injection Daily]]>", items).encode()


def html_page() -> bytes:
    return (
        b"<!doctype html><html><head><title>Hostile Home</title>"
        b'<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
        b"</head><body><h1>Welcome</h1></body></html>"
    )


def huge_doctype() -> bytes:
    """A 100 KB entity declaration before the root element."""
    head = f'<!DOCTYPE rss [<!ENTITY pad "{"B" * 100_000}">]>\n'
    return rss("Pad", item("Padded GSOMIA", guid="pad-1"), head=head).encode()


def nul_json() -> bytes:
    """JSON Feed strings may carry NUL and other control characters (PostgreSQL refuses NUL)."""
    return (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "Nul\\u0000 feed",'
        b' "items": [{"id": "nul\\u0000id", "url": "http://hostile.example/nul\\u0000x",'
        b' "title": "GSOMIA \\u0000 with NUL\\u0007", "content_text": "GSOMIA body\\u0000 text",'
        b' "authors": [{"name": "A\\u0000B"}], "tags": ["\\u0000"]}]}'
    )


def deep_json() -> bytes:
    return b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 100_000 + b"]"


def nul_page_feed(base: str) -> bytes:
    items = item(
        "Article page full of NUL bytes, GSOMIA",
        link=f"{base}/articles/nul-page.html",
        guid="nul-page-1",
        description="GSOMIA teaser",
    )
    return rss("NUL page", items).encode()


def nul_page() -> bytes:
    paragraph = "<p>GSOMIA\x00 text with NUL\x00 bytes and \x07 bells in the middle of words.</p>"
    return (
        '<html lang="en"><head><meta charset="utf-8"><title>NUL\x00 page</title>'
        '<meta name="author" content="Nul\x00 Author"></head><body><article>'
        f"<h1>GSOMIA\x00 headline</h1>{paragraph * 8}</article></body></html>"
    ).encode()
