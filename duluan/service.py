"""`duluan up`: the scheduler and the web app in one process.

Scheduled work (tác vụ định kỳ): one crawl job per enabled source, rule evaluation every few
minutes, the outbox sender every minute, the leaders' digest every morning and a nightly housekeeping.
Crawls run in a child process (`duluan crawl`) because Scrapy's reactor runs once per process, and so a
source that hangs or crashes takes only itself down. Jobs live in the app database (APScheduler's
SQLAlchemy job store), so schedules survive restarts; missed runs after downtime are coalesced into one
run within a grace time; a job that crashes is logged and runs again at its next time.

Several `duluan up` processes may share one database (a restart overlapping the old process, two
hosts): every process serves the web app, but only the holder of the scheduler lease (a row in the
database, renewed by heartbeat) runs jobs. When the holder dies its lease expires and another process
takes over.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import uvicorn
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from duluan.metrics import install_job_journal
from duluan.settings import AlertSettings, Settings, load_settings

if TYPE_CHECKING:
    from alerts.channels.base import Channel
    from alerts.digest import DigestArchive

log = logging.getLogger("duluan.service")

#: The lease that lets one process run the scheduled jobs.
SCHEDULER_LEASE = "scheduler"
#: Missed runs after downtime: one catch-up run if the service is back within this time.
MISFIRE_GRACE_S = 15 * 60
#: Housekeeping runs at this local time, away from the morning digest.
HOUSEKEEPING_TIME = (3, 30)


# --------------------------------------------------------------------------------------------------
# Jobs (module-level functions: the job store keeps references to them by name)
# --------------------------------------------------------------------------------------------------


def crawl_source_job(source_id: str) -> None:
    """Crawl one source in a child process under its source lease; log the outcome (never raises).

    The lease is the one `duluan worker` processes take (duluan/source_claims.py), so the service's
    scheduler and workers sharing the database never crawl one source at the same time: a source a
    worker holds is skipped until the next run. The child dies with this process, the lease is renewed
    while it runs and released with the outcome (duluan/worker.py does the supervising).
    """
    from duluan.db import open_database
    from duluan.source_claims import claim_source
    from duluan.worker import Worker, utcnow

    settings = load_settings()
    engine = open_database(settings.db_url)
    try:
        worker = Worker(settings, engine)
        ttl = timedelta(seconds=settings.worker.lease_seconds)
        if not claim_source(engine, worker.holder, source_id, ttl, utcnow()):
            log.info("source %s is being crawled by a worker; skipped this time", source_id)
            return
        outcome = worker.crawl([source_id])[source_id]
    finally:
        engine.dispose()
    if outcome == "ok":
        log.info("crawl of source %s finished", source_id)
    elif outcome == "unreachable":
        log.warning("source %s unreachable (see the crawl's log above)", source_id)
    else:
        log.warning("crawl of source %s: %s (see the crawl's log above)", source_id, outcome)


def run_rules_job() -> None:
    """Evaluate every enabled alert rule once; what fired is sent at once, not at the next outbox run."""
    from duluan.operations import run_alert_rules

    settings = load_settings()
    fired = run_alert_rules(settings)
    log.info("alert rules evaluated: %d alert(s) fired", len(fired))
    if fired:
        deliver_outbox(settings)


def channels_from_settings(alerts: AlertSettings) -> dict[str, Channel]:
    """The delivery channels whose settings are filled in; the others are absent (their messages wait)."""
    from alerts.channels.email import EmailChannel, SmtpConfig
    from alerts.channels.telegram import TelegramChannel, TelegramConfig
    from alerts.channels.webhook import WebhookChannel, WebhookConfig
    from alerts.channels.zalo import ZaloChannel, ZaloConfig

    channels: dict[str, Channel] = {}
    smtp = alerts.smtp
    if smtp.host:
        channels["email"] = EmailChannel(
            SmtpConfig(
                host=smtp.host,
                port=smtp.port,
                sender=smtp.sender,
                sender_name=smtp.sender_name,
                username=smtp.username or None,
                password=smtp.password.get_secret_value() or None,
                starttls=smtp.starttls,
                implicit_tls=smtp.implicit_tls,
                verify_tls=smtp.verify_tls,
                ca_file=str(smtp.ca_file) if smtp.ca_file else None,
                timeout_s=smtp.timeout_s,
            )
        )
    if secret := alerts.webhook.secret.get_secret_value():
        channels["webhook"] = WebhookChannel(WebhookConfig(secret=secret, timeout_s=alerts.webhook.timeout_s))
    if token := alerts.telegram.bot_token.get_secret_value():
        channels["telegram"] = TelegramChannel(
            TelegramConfig(
                bot_token=token, api_base=alerts.telegram.api_base, timeout_s=alerts.telegram.timeout_s
            )
        )
    if token := alerts.zalo.oa_access_token.get_secret_value():
        channels["zalo"] = ZaloChannel(
            ZaloConfig(access_token=token, api_url=alerts.zalo.api_url, timeout_s=alerts.zalo.timeout_s)
        )
    return channels


#: Where to configure each channel, for the "messages are waiting" log line.
CHANNEL_SETTING_HINTS = {
    "email": "alerts.smtp.host (DULUAN_ALERTS__SMTP__HOST)",
    "webhook": "alerts.webhook.secret (DULUAN_ALERTS__WEBHOOK__SECRET)",
    "telegram": "alerts.telegram.bot_token (DULUAN_ALERTS__TELEGRAM__BOT_TOKEN)",
    "zalo": "alerts.zalo.oa_access_token (DULUAN_ALERTS__ZALO__OA_ACCESS_TOKEN)",
}


WAITING_WARNING_EVERY_S = 3600.0
_waiting_warned_at: dict[str, float] = {}


@dataclass(frozen=True)
class OutboxPass:
    """What one run of the outbox sender did (alerts and digests together)."""

    sent: int
    retrying: int
    bounced: int
    failed: int
    interrupted: int
    unconfigured: set[str] = field(default_factory=set)
    channels_down: dict[str, str] = field(default_factory=dict)


def deliver_outbox(settings: Settings, now: datetime | None = None) -> OutboxPass:
    """Send what is due in the alert outbox and the digest outbox, with the configured channels."""
    from alerts.channels.email import EmailChannel
    from alerts.delivery import deliver_pending
    from alerts.digest_delivery import deliver_digests
    from duluan.db import open_database

    channels = channels_from_settings(settings.alerts)
    engine = open_database(settings.db_url)
    try:
        alerts_report = deliver_pending(engine, channels, ui_base_url=settings.alerts.ui_base_url, now=now)
        email = channels.get("email")
        digest_report = deliver_digests(engine, email if isinstance(email, EmailChannel) else None, now=now)
    finally:
        engine.dispose()
    reports = (alerts_report, digest_report)
    result = OutboxPass(
        sent=sum(len(r.sent) for r in reports),
        retrying=sum(len(r.retrying) for r in reports),
        bounced=sum(len(r.bounced) for r in reports),
        failed=sum(len(r.failed) for r in reports),
        interrupted=sum(len(r.interrupted) for r in reports),
        unconfigured=alerts_report.unconfigured_channels | digest_report.unconfigured_channels,
        channels_down={**alerts_report.channels_down, **digest_report.channels_down},
    )
    for name in sorted(result.unconfigured):
        # Said once an hour, not every minute, while the messages wait.
        last = _waiting_warned_at.get(name)
        if last is None or time.monotonic() - last >= WAITING_WARNING_EVERY_S:
            _waiting_warned_at[name] = time.monotonic()
            log.warning(
                "messages for channel %s are waiting: the channel is not configured; set %s",
                name,
                CHANNEL_SETTING_HINTS.get(name, f"the {name} settings"),
            )
    for name, error in sorted(result.channels_down.items()):
        log.warning("channel %s is down, its messages will be retried: %s", name, error)
    if result.sent or result.bounced or result.failed or result.interrupted:
        log.info(
            "outbox: %d sent, %d retrying, %d bounced, %d failed, %d interrupted",
            result.sent,
            result.retrying,
            result.bounced,
            result.failed,
            result.interrupted,
        )
    return result


def deliver_outbox_job() -> None:
    deliver_outbox(load_settings())


def produce_daily_digest(settings: Settings, day: date | None = None) -> DigestArchive:
    """Build the digest of `day` (default: today, local time), archive it (HTML, PDF, e-mail) and queue
    the e-mail for every recipient group; the outbox sender delivers it."""
    from alerts.digest import archive_digest, build_digest
    from alerts.digest_delivery import queue_digest
    from duluan.db import open_database
    from duluan.digest_subscriptions import subscriber_groups
    from duluan.wiring import open_backend

    day = day or datetime.now(settings.tz).date()
    backend = open_backend(settings)
    try:
        digest = build_digest(backend, day, settings.tz, settings.province.name)
    finally:
        backend.close()
    groups = {name: addresses for name, addresses in settings.alerts.digest_groups.items() if addresses}
    engine = open_database(settings.db_url)
    try:
        groups = subscriber_groups(engine, groups)  # + people who subscribed in the web UI
    finally:
        engine.dispose()
    archive = archive_digest(
        digest,
        settings.digests_dir,
        pdf=settings.alerts.digest_pdf,
        email_sender=settings.alerts.smtp.sender if groups else None,
    )
    if groups and archive.email is not None:
        engine = open_database(settings.db_url)
        try:
            queued = queue_digest(engine, day, groups, archive.email)
        finally:
            engine.dispose()
        log.info("digest of %s queued for %d recipient(s) in %d group(s)", day, len(queued), len(groups))
    return archive


def morning_digest_day(now_local: datetime) -> date:
    """The day a morning digest covers: the previous full local day (ngày hôm qua)."""
    return now_local.date() - timedelta(days=1)


def daily_digest_job() -> None:
    """Render, archive and queue the morning digest (yesterday, complete) for the leaders, then send it
    right away."""
    settings = load_settings()
    archive = produce_daily_digest(settings, morning_digest_day(datetime.now(settings.tz)))
    log.info("daily digest written to %s", archive.html)
    deliver_outbox(settings)


def housekeeping(settings: Settings, now: datetime | None = None) -> int:
    """Forget per-key rule state older than the retention (rule-level rows stay), and on Elasticsearch
    roll the index over when it is due; returns the rule state rows removed."""
    from alerts.store import prune_rule_state
    from duluan.db import open_database

    moment = now or datetime.now(UTC)
    engine = open_database(settings.db_url)
    try:
        removed = prune_rule_state(engine, moment - timedelta(days=settings.alerts.state_retention_days))
    finally:
        engine.dispose()
    log.info("housekeeping: %d stale rule state row(s) removed", removed)
    if settings.index.backend == "elasticsearch":
        roll_over_index(settings)
    return removed


def roll_over_index(settings: Settings) -> str | None:
    """Start a new Elasticsearch backing index behind the alias once the write index is older or bigger
    than `index.elasticsearch_rollover_*` (time-based indices keep shards small and old data cheap to
    drop). The new index's name, or None when none was due or the cluster could not be reached."""
    from elasticsearch import ApiError, TransportError

    from duluan.wiring import BackendUnavailable, open_backend
    from index.es_backend import ElasticsearchIndex

    try:
        backend = open_backend(settings, "elasticsearch")
    except BackendUnavailable as exc:
        log.warning("housekeeping: index rollover skipped: %s", exc)
        return None
    try:
        assert isinstance(backend, ElasticsearchIndex)
        new_index = backend.rollover()
    except (ApiError, TransportError) as exc:
        log.warning("housekeeping: index rollover failed (%s); it is tried again tomorrow", exc)
        return None
    finally:
        backend.close()
    if new_index:
        log.info("housekeeping: Elasticsearch alias %s rolled over to %s", backend.alias, new_index)
    return new_index


