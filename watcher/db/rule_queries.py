"""Rule back-application over stored articles (`watcher rules test --since`, `rules backfill`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from watcher import domain
from watcher.db.articles import add_match, iter_articles, to_domain

Matcher = Callable[[domain.Article], list[domain.RuleMatch]]


@dataclass(frozen=True, slots=True)
class BackfillResult:
    scanned: int
    matched: int
    added: int  # matches not stored before (a rerun adds nothing)


def stored_articles(session: Session, since: datetime) -> Iterator[domain.Article]:
    """The matcher's view of every article stored since `since`, oldest first."""
    for row in iter_articles(session, since):
        yield to_domain(row)


def backfill(session: Session, matcher: Matcher | object, since: datetime) -> BackfillResult:
    """Store the matches of `matcher` (a RuleSet or a function) on articles stored since `since`.

    Matches are flagged `backfill`: they go into the next digest and never trigger an immediate
    alert about old news. Existing (article, rule, version) matches are left as they are.
    """
    match: Matcher = getattr(matcher, "match", matcher)  # type: ignore[assignment]
    scanned = matched = added = 0
    for row in iter_articles(session, since):
        scanned += 1
        for found in match(to_domain(row)):
            matched += 1
            added += add_match(session, row, found, backfill=True)
    return BackfillResult(scanned, matched, added)
