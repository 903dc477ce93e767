"""refresh_feed(): fetch → parse → identify → extract → stories → match → store, top to bottom.

Cheap work before expensive work: a 304 ends the refresh; identity keys decide which entries are new
before any article page is fetched; only new entries are extracted. Parsing and extraction are CPU
work and run in a process pool so both cores are used; fetching is asyncio; each feed's results are
written in one transaction at the end, so an interrupted refresh leaves nothing half-written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Engine
from sqlmodel import Session

from watcher import domain, metrics
from watcher.analysis import MatchJob, RulesSnapshots, TextFacts, analyse
from watcher.config import Settings
from watcher.cpu import CpuPool
from watcher.db import articles as article_db
from watcher.db import feeds as feed_db
from watcher.db.engine import session_scope
from watcher.db.models import Article, FeedEntry
from watcher.errors import ExtractError, FetchError, WatcherError
from watcher.extract import Extracted, detect_language, extract_article
from watcher.fetch import Fetcher, next_interval, retry_delay
from watcher.health import HealthPolicy
from watcher.identity import EntryIdentity, parse_and_identify
from watcher.parse import Entry, ParsedFeed
from watcher.rules import RuleSet
from watcher.stories import NewArticle, StoryClusterer, describe_change
from watcher.timeutil import utcnow

log = logging.getLogger("watcher.pipeline")
RECORD_BATCH = 100  # feed outcomes written per transaction by refresh_many
# Feeds in progress (fetched, parsed or waiting to be stored) per allowed fetch: a feed holds its
# slot until it is stored, so with slots = fetches the CPU pool starved whenever storing lagged.
IN_PROGRESS_PER_FETCH = 4


@dataclass(slots=True)
class PollSummary:
    """What one pass over some feeds did (printed by `watcher poll`, kept for `watcher status`)."""

    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    errors: int = 0
    new_articles: int = 0
    matches: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def add(self, outcome: feed_db.FeedOutcome, url: str) -> None:
        self.feeds += 1
        if outcome.error is not None:
            self.errors += 1
            self.failures.append({"feed": url, "error": outcome.error})
        elif outcome.not_modified:
            self.not_modified += 1
        else:
            self.ok += 1
        self.new_articles += outcome.new_articles
        self.matches += outcome.matches

    COUNTERS: ClassVar[tuple[str, ...]] = (
        "feeds",
        "ok",
        "not_modified",
        "errors",
        "new_articles",
        "matches",
    )

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTERS}

    def merge(self, part: PollSummary) -> None:
        """Add another batch's figures (a poll runs in claimed batches)."""
        for name in self.COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.failures.extend(part.failures)

    def describe(self) -> str:
        """`3 feeds, 2 ok, 1 not modified, …` for logs."""
        return ", ".join(
            f"{value} {name.replace('_', ' ')}" for name, value in self.counts().items()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "failures": self.failures,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(slots=True)
class BuiltArticle:
    """An article ready to store: its row's values (no ORM object: building a validated SQLModel
    per article cost more than storing it) and what the pool worked out from its text."""

    row: dict[str, Any]
    facts: TextFacts | None = None

    @property
    def view(self) -> domain.Article:
        """The matcher's view."""
        return article_db.row_to_domain(self.row)

    def analysed(self) -> TextFacts:
        assert self.facts is not None, "Pipeline._analyse runs before articles are stored"
        return self.facts


@dataclass(slots=True)
class Candidate:
    """A new entry on its way to becoming an article."""

    entry: Entry
    key: str
    canonical: str | None
    fingerprint: str
    article: BuiltArticle | None = None


class Pipeline:
    """Refreshes feeds. One instance per process; `rules` returns the rule set active right now."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        rules: Callable[[], RuleSet],
        *,
        fetcher: Fetcher,
        cpu: CpuPool,
        stories: StoryClusterer,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.rules = rules
        self.fetcher = fetcher
        self.cpu = cpu
        self.stories = stories
        self._feed_slots = asyncio.Semaphore(settings.fetch.concurrency * IN_PROGRESS_PER_FETCH)
        self._turn_lock = asyncio.Lock()
        self._extract_slots = asyncio.Semaphore(settings.extract.concurrency)
        self._extracting: dict[str, asyncio.Future[tuple[Extracted | None, str | None]]] = {}
        self._snapshots = RulesSnapshots()
        self._health = HealthPolicy.from_settings(settings.health)

    # -- many feeds -------------------------------------------------------------------------
    async def refresh_many(
        self,
        jobs: Sequence[feed_db.FeedJob],
        progress: Callable[[feed_db.FeedJob, feed_db.FeedOutcome], None] | None = None,
    ) -> PollSummary:
        summary = PollSummary(started_at=utcnow())
        unrecorded: list[feed_db.FeedOutcome] = []

        async def one(job: feed_db.FeedJob) -> None:
            async with self._feed_slots:
                outcome = await self._outcome_of(job)
            unrecorded.append(outcome)
            if len(unrecorded) >= RECORD_BATCH:
                self._record(unrecorded)
            summary.add(outcome, job.label)
            if progress is not None:
                progress(job, outcome)

        try:
            await asyncio.gather(*(one(job) for job in jobs))
        finally:
            self._record(unrecorded)  # also on cancellation: what was fetched is kept
        summary.finished_at = utcnow()
        return summary

    def _record(self, outcomes: list[feed_db.FeedOutcome]) -> None:
        """Outcomes are written in batches: one transaction per feed was most of a warm pass."""
        if outcomes:
            batch = outcomes[:]
            outcomes.clear()
            with session_scope(self.engine) as session:
                feed_db.record_outcomes(session, batch, self._health)

    # -- one feed ---------------------------------------------------------------------------
    async def refresh_feed(self, job: feed_db.FeedJob) -> feed_db.FeedOutcome:
        """Never raises for a feed's own problems: the outcome (saved on the feed row) says them."""
        outcome = await self._outcome_of(job)
        with session_scope(self.engine) as session:
            feed_db.record_outcome(session, outcome, self._health)
        return outcome

    async def _outcome_of(self, job: feed_db.FeedJob) -> feed_db.FeedOutcome:
        """Refresh one feed; the caller records the outcome on the feed row."""
        now = utcnow()
        started = time.monotonic()
        try:
            outcome = await self._refresh(job, now)
        except WatcherError as exc:
            outcome = self._failed(job, now, exc)
        except asyncio.CancelledError:
            self._release(job)
            raise
        except Exception as exc:  # a bug must not stop the other feeds
            log.exception("internal error refreshing %s", job.label, extra={"feed": job.label})
            outcome = self._failed(job, now, WatcherError(f"internal error: {exc!r}"))
        self._log(job, outcome)
        metrics.observe_refresh(outcome, time.monotonic() - started)
        return outcome

    async def _refresh(self, job: feed_db.FeedJob, now: datetime) -> feed_db.FeedOutcome:
        result = await self.fetcher.fetch_feed(
            job.url, etag=job.etag, last_modified=job.last_modified
        )
        outcome = feed_db.FeedOutcome(
            feed_id=job.id,
            checked_at=now,
            next_check_at=now + timedelta(seconds=self._interval(job)),
            status=result.status,
            new_url=result.permanent_redirect,
        )
        if result.not_modified:
            outcome.not_modified = True
            return outcome
        parsed, identities = await self.cpu.run(
            parse_and_identify,
            result.body,
            url=result.final_url,
            content_type=result.content_type,
        )
        result.body = b""  # parsed; the feed may now wait a while for the pool and its store turn
        outcome.etag, outcome.last_modified = result.etag, result.last_modified
        outcome.title, outcome.site_url = parsed.title, parsed.site_url
        outcome.parse_warning = parsed.warning
        outcome.entries = len(parsed.entries)
        await self._store_entries(job, parsed, identities, outcome)
        outcome.primed = True
        return outcome

    def _interval(self, job: feed_db.FeedJob) -> float:
        base = job.interval_seconds or self.settings.fetch.default_interval
        return next_interval(base, self.settings.fetch)

    def _failed(
        self, job: feed_db.FeedJob, now: datetime, exc: WatcherError
    ) -> feed_db.FeedOutcome:
        status = getattr(exc, "status", None)
        base = job.interval_seconds or self.settings.fetch.default_interval
        delay = retry_delay(
            job.consecutive_failures + 1,
            interval=base,
            settings=self.settings.fetch,
            retry_after=getattr(exc, "retry_after", None),
        )
        return feed_db.FeedOutcome(
            feed_id=job.id,
            checked_at=now,
            next_check_at=now + timedelta(seconds=delay),
            status=status,
            error=str(exc).removeprefix(f"{job.url}: "),  # the feed row already names it
            permanent=bool(getattr(exc, "permanent", False)),
        )

    def _release(self, job: feed_db.FeedJob) -> None:
        """A cancelled refresh (shutdown) gives its feed back untouched: it is simply redone."""
        try:
            with session_scope(self.engine) as session:
                feed = session.get(feed_db.Feed, job.id)
                if feed is not None:
                    feed.lease_owner = feed.lease_until = None
        except Exception:  # shutting down; the lease expires by itself
            log.debug("could not release lease of %s", job.label)

    def _log(self, job: feed_db.FeedJob, outcome: feed_db.FeedOutcome) -> None:
        extra = {"feed": job.label}
        if outcome.error:
            log.warning("feed %s: %s", job.label, outcome.error, extra=extra)
        elif outcome.not_modified:
            log.debug("feed %s: not modified", job.label, extra=extra)
        else:
            log.info(
                "feed %s: %d entries, %d new articles, %d matches",
                job.label,
                outcome.entries,
                outcome.new_articles,
                outcome.matches,
                extra=extra,
            )

    # -- entries → articles → matches -------------------------------------------------------
    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One feed's database work per event-loop turn. Without it, a burst of finished parses
        ran back to back for a second or more with no socket read and no new job handed to the
        CPU pool, which then sat idle: the pass alternated between the two instead of overlapping.
        """
        async with self._turn_lock:
            await asyncio.sleep(0)  # parked here, the others queue on the lock, not the loop
            yield

    async def _store_entries(
        self,
        job: feed_db.FeedJob,
        parsed: ParsedFeed,
        identities: Sequence[EntryIdentity],
        outcome: feed_db.FeedOutcome,
    ) -> None:
        candidates = _candidates(parsed.entries, identities)
        async with self._turn():
            with session_scope(self.engine) as session:
                known = article_db.known_entries(session, job.id, candidates)
                existing = article_db.article_ids_by_canonical_url(
                    session,
                    (
                        c.canonical
                        for c in candidates.values()
                        if c.canonical and c.key not in known
                    ),
                )
        fresh = [c for c in candidates.values() if c.key not in known]
        edited = [
            (c, known[c.key])
            for c in candidates.values()
            if c.key in known
            and known[c.key].article_id
            and known[c.key].fingerprint != c.fingerprint
        ]
        parsed.entries = []  # known entries' text: not needed while the new ones are analysed
        del candidates
        to_build = [c for c in fresh if c.canonical not in existing]
        articles = await asyncio.gather(*(self._build_article(job, parsed, c) for c in to_build))
        for candidate, article in zip(to_build, articles, strict=True):
            candidate.article = article
        updates = await asyncio.gather(*(self._build_article(job, parsed, c) for c, _ in edited))
        ruleset = self.rules()  # the one version this feed is matched and stored with
        suppress = not job.primed and not self.settings.backfill
        await self._analyse([*articles, *updates], self._match_job(ruleset, articles, suppress))
        async with self._turn():
            with session_scope(self.engine) as session:
                added, matches = self._store_fresh(session, job, fresh, ruleset, suppress)
                outcome.new_entries = len(fresh)
                outcome.new_articles += added
                outcome.matches += matches
                for (candidate, entry_row), update in zip(edited, updates, strict=True):
                    outcome.matches += self._store_update(
                        session, candidate, entry_row, update, ruleset
                    )

    def _store_fresh(
        self,
        session: Session,
        job: feed_db.FeedJob,
        fresh: Sequence[Candidate],
        ruleset: RuleSet,
        suppress: bool,
    ) -> tuple[int, int]:
        """New entries → articles (one insert), stories, matches (one insert), entries (one insert).

        An entry whose article is already stored (another feed, another worker) only gets linked.
        """
        built = [c for c in fresh if c.article is not None]
        rows = [c.article.row for c in built]  # type: ignore[union-attr]
        stored = article_db.add_article_rows(session, rows)
        article_ids = {c.key: article_id for c, (article_id, _) in zip(built, stored, strict=True)}
        unbuilt = [c.canonical for c in fresh if c.article is None and c.canonical]
        known = article_db.article_ids_by_canonical_url(session, unbuilt)
        new = [
            (c.article, article_id)
            for c, (article_id, is_new) in zip(built, stored, strict=True)
            if is_new and c.article is not None
        ]
        match_rows = self._cluster_and_match(session, new, ruleset, suppress)
        links = [
            (
                c.key,
                article_ids.get(c.key) or known.get(c.canonical or ""),
                c.fingerprint,
            )
            for c in fresh
        ]
        article_db.link_entries(session, job.id, links, utcnow())
        added = sum(is_new for _, is_new in stored)
        return added, article_db.add_matches(session, match_rows)

    def _cluster_and_match(
        self,
        session: Session,
        new: Sequence[tuple[BuiltArticle, int]],
        ruleset: RuleSet,
        suppress: bool,
    ) -> list[dict[str, Any]]:
        """Stories for the feed's newly stored articles, then their match rows."""
        items = [
            NewArticle(
                article_id,
                article.row["title"],
                article.row["created_at"],
                article.analysed().signature,
            )
            for article, article_id in new
        ]
        assignments = self.stories.assign_many(session, items)
        # A suppressed match is never delivered, so its terms and snippets would never be read
        # (they were a third of matching on a first poll, where every match is suppressed).
        details = not suppress
        rows: list[dict[str, Any]] = []
        for (article, article_id), assignment in zip(new, assignments, strict=True):
            found = article.analysed().matches  # matched in the CPU pool
            if found is None:
                found = ruleset.match(article.view, details=details)
            rows += [
                article_db.match_values(
                    article_id, 1, assignment.story_id, match, suppressed=suppress
                )
                for match in found
            ]
        return rows

    def _store_update(
        self,
        session: Session,
        candidate: Candidate,
        entry_row: article_db.KnownEntry,
        update: BuiltArticle,
        ruleset: RuleSet,
    ) -> int:
        """A known entry changed: if the article text changed, it is a new version of the article
        (same story); rules with `on_update: alert` match it again, with what changed."""
        entry = session.get(FeedEntry, entry_row.id)
        row = session.get(Article, entry_row.article_id)
        if entry is None or row is None:
            return 0
        entry.fingerprint = candidate.fingerprint
        entry.last_seen_at = utcnow()
        if update.row["content_hash"] == row.content_hash:
            return 0
        change = describe_change(row.title, row.text, update.row["title"], update.row["text"])
        before = article_db.matched_rule_ids(session, row.id or 0)
        for name in ("title", "text", "summary", "text_method", "author", "lang", "content_hash"):
            setattr(row, name, update.row[name])
        row.version += 1
        row.updated_at = utcnow()
        self.stories.update(
            session,
            article_id=row.id or 0,
            title=row.title,
            text=row.text,
            sig=update.facts.signature if update.facts else None,
        )
        stored = 0
        for match in ruleset.match(article_db.to_domain(row)):
            rule = ruleset.get(match.rule_id)
            if match.rule_id in before and (rule is None or rule.on_update != "alert"):
                continue
            summary = change if match.rule_id in before else None
            stored += article_db.add_match(session, row, match, change_summary=summary)
        return stored

    async def _build_article(
        self, job: feed_db.FeedJob, parsed: ParsedFeed, candidate: Candidate
    ) -> BuiltArticle:
        """An article (not yet stored): the page's extracted text, or the feed's own text."""
        entry, canonical = candidate.entry, candidate.canonical
        extracted, problem = await self._extract(job, entry, canonical)
        feed_text = entry.content or entry.summary
        text, method = feed_text, "feed"
        if extracted is not None and len(extracted.text) >= min(
            self.settings.extract.min_text_chars, max(len(feed_text), 1)
        ):
            text, method = extracted.text, extracted.method
        title = entry.title or (extracted.title if extracted else None) or ""
        lang = (extracted.lang if extracted else None) or entry.lang or parsed.lang
        # the entry's fingerprint hashes exactly (title, feed text): no need to hash it again
        known_hash = candidate.fingerprint if method == "feed" and title == entry.title else ""
        return BuiltArticle(
            article_db.new_article_row(
                feed_id=job.id,
                url=entry.link or "",
                canonical_url=canonical,
                guid=entry.guid,
                title=title,
                summary=entry.summary,
                text=text,
                text_method=method,
                extract_error=problem,
                author=entry.author or (extracted.author if extracted else None),
                lang=lang or detect_language(f"{title}\n{text}"),
                source=job.title or parsed.title,
                published_at=entry.published or (extracted.published if extracted else None),
                content_hash=known_hash,
            )
        )

    def _match_job(
        self, ruleset: RuleSet, articles: Sequence[BuiltArticle], suppress: bool
    ) -> MatchJob | None:
        """The new articles' rule matching, for the CPU pool: the daemon's event loop is the
        serial part of a pass, and matching was a sixth of it."""
        snapshot = self._snapshots.of(ruleset) if articles else None
        if snapshot is None:
            return None
        return MatchJob(snapshot, [a.view for a in articles], details=not suppress)

    async def _analyse(self, articles: Sequence[BuiltArticle], match: MatchJob | None) -> None:
        """Signatures, content hashes and (`match`) rule matches of a feed's new texts, in one
        trip to the CPU pool."""
        if not articles:
            return
        texts = [(a.row["title"], a.row["text"]) for a in articles]
        hashes = [a.row["content_hash"] or None for a in articles]
        for article, facts in zip(
            articles, await self.cpu.run(analyse, texts, hashes, match), strict=True
        ):
            article.facts = facts
            article.row["content_hash"] = facts.content_hash

    async def _extract(
        self, job: feed_db.FeedJob, entry: Entry, canonical: str | None
    ) -> tuple[Extracted | None, str | None]:
        """One page fetch per article even when several feeds carry it in the same poll."""
        if not (job.extract and self.settings.extract.enabled and entry.link):
            return None, None
        key = canonical or entry.link
        pending = self._extracting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._extract_page(job, entry))
            self._extracting[key] = pending
            pending.add_done_callback(lambda _: self._extracting.pop(key, None))
        return await asyncio.shield(pending)

    async def _extract_page(
        self, job: feed_db.FeedJob, entry: Entry
    ) -> tuple[Extracted | None, str | None]:
        assert entry.link is not None
        async with self._extract_slots:
            try:
                page = await self.fetcher.fetch_page(entry.link)
                extracted = await self.cpu.run(
                    extract_article, page.body, url=page.final_url, content_type=page.content_type
                )
            except (FetchError, ExtractError) as exc:
                log.info(
                    "article %s: %s (feed text used)", entry.link, exc, extra={"feed": job.label}
                )
                return None, f"article page: {exc}"
        if extracted is None:
            return None, "no article text found on the page (feed text used)"
        return extracted, None


def _candidates(
    entries: Sequence[Entry], identities: Sequence[EntryIdentity]
) -> dict[str, Candidate]:
    """New-entry candidates by identity key; a key repeated in one feed counts once."""
    found: dict[str, Candidate] = {}
    for entry, known in zip(entries, identities, strict=True):
        if known.key not in found:
            found[known.key] = Candidate(entry, known.key, known.canonical, known.fingerprint)
    return found
