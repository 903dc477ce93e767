"""Webhooks: the stored JSON body POSTed with an Idempotency-Key and an HMAC signature.

The body is stored at planning time, so every attempt posts the same bytes; only the signature's
timestamp changes. Receivers verify `X-Watcher-Signature: t=<unix>,v1=<hex>` where
hex = HMAC-SHA256(secret, f"{t}." + body) and drop repeats by `Idempotency-Key`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx

from watcher import __version__
from watcher.config import Settings, WebhookDestination
from watcher.deliver.base import Outgoing, SendFailure, register

SIGNATURE_HEADER = "X-Watcher-Signature"
RETRYABLE_STATUS = {408, 425, 429}
MAX_ANSWER = 500


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for a body signed at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


class WebhookSender:
    def __init__(self, name: str, config: WebhookDestination, settings: Settings) -> None:
        self.name = name
        self.config = config

    def headers(self, message: Outgoing, body: bytes) -> dict[str, str]:
        headers = {
            **self.config.headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"news-watcher/{__version__}",
            "Idempotency-Key": message.key,
            "X-Watcher-Event": message.kind,
            "X-Watcher-Delivery": str(message.delivery_id),
        }
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            headers[SIGNATURE_HEADER] = signature(secret, int(time.time()), body)
        return headers

    async def send(self, message: Outgoing) -> None:
        body = message.payload["json"].encode()
        url = self.config.url
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout) as client:
                response = await client.post(url, content=body, headers=self.headers(message, body))
        except httpx.TimeoutException:
            raise SendFailure(f"{url}: no answer within {self.config.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise SendFailure(f"{url}: {type(exc).__name__}: {exc}") from None
        self._judge(response)

    def _judge(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        answer = response.text[:MAX_ANSWER].strip()
        summary = f"{self.config.url} answered {status} {response.reason_phrase}: {answer}".strip()
        if status >= 500 or status in RETRYABLE_STATUS:
            raise SendFailure(summary, retry_after=_retry_after(response))
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            summary += f" (redirects to {location}; configure that URL)"
        raise SendFailure(summary.rstrip(": "), permanent=True)


@register("webhook")
def _factory(name: str, config: Any, settings: Settings) -> WebhookSender:
    return WebhookSender(name, config, settings)
