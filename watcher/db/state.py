"""Small named facts (last poll, active rule set, last reload error) and worker heartbeats."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from watcher.db.models import State, Worker


def put(session: Session, key: str, value: dict[str, Any], now: datetime) -> None:
    row = session.get(State, key)
    if row is None:
        session.add(State(key=key, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now


def get(session: Session, key: str) -> dict[str, Any] | None:
    row = session.get(State, key)
    return None if row is None else {**row.value, "updated_at": row.updated_at.isoformat()}


def heartbeat(session: Session, worker: Worker, now: datetime) -> None:
    row = session.get(Worker, worker.id)
    if row is None:
        worker.heartbeat_at = now
        session.add(worker)
    else:
        row.heartbeat_at = now


def forget_worker(session: Session, worker_id: str) -> None:
    row = session.get(Worker, worker_id)
    if row is not None:
        session.delete(row)


def recent_workers(session: Session, now: datetime, within: timedelta) -> list[Worker]:
    query = select(Worker).where(col(Worker.heartbeat_at) >= now - within)
    return list(session.exec(query.order_by(col(Worker.started_at))))
