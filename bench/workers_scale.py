"""`duluan worker` throughput on PostgreSQL + Elasticsearch: 1, 2, … workers over the same sources.

For each worker count W: a fresh PostgreSQL database and a fresh Elasticsearch alias; S sources, each
its own demo site on 127.0.0.1 (real Dân trí/VnExpress templates, distinct copies, so every page is a
distinct document) behind an RSS feed, no download delay; W `duluan worker --roles crawl` processes,
each with its own home (as on separate machines), claim the sources through leases and crawl them in
child processes: fetch → extract → enrich (shipped models) → index into ES with the word segmenter.
Timed from the workers' start until every source is released as crawled; CPU is read from /proc:
the workers with their reaped crawl children (so model loading per crawl child is included), and the
ES JVM. The compatibility proxy (test-only, `tests/index/es_server.py`) runs in this process and is
not counted.

    .venv/bin/python bench/workers_scale.py --sources 8 --copies 2 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "index")]

import sqlalchemy as sa  # noqa: E402
from es_server import CompatProxy, start_local_elasticsearch  # noqa: E402

from crawlers.registry import SourceSpec, list_sources, set_enabled, upsert_sources  # noqa: E402
from duluan.demo_site.server import _DemoHTTPServer, render_rss  # noqa: E402
from duluan.operations import ensure_sources_seeded  # noqa: E402
from duluan.settings import load_settings  # noqa: E402
from duluan.source_claims import claims  # noqa: E402
from index.es_backend import ElasticsearchIndex  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """user + system CPU of `pid` (all threads), plus its reaped children's when asked."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def make_sites(sources: int, copies: int) -> list[_DemoHTTPServer]:
    """`sources` demo sites; site i serves copies i*copies+1 … (i+1)*copies of the 13 pages."""
    sites = []
    for i in range(sources):
        site = _DemoHTTPServer(0, copies=sources * copies + 1)
        wanted = range(i * copies + 1, (i + 1) * copies + 1)
        chosen = tuple(a for a in site.articles if a.copy in wanted)
        site.articles = chosen
        site._articles_by_path = {a.path: a for a in chosen}
        site._feed = render_rss(site.base_url, chosen).encode()
        threading.Thread(target=site.serve_forever, daemon=True).start()
        sites.append(site)
    return sites


def one_run(
    workers: int, per_crawl: int, sites: list[_DemoHTTPServer], es_url: str, es_pid: int, root: Path
) -> dict[str, float]:
    name = f"duluan_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    alias = f"bench-workers-{uuid.uuid4().hex[:8]}"
    env_common = {
        "DULUAN_DATABASE_URL": db_url,
        "DULUAN_INDEX__BACKEND": "elasticsearch",
        "DULUAN_INDEX__ELASTICSEARCH_URL": es_url,
        "DULUAN_INDEX__ELASTICSEARCH_INDEX": alias,
        "DULUAN_WORKER__POLL_SECONDS": "0.5",
        "DULUAN_WORKER__LEASE_SECONDS": "30",
        "DULUAN_WORKER__SOURCES_PER_CRAWL": str(per_crawl),
        "DULUAN_LOG_LEVEL": "WARNING",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    settings = load_settings(
        home=root / f"w{workers}-seed",
        database_url=db_url,
        index={"backend": "elasticsearch", "elasticsearch_url": es_url, "elasticsearch_index": alias},
    )
    engine = ensure_sources_seeded(settings)
    for source in list_sources(engine, enabled_only=False):
        set_enabled(engine, source.id, False)
    upsert_sources(
        engine,
        [
            SourceSpec.model_validate(
                {
                    "id": f"bench-{i}",
                    "name": f"Bench {i}",
                    "type": "rss",
                    "start_urls": [f"{site.base_url}/rss/tin-moi-nhat.rss"],
                    "schedule": "every 6h",
                    "politeness": {"download_delay_s": 0.0, "concurrency": 4},
                    "site_rules": {"max_items": 300},
                }
            )
            for i, site in enumerate(sites)
        ],
    )
    es = ElasticsearchIndex(es_url, alias)
    es_cpu0 = cpu_seconds(es_pid)
    started = time.monotonic()
    procs = []
    for n in range(workers):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DULUAN_")}
        env.update(env_common, DULUAN_HOME=str(root / f"w{workers}-home-{n}"), PYTHONPATH=str(REPO))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "duluan", "worker", "--roles", "crawl"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(root / f"w{workers}-worker-{n}.log", "wb"),  # noqa: SIM115
            )
        )
    try:
        while True:
            rows = claims(engine)
            if len(rows) == len(sites) and all(r.holder is None and r.last_outcome for r in rows):
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited early; see {root}/w{workers}-worker-*.log")
            time.sleep(0.2)
        wall = time.monotonic() - started
        worker_cpu = sum(cpu_seconds(p.pid, children=True) for p in procs)
        es_cpu = cpu_seconds(es_pid) - es_cpu0
        outcomes = sorted({r.last_outcome or "" for r in rows})
        es.refresh()
        pages = es.count("")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        es.drop()
        es.close()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return {
        "workers": workers,
        "pages": pages,
        "wall": wall,
        "worker_cpu": worker_cpu,
        "es_cpu": es_cpu,
        "outcomes": ",".join(outcomes),  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--copies", type=int, default=2, help="Copies of the 13 demo pages per source.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sources-per-crawl", type=int, default=2, help="worker.sources_per_crawl")
    args = parser.parse_args()
    sites = make_sites(args.sources, args.copies)
    node = start_local_elasticsearch("1g", "1g", fast_start=False)
    proxy = CompatProxy(int(node.url.rsplit(":", 1)[1]))
    root = Path(tempfile.mkdtemp(prefix="duluan-workers-bench-"))
    results = []
    try:
        for workers in args.workers:
            load = os.getloadavg()[0]
            result = one_run(workers, args.sources_per_crawl, sites, proxy.url, node.pid, root)
            result["load"] = load
            results.append(result)
            print(f"  {workers} worker(s): {result}", flush=True)
    finally:
        proxy.close()
        node.stop()
        for site in sites:
            site.shutdown()
    print(
        f"\n{args.sources} sources x {13 * args.copies} pages; each worker its own home; PostgreSQL 15 app "
        "database; ES 7.9.2 OSS (1 GB heap, 1 shard) with the word segmenter; roles crawl; "
        f"{args.sources_per_crawl} sources per crawl child\n"
    )
    print("| workers | pages | wall s | pages/s | worker CPU ms/page | ES CPU ms/page | outcomes | load |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        pages = max(float(r["pages"]), 1.0)
        print(
            f"| {r['workers']} | {r['pages']} | {r['wall']:.1f} | {pages / float(r['wall']):.1f} "
            f"| {1000 * float(r['worker_cpu']) / pages:.0f} | {1000 * float(r['es_cpu']) / pages:.0f} "
            f"| {r['outcomes']} | {float(r['load']):.1f} |"
        )


if __name__ == "__main__":
    main()
