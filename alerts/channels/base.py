"""What every delivery channel implements, and the registry the sender looks channels up in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class OutboxMessage:
    """One delivery row joined with its alert: what to send, to whom, under which idempotency key."""

    delivery_id: int
    alert_id: str
    idempotency_key: str
    channel: str
    recipient: str
    rule_name: str
    title: str
    body: dict[str, Any]
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class RenderedAlert:
    """Per-channel text of an alert, produced by `alerts.messages` from Jinja2 templates."""

    subject: str
    text: str  # plain text (email alternative, Zalo, webhook)
    html: str  # full HTML (email)
    chat_html: str  # Telegram's HTML subset (b, i, a)
    link: str  # the alert in the web UI


class DeliveryError(Exception):
    """Base of delivery failures; the message says what the remote side answered."""


class RetryableDeliveryError(DeliveryError):
    """Transient: the channel is down or busy. The message is retried with backoff."""


class PermanentDeliveryError(DeliveryError):
    """Final: the recipient bounced or the request was rejected. Recorded and reported, never retried."""


class Channel(ABC):
    """A way to deliver alerts. Instances carry their configuration (server, token, secret)."""

    name: ClassVar[str]
    #: True when the receiver de-duplicates on our idempotency key, so a send interrupted by a crash
    #: may be repeated without a visible duplicate. Otherwise an interrupted send is never repeated.
    receiver_deduplicates: ClassVar[bool] = False

    @classmethod
    def recipient_problem(cls, recipient: str) -> str | None:
        """Why `recipient` cannot be an address on this channel (checked when a rule is saved), or None."""
        return None if recipient.strip() else "empty recipient"

    @abstractmethod
    def send(
        self,
        message: OutboxMessage,
        rendered: RenderedAlert,
        before_transmit: Callable[[], None] = lambda: None,
    ) -> None:
        """Deliver or raise a `DeliveryError` subclass.

        Call `before_transmit()` after everything that cannot reach the recipient (connecting, logging
        in) and right before the message itself leaves: the outbox records that point, so a crash
        before it is safely retried and only a crash after it is treated as "maybe delivered".
        """


CHANNEL_TYPES: dict[str, type[Channel]] = {}


def register_channel(cls: type[Channel]) -> type[Channel]:
    if cls.name in CHANNEL_TYPES:
        raise ValueError(f"channel {cls.name!r} registered twice")
    CHANNEL_TYPES[cls.name] = cls
    return cls
