"""Stories: every stored article joins the story of its near duplicates within the window.

A wire story republished by a dozen outlets, or one outlet's article re-published under a new URL
or GUID after an edit, becomes one story, so digests say "also in N outlets" and an immediate
alert fires once per story. How two articles are compared is in `story_signature`; the in-memory
index of recent signatures is in `story_index`. This module keeps that index in step with the
database: rebuilt from ArticleSignature rows at the first lookup, then topped up (at most once per
`refresh_seconds`, before a lookup) with rows other workers stored since — by article id, asking
again for lower ids still missing, because on PostgreSQL a lower id can commit after a higher one.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from watcher.config import StoriesSettings
from watcher.db import stories as story_db
from watcher.story_index import Ahead, StoryIndex
from watcher.story_signature import Signature, signature

log = logging.getLogger("watcher.stories")

GAP_SECONDS = 600.0  # how long an id missing below the high-water mark is asked for again
MAX_GAPS = 1000


@dataclass(slots=True)
class NewArticle:
    """A stored article waiting for its story; the signature was computed in the CPU pool."""

    article_id: int
    title: str
    created_at: datetime
    signature: Signature


def _signature_row(item: NewArticle, story_id: int) -> dict[str, object]:
    return {
        "article_id": item.article_id,
        "story_id": story_id,
        "signature": item.signature.to_bytes(),
        "title_key": item.signature.title_key,
        "created_at": item.created_at,
    }


@dataclass(slots=True)
class StoryAssignment:
    story_id: int
    is_new: bool
    similar_article_id: int | None


class _NewStories:
    """Stories a feed's batch starts, written in one statement at the end of the batch (one
    INSERT per new story was a tenth of a cold pass). Until then each has a negative
    placeholder id; a later article of the same batch may join it."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, object]] = {}
        self.members: dict[int, list[int]] = {}

    def __contains__(self, story_id: int) -> bool:
        return story_id in self.rows

    def start(self, item: NewArticle) -> int:
        placeholder = -(len(self.rows) + 1)
        self.rows[placeholder] = {
            "first_article_id": item.article_id,
            "title": item.title,
            "article_count": 1,
            "created_at": item.created_at,
            "updated_at": item.created_at,
        }
        self.members[placeholder] = [item.article_id]
        return placeholder

    def join(self, placeholder: int, item: NewArticle) -> None:
        row = self.rows[placeholder]
        row["article_count"] = int(row["article_count"]) + 1  # type: ignore[call-overload]
        row["updated_at"] = max(row["updated_at"], item.created_at)  # type: ignore[type-var]
        self.members[placeholder].append(item.article_id)

    def write(self, session: Session) -> dict[int, int]:
        """Insert the rows; placeholder → real story id."""
        ids = story_db.new_stories(session, list(self.rows.values()))
        return dict(zip(self.rows, ids, strict=True))


