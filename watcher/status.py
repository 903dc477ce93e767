"""What `watcher status` (and /readyz) report, gathered in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import col, select

from watcher.config import Settings, redact_url
from watcher.db import articles as article_db
from watcher.db import state
from watcher.db.engine import session_scope
from watcher.db.models import Delivery, Feed
from watcher.timeutil import utcnow


def collect_status(settings: Settings, engine: Engine) -> dict[str, Any]:
    now = utcnow()
    with session_scope(engine) as session:
        feeds = {
            "total": session.exec(
                select(func.count()).select_from(Feed).where(col(Feed.listed))
            ).one(),
            "enabled": session.exec(
                select(func.count()).select_from(Feed).where(col(Feed.listed), col(Feed.enabled))
            ).one(),
            "failing": session.exec(
                select(func.count()).select_from(Feed).where(col(Feed.consecutive_failures) > 0)
            ).one(),
        }
        deliveries = dict(
            session.exec(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        workers = [
            {"id": w.id, "hostname": w.hostname, "pid": w.pid, "heartbeat_at": w.heartbeat_at}
            for w in state.recent_workers(
                session, now, timedelta(seconds=settings.db.heartbeat_seconds * 3)
            )
        ]
        return {
            "database": {"url": redact_url(settings.db_url), "reachable": True},
            "counts": article_db.counts(session),
            "feeds": feeds,
            "deliveries": deliveries,
            "ruleset": state.get(session, "ruleset"),
            "last_poll": state.get(session, "last_poll"),
            "workers": workers,
        }
