"""Stories and article signatures: the SQL behind `watcher.stories` and `watcher stories`.

The per-article statements are Core statements on the session's connection (same transaction as
the caller): they run once per stored article, and the ORM's unit of work tripled their cost. The
caller has flushed the Article row before (it needed its id), so foreign keys hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table, bindparam, insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from watcher.db.models import Article, ArticleSignature, Story

_SIGNATURES: Table = ArticleSignature.__table__  # type: ignore[attr-defined]
_STORIES: Table = Story.__table__  # type: ignore[attr-defined]
_ARTICLES: Table = Article.__table__  # type: ignore[attr-defined]

# Built once (building a statement costs more than running it on SQLite).
_ADD_SIGNATURE = insert(_SIGNATURES)
_REPLACE_SIGNATURE = (
    update(_SIGNATURES)
    .where(_SIGNATURES.c.article_id == bindparam("article"))
    .values(signature=bindparam("signature"), title_key=bindparam("key"))
)
_JOIN_STORY = (
    update(_STORIES)
    .where(_STORIES.c.id == bindparam("story"))
    .values(article_count=_STORIES.c.article_count + 1, updated_at=bindparam("at"))
    .returning(_STORIES.c.id)
)
_SET_STORY = (
    update(_ARTICLES)
    .where(_ARTICLES.c.id == bindparam("article"))
    .values(story_id=bindparam("story"))
)


@dataclass(frozen=True, slots=True)
class SignatureRow:
    article_id: int
    story_id: int
    signature: bytes
    title_key: str
    created_at: datetime


def signatures_since(
    session: Session, since: datetime, *, after_id: int = 0, also: Iterable[int] = ()
) -> list[SignatureRow]:
    """Rows created since `since` with article_id above `after_id` (plus the ids in `also`)."""
    table, also = _SIGNATURES, list(also)
    newer = table.c.article_id > after_id
    query = (
        core_select(
            table.c.article_id,
            table.c.story_id,
            table.c.signature,
            table.c.title_key,
            table.c.created_at,
        )
        .where(
            table.c.created_at >= since, or_(newer, table.c.article_id.in_(also)) if also else newer
        )
        .order_by(table.c.article_id)
    )
    return [SignatureRow(*row) for row in session.connection().execute(query)]


def signature_of(session: Session, article_id: int) -> SignatureRow | None:
    query = core_select(
        _SIGNATURES.c.article_id,
        _SIGNATURES.c.story_id,
        _SIGNATURES.c.signature,
        _SIGNATURES.c.title_key,
        _SIGNATURES.c.created_at,
    ).where(_SIGNATURES.c.article_id == article_id)
    row = session.connection().execute(query).first()
    return SignatureRow(*row) if row is not None else None


def add_signatures(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """ArticleSignature rows (article_id, story_id, signature, title_key, created_at)."""
    if rows:
        session.connection().execute(_ADD_SIGNATURE, list(rows))


def replace_signature(session: Session, article_id: int, signature: bytes, title_key: str) -> None:
    values = {"article": article_id, "signature": signature, "key": title_key}
    session.connection().execute(_REPLACE_SIGNATURE, values)


# Ids come back keyed by first_article_id (distinct within a batch), not in parameter order:
# asking SQLAlchemy for parameter order makes it insert one row per statement on SQLite, which
# was ten thousand statements and a sixth of the daemon's CPU in a cold pass.
_NEW_STORIES = insert(_STORIES).returning(_STORIES.c.first_article_id, _STORIES.c.id)


def new_stories(session: Session, rows: Sequence[dict[str, object]]) -> list[int]:
    """Several Story rows (first_article_id, title, article_count, created_at, updated_at), each
    starting with a different article, in as few statements as the driver allows; their ids in
    the order given."""
    if not rows:
        return []
    result = session.connection().execute(_NEW_STORIES, list(rows))
    ids = {int(first): int(story_id) for first, story_id in result.all()}
    return [ids[int(row["first_article_id"])] for row in rows]  # type: ignore[call-overload]


def join_story(session: Session, story_id: int, at: datetime) -> bool:
    """Count one more article in a story; False when the story row does not exist (any more)."""
    found = session.connection().execute(_JOIN_STORY, {"story": story_id, "at": at}).first()
    return found is not None


def set_article_stories(session: Session, links: Sequence[tuple[int, int]]) -> None:
    """(article id, story id) pairs; on the ORM object when the session holds it (it may flush
    it again), else in SQL, in one executemany."""
    rows = []
    for article_id, story_id in links:
        row = session.identity_map.get(Session.identity_key(Article, article_id))
        if isinstance(row, Article):
            row.story_id = story_id
        else:
            rows.append({"article": article_id, "story": story_id})
    if rows:
        session.connection().execute(_SET_STORY, rows)


def article_created_at(session: Session, article_id: int) -> datetime | None:
    query = core_select(_ARTICLES.c.created_at).where(_ARTICLES.c.id == article_id)
    return session.connection().execute(query).scalar_one_or_none()


# -- listing -------------------------------------------------------------------------------


@dataclass(slots=True)
class StoryArticle:
    id: int
    title: str
    source: str
    url: str
    created_at: datetime


@dataclass(slots=True)
class StoryView:
    """A story as `watcher stories` shows it: its articles, oldest first."""

    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    articles: list[StoryArticle] = field(default_factory=list)

    @property
    def outlets(self) -> list[str]:
        return sorted({article.source for article in self.articles if article.source})


def recent_stories(session: Session, since: datetime, limit: int = 100) -> list[StoryView]:
    """Stories that gained an article since `since`, most recently active first."""
    query = (
        select(Story)
        .where(col(Story.updated_at) >= since)
        .order_by(col(Story.updated_at).desc(), col(Story.id).desc())
        .limit(limit)
    )
    views = {
        story.id: StoryView(story.id, story.title, story.created_at, story.updated_at)
        for story in session.exec(query)
        if story.id is not None
    }
    if not views:
        return []
    articles = (
        select(Article)
        .where(col(Article.story_id).in_(list(views)))
        .order_by(col(Article.created_at), col(Article.id))
    )
    for article in session.exec(articles):
        assert article.id is not None and article.story_id is not None
        views[article.story_id].articles.append(
            StoryArticle(article.id, article.title, article.source, article.url, article.created_at)
        )
    return list(views.values())
