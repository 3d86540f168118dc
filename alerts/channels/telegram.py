"""Telegram Bot API `sendMessage` (HTML parse mode); the recipient is a chat id."""

from __future__ import annotations

import re
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

#: Telegram rejects longer messages.
MAX_MESSAGE_CHARS = 4096


@dataclass(frozen=True)
class TelegramConfig:
    bot_token: str
    api_base: str = "https://api.telegram.org"
    timeout_s: float = 10.0


@register_channel
class TelegramChannel(Channel):
    name: ClassVar[str] = "telegram"

    @classmethod
    def recipient_problem(cls, recipient: str) -> str | None:
        if re.fullmatch(r"-?\d+|@[A-Za-z][A-Za-z0-9_]{4,}", recipient):
            return None
        return f"{recipient!r} is not a Telegram chat id (e.g. -1001234567890) or @channelname"

    def __init__(self, config: TelegramConfig) -> None:
        if not config.bot_token:
            raise ValueError("Telegram bot token is empty; create a bot with @BotFather and set its token")
        self.config = config

    def send(
        self,
        message: OutboxMessage,
        rendered: RenderedAlert,
        before_transmit: Callable[[], None] = lambda: None,
    ) -> None:
        url = f"{self.config.api_base.rstrip('/')}/bot{self.config.bot_token}/sendMessage"
        text = rendered.chat_html
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 1] + "…"
        payload = {
            "chat_id": message.recipient,
            "text": text,
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        before_transmit()
        try:
            response = httpx.post(url, json=payload, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(f"Telegram API unreachable: {type(exc).__name__}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 200 and answer.get("ok") is True:
            return
        description = answer.get("description", response.text[:200])
        status = response.status_code
        detail = f"Telegram sendMessage to chat {message.recipient} failed: HTTP {status}: {description}"
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableDeliveryError(detail)
        raise PermanentDeliveryError(detail)
