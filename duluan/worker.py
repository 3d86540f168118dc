"""`duluan worker`: one of several processes, on one or more machines, that share the work.

Role `crawl`: the worker claims sources that are due through per-source leases in the app database
(`duluan/source_claims.py`), crawls them in a child process (`duluan crawl --source A --source B`:
fetch → extract → enrich → index, as `duluan up` does; Scrapy's reactor runs once per process), renews
its leases by heartbeat while the child runs, and releases them with the next due time when it ends.
No source is crawled by two workers at once: a lease is taken by one conditional UPDATE, and a worker
that cannot renew a lease stops its crawl before anyone else may take it over. A worker that dies
takes its crawl child with it (Linux parent-death signal, or a watchdog elsewhere); its leases expire
after `worker.lease_seconds` and other workers take the sources over.

Role `alerts`: rule evaluation, the outbox sender, the morning digest and housekeeping run behind the
one scheduler lease (`duluan/service.py`), so exactly one worker of the cluster runs them.

Several workers need a shared database (PostgreSQL, `database_url`) and a shared index
(`index.backend = "elasticsearch"`): the embedded tantivy index has one writer per directory. On one
machine with SQLite and tantivy, a single worker (or `duluan up`) is the set-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING

import sqlalchemy as sa

from duluan.settings import Settings

if TYPE_CHECKING:
    from crawlers.registry import SourceSpec
    from duluan.service import LeasedScheduler

log = logging.getLogger("duluan.worker")

ROLES = ("crawl", "alerts")
#: A crawl child asked to stop gets this long to exit before it is killed.
STOP_GRACE_S = 10.0
#: Attempts at opening (and migrating) the database when several workers start at the same moment.
OPEN_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# The crawl child
# --------------------------------------------------------------------------------------------------


def crawl_command(parent_pid: int, source_ids: Iterable[str]) -> list[str]:
    """The child's command line: `duluan crawl` for the sources, bound to die with `parent_pid`."""
    cmd = [sys.executable, "-m", "duluan.worker", str(parent_pid), "crawl"]
    for source_id in source_ids:
        cmd += ["--source", source_id]
    return cmd


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid` (its worker) ends, however the worker ended.

    On Linux the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); elsewhere a
    watchdog thread checks once a second. A parent already gone before that was set up ends us now.
    """
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            armed = libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:
        os._exit(1)
    if not armed:

        def watch() -> None:
            while True:
                time.sleep(1.0)
                if os.getppid() != parent_pid:
                    os._exit(1)

        threading.Thread(target=watch, name="worker-watchdog", daemon=True).start()


_REPORT_LINE = re.compile(r"^(?P<id>[a-z0-9][a-z0-9_-]{0,63}): (?P<status>ok|unreachable)\b")


def outcomes_from_output(stdout: str, source_ids: Iterable[str], returncode: int) -> dict[str, str]:
    """Each source's outcome from `duluan crawl`'s per-source report lines and exit code."""
    reported = {}
    for line in stdout.splitlines():
        match = _REPORT_LINE.match(line)
        if match:
            reported[match.group("id")] = match.group("status")
    return {sid: (reported.get(sid, "failed") if returncode == 0 else "failed") for sid in source_ids}


def next_due(spec: SourceSpec | None, claimed_at: datetime, finished_at: datetime, tz: object) -> datetime:
    """When a source is due again: its interval after the claim (fixed rate; at once if the crawl took
    longer than that), or its cron schedule's next time after the crawl ended."""
    if spec is None:
        return finished_at + timedelta(minutes=30)
    if len(spec.schedule.split()) != 5:  # an interval ("every 30m", "2h"), not a 5-field cron expression
        return max(claimed_at + timedelta(minutes=spec.interval_minutes()), finished_at)
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(spec.schedule, timezone=tz)
    fire = trigger.get_next_fire_time(None, finished_at)
    return fire.astimezone(UTC) if fire is not None else finished_at + timedelta(days=1)


@dataclass
class CrawlRun:
    """One crawl child and the leases it runs under."""

    source_ids: list[str]
    claimed_at: datetime
    proc: subprocess.Popen[bytes]
    stdout: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    #: Sources whose lease was lost (another worker holds it): the child was stopped for them.
    lost: set[str] = field(default_factory=set)
    #: Why the child was stopped early, if it was: "timeout", "lease_lost" or "stopped".
    stopped_because: str | None = None


# --------------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------------


class Worker:
    """The crawl role's loop: claim due sources, crawl them in a child, heartbeat, release."""

    def __init__(self, settings: Settings, engine: sa.Engine, *, holder: str | None = None) -> None:
        from alerts.lease import holder_id

        self.settings = settings
        self.engine = engine
        self.holder = holder or holder_id()
        self.ttl = timedelta(seconds=settings.worker.lease_seconds)
        self.heartbeat_s = max(settings.worker.lease_seconds / 3, 0.2)
        self.stop_event = threading.Event()
        self.crawls_done = 0

    # -- the loop

    def run(self, *, max_crawls: int | None = None) -> None:
        """Claim and crawl until `stop()` (or until `max_crawls` crawl children have run)."""
        poll = self.settings.worker.poll_seconds
        while not self.stop_event.is_set():
            if max_crawls is not None and self.crawls_done >= max_crawls:
                return
            try:
                claimed = self.claim()
            except sa.exc.SQLAlchemyError as exc:
                log.warning(
                    "worker %s cannot reach the database (%s); retrying in %ss", self.holder, exc, poll
                )
                self.stop_event.wait(poll)
                continue
            if not claimed:
                self.stop_event.wait(poll)
                continue
            self.crawl(claimed)

    def claim(self) -> list[str]:
        """Register new sources, then claim up to `sources_per_crawl` due ones."""
        from duluan.source_claims import add_missing_sources, claim_due

        now = utcnow()
        add_missing_sources(self.engine, now)
        return claim_due(self.engine, self.holder, self.ttl, now, self.settings.worker.sources_per_crawl)

    def crawl(self, source_ids: list[str]) -> dict[str, str]:
        """Crawl claimed sources in one child while renewing their leases; release them; the outcomes."""
        run = self.start_child(source_ids, utcnow())
        log.info("worker %s crawls %s (child pid %d)", self.holder, ", ".join(source_ids), run.proc.pid)
        returncode = self.supervise(run)
        self.crawls_done += 1
        run.stdout.seek(0)
        output = run.stdout.read().decode("utf-8", errors="replace")
        run.stdout.close()
        outcomes = outcomes_from_output(output, source_ids, returncode)
        for sid in source_ids:
            if sid in run.lost:
                outcomes[sid] = "lease_lost"
            elif run.stopped_because is not None:
                outcomes[sid] = run.stopped_because
        self.release(run, outcomes)
        return outcomes

    def start_child(self, source_ids: list[str], claimed_at: datetime) -> CrawlRun:
        env = dict(os.environ)
        # The child reads the same settings: the home may have come from a CLI option.
        env["DULUAN_HOME"] = str(self.settings.home.resolve())
        stdout = tempfile.TemporaryFile()  # noqa: SIM115  (closed by `crawl` once the child ended)
        proc = subprocess.Popen(
            crawl_command(os.getpid(), source_ids), stdout=stdout, stdin=subprocess.DEVNULL, env=env
        )
        return CrawlRun(list(source_ids), claimed_at, proc, stdout)

    def supervise(self, run: CrawlRun) -> int:
        """Wait for the child, renewing the leases every `lease_seconds / 3`; stop it when a lease is
        lost, when it cannot be renewed in time, on timeout or on `stop()`. Its exit code."""
        from duluan.source_claims import renew

        held = set(run.source_ids)
        last_renewed = time.monotonic()
        timeout = self.settings.worker.crawl_timeout_s
        lease_s = self.settings.worker.lease_seconds
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return run.proc.wait(timeout=self.heartbeat_s)
            if self.stop_event.is_set():
                return self.stop_child(run, "stopped")
            if time.monotonic() - run.started > timeout:
                log.error("crawl of %s timed out after %ss; stopping it", ", ".join(run.source_ids), timeout)
                return self.stop_child(run, "timeout")
            try:
                still = renew(self.engine, self.holder, held, self.ttl, utcnow())
            except sa.exc.SQLAlchemyError as exc:
                # Nobody else may take the sources before our last renewal expires; stop crawling with a
                # margin before that moment, so the crawl never outlives the lease.
                if time.monotonic() - last_renewed > lease_s * 2 / 3:
                    log.error("cannot renew the leases on %s (%s); stopping the crawl", sorted(held), exc)
                    run.lost |= held
                    return self.stop_child(run, "lease_lost", grace_s=0.0)
                log.warning("lease heartbeat failed (%s); retrying", exc)
                continue
            last_renewed = time.monotonic()
            if still != held:
                run.lost |= held - still
                log.error(
                    "worker %s lost the leases on %s to another worker; stopping the crawl",
                    self.holder,
                    sorted(held - still),
                )
                return self.stop_child(run, "lease_lost", grace_s=0.0)

    def stop_child(self, run: CrawlRun, reason: str, *, grace_s: float = STOP_GRACE_S) -> int:
        """Stop the child (SIGTERM, then SIGKILL after `grace_s`); its exit code."""
        run.stopped_because = reason
        if grace_s > 0:
            run.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                return run.proc.wait(timeout=grace_s)
        run.proc.kill()
        return run.proc.wait()

    def release(self, run: CrawlRun, outcomes: dict[str, str]) -> None:
        """Give the leases back with each source's outcome and next due time."""
        from crawlers.registry import get_source
        from duluan.source_claims import finish

        finished = utcnow()
        for sid in run.source_ids:
            outcome = outcomes[sid]
            if outcome == "lease_lost":
                continue  # another worker holds it now; nothing of ours to release
            due = finished
            if outcome != "stopped":
                try:
                    spec = get_source(self.engine, sid)
                except sa.exc.SQLAlchemyError:
                    spec = None
                due = next_due(spec, run.claimed_at, finished, self.settings.tz)
            for attempt in range(3):
                try:
                    finish(self.engine, self.holder, sid, outcome, finished, due)
                    break
                except sa.exc.SQLAlchemyError as exc:
                    if attempt == 2:
                        log.error("could not release %s (%s); its lease will expire", sid, exc)
                    else:
                        time.sleep(1.0)
            level = logging.INFO if outcome == "ok" else logging.WARNING
            log.log(level, "crawl of %s by %s: %s; next due %s", sid, self.holder, outcome, due.isoformat())

    def stop(self) -> None:
        self.stop_event.set()


# --------------------------------------------------------------------------------------------------
# Composition: roles, the alert scheduler, signals
# --------------------------------------------------------------------------------------------------


def open_worker_database(settings: Settings) -> sa.Engine:
    """Open, migrate and seed the app database; several workers starting together race on the
    migration and the seeding, and the losers retry."""
    from duluan.operations import ensure_sources_seeded

    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            return ensure_sources_seeded(settings)
        except sa.exc.SQLAlchemyError as exc:
            if attempt == OPEN_ATTEMPTS:
                raise
            log.warning("opening the database failed (%s); attempt %d of %d", exc, attempt, OPEN_ATTEMPTS)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def alert_scheduler(settings: Settings, engine: sa.Engine, holder: str) -> LeasedScheduler:
    """Rules, outbox, digest and housekeeping behind the single scheduler lease (no crawl jobs: the
    crawl role's source leases schedule the crawls, and stale crawl jobs in the store are removed)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from duluan.metrics import install_job_journal
    from duluan.service import MANAGED_JOB_PREFIXES, LeasedScheduler, new_scheduler, service_jobs, sync_jobs

    def sync(scheduler: BackgroundScheduler) -> None:
        jobs = [job for job in service_jobs(settings, engine) if not job.id.startswith("crawl:")]
        sync_jobs(scheduler, jobs, managed_prefixes=MANAGED_JOB_PREFIXES)

    scheduler = new_scheduler(engine, settings.tz)
    install_job_journal(scheduler, settings.home)
    return LeasedScheduler(
        engine, scheduler, sync, ttl=timedelta(seconds=settings.alerts.scheduler_lease_seconds), holder=holder
    )


class WorkerConfigError(ValueError):
    """A worker set-up that cannot work; the message says which setting to change."""


def check_roles(roles: Iterable[str]) -> list[str]:
    chosen = [r.strip() for r in roles if r.strip()]
    unknown = [r for r in chosen if r not in ROLES]
    if unknown or not chosen:
        raise WorkerConfigError(
            f"unknown worker role(s) {', '.join(unknown) or '(none given)'}; use one or more of "
            f"{', '.join(ROLES)} (--roles crawl,alerts or worker.roles)"
        )
    return list(dict.fromkeys(chosen))


def run_worker(
    settings: Settings,
    roles: Iterable[str] | None = None,
    *,
    on_ready: Callable[[Worker], None] | None = None,
) -> None:
    """Run the chosen roles until SIGTERM/SIGINT; then stop the crawl child, give the leases back."""
    from duluan.source_claims import release_all

    chosen = check_roles(roles if roles is not None else settings.worker.roles)
    engine = open_worker_database(settings)
    worker = Worker(settings, engine)
    leased = alert_scheduler(settings, engine, worker.holder) if "alerts" in chosen else None

    def on_signal(signum: int, _frame: object) -> None:
        log.info("worker %s: signal %d, stopping", worker.holder, signum)
        worker.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("worker %s started with role(s) %s on %s", worker.holder, ", ".join(chosen), engine.dialect.name)
    if note := shared_stores_note(settings):
        log.info(note)
    try:
        if leased is not None:
            leased.start()
        if on_ready is not None:
            on_ready(worker)
        if "crawl" in chosen:
            worker.run()
        else:
            worker.stop_event.wait()
    finally:
        if leased is not None:
            leased.stop()
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            release_all(engine, worker.holder, utcnow())
        engine.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("worker %s stopped after %d crawl(s)", worker.holder, worker.crawls_done)


def shared_stores_note(settings: Settings) -> str | None:
    """Why this worker's stores cannot be shared with workers on other machines, if they cannot."""
    local = []
    if settings.db_url.startswith("sqlite"):
        local.append("the app database is SQLite (set database_url to a PostgreSQL URL)")
    if settings.index.backend == "tantivy":
        local.append('the index is the embedded tantivy store (set index.backend = "elasticsearch")')
    if not local:
        return None
    return "workers on this machine only: " + "; ".join(local)


def _crawl_child(argv: list[str]) -> None:
    """`python -m duluan.worker PARENT_PID crawl --source ...`: a crawl child bound to its worker."""
    if not argv or not argv[0].isdigit():
        print("usage: python -m duluan.worker PARENT_PID crawl --source ID ...", file=sys.stderr)
        sys.exit(2)
    die_with_parent(int(argv[0]))
    from duluan.cli import main

    sys.argv = ["duluan", *argv[1:]]
    main()


if __name__ == "__main__":
    _crawl_child(sys.argv[1:])
