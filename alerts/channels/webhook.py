"""Generic webhook: JSON POST signed with HMAC-SHA256 (chữ ký HMAC) so the receiver can trust it.

Headers: `X-Duluan-Timestamp` (Unix seconds), `X-Duluan-Signature: sha256=<hex>` over
`"<timestamp>." + body`, and `Idempotency-Key`, on which receivers de-duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from alerts.channels.base import (
    Channel,
    OutboxMessage,
    PermanentDeliveryError,
    RenderedAlert,
    RetryableDeliveryError,
    register_channel,
)

SIGNATURE_HEADER = "X-Duluan-Signature"
TIMESTAMP_HEADER = "X-Duluan-Timestamp"


@dataclass(frozen=True)
class WebhookConfig:
    secret: str
    timeout_s: float = 10.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time check of a signature."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_payload(message: OutboxMessage, rendered: RenderedAlert) -> dict[str, Any]:
    return {
        "alert_id": message.alert_id,
        "idempotency_key": message.idempotency_key,
        "rule": message.rule_name,
        "title": message.title,
        "created_at": message.created_at.isoformat(),
        "link": rendered.link,
        "text": rendered.text,
        "details": message.body,
    }


def raise_for_http_status(response: httpx.Response, what: str) -> None:
    """2xx is success; 408/429/5xx are worth retrying; any other 4xx is a permanent rejection."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"{what} answered HTTP {status}: {response.text[:300]}"
    if status in (408, 425, 429) or status >= 500:
        raise RetryableDeliveryError(detail)
    raise PermanentDeliveryError(detail)


@register_channel
class WebhookChannel(Channel):
    name: ClassVar[str] = "webhook"
    receiver_deduplicates: ClassVar[bool] = True

    @classmethod
    def recipient_problem(cls, recipient: str) -> str | None:
        url = urlsplit(recipient)
        if url.scheme in ("http", "https") and url.netloc:
            return None
        return f"{recipient!r} is not an http(s) URL"

    def __init__(self, config: WebhookConfig) -> None:
        if not config.secret:
            raise ValueError("webhook secret is empty; set one so receivers can verify the signature")
        self.config = config

    def send(
        self,
        message: OutboxMessage,
        rendered: RenderedAlert,
        before_transmit: Callable[[], None] = lambda: None,
    ) -> None:
        body = json.dumps(webhook_payload(message, rendered), ensure_ascii=False).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.secret, timestamp, body),
            "Idempotency-Key": message.idempotency_key,
        }
        before_transmit()
        try:
            response = httpx.post(
                message.recipient, content=body, headers=headers, timeout=self.config.timeout_s
            )
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(f"webhook {message.recipient} unreachable: {exc}") from exc
        raise_for_http_status(response, f"webhook {message.recipient}")
