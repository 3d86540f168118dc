"""A scheduler process for the lease tests: `python -m tests.alerts.scheduler_worker DB_URL TICKS_FILE`.

It runs the service's `LeasedScheduler` with one job that appends this process's id to TICKS_FILE every
0.5 s, with a 2 s lease; it runs until killed (SIGTERM: clean stop that releases the lease).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from duluan.db import open_database
from duluan.service import JobSpec, LeasedScheduler, new_scheduler, sync_jobs

TICKS_ENV = "DULUAN_TEST_TICKS_FILE"
LEASE_TTL = timedelta(seconds=2)


def record_tick() -> None:
    """The scheduled job: one line `<pid> <unix time>` per run."""
    with open(os.environ[TICKS_ENV], "a", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {time.time():.3f}\n")


def main(db_url: str, ticks_file: str) -> None:
    os.environ[TICKS_ENV] = ticks_file
    engine = open_database(db_url)
    jobs = [JobSpec("test:tick", record_tick, IntervalTrigger(seconds=0.5, timezone=UTC), "tick")]

    def sync(scheduler: BackgroundScheduler) -> None:
        sync_jobs(scheduler, jobs, managed_prefixes=("test:",))

    leased = LeasedScheduler(engine, new_scheduler(engine, UTC), sync, ttl=LEASE_TTL)
    stopping = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    leased.start()
    print(f"started {os.getpid()} leading={leased.leading} at {datetime.now(UTC).isoformat()}", flush=True)
    while not stopping:
        time.sleep(0.1)
    leased.stop()
    print(f"stopped {os.getpid()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])


CALLS_ENV = "DULUAN_TEST_CALLS_FILE"


def count_call() -> None:
    """A job that records each of its runs (one line per run)."""
    with open(os.environ[CALLS_ENV], "a", encoding="utf-8") as out:
        out.write(f"{time.time():.3f}\n")


def crash_on_first_run() -> None:
    """A job whose first run crashes; later runs succeed."""
    path = os.environ[CALLS_ENV]
    first = not os.path.exists(path)
    count_call()
    if first:
        raise RuntimeError("lỗi thử nghiệm: first run crashes")
