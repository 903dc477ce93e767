"""Durations the CLI and the feed list accept (`90s`, `30m`, `24h`, `7d`, `2w`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(text: str) -> timedelta:
    """`1h30m` → 90 minutes; raises ValueError saying what is accepted."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(f"{n}{u}" for n, u in parts) != cleaned:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 24h, 7d, 2w)")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


def ago(text: str) -> datetime:
    """The moment `text` (a duration) before now, for `--since 24h` options."""
    return utcnow() - parse_duration(text)
