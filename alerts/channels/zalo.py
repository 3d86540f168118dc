"""Zalo Official Account message API (tin nhắn Zalo OA); the recipient is a follower's user id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import httpx

from alerts.channels.base import (
    Channel,
    OutboxMessage,
    PermanentDeliveryError,
    RenderedAlert,
    RetryableDeliveryError,
    register_channel,
)

#: Zalo OA text messages are limited to 2000 characters.
MAX_MESSAGE_CHARS = 2000
#: Error codes that concern our access token, not the recipient: keep the message queued.
TOKEN_ERRORS = frozenset({-124, -216})


@dataclass(frozen=True)
class ZaloConfig:
    access_token: str
    api_url: str = "https://openapi.zalo.me/v3.0/oa/message/cs"
    timeout_s: float = 10.0


@register_channel
class ZaloChannel(Channel):
    name: ClassVar[str] = "zalo"

    @classmethod
    def recipient_problem(cls, recipient: str) -> str | None:
        return None if recipient.isdigit() else f"{recipient!r} is not a Zalo user id (digits only)"

    def __init__(self, config: ZaloConfig) -> None:
        if not config.access_token:
            raise ValueError("Zalo OA access token is empty; set it in the settings")
        self.config = config

    def send(
        self,
        message: OutboxMessage,
        rendered: RenderedAlert,
        before_transmit: Callable[[], None] = lambda: None,
    ) -> None:
        text = rendered.text
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 1] + "…"
        payload = {"recipient": {"user_id": message.recipient}, "message": {"text": text}}
        headers = {"access_token": self.config.access_token}
        before_transmit()
        try:
            response = httpx.post(
                self.config.api_url, json=payload, headers=headers, timeout=self.config.timeout_s
            )
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(f"Zalo OA API unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableDeliveryError(f"Zalo OA API answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise PermanentDeliveryError(
                f"Zalo OA API answered HTTP {response.status_code} without JSON"
            ) from None
        error = int(answer.get("error", -1))
        if response.status_code == 200 and error == 0:
            return
        detail = f"Zalo OA message to {message.recipient} failed: error {error}: {answer.get('message', '')}"
        raise (RetryableDeliveryError if error in TOKEN_ERRORS else PermanentDeliveryError)(detail)
