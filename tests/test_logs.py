"""Log lines say what they concern: JSON lines for shippers, readable text with the same context."""

from __future__ import annotations

import io
import json
import logging
import warnings

import pytest

from watcher.logs import JsonFormatter, TextFormatter, setup_logging

FEED = "https://www.example.org/rss/politics.xml?lang=en"


def emit(formatter: logging.Formatter, message: str, *args: object, **extra: object) -> str:
    """Format one record through a real handler, exactly as the daemon's root handler does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("watcher.test_logs")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning(message, *args, extra=extra or None)
    finally:
        logger.handlers.clear()
    return stream.getvalue()


def test_json_line_parses_and_carries_the_feed():
    line = emit(JsonFormatter(), "feed %s: HTTP %d", FEED, 503, feed=FEED)
    assert line.endswith("\n") and line.count("\n") == 1
    data = json.loads(line)
    assert data["feed"] == FEED
    assert data["message"] == f"feed {FEED}: HTTP 503"
    assert data["level"] == "warning"
    assert data["logger"] == "watcher.test_logs"
    assert data["time"].endswith("+00:00")


def test_json_keeps_every_context_key_and_other_extras():
    line = emit(
        JsonFormatter(), "sent", delivery=42, destination="team-email", rule="gsomia", attempts=3
    )
    data = json.loads(line)
    assert (data["delivery"], data["destination"], data["rule"]) == (42, "team-email", "gsomia")
    assert data["attempts"] == 3
    assert "worker" not in data  # absent context is left out, not null


def test_json_multiline_message_and_exception_stay_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "rules not reloaded:\n  a.yaml:3:1: bad", (), None
        )
        record.exc_info = __import__("sys").exc_info()
        record.rule = "gsomia"
        handler.emit(record)
    (line,) = stream.getvalue().splitlines()
    data = json.loads(line)
    assert "a.yaml:3:1" in data["message"]
    assert "ValueError: boom" in data["exception"]
    assert data["rule"] == "gsomia"


def test_text_shows_the_context_after_the_message():
    line = emit(TextFormatter(), "not modified", feed=FEED, rule="gsomia")
    assert line.rstrip().endswith(f"watcher.test_logs: not modified [feed={FEED} rule=gsomia]")
    assert " WARNING " in line


def test_text_quotes_context_values_with_spaces():
    line = emit(TextFormatter(), "sent", destination="team email")
    assert line.rstrip().endswith('[destination="team email"]')


def test_text_without_context_has_no_brackets():
    assert not emit(TextFormatter(), "started").rstrip().endswith("]")


@pytest.mark.parametrize(("fmt", "is_json"), [("json", True), ("text", False), ("auto", False)])
def test_setup_logging_installs_the_chosen_format(fmt: str, is_json: bool, capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", fmt)
        logging.getLogger("watcher.pipeline").info("feed done", extra={"feed": FEED})
        logging.getLogger("watcher.pipeline").debug("hidden at INFO")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("library says so", UserWarning, stacklevel=1)
        lines = capsys.readouterr().err.splitlines()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.captureWarnings(False)
    assert not any("hidden at INFO" in line for line in lines)
    assert any("library says so" in line for line in lines)  # warnings use the same format
    if is_json:
        records = [json.loads(line) for line in lines]
        assert records[0]["feed"] == FEED
    else:
        assert lines[0].endswith(f"feed done [feed={FEED}]")
