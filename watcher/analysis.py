"""The CPU work on a new article's final text, run in the pool with the feed's other new articles.

Its story signature (with its LSH band keys) and content hash depend only on (title, text), so
the daemon's event loop, which also stores, clusters and matches, does not spend its time on them:
on a cold pass they were a third of the main process. Rule matching runs here too when the daemon
hands over a snapshot of its rule set (`RulesSnapshot`): each worker loads a version once and
keeps it, and the daemon only stores what comes back.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from watcher.cpu import process_running
from watcher.domain import Article, RuleMatch
from watcher.identity import text_fingerprint
from watcher.query import Engine
from watcher.rules import RuleSet
from watcher.story_index import with_band_keys
from watcher.story_signature import Signature, signature

log = logging.getLogger("watcher.analysis")


@dataclass(frozen=True, slots=True)
class TextFacts:
    signature: Signature
    content_hash: str
    matches: list[RuleMatch] | None = None  # None: not matched here (the daemon matches)


@dataclass(frozen=True, slots=True)
class RulesSnapshot:
    """Where the daemon pickled the matcher of this rule set version (`RulesSnapshots.of`)."""

    path: str
    version: str


SNAPSHOT_PREFIX = "watcher-rules-"


class RulesSnapshots:
    """The daemon's side: each rule set it matches with, pickled once for the workers, in a
    directory of this process's own (removed with it, so no snapshot outlives the code that
    wrote it; a killed daemon's is removed by the next one, see `sweep_orphans`). A rule set
    without a version (built in code, not read from files) gets none."""

    def __init__(self, parent: str | None = None) -> None:
        self._parent = parent  # the system's temporary folder unless given
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._last: tuple[RuleSet, RulesSnapshot | None] | None = None

    def of(self, ruleset: RuleSet) -> RulesSnapshot | None:
        if self._last is not None and self._last[0] is ruleset:
            return self._last[1]
        snapshot = self._write(ruleset) if ruleset.version else None
        self._last = (ruleset, snapshot)
        return snapshot

    def _write(self, ruleset: RuleSet) -> RulesSnapshot | None:
        try:
            if self._directory is None:
                sweep_orphans(self._parent)
                self._directory = tempfile.TemporaryDirectory(
                    prefix=f"{SNAPSHOT_PREFIX}{os.getpid()}-", dir=self._parent
                )
            folder = Path(self._directory.name)
            path = folder / f"rules-{ruleset.version}.pickle"
            if not path.exists():
                for old in folder.glob("rules-*.pickle"):
                    old.unlink(missing_ok=True)
                staged = path.with_suffix(".tmp")
                matcher = (ruleset.version, ruleset.engine)  # the rules' settings stay here
                staged.write_bytes(pickle.dumps(matcher, protocol=pickle.HIGHEST_PROTOCOL))
                staged.replace(path)
        except OSError as exc:
            log.warning("rule matching stays in the daemon: cannot write a snapshot (%s)", exc)
            return None
        return RulesSnapshot(str(path), ruleset.version)


def sweep_orphans(parent: str | None = None) -> int:
    """Remove snapshot folders whose daemon is gone (killed: it could not clean up), so restarts
    do not pile up copies of a large rule set. A folder whose process still runs, or that names
    none, is left alone; the number removed is returned."""
    removed = 0
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{SNAPSHOT_PREFIX}*-*"):
        pid = folder.name.removeprefix(SNAPSHOT_PREFIX).split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@dataclass(frozen=True, slots=True)
class MatchJob:
    """Match these articles (the first of the texts, in order) against a rule set snapshot;
    `details`: terms and snippets too (not for matches that are never shown)."""

    rules: RulesSnapshot
    articles: Sequence[Article]
    details: bool


def analyse(
    texts: Sequence[tuple[str, str]],
    hashes: Sequence[str | None] | None = None,
    match: MatchJob | None = None,
) -> list[TextFacts]:
    """(title, text) pairs → their signature and content hash, in order, and the rule matches of
    `match.articles`. `hashes`: content hashes already known (an article of the feed's own text
    has its entry's fingerprint)."""
    known = hashes or [None] * len(texts)
    engine = _engine(match.rules) if match is not None else None
    found: list[list[RuleMatch] | None] = [None] * len(texts)
    if match is not None and engine is not None:
        for i, article in enumerate(match.articles):
            found[i] = engine.match(article, details=match.details)
    return [
        TextFacts(
            with_band_keys(signature(t, text)), content_hash or text_fingerprint(t, text), matches
        )
        for (t, text), content_hash, matches in zip(texts, known, found, strict=True)
    ]


_loaded: tuple[str, Engine] | None = None  # this worker's matcher, kept until another version


def _engine(snapshot: RulesSnapshot) -> Engine | None:
    """The snapshot's matcher, loaded once per version; None when it cannot be read (the daemon
    then matches itself)."""
    global _loaded
    if _loaded is not None and _loaded[0] == snapshot.version:
        return _loaded[1]
    try:
        with open(snapshot.path, "rb") as file:
            version, engine = pickle.load(file)
    except (
        OSError,
        EOFError,
        ValueError,
        TypeError,
        pickle.UnpicklingError,
        AttributeError,
    ) as exc:
        log.info("rule set snapshot %s not readable (%s): the daemon matches", snapshot.path, exc)
        return None
    if version != snapshot.version or not isinstance(engine, Engine):
        return None
    _loaded = (version, engine)
    return engine
