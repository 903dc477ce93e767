"""Writing the feed list (`rules/feeds.opml`): add, remove, merge an import, export.

The analyst's file is a document, not a dump: its comments, folder order and indentation are theirs.
So edits are made on the lxml tree (comments kept), only the root element is serialised again, and
the prolog (XML declaration, leading comments) and whatever follows the root are copied byte for
byte; a new outline is indented like its siblings. Every edit is checked with the daemon's own
reader (`watcher.opml.parse_opml`) before the file is replaced atomically, so a command can never
leave a list the daemon would refuse.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lxml import etree

from watcher.errors import ConfigError, WatcherError
from watcher.identity import canonical_url
from watcher.opml import FEED_TYPES, parse_flag, parse_interval, parse_opml

FEED_LIST = "feeds.opml"
OPML_DOCS = "http://opml.org/spec2.opml"
NEW_FILE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- news-watcher feed list (OPML 2.0). Options per feed: interval="30m", extract="false",
     enabled="false"; see the README, "Managing feeds". -->
<opml version="2.0">
  <head>
    <title>news-watcher feeds</title>
  </head>
  <body>
  </body>
</opml>
"""
_PROLOG_ITEM = re.compile(rb"\s*(<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)", re.DOTALL)


class DuplicateFeedError(WatcherError):
    """The feed is already in the list (same URL, or the same URL spelled differently)."""


def feed_list_path(rules_dir: Path) -> Path:
    return rules_dir / FEED_LIST


def feed_key(url: str) -> str:
    """One spelling per feed: canonical URL without scheme, "www." or a trailing slash.

    http/https and www/no-www variants of a feed URL are the same feed in practice; listing both
    would fetch and match everything twice.
    """
    canon = canonical_url(url.strip())
    parts = urlsplit(canon)
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/") or "/"
    return urlunsplit(("", host, path, parts.query, "")).removeprefix("//")


@dataclass(frozen=True, slots=True)
class FeedOutline:
    """One feed as written in an OPML file; `folder` is the folder path, outermost first."""

    url: str
    title: str = ""
    site_url: str | None = None
    folder: tuple[str, ...] = ()
    interval: str | None = None  # as written: "1800", "30m"
    extract: bool = True
    enabled: bool = True
    language: str | None = None
    description: str | None = None

    def attributes(self) -> dict[str, str]:
        """OPML 2.0 attributes (`text` is required; `type="rss"` for every kind of feed)."""
        title = self.title or self.url
        attrs = {"type": "rss", "text": title, "title": title, "xmlUrl": self.url}
        optional = {
            "htmlUrl": self.site_url,
            "language": self.language,
            "description": self.description,
            "interval": self.interval,
            "extract": None if self.extract else "false",
            "enabled": None if self.enabled else "false",
        }
        attrs.update({k: v for k, v in optional.items() if v})
        return attrs


@dataclass(slots=True)
class Skipped:
    url: str
    title: str
    reason: str


@dataclass(slots=True)
class ImportedList:
    """An OPML export as read: its feeds, the outlines left out and why, and parser warnings."""

    outlines: list[FeedOutline] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MergeReport:
    added: list[FeedOutline] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- reading outlines ---------------------------------------------------------------------------


def _attr(node: etree._Element, name: str) -> str | None:
    """An attribute, whatever its case (exports write xmlUrl, xmlurl and XMLURL)."""
    value = node.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in node.attrib.items() if str(k).lower() == lowered), None)
    return value.strip() if value is not None else None


def _label(node: etree._Element) -> str:
    return _attr(node, "title") or _attr(node, "text") or ""


def _is_feed(node: etree._Element) -> bool:
    return bool(_attr(node, "xmlUrl"))


def _outline(node: etree._Element, folder: tuple[str, ...], where: str) -> FeedOutline:
    """The outline's feed; raises ConfigError for an option the daemon would refuse."""
    url = _attr(node, "xmlUrl") or ""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: xmlUrl must be an http(s) URL, got {url!r}")
    interval = _attr(node, "interval") or None
    parse_interval(interval, where=where)
    return FeedOutline(
        url=url,
        title=_label(node),
        site_url=_attr(node, "htmlUrl") or None,
        folder=folder,
        interval=interval,
        extract=parse_flag(_attr(node, "extract"), default=True, where=where),
        enabled=parse_flag(_attr(node, "enabled"), default=True, where=where),
        language=_attr(node, "language") or None,
        description=_attr(node, "description") or None,
    )


