"""Looking at what news-watcher stored and rendered: every column of every table, every file under
the data directory, and the active parts of a digest's HTML."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import lxml.html

_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster"}
_ACTIVE_TAGS = {"script", "iframe", "object", "embed", "applet", "frame", "base", "form"}
_BAD_SCHEMES = ("javascript:", "vbscript:", "data:")


def rows_containing(db_file: Path, needle: str) -> list[str]:
    """`table.column` of every stored value (any table, any column) that contains `needle`."""
    found = []
    connection = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            for row in cursor:
                for name, value in zip(names, row, strict=True):
                    text = (
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    )
                    if needle in text:
                        found.append(f"{table}.{name}")
    finally:
        connection.close()
    return found


def files_containing(directory: Path, needle: str) -> list[Path]:
    """Every file under `directory` (database, WAL, outbox) whose bytes contain `needle`."""
    raw = needle.encode()
    return [p for p in directory.rglob("*") if p.is_file() and raw in p.read_bytes()]


def executable_markup(html: str) -> list[str]:
    """Everything in an HTML document that a mail client or browser could run: script-like
    elements, on* event handler attributes, and javascript:/vbscript:/data: URLs."""
    problems = [f"raw text {m.group(0)!r}" for m in re.finditer(r"(?i)<\s*script", html)]
    root = lxml.html.document_fromstring(html)
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag.lower() in _ACTIVE_TAGS:
            problems.append(f"<{tag}> element")
        for name, value in element.attrib.items():
            lowered = name.lower()
            if lowered.startswith("on"):
                problems.append(f"<{tag} {name}={value!r}>")
            squeezed = re.sub(r"[\x00-\x20]", "", value).lower()
            if lowered in _URL_ATTRIBUTES and squeezed.startswith(_BAD_SCHEMES):
                problems.append(f"<{tag} {name}={value!r}>")
    return problems


def visible_text(html: str) -> str:
    """The text a reader sees (highlight markup splits titles in the HTML source)."""
    return " ".join(lxml.html.document_fromstring(html).text_content().split())
