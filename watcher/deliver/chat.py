"""Chat (Slack, Discord, Telegram, Teams, ntfy, Matrix, … — anything Apprise speaks).

Each Apprise URL is notified on its own, and the ones that accepted are remembered in the
delivery's progress, so a retry after one service failed does not repeat the message on the others.
Apprise blocks, so it runs in a worker thread. URLs carry tokens: they are never logged, only the
service name and host.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import apprise

from watcher.config import ChatDestination, Settings
from watcher.deliver.base import Outgoing, SendFailure, register

log = logging.getLogger("watcher.deliver.chat")


def _label(url: str) -> str:
    """`slack://…` → `slack`, `json://127.0.0.1:8080/x` → `json://127.0.0.1:8080` (no tokens)."""
    parts = urlsplit(url)
    host = parts.hostname if parts.scheme in ("json", "form", "xml", "ntfy", "ntfys") else None
    port = f":{parts.port}" if host and parts.port else ""
    return f"{parts.scheme}://{host}{port}" if host else parts.scheme or "?"


class ChatSender:
    def __init__(self, name: str, config: ChatDestination, settings: Settings) -> None:
        self.name = name
        self.urls = [url.get_secret_value() for url in config.urls]

    async def send(self, message: Outgoing) -> None:
        done: list[int] = list(message.progress.get("chat_done", []))
        failures: list[str] = []
        permanent = True
        for index, url in enumerate(self.urls):
            if index in done:
                continue
            ok, problem, retryable = await asyncio.to_thread(self._notify, url, message.payload)
            if ok:
                done.append(index)
            else:
                failures.append(f"{_label(url)}: {problem}")
                permanent = permanent and not retryable
        if failures:
            raise SendFailure(
                f"chat {self.name!r}: " + "; ".join(failures),
                permanent=permanent,
                progress={"chat_done": sorted(done)},
            )

    @staticmethod
    def _notify(url: str, payload: dict[str, Any]) -> tuple[bool, str, bool]:
        """(accepted, what went wrong, whether retrying may help)."""
        notifier = apprise.Apprise()
        if not notifier.add(url):
            return False, "not a URL Apprise understands (see the Apprise wiki)", False
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            result = notifier.notify(
                body=payload["chat_body"],
                title=payload["chat_title"],
                body_format=apprise.NotifyFormat.TEXT,
            )
            problem = " ".join(captured.getvalue().split())[-400:]
        return bool(result), problem or "the service did not accept the message", True


@register("chat")
def _factory(name: str, config: Any, settings: Settings) -> ChatSender:
    return ChatSender(name, config, settings)
