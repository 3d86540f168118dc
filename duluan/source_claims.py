"""Source leases for `duluan worker` (phân công nguồn): which worker crawls which source, and when next.

One row per source in `source_claims`: when it is due next, and — while a worker crawls it — who holds
it and until when. A worker claims a due source with one conditional UPDATE ("due, and unheld or its
lease expired"), which the database serialises: SQLite has a single writer; PostgreSQL re-checks the
WHERE clause after waiting for the row lock, so of two workers racing for one source exactly one
UPDATE matches. The holder renews its leases by heartbeat while it crawls and, when done, clears the
holder and sets the next due time from the source's schedule. A worker that dies stops renewing; once
its leases expire, another worker claims the sources.

`worker_crawls` keeps the history: one row per (source, holder) crawl with its start, its last lease
expiry and its end. A crawl whose holder died is closed as `abandoned` by the worker that takes the
source over, with the end set to its last lease expiry — the latest moment it could still have been
crawling (the crawl child dies with its worker, see `duluan/worker.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from alerts.store import UtcDateTime
from crawlers.registry import sources_table

metadata = sa.MetaData()

source_claims = sa.Table(
    "source_claims",
    metadata,
    sa.Column("source_id", sa.String(64), primary_key=True),
    sa.Column("next_due_at", UtcDateTime, nullable=False),
    sa.Column("holder", sa.String(200), nullable=True),
    sa.Column("claimed_at", UtcDateTime, nullable=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("last_finished_at", UtcDateTime, nullable=True),
    sa.Column("last_outcome", sa.String(32), nullable=True),
    sa.Index("ix_source_claims_next_due_at", "next_due_at"),
)

worker_crawls = sa.Table(
    "worker_crawls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Index("ix_worker_crawls_source_started", "source_id", "started_at"),
)

#: Outcomes of one source's crawl as `finish` records them.
OUTCOMES = ("ok", "unreachable", "failed", "timeout", "lease_lost", "stopped", "abandoned")


def add_missing_sources(engine: Engine, now: datetime) -> int:
    """Give every enabled source without a claims row one, due at once; returns rows added.

    Several workers may do this at the same moment: a row another worker inserted first is skipped.
    """
    missing_query = (
        sa.select(sources_table.c.id)
        .where(sources_table.c.enabled.is_(True))
        .where(~sa.exists().where(source_claims.c.source_id == sources_table.c.id))
    )
    with engine.connect() as conn:
        missing = [row.id for row in conn.execute(missing_query)]
    return sum(_add_row(engine, source_id, now) for source_id in missing)


def _add_row(engine: Engine, source_id: str, now: datetime) -> bool:
    """Insert a claims row due at `now`; False when it exists already (another process added it)."""
    try:
        with engine.begin() as conn:
            conn.execute(source_claims.insert().values(source_id=source_id, next_due_at=now))
    except IntegrityError:
        return False
    return True


def claim_due(engine: Engine, holder: str, ttl: timedelta, now: datetime, limit: int) -> list[str]:
    """Claim up to `limit` enabled sources that are due and not held (or whose lease expired).

    Returns the ids claimed, most overdue first. Each claim is its own conditional UPDATE, so a source
    another worker claimed in between is skipped, never shared.
    """
    candidates_query = (
        sa.select(source_claims.c.source_id)
        .join(sources_table, sources_table.c.id == source_claims.c.source_id)
        .where(sources_table.c.enabled.is_(True))
        .where(source_claims.c.next_due_at <= now)
        .where(sa.or_(source_claims.c.holder.is_(None), source_claims.c.expires_at <= now))
        .order_by(source_claims.c.next_due_at, source_claims.c.source_id)
        .limit(limit * 3)
    )
    with engine.connect() as conn:
        candidates = [row.source_id for row in conn.execute(candidates_query)]
    claimed: list[str] = []
    for source_id in candidates:
        if len(claimed) >= limit:
            break
        if _take(engine, source_id, holder, ttl, now, due_only=True):
            claimed.append(source_id)
    return claimed


def claim_source(engine: Engine, holder: str, source_id: str, ttl: timedelta, now: datetime) -> bool:
    """Claim one source now, due or not, unless another holder's lease on it is still valid.

    For `duluan up`'s scheduler, which decides itself when a source is due: taking the same lease as
    the workers means a source is never crawled by the service and a worker at once.
    """
    _add_row(engine, source_id, now)  # usually there already
    return _take(engine, source_id, holder, ttl, now, due_only=False)


def _take(
    engine: Engine, source_id: str, holder: str, ttl: timedelta, now: datetime, *, due_only: bool
) -> bool:
    """One conditional UPDATE that takes the lease; on success, start the crawl's history row."""
    update = (
        source_claims.update()
        .where(source_claims.c.source_id == source_id)
        .where(sa.or_(source_claims.c.holder.is_(None), source_claims.c.expires_at <= now))
        .values(holder=holder, claimed_at=now, expires_at=now + ttl)
    )
    if due_only:
        update = update.where(source_claims.c.next_due_at <= now)
    with engine.begin() as conn:
        if conn.execute(update).rowcount != 1:
            return False
        # A crawl still open under another holder is one whose worker died: close it at its last
        # lease expiry (it cannot have crawled past it; its lease ended before ours began).
        conn.execute(
            worker_crawls.update()
            .where(worker_crawls.c.source_id == source_id)
            .where(worker_crawls.c.finished_at.is_(None))
            .where(worker_crawls.c.holder != holder)
            .values(finished_at=worker_crawls.c.expires_at, outcome="abandoned")
        )
        conn.execute(
            worker_crawls.insert().values(
                source_id=source_id, holder=holder, started_at=now, expires_at=now + ttl
            )
        )
    return True


