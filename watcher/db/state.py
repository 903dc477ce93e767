"""Small named facts (last poll, active rule set, last reload error) and worker heartbeats."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from watcher.db.insert import upsert
from watcher.db.models import State, Worker


def put(session: Session, key: str, value: dict[str, Any], now: datetime) -> None:
    values = {"key": key, "value": value, "updated_at": now}
    upsert(session, State, values, conflict=["key"], update=["value", "updated_at"])


def get(session: Session, key: str) -> dict[str, Any] | None:
    row = session.get(State, key)
    return None if row is None else {**row.value, "updated_at": row.updated_at.isoformat()}


def heartbeat(session: Session, worker: Worker, now: datetime) -> None:
    values = {
        "id": worker.id,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "version": worker.version,
        "started_at": worker.started_at,
        "heartbeat_at": now,
    }
    upsert(session, Worker, values, conflict=["id"], update=["heartbeat_at"])


def forget_worker(session: Session, worker_id: str) -> None:
    row = session.get(Worker, worker_id)
    if row is not None:
        session.delete(row)


def recent_workers(session: Session, now: datetime, within: timedelta) -> list[Worker]:
    query = select(Worker).where(col(Worker.heartbeat_at) >= now - within)
    return list(session.exec(query.order_by(col(Worker.started_at))))
