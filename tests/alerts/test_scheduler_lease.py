"""Only one scheduler runs jobs, whatever the number of service processes on one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.lease import current_lease, release, try_acquire
from duluan.db import open_database

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)


@pytest.fixture
def app_db(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    url = f"sqlite:///{tmp_path / 'duluan.db'}"
    engine = open_database(url)
    yield url, engine
    engine.dispose()


def test_lease_is_exclusive_until_it_expires(app_db: tuple[str, sa.Engine]) -> None:
    _, engine = app_db
    assert try_acquire(engine, "scheduler", "a", TTL, T0)
    assert not try_acquire(engine, "scheduler", "b", TTL, T0 + timedelta(seconds=30))
    assert try_acquire(engine, "scheduler", "a", TTL, T0 + timedelta(seconds=30))  # renewal
    lease = current_lease(engine, "scheduler")
    assert lease is not None and lease.holder == "a" and lease.acquired_at == T0
    assert lease.expires_at == T0 + timedelta(seconds=90)
    assert not try_acquire(engine, "scheduler", "b", TTL, T0 + timedelta(seconds=89))
    assert try_acquire(engine, "scheduler", "b", TTL, T0 + timedelta(seconds=90))  # a stopped renewing
    taken = current_lease(engine, "scheduler")
    assert taken is not None and taken.holder == "b" and taken.acquired_at == T0 + timedelta(seconds=90)
    assert not try_acquire(engine, "scheduler", "a", TTL, T0 + timedelta(seconds=100))
    release(engine, "scheduler", "b", T0 + timedelta(seconds=101))
    assert try_acquire(engine, "scheduler", "a", TTL, T0 + timedelta(seconds=101))  # released: at once
    assert try_acquire(engine, "other-lease", "b", TTL, T0 + timedelta(seconds=101))  # leases are independent


def _start_worker(db_url: str, ticks: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.alerts.scheduler_worker", db_url, str(ticks)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _ticks(path: Path, since: float = 0.0) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(pid), float(at)) for pid, at in rows if float(at) >= since]


def _wait_until(condition: object, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if callable(condition) and condition():
            return
        time.sleep(0.1)


def test_two_scheduler_processes_one_runs_jobs_and_the_other_takes_over(
    app_db: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    db_url, engine = app_db
    ticks, log = tmp_path / "ticks.txt", tmp_path / "workers.log"
    first = _start_worker(db_url, ticks, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait_until(lambda: len(_ticks(ticks)) >= 2, 30)
        assert {pid for pid, _ in _ticks(ticks)} == {first.pid}, log.read_text()
        second = _start_worker(db_url, ticks, log)
        _wait_until(lambda: "started " + str(second.pid) in log.read_text(), 30)
        both_up = time.time()
        time.sleep(3.0)  # longer than the lease: the first keeps renewing, the second stays paused
        window = _ticks(ticks, since=both_up)
        assert len(window) >= 4, log.read_text()
        assert {pid for pid, _ in window} == {first.pid}, log.read_text()
        assert f"started {second.pid} leading=False" in log.read_text()

        first.send_signal(signal.SIGKILL)  # dies without releasing: the lease must expire first
        first.wait(timeout=10)
        killed_at = time.time()
        _wait_until(lambda: any(pid == second.pid for pid, _ in _ticks(ticks, since=killed_at)), 20)
        taken = [at for pid, at in _ticks(ticks, since=killed_at) if pid == second.pid]
        assert taken, f"the second scheduler never took over: {log.read_text()}"
        lease = current_lease(engine, "scheduler")
        assert lease is not None and lease.holder.split(":")[1] == str(second.pid)
        # It waited for the 2 s lease to expire, and took over within expiry + one heartbeat (+ slack).
        assert 0.5 < taken[0] - killed_at < 6.0
        assert not [pid for pid, _ in _ticks(ticks, since=killed_at + 0.2) if pid == first.pid]

        # A clean stop releases the lease: a new process takes over at its first heartbeat.
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
        assert f"stopped {second.pid}" in log.read_text()
        lease = current_lease(engine, "scheduler")
        assert lease is not None and lease.expires_at <= datetime.now(UTC)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
