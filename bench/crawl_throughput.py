"""Crawl throughput and memory: the demo site with generated copies on 127.0.0.1, the full pipeline.

    .venv/bin/python bench/crawl_throughput.py --copies 154            # 2,002 pages
    .venv/bin/python bench/crawl_throughput.py --copies 1539 --sample-every 1000   # 20,007 pages

The demo site (real Dân trí / VnExpress templates, each copy a distinct article URL) is served by a
separate process, so the crawler's memory is measured alone (both share the machine's 2 cores). One
`run_crawl` over its sitemap goes through every stage: fetch → extract → normalise → dedup/story
clustering → NLP enrichment with the real `nlp.enrich.Enricher` → bulk upserts into a real
`index.tantivy_backend.TantivyIndex` in a temp folder. Prints pages/s (indexed documents / wall
time), peak RSS, and RSS sampled every `--sample-every` indexed documents (flat = no leak).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _serve(copies: int, conn: Connection) -> None:
    from duluan.demo_site import serve_demo_site

    site = serve_demo_site(copies=copies)
    conn.send((site.sitemap_url, len(site.articles)))
    conn.recv()  # until the parent says stop
    site.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=154, help="13 pages × copies (154 → 2,002 pages)")
    parser.add_argument("--sample-every", type=int, default=1000, help="RSS sample every N indexed docs")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight to the site")
    parser.add_argument("--no-enrich", action="store_true", help="skip NLP (isolates crawl+extract+index)")
    parser.add_argument("--no-cluster", action="store_true", help="skip story clustering")
    parser.add_argument("--batch-size", type=int, default=200, help="documents per index upsert")
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(args.copies, child), daemon=True)
    server.start()
    sitemap_url, pages = parent.recv()

    from crawlers.registry import SourceSpec
    from crawlers.run import CrawlConfig, run_crawl
    from index.tantivy_backend import TantivyIndex
    from schema.document import Document

    rss_before_models = rss_mb()
    enrich = None
    if not args.no_enrich:
        from nlp.enrich import Enricher

        enrich = Enricher().enrich
    rss_start = rss_mb()
    samples: list[dict[str, Any]] = []
    indexed = 0
    started = time.monotonic()

    with tempfile.TemporaryDirectory() as tmp:
        index = TantivyIndex(Path(tmp) / "index")

        def sink(batch: list[Document]) -> None:
            nonlocal indexed
            index.upsert(batch)
            before, indexed = indexed, indexed + len(batch)
            if indexed // args.sample_every > before // args.sample_every:
                sample = {
                    "indexed": indexed,
                    "rss_mb": round(rss_mb(), 1),
                    "elapsed_s": round(time.monotonic() - started, 1),
                    "cpu_s": round(_cpu_s(), 1),
                }
                samples.append(sample)
                print(json.dumps(sample), file=sys.stderr, flush=True)  # progress survives an interrupted run

        source = SourceSpec(
            id="demo",
            name="Demo",
            type="sitemap",
            start_urls=[sitemap_url],
            site_rules={"max_items": pages + 10},
        )
        config = CrawlConfig(
            download_delay_s=0,
            concurrency_per_domain=args.concurrency,
            timeout_s=30,
            log_level="WARNING",
            batch_size=args.batch_size,
            cluster_stories=not args.no_cluster,
        )
        report = run_crawl([source], config=config, enrich=enrich, sink=sink, state_dir=Path(tmp) / "state")
        elapsed = time.monotonic() - started
        searchable = index.count()
    parent.send("stop")
    server.join(timeout=10)

    result = report.sources["demo"]
    print(
        json.dumps(
            {
                "pages_served": pages,
                "fetched": result.fetched,
                "indexed": indexed,
                "index_count": searchable,
                "seconds": round(elapsed, 1),
                "pages_per_s": round(indexed / elapsed, 2),
                "crawler_cpu_s_per_page": round(_cpu_s() / max(1, indexed), 4),
                "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                "enrich": enrich is not None,
                "cluster": not args.no_cluster,
                "rss_mb_before_models": round(rss_before_models, 1),
                "rss_mb_at_start": round(rss_start, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "errors": result.errors,
                "dropped": result.dropped_by_reason,
                "rss_samples": samples,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
