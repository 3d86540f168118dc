"""Benchmark of the embedded tantivy index: indexing rate, query latency with facets, disk size.

Builds a synthetic corpus from the shared baomoi titles+sapo texts (dates over two years, 200
sources, topics and sentiments drawn with a fixed seed), indexes it in batches, then times 20
representative staff queries, each with three facets (topic, sentiment, source).

    .venv/bin/python bench/index_tantivy.py --docs 100000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from index.tantivy_backend import TantivyIndex
from schema import TOPICS, Document, Entity

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / ".." / "shared" / "datasets" / "tc201805_baomoi" / "corpus.jsonl.gz"
VN = timezone(timedelta(hours=7))
PLACES = ["Bình Phước", "Đồng Nai", "Đồng Xoài", "Biên Hòa", "Long Khánh", "Hà Nội", "TP.HCM"]

QUERIES = [
    "binh phuoc",
    '"Đồng Nai"',
    "đất đai OR quy hoạch",
    "tai nạn giao thông -xe",
    "giá vàng",
    "covid",
    "bóng đá VÀ (việt nam HOẶC đội tuyển)",
    "lừa đảo",
    "đất*",
    "chính phủ NOT hà",
    "topic:kinh-te giá",
    "sentiment:negative dong nai",
    "source:src-007",
    "date:2025-06-01..2025-06-30",
    "học sinh NEAR/3 trường",
    'entity:"Biên Hòa"',
    "title:bão",
    "",
    "điện thoại OR iphone OR samsung",
    "bệnh viện -covid date:2025",
]


def texts(limit: int) -> Iterator[str]:
    """Texts from the shared dataset, cycled (with a suffix) when more documents are asked for."""
    with gzip.open(DATASET, "rt", encoding="utf-8") as handle:
        base = [unicodedata.normalize("NFC", json.loads(line)["text"]) for line in handle]
    for i in range(limit):
        yield base[i % len(base)] if i < len(base) else f"{base[i % len(base)]} (bản {i // len(base)})"


def documents(count: int, seed: int = 7) -> Iterator[Document]:
    rng = random.Random(seed)
    start = datetime(2024, 11, 28, tzinfo=VN)
    topics = list(TOPICS)
    for i, text in enumerate(texts(count)):
        title, _, body = text.partition(". ")
        when = start + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        source = f"src-{rng.randrange(200):03d}"
        place = rng.choice(PLACES)
        yield Document(
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
            entities=[Entity(text=place, label="LOC", canonical=place)],
            cluster_id=f"c-{rng.randrange(count // 3 + 1)}",
            province_relevance=rng.random(),
        )


def cpu_seconds() -> float:
    """CPU seconds of this process, all threads (tantivy's indexing threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each query")
    parser.add_argument("--dir", type=Path, default=None, help="index folder (default: a temp dir)")
    args = parser.parse_args()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="duluan-bench-")) / "index"
    backend = TantivyIndex(folder, writer_heap_bytes=256_000_000)
    batch: list[Document] = []
    started = time.perf_counter()
    build_seconds = build_cpu = 0.0
    indexed = 0
    for doc in documents(args.docs):
        batch.append(doc)
        if len(batch) == args.batch:
            t0, c0 = time.perf_counter(), cpu_seconds()
            indexed += backend.upsert(batch)
            build_seconds += time.perf_counter() - t0
            build_cpu += cpu_seconds() - c0
            batch = []
    if batch:
        t0, c0 = time.perf_counter(), cpu_seconds()
        indexed += backend.upsert(batch)
        build_seconds += time.perf_counter() - t0
        build_cpu += cpu_seconds() - c0
    total_seconds = time.perf_counter() - started
    print(
        f"indexed {indexed} docs: {indexed / build_seconds:,.0f} docs/s in upsert "
        f"({indexed / total_seconds:,.0f} docs/s including document generation); CPU {build_cpu:.1f} s "
        f"in upsert = {indexed / build_cpu:,.0f} docs per CPU-second (load average {os.getloadavg()[0]:.2f})"
    )
    size = disk_bytes(folder)
    print(f"disk: {size / 1e6:,.1f} MB ({size / indexed * 1e6 / 1e9:,.2f} GB per 1M docs)")

    latencies: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for query in QUERIES:
            t0 = time.perf_counter()
            result = backend.search(query, limit=20)
            backend.facets(["topic", "sentiment", "source"], query, size=10)
            latencies.setdefault(query, []).append((time.perf_counter() - t0) * 1000)
            assert result.total >= 0
    every = sorted(x for values in latencies.values() for x in values)
    p50 = statistics.median(every)
    p95 = every[int(0.95 * (len(every) - 1))]
    print(
        f"search + 3 facets over {len(QUERIES)} queries × {args.repeat}: p50 {p50:.1f} ms, p95 {p95:.1f} ms"
    )
    for query, values in latencies.items():
        print(f"  {statistics.median(values):7.1f} ms  {query or '(all)'}")
    print(f"max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
