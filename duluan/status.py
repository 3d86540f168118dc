"""`duluan status`: the service's health in one terminal table (tình trạng hệ thống).

Read-only: it never migrates the database or writes the index. Each check is `ok`, `warn` (look at it
soon) or `fail` (the service is not doing its job); any `fail` makes the command exit with code 1, so
cron or a monitoring agent can run it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.markup import escape
from rich.table import Table

from duluan.metrics import JOBS_JOURNAL, index_last_commit, journal_dir, read_journal
from duluan.settings import Settings

#: Disk free below these is a warning / a failure (bytes, or share of the disk).
DISK_WARN = (5 * 1024**3, 0.10)
DISK_FAIL = (1 * 1024**3, 0.03)
#: A pending outbox message older than these is a warning / a failure.
OUTBOX_WARN = timedelta(minutes=30)
OUTBOX_FAIL = timedelta(hours=6)


@dataclass
class Check:
    name: str
    level: str  # ok | warn | fail
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatusReport:
    checks: list[Check]
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return all(check.level != "fail" for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checked_at": self.checked_at.isoformat(),
            "checks": [
                {"name": c.name, "level": c.level, "summary": c.summary, "details": c.details}
                for c in self.checks
            ],
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def check_database(engine: sa.Engine) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from duluan.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.SQLAlchemyError as exc:
        return Check("database", "fail", f"unreachable: {type(exc).__name__}: {str(exc)[:200]}")
    details = {"revision": current, "head": head, "url": engine.url.render_as_string(hide_password=True)}
    if current != head:
        return Check(
            "database",
            "fail",
            f"schema at {current or 'none'}, code expects {head}: start the service (it migrates)",
            details,
        )
    return Check("database", "ok", f"reachable, schema at head {head}", details)


def check_index(settings: Settings, now: datetime) -> Check:
    from duluan.wiring import open_backend

    try:
        backend = open_backend(settings)
        try:
            documents = backend.count()
        finally:
            backend.close()
    except Exception as exc:  # report it: that is what this command is for
        return Check("index", "fail", f"cannot open: {type(exc).__name__}: {str(exc)[:200]}")
    last = index_last_commit(settings)
    details = {"documents": documents, "last_indexed_at": last.isoformat() if last else None}
    return Check("index", "ok", f"{documents} documents, last written {_ago(last, now)}", details)


def check_sources(engine: sa.Engine) -> Check:
    from crawlers.health import source_health

    try:
        health = [h for h in source_health(engine) if h.enabled]
    except sa.exc.SQLAlchemyError as exc:
        return Check("sources", "fail", f"cannot read the registry: {type(exc).__name__}")
    by_status: dict[str, list[str]] = {}
    for h in health:
        by_status.setdefault(h.status, []).append(h.source_id)
    counts = {status: len(ids) for status, ids in sorted(by_status.items())}
    broken = by_status.get("unreachable", []) + by_status.get("failing", [])
    silent = by_status.get("silent", [])
    ran = [h for h in health if h.status != "never_run"]
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no enabled sources"
    problems = [
        f"{sid} ({status})"
        for status in ("unreachable", "failing", "silent")
        for sid in by_status.get(status, [])
    ]
    if problems:
        summary += "; attention: " + ", ".join(problems[:8]) + (" …" if len(problems) > 8 else "")
    details = {"counts": counts, "problems": problems}
    if not health:
        return Check("sources", "warn", summary, details)
    if ran and len(broken) * 2 > len(ran):
        return Check("sources", "fail", summary, details)
    return Check("sources", "warn" if broken or silent else "ok", summary, details)


def check_outbox(engine: sa.Engine, now: datetime) -> Check:
    from alerts.store import alert_deliveries, digest_deliveries

    pending = failed = 0
    oldest: datetime | None = None
    try:
        with engine.connect() as conn:
            for table in (alert_deliveries, digest_deliveries):
                waiting = table.c.status.in_(("pending", "sending", "transmitting"))
                pending += int(conn.execute(sa.select(sa.func.count()).where(waiting)).scalar() or 0)
                failed += int(
                    conn.execute(
                        sa.select(sa.func.count()).where(table.c.status.in_(("failed", "bounced")))
                    ).scalar()
                    or 0
                )
                first = conn.execute(sa.select(sa.func.min(table.c.created_at)).where(waiting)).scalar()
                if first is not None and (oldest is None or _aware(first) < oldest):
                    oldest = _aware(first)
    except sa.exc.SQLAlchemyError as exc:
        return Check("outbox", "fail", f"cannot read: {type(exc).__name__}")
    age = now - oldest if oldest else timedelta(0)
    summary = f"{pending} waiting" + (f" (oldest {_ago(oldest, now)})" if oldest else "")
    summary += f", {failed} failed/bounced"
    details = {
        "pending": pending,
        "failed": failed,
        "oldest_pending_at": oldest.isoformat() if oldest else None,
    }
    level = "fail" if age > OUTBOX_FAIL else "warn" if age > OUTBOX_WARN else "ok"
    return Check("outbox", level, summary, details)


def check_scheduler(settings: Settings, engine: sa.Engine, now: datetime) -> Check:
    from alerts.lease import current_lease

    try:
        lease = current_lease(engine, "scheduler")
    except sa.exc.SQLAlchemyError as exc:
        return Check("scheduler", "fail", f"cannot read the lease: {type(exc).__name__}")
    jobs = read_journal(journal_dir(settings.home) / JOBS_JOURNAL)
    failing = sorted(job_id for job_id, job in jobs.items() if job.get("last_outcome") == "error")
    last_runs = {
        job_id: {
            "outcome": job.get("last_outcome"),
            "at": datetime.fromtimestamp(job["last_run_at"], UTC).isoformat(),
        }
        for job_id, job in sorted(jobs.items())
        if job.get("last_run_at")
    }
    details: dict[str, Any] = {"jobs": last_runs, "failing_jobs": failing}
    if lease is None or _aware(lease.expires_at) <= now:
        details["last_holder"] = lease.holder if lease else None
        return Check(
            "scheduler", "fail", "no process holds the scheduler lease: is `duluan up` running?", details
        )
    details["holder"] = lease.holder
    summary = f"lease held by {lease.holder} since {_ago(_aware(lease.acquired_at), now)}"
    if jobs:
        summary += f"; {len(jobs)} job(s) ran"
    if failing:
        summary += "; last run failed: " + ", ".join(failing[:6])
    return Check("scheduler", "warn" if failing else "ok", summary, details)


def check_disk(settings: Settings) -> Check:
    path = settings.home if settings.home.exists() else settings.home.resolve().parent
    usage = shutil.disk_usage(path)
    share = usage.free / usage.total if usage.total else 0.0
    summary = (
        f"{usage.free / 1024**3:.1f} GiB free of {usage.total / 1024**3:.1f} GiB ({share:.0%}) at {path}"
    )
    details = {"free_bytes": usage.free, "total_bytes": usage.total}
    if usage.free < DISK_FAIL[0] or share < DISK_FAIL[1]:
        return Check("disk", "fail", summary, details)
    if usage.free < DISK_WARN[0] or share < DISK_WARN[1]:
        return Check("disk", "warn", summary, details)
    return Check("disk", "ok", summary, details)


def check_models(settings: Settings) -> Check:
    """Which classifier files are in service, and whether configured strong models can load.

    Reads files only (no torch): a strong model whose base dir is gone would stop the enrich stage
    from starting, so it is a failure here before it is one in the crawl logs.
    """
    import json

    from nlp.classify import STRONG_META_FILENAME, find_model_file
    from nlp.transformer_model import check_base_dir  # no torch at import

    details: dict[str, Any] = {}
    problems: list[str] = []
    strong_dir = settings.nlp.strong_models_dir
    for task in ("topic", "sentiment", "toxicity"):
        try:
            entry: dict[str, Any] = {"linear": str(find_model_file(task, settings.models_dir))}
        except FileNotFoundError as exc:
            problems.append(str(exc))
            continue
        meta_path = strong_dir / task / STRONG_META_FILENAME if strong_dir else None
        if meta_path is not None and meta_path.is_file():
            try:
                base = Path(json.loads(meta_path.read_text(encoding="utf-8"))["info"]["base_model"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(
                    f"{meta_path} is unreadable ({exc}); retrain with python -m nlp.transformer_model"
                )
            else:
                entry["strong"] = str(meta_path.parent)
                try:
                    check_base_dir(base)
                except FileNotFoundError as exc:
                    problems.append(f"the {task} strong model cannot load: {exc}")
        details[task] = entry
    if strong_dir is not None and not strong_dir.is_dir():
        problems.append(f"nlp.strong_models_dir {strong_dir} does not exist; fix the path or unset it")
    blended = [task for task, entry in details.items() if "strong" in entry]
    if problems:
        return Check("models", "fail", "; ".join(problems), details)
    summary = "linear models" + (
        f"; strong model blended (weight {settings.nlp.strong_weight:g}) for " + ", ".join(blended)
        if blended
        else ""
    )
    if strong_dir is not None and not blended:
        return Check("models", "warn", f"{summary}; no strong model found in {strong_dir}", details)
    return Check("models", "ok", summary, details)


def collect_status(settings: Settings, now: datetime | None = None) -> StatusReport:
    """Run every check; never raises for a broken part (that part fails instead)."""
    from duluan.db import create_db_engine

    now = now or datetime.now(UTC)
    url = sa.engine.make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        missing = f"no database at {url.database}: wrong --home, or the service never ran here"
        checks = [Check(name, "fail", missing) for name in ("database", "sources", "outbox", "scheduler")]
        checks.insert(1, Check("index", "fail" if not settings.index_dir.is_dir() else "warn", "not checked"))
        checks += [check_models(settings), check_disk(settings)]
        return StatusReport(checks, now)
    engine = create_db_engine(settings.db_url)
    try:
        database = check_database(engine)
        checks = [database]
        if database.level == "fail" and "unreachable" in database.summary:
            checks += [
                Check(name, "fail", "database unreachable") for name in ("sources", "outbox", "scheduler")
            ]
        else:
            checks += [
                check_sources(engine),
                check_outbox(engine, now),
                check_scheduler(settings, engine, now),
            ]
    finally:
        engine.dispose()
    checks.insert(1, check_index(settings, now))
    checks += [check_models(settings), check_disk(settings)]
    return StatusReport(checks, now)


_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def render_status(report: StatusReport) -> Table:
    table = Table(title=f"Duluan — {'healthy' if report.healthy else 'UNHEALTHY'}", show_lines=False)
    table.add_column("check")
    table.add_column("state")
    table.add_column("summary", overflow="fold")
    for check in report.checks:
        style = _STYLE.get(check.level, "")
        # Source ids and error texts come from configuration and the network: never markup.
        table.add_row(check.name, f"[{style}]{check.level}[/{style}]", escape(check.summary))
    return table
