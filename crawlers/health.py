"""Source health (tình trạng nguồn): what each crawl did, and which sources went quiet or broke.

Every `run_crawl` report is stored per source in the `crawl_runs` table (on the registry's
`metadata`, migrated by the composition root). `source_health` summarises it for `duluan sources`,
the UI and alert rules: last success, items in the last 24 h, errors by kind, robots denials, and
silent-source detection — a source that usually yields items every few hours but has yielded none
for much longer than that is flagged, because a silently broken feed looks like a quiet news day.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crawlers.registry import list_sources, metadata
from crawlers.run import CrawlReport

crawl_runs_table = sa.Table(
    "crawl_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(64), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fetched", sa.Integer, nullable=False, default=0),
    sa.Column("extracted", sa.Integer, nullable=False, default=0),
    sa.Column("indexed", sa.Integer, nullable=False, default=0),
    sa.Column("dropped", sa.Integer, nullable=False, default=0),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Column("unreachable", sa.Text, nullable=True),
)

#: A source is silent when its last new item is older than this many usual gaps…
SILENT_GAP_FACTOR = 3.0
#: …and older than this, so a source that publishes every 10 minutes is not flagged after 30.
SILENT_MIN_AGE = timedelta(hours=2)
#: Productive runs needed before the usual gap is trusted.
MIN_HISTORY = 3


def record_crawl_report(
    engine: sa.Engine, report: CrawlReport, *, finished_at: datetime | None = None
) -> int:
    """Store one row per source of a crawl report; returns the number of rows written."""
    finished = finished_at or datetime.now(UTC)
    rows = [
        {
            "source_id": source_id,
            "started_at": finished - timedelta(seconds=r.duration_s or report.duration_s),
            "finished_at": finished,
            "fetched": r.fetched,
            "extracted": r.extracted,
            "indexed": r.indexed,
            "dropped": r.dropped,
            "errors": dict(r.errors),
            "unreachable": r.unreachable,
        }
        for source_id, r in report.sources.items()
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(crawl_runs_table), rows)
    return len(rows)


@dataclass
class SourceHealth:
    """One source's health summary."""

    source_id: str
    name: str
    enabled: bool
    status: str = "never_run"  # ok | silent | unreachable | failing | never_run
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_new_item_at: datetime | None = None
    items_24h: int = 0
    errors_24h: dict[str, int] = field(default_factory=dict)
    robots_denied_24h: int = 0
    usual_gap_minutes: float | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "source_id": self.source_id,
            "name": self.name,
            "enabled": self.enabled,
            "status": self.status,
            "last_run_at": iso(self.last_run_at),
            "last_success_at": iso(self.last_success_at),
            "last_new_item_at": iso(self.last_new_item_at),
            "items_24h": self.items_24h,
            "errors_24h": self.errors_24h,
            "robots_denied_24h": self.robots_denied_24h,
            "usual_gap_minutes": self.usual_gap_minutes,
            "last_error": self.last_error,
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite drops the offset


def usual_gap(productive_times: list[datetime]) -> timedelta | None:
    """Median gap between runs that brought new items; None without enough history."""
    if len(productive_times) < MIN_HISTORY:
        return None
    ordered = sorted(productive_times)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    return timedelta(seconds=statistics.median(gaps))


def summarise_runs(health: SourceHealth, runs: list[dict[str, Any]], now: datetime) -> SourceHealth:
    """Fill a `SourceHealth` from the source's runs (oldest first); pure, for tests and the UI."""
    if not runs:
        return health
    day_ago = now - timedelta(hours=24)
    errors: Counter[str] = Counter()
    productive: list[datetime] = []
    for run in runs:
        finished = _aware(run["finished_at"])
        if not run["unreachable"]:
            health.last_success_at = finished
        if run["indexed"] > 0:
            productive.append(finished)
            health.last_new_item_at = finished
        if finished >= day_ago:
            health.items_24h += run["indexed"]
            errors.update(run["errors"] or {})
    last = runs[-1]
    health.last_run_at = _aware(last["finished_at"])
    health.errors_24h = dict(errors)
    health.robots_denied_24h = errors.get("robots_denied", 0)
    gap = usual_gap(productive[-30:])
    health.usual_gap_minutes = round(gap.total_seconds() / 60, 1) if gap else None
    if last["unreachable"]:
        health.status, health.last_error = "unreachable", last["unreachable"]
    elif last["errors"] and last["fetched"] == 0 and last["indexed"] == 0 and last["extracted"] == 0:
        health.status = "failing"
        health.last_error = ", ".join(f"{k}={v}" for k, v in sorted(last["errors"].items()))
    elif (
        gap is not None
        and health.last_new_item_at is not None
        and now - health.last_new_item_at > max(gap * SILENT_GAP_FACTOR, SILENT_MIN_AGE)
    ):
        health.status = "silent"
    else:
        health.status = "ok"
    return health


def source_health(
    engine: sa.Engine, now: datetime | None = None, history_days: int = 14
) -> list[SourceHealth]:
    """Health of every registered source (enabled or not), from the last `history_days` of runs."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=history_days)
    query = (
        sa.select(crawl_runs_table)
        .where(crawl_runs_table.c.finished_at >= since)
        .order_by(crawl_runs_table.c.finished_at, crawl_runs_table.c.id)
    )
    runs: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            runs.setdefault(row["source_id"], []).append(dict(row))
    return [
        summarise_runs(SourceHealth(source_id=s.id, name=s.name, enabled=s.enabled), runs.get(s.id, []), now)
        for s in list_sources(engine, enabled_only=False)
    ]
