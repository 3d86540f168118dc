"""The outbox sender (gửi cảnh báo): exactly-once delivery, even across crashes.

Each delivery row is claimed (`pending` → `sending`, in its own committed transaction) before the
network call, moves to `transmitting` right before the message itself leaves (after connecting and
logging in), and is marked after it. The claim is the idempotency check: a row that is not `pending`
is never sent, so two senders cannot both send it. A crash before `transmitting` sent nothing, so the
row is requeued (no alert is lost); a crash after it leaves `transmitting`, which is not resent (it
becomes `interrupted` and is reported) unless the channel's receiver de-duplicates on our
idempotency key. A channel that is down delays only its own messages; a bounced
recipient is recorded and never retried.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alerts.channels.base import Channel, OutboxMessage, PermanentDeliveryError, RetryableDeliveryError
from alerts.messages import group_message, render_alert, render_alert_group
from alerts.store import alert_deliveries, alerts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    base_backoff_s: float = 60.0
    max_backoff_s: float = 3600.0
    #: A row still `sending` this long after its claim was interrupted by a crash.
    interrupted_after_s: float = 600.0


@dataclass
class DeliveryReport:
    """What one sender pass did, keyed by idempotency key."""

    sent: list[str] = field(default_factory=list)
    retrying: dict[str, str] = field(default_factory=dict)
    bounced: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    channels_down: dict[str, str] = field(default_factory=dict)
    unconfigured_channels: set[str] = field(default_factory=set)


def backoff_delay(attempts: int, policy: DeliveryPolicy) -> timedelta:
    """Exponential backoff after the `attempts`-th failed attempt, capped."""
    seconds = policy.base_backoff_s * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, policy.max_backoff_s))


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        delivery_id=row.id,
        alert_id=row.alert_id,
        idempotency_key=row.idempotency_key,
        channel=row.channel,
        recipient=row.recipient,
        rule_name=row.rule_name,
        title=row.title,
        body=dict(row.body or {}),
        created_at=row.alert_created_at,
        attempts=row.attempts,
    )


def recover_interrupted(
    engine: Engine,
    channels: Mapping[str, Channel],
    now: datetime,
    policy: DeliveryPolicy,
    report: DeliveryReport,
) -> None:
    """Settle rows a crashed sender left behind: `sending` ones never left us and are requeued;
    `transmitting` ones are requeued if the receiver de-duplicates, else marked `interrupted`."""
    cutoff = now - timedelta(seconds=policy.interrupted_after_s)
    with engine.begin() as conn:
        stale = conn.execute(
            sa.select(
                alert_deliveries.c.id,
                alert_deliveries.c.channel,
                alert_deliveries.c.idempotency_key,
                alert_deliveries.c.status,
            )
            .where(alert_deliveries.c.status.in_(("sending", "transmitting")))
            .where(alert_deliveries.c.claimed_at < cutoff)
        ).all()
        for row in stale:
            channel = channels.get(row.channel)
            if row.status == "sending" or (channel is not None and channel.receiver_deduplicates):
                values: dict[str, Any] = {"status": "pending", "next_attempt_at": now}
                report.requeued.append(row.idempotency_key)
            else:
                values = {
                    "status": "interrupted",
                    "last_error": "the sender stopped between sending and recording; not resent to avoid a "
                    "duplicate — check with the recipient",
                }
                report.interrupted.append(row.idempotency_key)
            conn.execute(
                alert_deliveries.update()
                .where(alert_deliveries.c.id == row.id, alert_deliveries.c.status == row.status)
                .values(**values)
            )


def _claim(engine: Engine, delivery_id: int, now: datetime) -> bool:
    """The idempotency check: only a `pending` row can be taken, by exactly one sender."""
    with engine.begin() as conn:
        result = conn.execute(
            alert_deliveries.update()
            .where(alert_deliveries.c.id == delivery_id, alert_deliveries.c.status == "pending")
            .values(status="sending", claimed_at=now, attempts=alert_deliveries.c.attempts + 1)
        )
    return result.rowcount == 1


def _mark(engine: Engine, delivery_ids: list[int], **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            alert_deliveries.update().where(alert_deliveries.c.id.in_(delivery_ids)).values(**values)
        )


def _due_rows(engine: Engine, now: datetime, limit: int) -> list[Any]:
    query = (
        sa.select(
            alert_deliveries,
            alerts.c.title,
            alerts.c.body,
            alerts.c.rule_name,
            alerts.c.rule_id,
            alerts.c.created_at.label("alert_created_at"),
        )
        .join(alerts, alerts.c.id == alert_deliveries.c.alert_id)
        .where(alert_deliveries.c.status == "pending")
        .where(
            sa.or_(alert_deliveries.c.next_attempt_at.is_(None), alert_deliveries.c.next_attempt_at <= now)
        )
        .order_by(alert_deliveries.c.created_at, alert_deliveries.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def deliver_pending(
    engine: Engine,
    channels: Mapping[str, Channel],
    *,
    ui_base_url: str,
    now: datetime | None = None,
    policy: DeliveryPolicy | None = None,
    limit: int = 200,
) -> DeliveryReport:
    """One sender pass over the outbox; safe to run from several processes at once."""
    moment = now or datetime.now(UTC)
    rules = policy or DeliveryPolicy()
    report = DeliveryReport()
    recover_interrupted(engine, channels, moment, rules, report)
    for batch in group_due_rows(_due_rows(engine, moment, limit)):
        channel_name = batch[0].channel
        channel = channels.get(channel_name)
        if channel is None:
            report.unconfigured_channels.add(channel_name)
            continue
        if channel_name in report.channels_down:
            continue
        claimed = [row for row in batch if _claim(engine, row.id, moment)]
        if claimed:
            _send_batch(engine, channel, claimed, ui_base_url, moment, rules, report)
    return report


def group_due_rows(rows: list[Any]) -> list[list[Any]]:
    """One batch per rule, channel and recipient (first-seen order): several alerts of one rule due
    for the same person go out as one grouped message, not a flood."""
    batches: dict[tuple[int, str, str], list[Any]] = {}
    for row in rows:
        batches.setdefault((row.rule_id, row.channel, row.recipient), []).append(row)
    return list(batches.values())


def _send_batch(
    engine: Engine,
    channel: Channel,
    rows: list[Any],
    ui_base_url: str,
    now: datetime,
    policy: DeliveryPolicy,
    report: DeliveryReport,
) -> None:
    ids = [row.id for row in rows]
    keys = [row.idempotency_key for row in rows]
    messages = [_message(row) for row in rows]
    if len(messages) == 1:
        message, rendered = messages[0], render_alert(messages[0], ui_base_url)
    else:
        message, rendered = group_message(messages), render_alert_group(messages, ui_base_url)
    attempts = max(row.attempts for row in rows) + 1

    def transmitting() -> None:
        _mark(engine, ids, status="transmitting")

    try:
        channel.send(message, rendered, transmitting)
    except PermanentDeliveryError as exc:
        log.warning("delivery %s bounced: %s", message.idempotency_key, exc)
        _mark(engine, ids, status="bounced", last_error=str(exc))
        report.bounced.update(dict.fromkeys(keys, str(exc)))
        return
    except Exception as exc:  # retryable: the channel (or our rendering) failed this time
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, RetryableDeliveryError):
            report.channels_down[channel.name] = error
        else:
            log.exception("delivery %s failed unexpectedly", message.idempotency_key)
        if attempts >= policy.max_attempts:
            _mark(engine, ids, status="failed", last_error=f"gave up after {attempts} attempts: {error}")
            report.failed.update(dict.fromkeys(keys, error))
        else:
            retry_at = now + backoff_delay(attempts, policy)
            _mark(engine, ids, status="pending", last_error=error, next_attempt_at=retry_at)
            report.retrying.update(dict.fromkeys(keys, error))
        return
    _mark(engine, ids, status="sent", sent_at=now, last_error=None)
    report.sent.extend(keys)


def delivery_status_counts(engine: Engine) -> dict[str, int]:
    """Rows per status, for health pages and the CLI."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(alert_deliveries.c.status, sa.func.count()).group_by(alert_deliveries.c.status)
        ).all()
    return dict(Counter({status: int(count) for status, count in rows}))