def housekeeping_job() -> None:
    housekeeping(load_settings())


# --------------------------------------------------------------------------------------------------
# Job definitions and the leased scheduler
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job as we want it in the job store."""

    id: str
    func: Callable[..., None]
    trigger: BaseTrigger
    name: str
    args: tuple[Any, ...] = ()
    #: Run once right away when the job is new (a newly added source is crawled at once).
    run_now_if_new: bool = False


def service_jobs(settings: Settings, engine: sa.Engine) -> list[JobSpec]:
    """Every job the service runs: one crawl per enabled source, rules, outbox, digest, housekeeping."""
    from crawlers.registry import list_sources

    tz = settings.tz
    jobs = [
        JobSpec(
            id=f"crawl:{source.id}",
            func=crawl_source_job,
            trigger=IntervalTrigger(minutes=source.interval_minutes(), timezone=tz),
            name=f"Crawl {source.name}",
            args=(source.id,),
            run_now_if_new=True,
        )
        for source in list_sources(engine, enabled_only=True)
    ]
    hour, minute = (int(p) for p in settings.alerts.digest_time.split(":"))
    rule_seconds = settings.alerts.rule_interval_seconds or settings.alerts.rule_interval_minutes * 60
    jobs += [
        JobSpec(
            "alerts:rules",
            run_rules_job,
            IntervalTrigger(seconds=rule_seconds, timezone=tz),
            "Evaluate alert rules",
        ),
        JobSpec(
            "alerts:deliver",
            deliver_outbox_job,
            IntervalTrigger(seconds=settings.alerts.delivery_interval_seconds, timezone=tz),
            "Send the alert and digest outbox",
        ),
        JobSpec(
            "digest:daily",
            daily_digest_job,
            CronTrigger(hour=hour, minute=minute, timezone=tz),
            "Daily digest",
        ),
        JobSpec(
            "housekeeping:daily",
            housekeeping_job,
            CronTrigger(hour=HOUSEKEEPING_TIME[0], minute=HOUSEKEEPING_TIME[1], timezone=tz),
            "Housekeeping",
        ),
    ]
    return jobs


def sync_jobs(
    scheduler: BackgroundScheduler, jobs: list[JobSpec], *, managed_prefixes: tuple[str, ...]
) -> None:
    """Make the job store hold exactly `jobs` (among ids with a managed prefix).

    A job whose trigger and arguments are unchanged keeps its stored next run time, so a restart
    neither skips nor repeats runs; a changed job is replaced; a job no longer wanted is removed.
    """
    wanted = {job.id for job in jobs}
    for job in jobs:
        existing = scheduler.get_job(job.id)
        if (
            existing is not None
            and str(existing.trigger) == str(job.trigger)
            and tuple(existing.args) == job.args
            and existing.func is job.func
        ):
            continue
        options: dict[str, Any] = {}
        if existing is None and job.run_now_if_new:
            options["next_run_time"] = datetime.now(UTC)
        scheduler.add_job(
            job.func,
            trigger=job.trigger,
            args=list(job.args),
            id=job.id,
            name=job.name,
            replace_existing=True,
            **options,
        )
    for stored in scheduler.get_jobs():
        if stored.id.startswith(managed_prefixes) and stored.id not in wanted:
            stored.remove()


def _log_job_error(event: JobExecutionEvent) -> None:
    log.error(
        "scheduled job %s crashed: %r (it will run again at its next time)",
        event.job_id,
        event.exception,
        exc_info=event.exception,
    )


def _log_job_missed(event: JobExecutionEvent) -> None:
    log.warning(
        "scheduled job %s missed its run at %s (beyond the grace time)",
        event.job_id,
        event.scheduled_run_time,
    )


def new_scheduler(engine: sa.Engine, tz: Any) -> BackgroundScheduler:
    """A scheduler on the app database's job store: coalesced misfires with a grace time, one
    instance of each job at a time, crashes logged."""
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="scheduler_jobs")},
        job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S, "max_instances": 1},
        timezone=tz,
    )
    scheduler.add_listener(_log_job_error, EVENT_JOB_ERROR)
    scheduler.add_listener(_log_job_missed, EVENT_JOB_MISSED)
    return scheduler


class LeasedScheduler:
    """Runs `scheduler`'s jobs only while this process holds the lease in the database.

    The scheduler starts paused. A heartbeat thread tries to take (or renew) the lease every `ttl/3`:
    on taking it, the job definitions are synchronised and the scheduler resumes; if the lease cannot be
    renewed (another process took it, or the database is unreachable past the expiry), it pauses.
    """

    def __init__(
        self,
        engine: sa.Engine,
        scheduler: BackgroundScheduler,
        sync: Callable[[BackgroundScheduler], None],
        *,
        ttl: timedelta,
        lease_name: str = SCHEDULER_LEASE,
        holder: str | None = None,
    ) -> None:
        from alerts.lease import holder_id

        self.engine = engine
        self.scheduler = scheduler
        self.sync = sync
        self.ttl = ttl
        self.lease_name = lease_name
        self.holder = holder or holder_id()
        self.leading = False
        self._renewed_at: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler-lease", daemon=True)

    def start(self) -> None:
        self.scheduler.start(paused=True)
        self.beat()
        self._thread.start()

    def beat(self, now: datetime | None = None) -> bool:
        """One heartbeat: take or renew the lease, and resume or pause the scheduler accordingly."""
        from alerts.lease import try_acquire

        moment = now or datetime.now(UTC)
        try:
            held = try_acquire(self.engine, self.lease_name, self.holder, self.ttl, moment)
        except sa.exc.SQLAlchemyError as exc:
            # Keep running only while our last renewal is still valid: nobody else can hold it yet.
            held = self.leading and self._renewed_at is not None and moment < self._renewed_at + self.ttl
            log.warning(
                "scheduler lease heartbeat failed (%s); %s", exc, "still leading" if held else "pausing"
            )
        else:
            if held:
                self._renewed_at = moment
        if held and not self.leading:
            try:
                self.sync(self.scheduler)
            except Exception:
                log.exception(
                    "scheduler lease taken but the jobs could not be set up; retrying at the next beat"
                )
                return False
            self.scheduler.resume()
            self.leading = True
            log.info("this process (%s) holds the scheduler lease and runs the scheduled jobs", self.holder)
        elif not held and self.leading:
            self.scheduler.pause()
            self.leading = False
            log.warning("scheduler lease lost by %s: its jobs are paused here", self.holder)
        return self.leading

    def _run(self) -> None:
        interval = max(self.ttl.total_seconds() / 3, 0.2)
        while not self._stop.wait(interval):
            self.beat()

    def stop(self) -> None:
        """Stop the heartbeat and the scheduler, and release the lease so another process takes over."""
        from alerts.lease import release

        self._stop.set()
        self._thread.join(timeout=10)
        self.scheduler.shutdown(wait=False)
        if self.leading:
            try:
                release(self.engine, self.lease_name, self.holder, datetime.now(UTC))
            except sa.exc.SQLAlchemyError as exc:
                log.warning("could not release the scheduler lease (it will expire): %s", exc)
            self.leading = False


#: Job ids the service manages (others in the store, if any, are left alone).
MANAGED_JOB_PREFIXES = ("crawl:", "alerts:", "digest:", "housekeeping:")


def build_scheduler(settings: Settings) -> LeasedScheduler:
    """The service's scheduler behind the lease: jobs are (re)defined only by the lease holder."""
    from duluan.operations import ensure_sources_seeded

    engine = ensure_sources_seeded(settings)

    def sync(scheduler: BackgroundScheduler) -> None:
        sync_jobs(scheduler, service_jobs(settings, engine), managed_prefixes=MANAGED_JOB_PREFIXES)

    scheduler = new_scheduler(engine, settings.tz)
    install_job_journal(scheduler, settings.home)  # job outcomes for /metrics and `duluan status`
    return LeasedScheduler(
        engine,
        scheduler,
        sync,
        ttl=timedelta(seconds=settings.alerts.scheduler_lease_seconds),
    )


def run_service(settings: Settings) -> None:
    """Start the scheduler, then serve the web app until interrupted."""
    from duluan.web import create_app

    # Child processes (crawls) must use the same home even when it came from a CLI option.
    os.environ["DULUAN_HOME"] = str(settings.home.resolve())
    leased = build_scheduler(settings)
    leased.start()
    if leased.leading:
        log.info("scheduler started with %d job(s)", len(leased.scheduler.get_jobs()))
    else:
        log.info("another process holds the scheduler lease; this one serves the web app and stands by")
    try:
        uvicorn.run(create_app(settings), host=settings.web.host, port=settings.web.port, log_level="info")
    finally:
        leased.stop()
