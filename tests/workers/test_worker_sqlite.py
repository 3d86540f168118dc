"""One `duluan worker` on the single-machine defaults: SQLite app database, embedded tantivy index."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.lease import current_lease
from duluan.db import open_database
from duluan.service import crawl_source_job
from duluan.source_claims import claim_source, claims, crawl_history, finish
from index.tantivy_backend import TantivyIndex
from tests.workers.conftest import Sites, WorkerProcess, prepare_home, process_gone, wait_for


def test_one_worker_on_sqlite_and_tantivy_crawls_releases_and_runs_the_alert_jobs(
    tmp_path: Path, make_sites: Callable[[int, int, float], Sites], start_worker: Callable[..., WorkerProcess]
) -> None:
    sites = make_sites(2, 4, 0.0)
    home = tmp_path / "home"
    settings = prepare_home(home, sites.specs())
    worker = start_worker(
        home,
        "--roles",
        "crawl,alerts",
        DULUAN_WORKER__POLL_SECONDS="0.5",
        DULUAN_WORKER__LEASE_SECONDS="10",
        DULUAN_WORKER__SOURCES_PER_CRAWL="2",
    )
    sites.journal.workers.add(worker.pid)
    engine = open_database(settings.db_url)
    try:

        def both_crawled() -> bool:
            assert worker.proc.poll() is None, worker.log_tail()
            rows = {c.source_id: c for c in claims(engine)}
            return all(rows.get(sid) and rows[sid].last_outcome for sid in sites.sites)

        wait_for(both_crawled, 120, "the worker to crawl both sources", interval=0.3)
        started = datetime.now(UTC)
        rows = {c.source_id: c for c in claims(engine)}
        for sid in sites.sites:
            row = rows[sid]
            assert row.last_outcome == "ok", worker.log_tail()
            assert row.holder is None and row.expires_at is None  # released
            # Due again one schedule interval ("every 6h") after it was claimed, not now.
            assert row.next_due_at > started + timedelta(hours=5), row
        history = crawl_history(engine)
        assert sorted(r.source_id for r in history) == sorted(sites.sites)
        assert len({r.holder for r in history}) == 1 and str(worker.pid) in history[0].holder
        assert all(r.outcome == "ok" and r.finished_at is not None for r in history)

        # The alerts role took the scheduler lease, and its job store holds the alert jobs, not crawls.
        wait_for(lambda: current_lease(engine, "scheduler") is not None, 30, "the scheduler lease")
        lease = current_lease(engine, "scheduler")
        assert lease is not None and lease.holder == history[0].holder
        with engine.connect() as conn:
            job_ids = {row[0] for row in conn.exec_driver_sql("SELECT id FROM scheduler_jobs")}
        assert {"alerts:rules", "alerts:deliver", "digest:daily", "housekeeping:daily"} <= job_ids
        assert not [j for j in job_ids if j.startswith("crawl:")]

        # Every article page of both sites is in the embedded index, once, enriched.
        index = TantivyIndex(home / "index")
        try:
            docs = list(index.scan(""))
        finally:
            index.close()
        expected = {site.base_url + p for site in sites.sites.values() for p in site.article_paths}
        assert sorted(d.url for d in docs) == sorted(expected)
        assert all(d.topic and d.sentiment for d in docs)
        crawl_pids = {f.pid for f in sites.journal.fetches}
        assert None not in crawl_pids and worker.pid not in crawl_pids  # crawled by a child process
        assert {f.worker for f in sites.journal.fetches} == {worker.pid}

        # SIGTERM: a clean stop gives the scheduler lease back at once.
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.proc.wait(timeout=30) == 0, worker.log_tail()
        lease = current_lease(engine, "scheduler")
        assert lease is not None and lease.expires_at <= datetime.now(UTC)
        assert all(c.holder is None for c in claims(engine))
        assert all(process_gone(pid) for pid in crawl_pids if pid is not None)
    finally:
        engine.dispose()


def test_the_service_scheduler_crawls_under_the_same_source_lease(
    tmp_path: Path, make_sites: Callable[[int, int, float], Sites], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`duluan up`'s crawl job skips a source a worker holds, and crawls it under the lease otherwise."""
    sites = make_sites(1, 3, 0.0)
    (source_id,) = sites.sites
    home = tmp_path / "home"
    settings = prepare_home(home, sites.specs())
    monkeypatch.setenv("DULUAN_HOME", str(home))
    engine = open_database(settings.db_url)
    try:
        now = datetime.now(UTC)
        assert claim_source(engine, "a-worker", source_id, timedelta(minutes=5), now)

        crawl_source_job(source_id)  # held by the worker: skipped
        assert sites.journal.snapshot() == []
        assert [(r.holder, r.outcome) for r in crawl_history(engine)] == [("a-worker", None)]

        assert finish(engine, "a-worker", source_id, "ok", now, next_due_at=now)
        crawl_source_job(source_id)  # free: crawled under the service's own lease, then released
        history = crawl_history(engine)
        assert len(history) == 2 and history[1].outcome == "ok"
        assert history[1].holder != "a-worker" and f":{os.getpid()}:" in history[1].holder
        (row,) = claims(engine)
        assert row.holder is None and row.last_outcome == "ok"
        fetched = {f.path for f in sites.journal.snapshot()}
        assert set(sites.sites[source_id].article_paths) <= fetched
    finally:
        engine.dispose()
    index = TantivyIndex(home / "index")
    try:
        assert index.count("") == 3
    finally:
        index.close()