class StoryClusterer:
    """One per process. Call `assign` for each new article, `update` when one is edited."""

    def __init__(self, settings: StoriesSettings, *, refresh_seconds: float = 1.0) -> None:
        """`refresh_seconds`: how often, at most, rows other workers stored are looked for (a
        copy stored by another worker less than that long ago may start a story of its own)."""
        self.window = timedelta(days=settings.window_days)
        self.index = StoryIndex(self.window, settings.threshold)
        self.refresh_seconds = refresh_seconds
        self._refreshed_at = float("-inf")
        self._loaded = False
        self._high = 0  # highest article id read from the database
        self._gaps: dict[int, float] = {}  # ids below _high not seen yet → when first missed
        self._lock = threading.Lock()

    def assign(
        self,
        session: Session,
        *,
        article_id: int,
        title: str,
        text: str,
        created_at: datetime,
        sig: Signature | None = None,
    ) -> StoryAssignment:
        """Put a new article in a story (an existing one, or a new one) inside the caller's
        transaction: Story row, ArticleSignature row and Article.story_id."""
        item = NewArticle(article_id, title, created_at, sig or signature(title, text))
        return self.assign_many(session, [item])[0]

    def assign_many(self, session: Session, items: Sequence[NewArticle]) -> list[StoryAssignment]:
        """`assign` for a feed's new articles: signatures and story links written in two
        statements, not two per article (they were a third of a cold pass)."""
        signatures: list[dict[str, object]] = []
        batch = _NewStories()
        with self._lock:
            if items and time.monotonic() - self._refreshed_at >= self.refresh_seconds:
                self.refresh(session, items[0].created_at)
            try:
                ahead = self.index.lookahead(
                    [item.signature for item in items], [item.created_at for item in items]
                )
                assignments = [
                    self._place(session, item, batch, lookahead)
                    for item, lookahead in zip(items, ahead, strict=True)
                ]
                real = batch.write(session)
            except BaseException:  # no placeholder id may outlive its batch in the index
                for members in batch.members.values():
                    for article_id in members:
                        self.index.remove(article_id)
                raise
            for placeholder, story_id in real.items():
                self.index.set_story(batch.members[placeholder], story_id)
            for item, assignment in zip(items, assignments, strict=True):
                assignment.story_id = real.get(assignment.story_id, assignment.story_id)
                if assignment.is_new or assignment.similar_article_id is not None:  # not a re-run
                    signatures.append(_signature_row(item, assignment.story_id))
            story_db.add_signatures(session, signatures)
            story_db.set_article_stories(
                session, [(row["article_id"], row["story_id"]) for row in signatures]
            )
        return assignments

    def _place(
        self, session: Session, item: NewArticle, batch: _NewStories, ahead: Ahead
    ) -> StoryAssignment:
        """The story for one article; the index learns it at once (the next one may join it)."""
        sig = item.signature
        if item.article_id in self.index:  # assigned before (or a rolled-back attempt)
            stored = story_db.signature_of(session, item.article_id)
            if stored is not None:  # keep its story, refresh the signature
                self._replace(session, stored, sig)
                return StoryAssignment(stored.story_id, False, None)
            self.index.remove(item.article_id)
        found = self.index.best(sig, item.created_at, ahead)
        while found is not None and not self._join(session, found.story_id, item, batch):
            # That story's transaction rolled back: forget its members and look again.
            self.index.remove_story(found.story_id)
            found = self.index.best(sig, item.created_at)
        story_id = batch.start(item) if found is None else found.story_id
        self.index.add(item.article_id, story_id, item.created_at, sig)
        similar = found.article_id if found is not None else None
        return StoryAssignment(story_id, found is None, similar)

    @staticmethod
    def _join(session: Session, story_id: int, item: NewArticle, batch: _NewStories) -> bool:
        if story_id in batch:
            batch.join(story_id, item)
            return True
        return story_db.join_story(session, story_id, item.created_at)

    def update(
        self,
        session: Session,
        *,
        article_id: int,
        title: str,
        text: str,
        sig: Signature | None = None,
    ) -> None:
        """An edited article keeps its story; only its signature follows the new text."""
        sig = sig or signature(title, text)
        with self._lock:
            stored = story_db.signature_of(session, article_id)
            if stored is not None:
                self._replace(session, stored, sig)
                return
        created_at = story_db.article_created_at(session, article_id)
        if created_at is not None:  # stored before stories existed: cluster it now
            self.assign_many(session, [NewArticle(article_id, title, created_at, sig)])

    # -- keeping the index in step with the database ---------------------------------------
    def refresh(self, session: Session, now: datetime) -> int:
        """Load signatures stored since the last look (all of the window the first time)."""
        since = now - self.window
        if not self._loaded:
            rows = story_db.signatures_since(session, since)
            self._load(rows, first=True)
            self._loaded = True
            log.info("story index: %d signatures of the last %s loaded", len(rows), self.window)
        else:
            rows = story_db.signatures_since(
                session, since, after_id=self._high, also=list(self._gaps)
            )
            self._load(rows, first=False)
        self.index.expire(now)
        self._refreshed_at = time.monotonic()
        return len(rows)

    def _load(self, rows: list[story_db.SignatureRow], *, first: bool) -> None:
        loaded = []
        for row in rows:
            self._gaps.pop(row.article_id, None)
            if row.article_id in self.index:
                continue  # stored by this process
            sig = Signature.from_bytes(row.signature, row.title_key)
            if sig is not None:
                loaded.append((row.article_id, row.story_id, row.created_at, sig))
        if first:
            self.index.add_many(loaded)
        else:
            for item in loaded:
                self.index.add(*item)
        self._note_gaps({row.article_id for row in rows})

    def _note_gaps(self, seen: set[int]) -> None:
        """Ids below the new high-water mark that did not show up may still be committing."""
        if not seen:
            return
        now, high = time.monotonic(), max(max(seen), self._high)
        low = max(self._high + 1, high - MAX_GAPS)
        for article_id in range(low, high):
            if article_id not in seen and article_id not in self.index:
                self._gaps.setdefault(article_id, now)
        self._high = high
        stale = [key for key, since in self._gaps.items() if now - since > GAP_SECONDS]
        for key in stale:
            del self._gaps[key]
        while len(self._gaps) > MAX_GAPS:
            del self._gaps[next(iter(self._gaps))]

    def _replace(self, session: Session, stored: story_db.SignatureRow, sig: Signature) -> None:
        story_db.replace_signature(session, stored.article_id, sig.to_bytes(), sig.title_key)
        self.index.add(stored.article_id, stored.story_id, stored.created_at, sig)


