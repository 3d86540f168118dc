"""Who receives the daily digest by e-mail besides the configured groups: people who subscribed in the
UI (đăng ký nhận bản tin). One row per user; the address is the one the user gave.

The composition root adds these addresses as one more recipient group, `SUBSCRIBERS_GROUP`, when it
queues the digest, so delivery, retries and idempotency stay those of `alerts.digest_delivery`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from alerts.store import UtcDateTime

metadata = sa.MetaData()

#: The recipient group of UI subscriptions in the digest outbox.
SUBSCRIBERS_GROUP = "dang-ky-tren-web"
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")

digest_subscriptions = sa.Table(
    "digest_subscriptions",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


class SubscriptionError(ValueError):
    """The subscription cannot be stored as given; the message says what to change."""


def subscribe(engine: sa.Engine, username: str, email: str) -> dict[str, Any]:
    """Subscribe `username` with `email` (replaces an earlier address)."""
    address = email.strip()
    if len(address) > 320 or not _EMAIL.match(address):
        raise SubscriptionError(f"{email!r} is not an e-mail address (e.g. ten@donnai.gov.vn)")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(digest_subscriptions.delete().where(digest_subscriptions.c.username == username))
        conn.execute(digest_subscriptions.insert().values(username=username, email=address, created_at=now))
    return {"username": username, "email": address, "created_at": now.isoformat()}


def unsubscribe(engine: sa.Engine, username: str) -> bool:
    """Remove `username`'s subscription; False when there was none."""
    with engine.begin() as conn:
        result = conn.execute(
            digest_subscriptions.delete().where(digest_subscriptions.c.username == username)
        )
    return bool(result.rowcount)


def get_subscription(engine: sa.Engine, username: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(digest_subscriptions).where(digest_subscriptions.c.username == username)
        ).first()
    return (
        None
        if row is None
        else {"username": row.username, "email": row.email, "created_at": row.created_at.isoformat()}
    )


def list_subscriptions(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(digest_subscriptions).order_by(digest_subscriptions.c.username))
        return [
            {"username": r.username, "email": r.email, "created_at": r.created_at.isoformat()} for r in rows
        ]


def subscriber_groups(engine: sa.Engine, groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """`groups` plus the UI subscribers whose account is active, as `SUBSCRIBERS_GROUP` (addresses
    already in a configured group are not added twice)."""
    from duluan.accounts import users

    configured = {a.lower() for addresses in groups.values() for a in addresses}
    query = (
        sa.select(digest_subscriptions.c.email)
        .join(users, users.c.username == digest_subscriptions.c.username)
        .where(users.c.active.is_(True))
    )
    with engine.connect() as conn:
        emails = set(conn.execute(query).scalars())
    extra = sorted(e for e in emails if e.lower() not in configured)
    return {**groups, SUBSCRIBERS_GROUP: extra} if extra else dict(groups)
