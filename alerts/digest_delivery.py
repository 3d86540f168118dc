"""Sending the daily digest by e-mail through an outbox (gửi bản tin qua hàng đợi), exactly once.

`queue_digest` records one row per recipient group and address, pointing at the archived e-mail (.eml,
rendered once at digest time). `deliver_digests` claims each due row before sending (the idempotency
check), marks it after, retries a server that is down with backoff, and records a refused address as
`bounced`. A crash between send and mark leaves `sending`, which becomes `interrupted`, never resent.
Re-queueing the same day and group adds nothing: the idempotency key is day + group + address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alerts.channels.base import PermanentDeliveryError, RetryableDeliveryError
from alerts.channels.email import EmailChannel, message_id_for
from alerts.delivery import DeliveryPolicy, DeliveryReport, backoff_delay
from alerts.store import digest_deliveries

log = logging.getLogger(__name__)


def digest_idempotency_key(day: date, group: str, recipient: str) -> str:
    return f"digest:{day.isoformat()}:{group}:{recipient.lower()}"


def queue_digest(
    engine: Engine,
    day: date,
    groups: Mapping[str, Sequence[str]],
    message_path: Path,
    now: datetime | None = None,
) -> list[str]:
    """Queue the archived digest e-mail for every address of every group; returns the new keys
    (an address already queued for that day and group is skipped)."""
    moment = now or datetime.now(UTC)
    wanted = {
        digest_idempotency_key(day, group, address): (group, address)
        for group, addresses in groups.items()
        for address in addresses
    }
    with engine.begin() as conn:
        existing = set(
            conn.execute(
                sa.select(digest_deliveries.c.idempotency_key).where(
                    digest_deliveries.c.idempotency_key.in_(list(wanted))
                )
            ).scalars()
        )
        new_keys = [key for key in wanted if key not in existing]
        for key in new_keys:
            group, address = wanted[key]
            conn.execute(
                digest_deliveries.insert().values(
                    day=day,
                    recipient_group=group,
                    recipient=address,
                    idempotency_key=key,
                    message_path=str(message_path),
                    status="pending",
                    attempts=0,
                    next_attempt_at=moment,
                    created_at=moment,
                )
            )
    return new_keys


def load_archived_email(path: Path) -> EmailMessage:
    mail = BytesParser(policy=email_policy.default).parsebytes(path.read_bytes())
    assert isinstance(mail, EmailMessage)
    return mail


def personalise(mail: EmailMessage, recipient: str, idempotency_key: str, sender: str) -> EmailMessage:
    """The archived digest addressed to one recipient, with a stable Message-ID per delivery."""
    del mail["To"]
    del mail["Message-ID"]
    mail["To"] = recipient
    mail["Message-ID"] = message_id_for(idempotency_key, sender.rpartition("@")[2] or "localhost")
    mail["X-Duluan-Idempotency-Key"] = idempotency_key
    return mail


def _settle_interrupted(
    engine: Engine, now: datetime, policy: DeliveryPolicy, report: DeliveryReport
) -> None:
    """Stale `sending` rows never reached the SMTP server (requeued); stale `transmitting` ones may
    have (reported as `interrupted`, never resent)."""
    cutoff = now - timedelta(seconds=policy.interrupted_after_s)
    with engine.begin() as conn:
        stale = conn.execute(
            sa.select(digest_deliveries.c.id, digest_deliveries.c.idempotency_key, digest_deliveries.c.status)
            .where(digest_deliveries.c.status.in_(("sending", "transmitting")))
            .where(digest_deliveries.c.claimed_at < cutoff)
        ).all()
        for row in stale:
            if row.status == "sending":
                conn.execute(
                    digest_deliveries.update()
                    .where(digest_deliveries.c.id == row.id, digest_deliveries.c.status == "sending")
                    .values(status="pending", next_attempt_at=now)
                )
                continue
            conn.execute(
                digest_deliveries.update()
                .where(digest_deliveries.c.id == row.id, digest_deliveries.c.status == "transmitting")
                .values(
                    status="interrupted",
                    last_error="the sender stopped between sending and recording; not resent to avoid a "
                    "duplicate — check with the recipient",
                )
            )
            report.interrupted.append(row.idempotency_key)


def _claim(engine: Engine, row_id: int, now: datetime) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            digest_deliveries.update()
            .where(digest_deliveries.c.id == row_id, digest_deliveries.c.status == "pending")
            .values(status="sending", claimed_at=now, attempts=digest_deliveries.c.attempts + 1)
        )
    return result.rowcount == 1


def _mark(engine: Engine, row_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(digest_deliveries.update().where(digest_deliveries.c.id == row_id).values(**values))


def pending_digest_count(engine: Engine) -> int:
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(digest_deliveries.c.status.in_(("pending", "sending")))
        ).scalar()
    return int(count or 0)


def deliver_digests(
    engine: Engine,
    email: EmailChannel | None,
    *,
    now: datetime | None = None,
    policy: DeliveryPolicy | None = None,
    limit: int = 200,
) -> DeliveryReport:
    """One sender pass over the digest outbox; without an e-mail channel the rows simply wait."""
    moment = now or datetime.now(UTC)
    rules = policy or DeliveryPolicy()
    report = DeliveryReport()
    _settle_interrupted(engine, moment, rules, report)
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(digest_deliveries)
                .where(digest_deliveries.c.status == "pending")
                .where(
                    sa.or_(
                        digest_deliveries.c.next_attempt_at.is_(None),
                        digest_deliveries.c.next_attempt_at <= moment,
                    )
                )
                .order_by(digest_deliveries.c.id)
                .limit(limit)
            )
        )
    if rows and email is None:
        report.unconfigured_channels.add("email")
        return report
    for row in rows:
        if "email" in report.channels_down or email is None:
            break
        if not _claim(engine, row.id, moment):
            continue
        _send_one(engine, email, row, moment, rules, report)
    return report


def _send_one(
    engine: Engine,
    email: EmailChannel,
    row: Any,
    now: datetime,
    policy: DeliveryPolicy,
    report: DeliveryReport,
) -> None:
    key = row.idempotency_key
    attempts = row.attempts + 1
    try:
        mail = personalise(
            load_archived_email(Path(row.message_path)), row.recipient, key, email.config.sender
        )
        email.send_mail(
            mail, [row.recipient], before_transmit=lambda: _mark(engine, row.id, status="transmitting")
        )
    except PermanentDeliveryError as exc:
        log.warning("digest delivery %s bounced: %s", key, exc)
        _mark(engine, row.id, status="bounced", last_error=str(exc))
        report.bounced[key] = str(exc)
        return
    except FileNotFoundError as exc:
        error = f"archived digest e-mail missing: {exc.filename}; render the digest of {row.day} again"
        _mark(engine, row.id, status="failed", last_error=error)
        report.failed[key] = error
        return
    except Exception as exc:  # retryable: the SMTP server is down or busy
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, RetryableDeliveryError):
            report.channels_down["email"] = error
        else:
            log.exception("digest delivery %s failed unexpectedly", key)
        if attempts >= policy.max_attempts:
            _mark(engine, row.id, status="failed", last_error=f"gave up after {attempts} attempts: {error}")
            report.failed[key] = error
        else:
            retry_at = now + backoff_delay(attempts, policy)
            _mark(engine, row.id, status="pending", last_error=error, next_attempt_at=retry_at)
            report.retrying[key] = error
        return
    _mark(engine, row.id, status="sent", sent_at=now, last_error=None)
    report.sent.append(key)


def digest_delivery_rows(engine: Engine, day: date | None = None) -> list[dict[str, Any]]:
    """Digest deliveries (newest first), for the UI and the CLI."""
    query = sa.select(digest_deliveries).order_by(digest_deliveries.c.id.desc())
    if day is not None:
        query = query.where(digest_deliveries.c.day == day)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