def _walk(
    parent: etree._Element, folder: tuple[str, ...], *, lenient: bool = False
) -> Iterator[tuple[etree._Element, tuple[str, ...]]]:
    """Feed outlines in document order with their folder path.

    A feed outline is not a folder: the daemon's reader ignores outlines inside one. `lenient`
    (imports) still collects them, as XML recovery nests the outlines after a broken one in it.
    """
    for node in parent.iterfind("outline"):
        if _is_feed(node):
            yield node, folder
            if lenient:
                yield from _walk(node, folder, lenient=True)
        else:
            name = _label(node)
            yield from _walk(node, (*folder, name) if name else folder, lenient=lenient)


def _parse(data: bytes, source: str, warnings: list[str] | None = None) -> etree._Element:
    """The <opml> root; with `warnings`, malformed XML is recovered and its errors listed there."""
    parser = etree.XMLParser(
        remove_comments=False,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        recover=warnings is not None,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{source}: not valid OPML: {exc}") from None
    if root is None or root.tag != "opml" or root.find("body") is None:
        raise ConfigError(f"{source}: not an OPML document (expected <opml><body>…)")
    errors = [e for e in parser.error_log if e.level >= etree.ErrorLevels.ERROR]
    if warnings is not None and errors:  # the first error; the rest usually follow from it
        first = errors[0]
        more = f" and {len(errors) - 1} errors after it" if len(errors) > 1 else ""
        warnings.append(
            f"{source}:{first.line}:{first.column}: not well-formed XML ({first.message}{more}); "
            f"read what could be recovered — an outline from line {first.line} on may be missing"
        )
    return root


def _feed_type_problem(node: etree._Element) -> str | None:
    kind = (_attr(node, "type") or "").lower()
    if kind in FEED_TYPES:
        return None
    return f"type {_attr(node, 'type')!r} is not a feed (a reader-specific page scraper?)"


def read_outlines(data: bytes, *, source: str) -> ImportedList:
    """Every feed of an OPML export from any reader, leniently: problems skip one feed, not all.

    Tolerates what real exports contain: OPML 1.0/1.1/2.0 or a broken `version`, whitespace
    before the XML declaration, `text` without `title`, attribute names in any case, nested
    folders, the same feed in several folders (kept once, in its first folder), and XML that is
    not well-formed (recovered as far as the parser can; each error becomes a warning).
    """
    result = ImportedList()
    root = _parse(data.lstrip(), source, result.warnings)
    seen: set[str] = set()
    # XML recovery may close <body> early and leave the outlines after the damage under <opml>.
    stray = _walk(root, (), lenient=True) if result.warnings else iter(())
    for node, folder in itertools.chain(_walk(root.find("body"), (), lenient=True), stray):
        where = f"{source}:{node.sourceline}"
        try:
            outline = _outline(node, folder, where)
        except ConfigError as exc:
            result.skipped.append(Skipped(_attr(node, "xmlUrl") or "", _label(node), exc.message))
            continue
        problem = _feed_type_problem(node)
        key = feed_key(outline.url)
        if problem is None and key in seen:
            problem = f"listed twice in {source}"
        if problem is not None:
            result.skipped.append(Skipped(outline.url, outline.title, problem))
            continue
        seen.add(key)
        result.outlines.append(outline)
    return result


# -- the editable document ----------------------------------------------------------------------


class OpmlDocument:
    """An OPML file as an lxml root between its original prolog and epilogue bytes."""

    def __init__(self, data: bytes, *, source: str) -> None:
        self.source = source
        self.original = data
        self.root = _parse(data, source)
        self.prefix, self.suffix = _frame(data)
        self.encoding = self.root.getroottree().docinfo.encoding or "UTF-8"
        self._index: dict[str, tuple[etree._Element, FeedOutline]] | None = None

    @classmethod
    def load(cls, path: Path) -> OpmlDocument:
        """The file, or a new empty list when there is none yet."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = NEW_FILE
        return cls(data, source=str(path))

    @property
    def body(self) -> etree._Element:
        return self.root.find("body")

    def feeds(self) -> list[tuple[etree._Element, FeedOutline]]:
        return [
            (node, _outline(node, folder, f"{self.source}:{node.sourceline}"))
            for node, folder in _walk(self.body, ())
        ]

    def find(self, url: str) -> tuple[etree._Element, FeedOutline] | None:
        """The outline listing `url`, compared by `feed_key` (so http/https, www, / all match)."""
        if self._index is None:
            self._index = {}
            for node, outline in self.feeds():
                self._index.setdefault(feed_key(outline.url), (node, outline))
        return self._index.get(feed_key(url))

    def refuse_listed(self, url: str) -> None:
        """Raise DuplicateFeedError when `url`, in any spelling, is already in the list."""
        existing = self.find(url)
        if existing is not None:
            listed = existing[1]
            raise DuplicateFeedError(
                f"{url}: already in {self.source} as {listed.title or listed.url!r}"
                + ("" if listed.url == url else f" ({listed.url})"),
                hint="nothing to do; `watcher feeds remove URL` takes it out",
            )

    def add(self, outline: FeedOutline) -> etree._Element:
        self.refuse_listed(outline.url)
        parent = self.folder(outline.folder, create=True)
        assert parent is not None
        node = etree.Element("outline", outline.attributes())
        _append(parent, node, self._unit())
        if self._index is not None:
            self._index[feed_key(outline.url)] = (node, outline)
        return node

    def remove(self, url: str) -> FeedOutline:
        found = self.find(url)
        if found is None:
            raise WatcherError(
                f"{url}: not in {self.source}", hint="`watcher feeds` lists the feeds"
            )
        node, outline = found
        _detach(node)
        self._index = None  # another outline may list the same feed again
        return outline

    def set_enabled(self, url: str, enabled: bool) -> FeedOutline | None:
        found = self.find(url)
        if found is None:
            return None
        node, outline = found
        for key in [k for k in node.attrib if str(k).lower() == "enabled"]:
            del node.attrib[key]
        if not enabled:
            node.set("enabled", "false")
        return replace(outline, enabled=enabled)

    def folder(self, path: tuple[str, ...], *, create: bool = False) -> etree._Element | None:
        """The folder outline at `path` (names compared case-insensitively); body for ()."""
        node = self.body
        for name in path:
            child = next(
                (
                    c
                    for c in node.iterfind("outline")
                    if not _is_feed(c) and _label(c).casefold() == name.casefold()
                ),
                None,
            )
            if child is None:
                if not create:
                    return None
                child = etree.Element("outline", {"text": name, "title": name})
                _append(node, child, self._unit())
            node = child
        return node

    def folder_for_language(self, lang: str | None) -> tuple[str, ...]:
        """The first folder whose feeds are mostly in `lang` (by their `language`), else ()."""
        if not lang:
            return ()
        counts: dict[tuple[str, ...], list[int]] = {}
        for node, folder in _walk(self.body, ()):
            if folder:
                tally = counts.setdefault(folder, [0, 0])
                tally[0] += (_attr(node, "language") or "").lower().startswith(lang.lower())
                tally[1] += 1
        return next((f for f, (hit, total) in counts.items() if hit * 2 > total), ())

    def to_bytes(self) -> bytes:
        root = etree.tostring(self.root, encoding=self.encoding, xml_declaration=False)
        return self.prefix + root + self.suffix

    def save(self, path: Path) -> None:
        """Check with the daemon's reader, then replace the file atomically.

        Refuses when the file changed on disk since it was read (someone edited it meanwhile), so
        neither edit is lost.
        """
        data = self.to_bytes()
        parse_opml(data, source=str(path))
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = NEW_FILE
        if current != self.original:
            raise WatcherError(
                f"{path}: changed on disk while it was being edited; nothing written",
                hint="run the command again",
            )
        _write_atomically(path, data)

    def _unit(self) -> str:
        """The file's indentation step (two spaces, a tab, …), learned from its first nesting."""
        for parent in self.root.iter(etree.Element):
            outer = _indent(parent) if len(parent) else None
            if outer is not None and parent.text and "\n" in parent.text:
                inner = parent.text.rsplit("\n", 1)[1]
                if inner.startswith(outer) and len(inner) > len(outer):
                    return inner[len(outer) :]
        return "  "


def _frame(data: bytes) -> tuple[bytes, bytes]:
    """The bytes before the root element's start tag and after its end tag."""
    position = 0
    while match := _PROLOG_ITEM.match(data, position):
        position = match.end()
    while position < len(data) and data[position : position + 1].isspace():
        position += 1
    end = data.rfind(b"</opml>")
    if not data.startswith(b"<opml", position) or end < 0:
        return b'<?xml version="1.0" encoding="UTF-8"?>\n', b"\n"
    return data[:position], data[end + len(b"</opml>") :]


def _indent(node: etree._Element) -> str | None:
    """The whitespace that starts `node`'s line, from the text before it; None when inline."""
    previous, parent = node.getprevious(), node.getparent()
    holder = previous if previous is not None else parent
    before = None if holder is None else holder.tail if holder is previous else holder.text
    if before is None or "\n" not in before:
        return None
    return before.rsplit("\n", 1)[1]


def _append(parent: etree._Element, node: etree._Element, unit: str) -> None:
    """Append `node` as the last child of `parent`, indented like its siblings."""
    children = list(parent)
    if children:
        last = children[-1]
        node.tail = last.tail
        last.tail = parent.text
    else:
        outer = _indent(parent) if parent.getparent() is not None else ""
        if outer is None:  # written on one line: stay on one line
            parent.text, node.tail = parent.text, None
        else:
            parent.text = "\n" + outer + unit
            node.tail = "\n" + outer
    parent.append(node)


def _detach(node: etree._Element) -> None:
    """Remove `node`; the whitespace around it closes up as if it had never been there."""
    parent = node.getparent()
    previous = node.getprevious()
    if node.getnext() is None:  # last child: what followed it now follows its predecessor
        if previous is not None:
            previous.tail = node.tail
        else:
            parent.text = node.tail
    parent.remove(node)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- whole-file operations ----------------------------------------------------------------------


def add_feed(path: Path, outline: FeedOutline) -> FeedOutline:
    """Append one feed to the list (in its folder, created at the end when missing)."""
    document = OpmlDocument.load(path)
    document.add(outline)
    document.save(path)
    return outline


def remove_feed(path: Path, url: str) -> FeedOutline:
    document = OpmlDocument.load(path)
    outline = document.remove(url)
    document.save(path)
    return outline


def merge(path: Path, data: bytes, *, source: str) -> MergeReport:
    """Import an OPML export into the list: new feeds appended in their folders, none twice."""
    imported = read_outlines(data, source=source)
    report = MergeReport(skipped=imported.skipped, warnings=imported.warnings)
    document = OpmlDocument.load(path)
    for outline in imported.outlines:
        try:
            document.add(outline)
        except DuplicateFeedError as exc:
            report.skipped.append(Skipped(outline.url, outline.title, exc.message))
            continue
        report.added.append(outline)
    if report.added:
        document.save(path)
    return report


def export(path: Path, *, title: str = "news-watcher feeds", now: datetime | None = None) -> bytes:
    """The effective list as clean OPML 2.0: each feed once, in its folder, with our options.

    The list is first read with the daemon's reader, so an export of a list the daemon refuses
    fails with the same file:line message instead of exporting something else.
    """
    document = OpmlDocument(path.read_bytes(), source=str(path))
    parse_opml(document.original, source=str(path))
    return render([outline for _, outline in document.feeds()], title=title, now=now)


def render(
    outlines: list[FeedOutline], *, title: str = "news-watcher feeds", now: datetime | None = None
) -> bytes:
    """OPML 2.0 for `outlines`, grouped into their folders in order of first appearance."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC))
    etree.SubElement(head, "docs").text = OPML_DOCS
    body = etree.SubElement(root, "body")
    folders: dict[tuple[str, ...], etree._Element] = {(): body}
    seen: set[str] = set()
    for outline in outlines:
        if outline.url in seen:
            continue
        seen.add(outline.url)
        for depth in range(1, len(outline.folder) + 1):
            path = outline.folder[:depth]
            if path not in folders:
                name = path[-1]
                folders[path] = etree.SubElement(
                    folders[path[:-1]], "outline", text=name, title=name
                )
        etree.SubElement(folders[outline.folder], "outline", outline.attributes())
    etree.indent(root, space="  ")
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    return declaration + etree.tostring(root, encoding="UTF-8", pretty_print=True)
