"""What a destination is, and how a config `type` finds its implementation.

Every destination receives the same stored, already-rendered message (`Outgoing.payload`), so a
retry or a repeat after a crash sends the same bytes with the same Message-ID / Idempotency-Key.
A destination either returns (the far end accepted the message) or raises `SendFailure`, saying
whether trying again can help. Built-in destinations register themselves the same way a plugin
would: `@register("webhook")` on a factory taking (name, config, settings).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from watcher.config import Settings
from watcher.errors import DeliveryError

BUILTIN_MODULES = ("smtp", "webhook", "chat", "folder")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One claimed delivery as a destination sees it."""

    delivery_id: int
    destination: str
    kind: str  # "digest" | "alert"
    key: str  # the idempotency key
    payload: dict[str, Any]
    progress: dict[str, Any] = field(default_factory=dict)  # what a partial send already did

    @property
    def log_extra(self) -> dict[str, Any]:
        return {"delivery": self.delivery_id, "destination": self.destination}


class SendFailure(DeliveryError):
    """The destination did not take the message.

    `permanent`: retrying cannot help (a 4xx answer, an SMTP 5xx, a refused certificate).
    `retry_after`: seconds the far end asked us to wait. `progress`: parts that did go through
    (e.g. chat URLs already notified), kept so a retry does not repeat them.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        progress: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.retry_after = retry_after
        self.progress = progress or {}


class Destination(Protocol):
    """A place messages go. `send` returns once the far end accepted the message."""

    name: str

    async def send(self, message: Outgoing) -> None: ...


Factory = Callable[[str, Any, Settings], Destination]
_REGISTRY: dict[str, Factory] = {}


def register(config_type: str) -> Callable[[Factory], Factory]:
    """Make `factory` the implementation of destinations with `type = config_type`."""

    def add(factory: Factory) -> Factory:
        _REGISTRY[config_type] = factory
        return factory

    return add


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"watcher.deliver.{module}")


def build(name: str, config: Any, settings: Settings) -> Destination:
    """The destination for one `[destinations.<name>]` table."""
    _load_builtins()
    factory = _REGISTRY.get(config.type)
    if factory is None:
        known = ", ".join(sorted(_REGISTRY))
        raise DeliveryError(f"destination {name!r}: unknown type {config.type!r} (known: {known})")
    return factory(name, config, settings)


def build_all(settings: Settings) -> dict[str, Destination]:
    """Every effective destination (the outbox folder when none is configured)."""
    return {
        name: build(name, config, settings)
        for name, config in settings.effective_destinations().items()
    }
