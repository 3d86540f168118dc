"""A lease in the app database (quyền chạy lịch): at most one holder at a time, renewed by heartbeat.

Two service processes on one database both start a scheduler; only the one holding the lease runs
jobs. The holder renews the lease every few seconds; if it dies, the lease expires and another process
takes it over. Acquiring is one conditional UPDATE (or an INSERT for the first holder), which the
database serialises: SQLite's single writer, or PostgreSQL's row lock with the condition re-checked.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from alerts.store import UtcDateTime, service_leases


def holder_id() -> str:
    """Who holds a lease: host, process id and a random suffix (a reused pid is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_acquire(engine: Engine, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Take or renew lease `name` for `holder` until `now + ttl`; False while another holder's lease
    is still valid."""
    values = {"holder": holder, "renewed_at": now, "expires_at": now + ttl}
    # A renewal keeps its acquisition time; a takeover of an expired lease starts a new one.
    acquired_at = sa.case(
        (service_leases.c.holder == holder, service_leases.c.acquired_at),
        else_=sa.literal(now, UtcDateTime()),
    )
    with engine.begin() as conn:
        renewed = conn.execute(
            service_leases.update()
            .where(service_leases.c.name == name)
            .where(sa.or_(service_leases.c.holder == holder, service_leases.c.expires_at <= now))
            .values(acquired_at=acquired_at, **values)
        )
        if renewed.rowcount == 1:
            return True
        exists = conn.execute(sa.select(service_leases.c.name).where(service_leases.c.name == name)).first()
        if exists is not None:
            return False
    try:
        with engine.begin() as conn:
            conn.execute(service_leases.insert().values(name=name, acquired_at=now, **values))
    except IntegrityError:  # another process inserted it first
        return False
    return True


def release(engine: Engine, name: str, holder: str, now: datetime) -> None:
    """Give the lease up (on a clean shutdown) so another process takes over at once."""
    with engine.begin() as conn:
        conn.execute(
            service_leases.update()
            .where(service_leases.c.name == name, service_leases.c.holder == holder)
            .values(expires_at=now)
        )


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime


def current_lease(engine: Engine, name: str) -> LeaseInfo | None:
    """Who holds (or last held) lease `name`, for health pages and tests."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(service_leases).where(service_leases.c.name == name)).first()
    if row is None:
        return None
    return LeaseInfo(row.name, row.holder, row.acquired_at, row.renewed_at, row.expires_at)
