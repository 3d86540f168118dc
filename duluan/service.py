"""`duluan up`: the scheduler and the web app in one process.

Scheduled work (tác vụ định kỳ): one crawl job per enabled source, rule evaluation every few
minutes, the leaders' digest every morning. Crawls run in a child process (`duluan crawl`) because
Scrapy's reactor runs once per process, and so a source that hangs or crashes takes only itself down.
Jobs live in the app database (APScheduler's SQLAlchemy job store), so schedules survive restarts;
missed runs after downtime are coalesced into one run within a grace time.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime

import uvicorn
from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from duluan.settings import Settings, load_settings

log = logging.getLogger("duluan.service")

#: A crawl of one source that runs longer than this is stopped and reported.
CRAWL_TIMEOUT_S = 30 * 60


def crawl_source_job(source_id: str) -> None:
    """Crawl one source in a child process and log its outcome (never raises past the scheduler)."""
    cmd = [sys.executable, "-m", "duluan", "crawl", "--source", source_id]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CRAWL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        log.error("crawl of source %s timed out after %ss", source_id, CRAWL_TIMEOUT_S)
        return
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        log.warning("crawl of source %s failed (exit %s): %s", source_id, proc.returncode, tail)
        return
    try:
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        log.warning("crawl of source %s printed no summary: %s", source_id, proc.stdout[-500:])
        return
    details = [line for line in proc.stdout.splitlines() if line.startswith(f"{source_id}:")]
    if source_id in summary.get("unreachable", []):
        log.warning("source %s unreachable: %s", source_id, details[0] if details else "")
    else:
        log.info("crawl of source %s finished: %s", source_id, details[0] if details else summary)


def run_rules_job() -> None:
    """Evaluate every enabled alert rule once."""
    from duluan.operations import run_alert_rules

    fired = run_alert_rules(load_settings())
    log.info("alert rules evaluated: %d alert(s) fired", len(fired))


def daily_digest_job() -> None:
    """Render and archive today's digest for the leaders."""
    from duluan.operations import render_digest

    path = render_digest(load_settings(), day=None, out=None)
    log.info("daily digest written to %s", path)


def _log_job_error(event: JobExecutionEvent) -> None:
    log.error(
        "scheduled job %s crashed: %r (it will run again at its next time)", event.job_id, event.exception
    )


def build_scheduler(settings: Settings) -> BackgroundScheduler:
    """A scheduler with persistent jobs: one per enabled source, rules, and the daily digest."""
    from crawlers.registry import list_sources
    from duluan.operations import ensure_sources_seeded

    engine = ensure_sources_seeded(settings)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="scheduler_jobs")},
        job_defaults={"coalesce": True, "misfire_grace_time": 15 * 60, "max_instances": 1},
        timezone=settings.tz,
    )
    scheduler.add_listener(_log_job_error, EVENT_JOB_ERROR)
    wanted = set()
    for source in list_sources(engine, enabled_only=True):
        job_id = f"crawl:{source.id}"
        wanted.add(job_id)
        scheduler.add_job(
            crawl_source_job,
            trigger=IntervalTrigger(minutes=source.interval_minutes(), timezone=settings.tz),
            args=[source.id],
            id=job_id,
            name=f"Crawl {source.name}",
            replace_existing=True,
            next_run_time=datetime.now(settings.tz),
        )
    scheduler.add_job(
        run_rules_job,
        trigger=IntervalTrigger(minutes=settings.alerts.rule_interval_minutes, timezone=settings.tz),
        id="alerts:rules",
        name="Evaluate alert rules",
        replace_existing=True,
    )
    hour, minute = (int(p) for p in settings.alerts.digest_time.split(":"))
    scheduler.add_job(
        daily_digest_job,
        trigger=CronTrigger(hour=hour, minute=minute, timezone=settings.tz),
        id="digest:daily",
        name="Daily digest",
        replace_existing=True,
    )
    # Sources disabled or removed since the last start lose their jobs.
    scheduler.start(paused=True)
    for job in scheduler.get_jobs():
        if job.id.startswith("crawl:") and job.id not in wanted:
            job.remove()
    return scheduler


def run_service(settings: Settings) -> None:
    """Start the scheduler, then serve the web app until interrupted."""
    from duluan.web import create_app

    # Child processes (crawls) must use the same home even when it came from a CLI option.
    os.environ["DULUAN_HOME"] = str(settings.home.resolve())
    scheduler = build_scheduler(settings)
    scheduler.resume()
    log.info("scheduler started with %d job(s)", len(scheduler.get_jobs()))
    try:
        uvicorn.run(create_app(settings), host=settings.web.host, port=settings.web.port, log_level="info")
    finally:
        scheduler.shutdown(wait=False)
