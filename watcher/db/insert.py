"""INSERT … ON CONFLICT DO NOTHING for SQLite and PostgreSQL.

A unique constraint, not a prior SELECT, decides: two workers storing the same row at the same
moment end up with one row, and neither fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel


def insert_ignore(
    session: Session, model: type[SQLModel], values: dict[str, Any], conflict: Sequence[str]
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL; True when a row was inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__  # type: ignore[attr-defined]
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(table.c[conflict[0]])
    )
    # RETURNING, not rowcount: drivers disagree on rowcount for a skipped insert.
    return session.execute(statement).first() is not None


def upsert(
    session: Session,
    model: type[SQLModel],
    values: dict[str, Any],
    conflict: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT … ON CONFLICT DO UPDATE of the `update` columns: one atomic statement, so workers
    writing the same key at the same moment (all of them record the rule set at start-up) both
    succeed instead of one failing on the primary key."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model.__table__).values(**values)  # type: ignore[attr-defined]
    statement = statement.on_conflict_do_update(
        index_elements=list(conflict),
        set_={name: statement.excluded[name] for name in update},
    )
    session.execute(statement)
