"""Delivery: destinations (email, webhook, chat, folder), the outbox, and the service the daemon
and the CLI call. `check_routes(ruleset, settings)` lists rules naming unknown destinations."""

from __future__ import annotations

from typing import Any

__all__ = ["DeliveryService", "check_routes", "daemon_jobs"]


def __getattr__(name: str) -> Any:
    # Lazy: watcher.digest imports submodules of this package, so this package must not import
    # the service (which imports watcher.digest) when it is first loaded.
    if name in __all__:
        from watcher.deliver import service

        return getattr(service, name)
    raise AttributeError(name)