# -- what changed in an edited article -------------------------------------------------------

SUMMARY_CHARS = 300
MAX_PAIRINGS = 400  # unit comparisons allowed within one changed run
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def _paragraphs(text: str) -> list[str]:
    return [" ".join(part.split()) for part in re.split(r"\n\s*\n|\n", text) if part.strip()]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _quote(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _replacements(old: list[str], new: list[str], limit: int = 2) -> list[str]:
    """Word-level edits inside changed paragraphs, e.g. "'3 dead' → '5 dead'" (figures, names)."""
    found: list[str] = []
    old_words, new_words = " ".join(old).split(), " ".join(new).split()
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "replace" and (i2 - i1) <= 6 and (j2 - j1) <= 6:
            before, after = " ".join(old_words[i1:i2]), " ".join(new_words[j1:j2])
            found.append(f"'{_quote(before, 40)}' → '{_quote(after, 40)}'")
            if len(found) == limit:
                break
    return found


def _pair_up(old: list[str], new: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Within a changed run: (edited old → new pairs, added units, removed units). A rewrite too
    large to pair up cheaply counts as edits of the overlapping units."""
    if len(old) * len(new) > MAX_PAIRINGS:
        common = min(len(old), len(new))
        return list(zip(old[:common], new[:common], strict=True)), new[common:], old[common:]
    pairs: list[tuple[str, str]] = []
    added: list[str] = []
    unused = [(unit, unit.split()) for unit in old]
    for unit in new:
        words, best, best_ratio = unit.split(), None, 0.6
        for index, (_, old_words) in enumerate(unused):
            matcher = difflib.SequenceMatcher(a=old_words, b=words, autojunk=False)
            if matcher.quick_ratio() >= best_ratio and matcher.ratio() >= best_ratio:
                best, best_ratio = index, matcher.ratio()
        if best is None:
            added.append(unit)
        else:
            pairs.append((unused.pop(best)[0], unit))
    return pairs, added, [unit for unit, _ in unused]


def describe_change(old_title: str, old_text: str, new_title: str, new_text: str) -> str:
    """A short human summary of an edit, for "update" alerts (at most ~300 characters):
    "title changed: 'A' → 'B'; 2 paragraphs added: “first added sentence…”"."""
    parts: list[str] = []
    if " ".join(old_title.split()) != " ".join(new_title.split()):
        parts.append(f"title changed: '{_quote(old_title, 70)}' → '{_quote(new_title, 70)}'")
    old_units, new_units, word = _paragraphs(old_text), _paragraphs(new_text), "paragraph"
    if max(len(old_units), len(new_units)) <= 1:  # one block of text: compare sentences
        old_units, new_units, word = _sentences(old_text), _sentences(new_text), "sentence"
    added: list[str] = []
    removed = changed = 0
    edits: list[str] = []
    matcher = difflib.SequenceMatcher(a=old_units, b=new_units, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        pairs, extra_new, extra_old = _pair_up(old_units[i1:i2], new_units[j1:j2])
        changed += len(pairs)
        for before, after in pairs:
            edits += _replacements([before], [after])
        added += extra_new
        removed += len(extra_old)
    if added:
        first = (_sentences(added[0]) or [added[0]])[0]
        parts.append(f"{_plural(len(added), word)} added: “{_quote(first, 120)}”")
    if changed:
        detail = f" ({', '.join(edits[:2])})" if edits else ""
        parts.append(f"{_plural(changed, word)} changed{detail}")
    if removed:
        parts.append(f"{_plural(removed, word)} removed")
    if not parts:
        parts.append(
            "text changed" if old_text.split() != new_text.split() else "no visible change"
        )
    return _quote("; ".join(parts), SUMMARY_CHARS)
