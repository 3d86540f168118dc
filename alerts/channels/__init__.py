"""Delivery channels (kênh gửi cảnh báo): one small class per channel behind a registry.

A channel sends ONE rendered message to ONE recipient and says how it failed: `RetryableDeliveryError`
(the channel is down; try later, and skip its other messages in this pass) or `PermanentDeliveryError`
(the recipient bounced or the request is rejected; never retry). Adding a channel is a new module with
a `@register_channel` class, plus an import line below.
"""

from alerts.channels import email, telegram, webhook, zalo
from alerts.channels.base import (
    CHANNEL_TYPES,
    Channel,
    DeliveryError,
    OutboxMessage,
    PermanentDeliveryError,
    RenderedAlert,
    RetryableDeliveryError,
    register_channel,
)

__all__ = [
    "CHANNEL_TYPES",
    "Channel",
    "DeliveryError",
    "OutboxMessage",
    "PermanentDeliveryError",
    "RenderedAlert",
    "RetryableDeliveryError",
    "email",
    "register_channel",
    "telegram",
    "webhook",
    "zalo",
]
