"""Test data for the delivery tests: a database with articles, stories and matches built through the
db helpers (`add_article`, `add_match`), so these tests do not depend on fetching or matching.
Also small real servers: an HTTP receiver whose answers a test scripts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from watcher.config import Settings
from watcher.db.articles import add_article, add_match
from watcher.db.engine import make_engine, session_scope
from watcher.db.models import Article, Delivery, DeliveryItem, Match, Story
from watcher.db.schema import ensure_schema
from watcher.domain import RuleMatch, Snippet
from watcher.rules import Rule, RuleSet

NOW = datetime(2026, 11, 21, 0, 10, tzinfo=UTC)  # 09:10 in Seoul


def settings_for(tmp_path: Path, url: str | None = None, **values: Any) -> Settings:
    base: dict[str, Any] = {"data_dir": tmp_path / "data", "rules_dir": tmp_path / "rules"}
    if url is not None:
        base["database_url"] = url
    return Settings(**{**base, **values})


def open_engine(settings: Settings) -> Engine:
    engine = make_engine(settings)
    ensure_schema(engine)
    return engine


def rule(
    rule_id: str,
    name: str | None = None,
    *,
    priority: str = "normal",
    digest: str = "daily",
    immediate: bool = False,
    destinations: list[str] | None = None,
    query: str | None = None,
) -> Rule:
    deliver: dict[str, Any] = {"digest": digest, "immediate": immediate}
    if destinations is not None:
        deliver["destinations"] = destinations
    return Rule.model_validate(
        {
            "id": rule_id,
            "name": name or rule_id,
            "query": query or rule_id,
            "priority": priority,
            "deliver": deliver,
        }
    )


def ruleset(*rules: Rule) -> RuleSet:
    return RuleSet(rules=tuple(rules), version="test-" + "-".join(r.id for r in rules))


def snippet_for(text: str, term: str, field_name: str = "text") -> Snippet:
    spans = tuple((m.start(), m.end()) for m in re.finditer(re.escape(term), text))
    return Snippet(field=field_name, text=text, highlights=spans)


@dataclass
class Corpus:
    """Writes stories (one Story row, one article per outlet) and their matches."""

    engine: Engine
    now: datetime = NOW  # matches are stored as matched an hour before this
    counter: int = 0
    last_story: int | None = None  # the story the last call wrote to
    match_ids: dict[str, list[int]] = field(default_factory=dict)

    def story(
        self,
        title: str,
        outlets: list[str],
        rules: list[str],
        *,
        term: str | None = None,
        snippet: str | None = None,
        published: datetime | None = None,
        url: str | None = None,
        suppressed: bool = False,
        backfill: bool = False,
        change: str | None = None,
        matched_at: datetime | None = None,
        story_id: int | None = None,
    ) -> list[int]:
        """Articles of one story (new, or `story_id`) from several outlets, each matched by
        `rules`; the match ids."""
        ids: list[int] = []
        published = published or self.now - timedelta(hours=2)
        matched_at = matched_at or self.now - timedelta(hours=1)
        with session_scope(self.engine) as session:
            story = session.get(Story, story_id) if story_id else None
            if story is None:
                story = Story(title=title, article_count=len(outlets))
                session.add(story)
                session.flush()
            self.last_story = story.id
            for offset, outlet in enumerate(outlets):
                self.counter += 1
                article = self._article(
                    session, story, title, outlet, url, offset, published, snippet
                )
                for rule_id in rules:
                    ids.append(
                        self._match(
                            session,
                            article,
                            rule_id,
                            term or title.split()[0],
                            snippet,
                            suppressed,
                            backfill,
                            change,
                            matched_at,
                        )
                    )
        return ids

    def revise(self, match_id: int, change: str, *, matched_at: datetime | None = None) -> int:
        """A new version of a matched article, matched again with what changed; the match id."""
        with session_scope(self.engine) as session:
            old = session.get(Match, match_id)
            assert old is not None
            article = session.get(Article, old.article_id)
            assert article is not None
            article.version += 1
            article.title += " (updated)"
            session.flush()
            found = RuleMatch(rule_id=old.rule_id, terms=tuple(old.terms))
            add_match(session, article, found, change_summary=change)
            match = session.exec(
                select(Match).where(
                    Match.article_id == article.id, Match.article_version == article.version
                )
            ).one()
            match.created_at = matched_at or self.now
            assert match.id is not None
            return match.id

    def _article(
        self,
        session: Session,
        story: Story,
        title: str,
        outlet: str,
        url: str | None,
        offset: int,
        published: datetime,
        snippet: str | None,
    ) -> Article:
        link = url or f"https://{outlet.lower().replace(' ', '')}.example/news/{self.counter}"
        row, _ = add_article(
            session,
            Article(
                url=link,
                canonical_url=f"{link}#{self.counter}",
                title=title,
                text=snippet or f"{title}. Body text of article {self.counter}.",
                source=outlet,
                lang="en",
                published_at=published + timedelta(minutes=offset),
                story_id=story.id,
            ),
        )
        if story.first_article_id is None:
            story.first_article_id = row.id
        return row

    def _match(
        self,
        session: Session,
        article: Article,
        rule_id: str,
        term: str,
        snippet: str | None,
        suppressed: bool,
        backfill: bool,
        change: str | None,
        matched_at: datetime,
    ) -> int:
        text = snippet or article.text
        found = RuleMatch(
            rule_id=rule_id,
            fields=("title", "text"),
            terms=(term,),
            snippets=(snippet_for(article.title, term, "title"), snippet_for(text, term)),
        )
        add_match(
            session, article, found, suppressed=suppressed, backfill=backfill, change_summary=change
        )
        match = session.exec(
            select(Match).where(Match.article_id == article.id, Match.rule_id == rule_id)
        ).one()
        match.created_at = matched_at
        assert match.id is not None
        self.match_ids.setdefault(rule_id, []).append(match.id)
        return match.id


def deliveries(engine: Engine) -> list[Delivery]:
    with Session(engine) as session:
        return list(session.exec(select(Delivery).order_by(Delivery.id)))


def items_of(engine: Engine, delivery_id: int) -> list[int]:
    with Session(engine) as session:
        query = select(DeliveryItem.match_id).where(DeliveryItem.delivery_id == delivery_id)
        return sorted(session.exec(query))


# -- a scripted HTTP receiver -----------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 answering POSTs with scripted statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[Received] = []
        self.hold = threading.Event()  # set() = answer; cleared = block before answering
        self.hold.set()
        self.hold_before_reading = False  # block before the request is read (nothing accepted)
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if outer.hold_before_reading:
                    outer.arrived.set()
                    outer.hold.wait(30)
                    return
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                outer.requests.append(Received(self.path, dict(self.headers), body))
                outer.arrived.set()
                outer.hold.wait(30)
                status = outer.statuses.pop(0) if outer.statuses else 200
                payload = b'{"error": "scripted failure"}' if status >= 300 else b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    with Receiver(statuses) as server:
        yield server