def renew(engine: Engine, holder: str, source_ids: Iterable[str], ttl: timedelta, now: datetime) -> set[str]:
    """Extend `holder`'s leases on `source_ids` to `now + ttl`; returns the ids still held.

    A lease that expired but that nobody took is still ours (the holder column did not change), so it is
    renewed; one another worker took over is not.
    """
    held: set[str] = set()
    with engine.begin() as conn:
        for source_id in source_ids:
            result = conn.execute(
                source_claims.update()
                .where(source_claims.c.source_id == source_id, source_claims.c.holder == holder)
                .values(expires_at=now + ttl)
            )
            if result.rowcount == 1:
                held.add(source_id)
                conn.execute(
                    worker_crawls.update()
                    .where(worker_crawls.c.source_id == source_id, worker_crawls.c.holder == holder)
                    .where(worker_crawls.c.finished_at.is_(None))
                    .values(expires_at=now + ttl)
                )
    return held


def finish(
    engine: Engine, holder: str, source_id: str, outcome: str, now: datetime, next_due_at: datetime
) -> bool:
    """Release `holder`'s lease on `source_id`, record the outcome and when the source is due next.

    False when the lease had been taken over meanwhile (then nothing about the source changes).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown crawl outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
    with engine.begin() as conn:
        released = conn.execute(
            source_claims.update()
            .where(source_claims.c.source_id == source_id, source_claims.c.holder == holder)
            .values(
                holder=None,
                claimed_at=None,
                expires_at=None,
                next_due_at=next_due_at,
                last_finished_at=now,
                last_outcome=outcome,
            )
        )
        conn.execute(
            worker_crawls.update()
            .where(worker_crawls.c.source_id == source_id, worker_crawls.c.holder == holder)
            .where(worker_crawls.c.finished_at.is_(None))
            .values(finished_at=now, outcome=outcome if released.rowcount == 1 else "lease_lost")
        )
    return released.rowcount == 1


def release_all(engine: Engine, holder: str, now: datetime) -> list[str]:
    """Give back every lease `holder` still has (a worker stopping), due again at once; the ids."""
    with engine.connect() as conn:
        ids = [
            row.source_id
            for row in conn.execute(
                sa.select(source_claims.c.source_id).where(source_claims.c.holder == holder)
            )
        ]
    released = [sid for sid in ids if finish(engine, holder, sid, "stopped", now, next_due_at=now)]
    return released


@dataclass(frozen=True)
class Claim:
    """One source's row, for `duluan status`, the health pages and tests."""

    source_id: str
    next_due_at: datetime
    holder: str | None
    claimed_at: datetime | None
    expires_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None


def claims(engine: Engine) -> list[Claim]:
    """Every source's claims row, by source id."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(source_claims).order_by(source_claims.c.source_id)).all()
    return [
        Claim(
            r.source_id,
            r.next_due_at,
            r.holder,
            r.claimed_at,
            r.expires_at,
            r.last_finished_at,
            r.last_outcome,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class CrawlRecord:
    """One row of the worker crawl history."""

    source_id: str
    holder: str
    started_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    outcome: str | None


def crawl_history(engine: Engine, source_id: str | None = None) -> list[CrawlRecord]:
    """The worker crawl history, oldest first (of one source, or all)."""
    query = sa.select(worker_crawls).order_by(worker_crawls.c.started_at, worker_crawls.c.id)
    if source_id is not None:
        query = query.where(worker_crawls.c.source_id == source_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        CrawlRecord(r.source_id, r.holder, r.started_at, r.expires_at, r.finished_at, r.outcome) for r in rows
    ]
