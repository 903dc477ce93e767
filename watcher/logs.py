"""Logging: readable lines on a terminal, JSON lines for log shippers.

Every record may carry `feed`, `rule`, `delivery`, `destination` or `worker` (passed with `extra=`);
both formats show them, so a line always says what it concerns and `grep 'feed=https://…'` (text) or
`jq 'select(.feed == "…")'` (JSON) finds everything about one feed.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

CONTEXT_KEYS = ("feed", "rule", "delivery", "destination", "worker")
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "apscheduler",
    "trafilatura",
    "htmldate",
    "charset_normalizer",
    "apprise",  # its DEBUG lines print chat URLs, tokens included (also under --debug)
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` values of a record: the context keys first, then any others, None dropped."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None}
    ordered = {key: extra.pop(key) for key in CONTEXT_KEYS if key in extra}
    return ordered | dict(sorted(extra.items()))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's context."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in context_of(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`2026-11-21 07:30:00 INFO    watcher.pipeline: message [feed=https://… rule=gsomia]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = context_of(record)
        if not context:
            return line
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in context.items())
        return f"{line} [{pairs}]"


def _text_value(value: Any) -> str:
    text = str(value)
    needs_quotes = not text or any(c in text for c in ' "]\n')
    return json.dumps(text, ensure_ascii=False) if needs_quotes else text


def make_formatter(fmt: str) -> logging.Formatter:
    """`json` → JsonFormatter; `text` and `auto` → TextFormatter."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is now (test runners and daemons swap it), not the stream
    that was current when logging was set up."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


def setup_logging(level: str = "INFO", fmt: str = "auto", *, debug: bool = False) -> None:
    """Configure the root logger once.

    `auto` means text: JSON is opt-in (`--log-format json`) because journald and docker logs are
    read by people more often than by machines.
    """
    handler = StderrHandler()
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("DEBUG" if debug else level)
    logging.captureWarnings(False)  # re-install: a test runner may have swapped showwarning
    logging.captureWarnings(True)  # library warnings go through the same format
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
