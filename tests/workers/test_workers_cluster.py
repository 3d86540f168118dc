"""Three `duluan worker` processes share six sources through leases in PostgreSQL and index into
Elasticsearch; one of them is killed with SIGKILL in the middle of its crawl.

Each worker has its own home (its own crawl state), as it would on its own machine: they share only
the PostgreSQL app database and the Elasticsearch index. The news sites note, for every request, the
process that sent it (read from /proc while the connection is open) and the worker it descends from,
so "no source crawled by two workers at once" is checked on the sites' side, not only in the
workers' own records.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import groupby, pairwise
from pathlib import Path

from alerts.lease import current_lease
from duluan.db import open_database
from duluan.source_claims import claims, crawl_history
from duluan.wiring import open_backend
from index.es_backend import ElasticsearchIndex
from tests.workers.conftest import Fetch, Sites, WorkerProcess, prepare_home, process_gone, wait_for

SOURCES = 6
ARTICLES = 6
DELAY_S = 0.5  # per article page: a source takes ≥ 3 s to crawl, so the kill lands inside a crawl
LEASE_S = 4


def test_three_workers_one_killed_mid_crawl(
    tmp_path: Path,
    pg_url: str,
    es_url: str,
    make_sites: Callable[[int, int, float], Sites],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    sites = make_sites(SOURCES, ARTICLES, DELAY_S)
    alias = f"workers-{uuid.uuid4().hex[:10]}"
    shared = {
        "DULUAN_DATABASE_URL": pg_url,
        "DULUAN_INDEX__BACKEND": "elasticsearch",
        "DULUAN_INDEX__ELASTICSEARCH_URL": es_url,
        "DULUAN_INDEX__ELASTICSEARCH_INDEX": alias,
        "DULUAN_WORKER__LEASE_SECONDS": str(LEASE_S),
        "DULUAN_WORKER__POLL_SECONDS": "0.5",
        "DULUAN_WORKER__SOURCES_PER_CRAWL": "2",
        "DULUAN_ALERTS__SCHEDULER_LEASE_SECONDS": "5",
    }
    settings = prepare_home(
        tmp_path / "home-0",
        sites.specs(),
        database_url=pg_url,
        index={"backend": "elasticsearch", "elasticsearch_url": es_url, "elasticsearch_index": alias},
    )
    open_backend(settings).close()  # the index exists before the workers start
    engine = open_database(settings.db_url)
    es = ElasticsearchIndex(es_url, alias)
    try:
        workers = [start_worker(tmp_path / f"home-{n}", **shared) for n in range(3)]
        sites.journal.workers.update(w.pid for w in workers)
        by_pid = {w.pid: w for w in workers}

        # ---- kill the first worker that has been served two articles of a source: mid-crawl
        def articles_served(fetches: list[Fetch]) -> Counter[tuple[str, int | None]]:
            return Counter(
                (f.source_id, f.worker)
                for f in fetches
                if f.served_at is not None and f.path in sites.sites[f.source_id].article_paths
            )

        def victim_found() -> bool:
            for w in workers:
                assert w.proc.poll() is None, w.log_tail()
            return any(n >= 2 and w for (_, w), n in articles_served(sites.journal.snapshot()).items())

        wait_for(victim_found, 120, "a worker two articles into a crawl", interval=0.05)
        served = articles_served(sites.journal.snapshot())
        victim_pid = next(w for (_, w), n in served.items() if n >= 2 and w is not None)
        victim = by_pid[victim_pid]
        os.kill(victim_pid, signal.SIGKILL)
        killed_mono, killed_at = time.monotonic(), datetime.now(UTC)
        assert victim.proc.wait(timeout=10) == -signal.SIGKILL
        at_kill = sites.journal.snapshot()
        victim_children = {f.pid for f in at_kill if f.worker == victim_pid and f.pid is not None}
        victim_holder = next(r.holder for r in crawl_history(engine) if f":{victim_pid}:" in r.holder)
        # The sources the victim was crawling when it died, and those it had not fully fetched yet.
        open_at_kill = {
            r.source_id for r in crawl_history(engine) if r.holder == victim_holder and r.finished_at is None
        }
        unfinished = {
            sid
            for sid in open_at_kill
            if len(
                {
                    f.path
                    for f in at_kill
                    if f.source_id == sid and f.served_at and f.path in sites.sites[sid].article_paths
                }
            )
            < ARTICLES
        }
        assert unfinished, f"the kill landed after the victim's crawls had fetched everything: {at_kill}"
        # Its crawl child died with it (parent-death signal), instead of crawling on as an orphan.
        wait_for(lambda: all(process_gone(p) for p in victim_children), 5, "the victim's crawl child to end")

        # ---- the survivors finish everything, the victim's sources after its leases expired
        survivors = [w for w in workers if w is not victim]

        def all_done() -> bool:
            for w in survivors:
                assert w.proc.poll() is None, w.log_tail()
            rows = claims(engine)
            return len(rows) == SOURCES and all(r.holder is None and r.last_outcome == "ok" for r in rows)

        wait_for(all_done, 120, "every source crawled to the end", interval=0.3)

        history = crawl_history(engine)
        for sid in sites.sites:
            runs = [r for r in history if r.source_id == sid]
            assert all(r.finished_at is not None for r in runs), runs
            # The workers' own record: crawls of one source never overlap in time.
            for before, after in pairwise(runs):
                assert before.finished_at is not None and before.finished_at <= after.started_at, runs
            assert runs[-1].outcome == "ok" and runs[-1].holder != victim_holder
        for sid in open_at_kill:
            runs = [r for r in history if r.source_id == sid]
            dead = [r for r in runs if r.holder == victim_holder]
            assert [r.outcome for r in dead] == ["abandoned"], runs
            taken_over = runs[-1]
            assert dead[0].finished_at is not None
            # Taken over only once the lease ran out, which was after the kill.
            assert taken_over.started_at >= dead[0].finished_at > killed_at, runs

        # The sites' record: every request came from a crawl child of a live worker, and per source
        # the requests form one block per worker (never A, B, A); a source of the victim was fetched
        # by its successor only after the kill.
        fetches = sorted(sites.journal.snapshot(), key=lambda f: f.at)
        assert all(f.worker is not None for f in fetches), [f for f in fetches if f.worker is None]
        assert all(f.pid not in by_pid for f in fetches)  # children fetch, not the workers themselves
        assert not [f for f in fetches if f.worker == victim_pid and f.at > killed_mono]
        for sid in sites.sites:
            order = [w for w, _ in groupby(f.worker for f in fetches if f.source_id == sid)]
            assert len(order) == len(set(order)), f"{sid} was fetched by interleaving workers: {order}"
            if sid in unfinished:
                assert order[0] == victim_pid and len(order) == 2, order
                assert all(
                    f.at > killed_mono for f in fetches if f.source_id == sid and f.worker != victim_pid
                )

        # ---- every page is in Elasticsearch exactly once, enriched
        docs = list(es.scan(""))
        expected = {site.base_url + p for site in sites.sites.values() for p in site.article_paths}
        urls = Counter(d.url for d in docs)
        assert set(urls) == expected and max(urls.values()) == 1
        assert len({d.id for d in docs}) == len(docs) == SOURCES * ARTICLES == es.count("")
        assert all(d.topic and d.sentiment for d in docs)

        # ---- exactly one survivor runs the alert jobs (the victim's scheduler lease, if it had it,
        # expired and was taken over), and a clean stop exits 0 and gives everything back
        def survivor_leads() -> bool:
            lease = current_lease(engine, "scheduler")
            return (
                lease is not None
                and lease.expires_at > datetime.now(UTC)
                and any(f":{w.pid}:" in lease.holder for w in survivors)
            )

        wait_for(survivor_leads, 20, "a live worker to hold the scheduler lease")
        for w in survivors:
            os.kill(w.pid, signal.SIGTERM)
        for w in survivors:
            assert w.proc.wait(timeout=30) == 0, w.log_tail()
        assert all(r.holder is None for r in claims(engine))
    finally:
        es.drop()
        es.close()
        engine.dispose()
