"""Benchmark: one evaluation cycle of 200 alert rules over an index of 1M documents (goal ≤ 5 s, 2 cores).

Builds (or reuses, with `--index-dir`) a real tantivy index of synthetic Vietnamese documents spread over
the last 21 days (60 sources, every topic and sentiment, story clusters of a few copies), saves a mix of
the six rule types in a real SQLite app database, then times `run_rules_once` — the scheduler's job —
for the first cycle (every rule due, first-run look-backs) and the following ones (+5 min each).
Also prints the time per rule type, from a separate pass over `decide_rule` (nothing written), and
the process CPU time of each cycle (a fair figure when other work shares the machine; the load average
is printed too).

    .venv/bin/python -m bench.alerts_rules --docs 1000000 --rules 200 --index-dir /tmp/alerts-bench-1m
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alerts.engine import decide_rule, run_rules_once
from alerts.store import load_rules, metadata, save_rule
from index.tantivy_backend import TantivyIndex
from schema import TOPICS, Document

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
SOURCES = [f"nguon-{i:02d}" for i in range(60)]
TEXT = (
    "sạt lở ngập lụt giao thông tai nạn đất đai quy hoạch bệnh viện trường học cháy nổ tham nhũng đầu tư "
    "khu công nghiệp Đồng Nai Biên Hòa Bình Phước người dân chính quyền xử lý vi phạm công trình dự án"
)
WORDS = TEXT.split(" ")
DAYS = 21
MARKER = "bench-docs.txt"


def synthetic_documents(count: int, seed: int = 7) -> Iterator[Document]:
    rng = random.Random(seed)
    topics = list(TOPICS)
    for i in range(count):
        when = NOW - timedelta(seconds=rng.randint(0, DAYS * 24 * 3600))
        url = f"https://bench.example.vn/{i}.html"
        yield Document(
            id=hashlib.sha1(url.encode()).hexdigest(),
            url=url,
            canonical_url=url,
            source=rng.choice(SOURCES),
            title=" ".join(rng.choices(WORDS, k=8)),
            text=" ".join(rng.choices(WORDS, k=60)),
            published_at=when,
            fetched_at=when + timedelta(minutes=rng.randint(1, 30)),
            topic=rng.choice(topics),
            sentiment=rng.choice(["negative", "neutral", "positive"]),
            cluster_id=f"c{rng.randint(0, count // 4)}",
            province_relevance=rng.random(),
        )


def open_index(index_dir: Path | None, docs: int) -> tuple[TantivyIndex, float | None]:
    """The bench index, built unless `index_dir` already holds one of `docs` documents."""
    path = index_dir or Path(tempfile.mkdtemp(prefix="alerts-bench-")) / "index"
    marker = path / MARKER
    if marker.exists() and int(marker.read_text()) == docs:
        return TantivyIndex(path), None
    path.mkdir(parents=True, exist_ok=True)
    index = TantivyIndex(path, writer_heap_bytes=400_000_000)
    started = time.perf_counter()
    batch: list[Document] = []
    for doc in synthetic_documents(docs):
        batch.append(doc)
        if len(batch) == 50_000:
            index.upsert(batch)
            batch = []
    if batch:
        index.upsert(batch)
    marker.write_text(str(docs))
    return index, time.perf_counter() - started


RuleMaker = Callable[[int], dict[str, Any]]


def rule_mix(count: int) -> list[dict[str, Any]]:
    """`count` rules cycling over the six types, each with its own scope (topic, source, keyword)."""
    topics = list(TOPICS)
    makers: list[tuple[str, RuleMaker]] = [
        (
            "match",
            lambda i: {
                "filters": {
                    "sentiment": "negative",
                    "min_province_relevance": 0.9,
                    "topic": topics[i % len(topics)],
                }
            },
        ),
        (
            "threshold",
            lambda i: {
                "params": {"min_count": 50, "window_minutes": 60},
                "filters": {"topic": topics[i % len(topics)]},
            },
        ),
        (
            "negative_share",
            lambda i: {
                "params": {"min_share": 0.4, "min_documents": 10, "window_minutes": 1440},
                "filters": {"source": SOURCES[i % len(SOURCES)]},
            },
        ),
        (
            "spike",
            lambda i: {
                "params": {"k": 3, "min_count": 5},
                "filters": {"topic": topics[i % len(topics)]},
                "query": WORDS[i % len(WORDS)],
            },
        ),
        (
            "new_story",
            lambda i: {
                "params": {"min_outlets": 3, "within_hours": 6},
                "filters": {"min_province_relevance": 0.5, "topic": topics[i % len(topics)]},
            },
        ),
    ]
    rules = []
    for i in range(count):
        if i % 40 == 39:  # a few source-health rules (5 per 200)
            rules.append({"name": f"r{i}", "owner": "bench", "rule_type": "silent_source", "filters": {}})
            continue
        kind, make = makers[i % len(makers)]
        rules.append({"name": f"r{i}", "owner": "bench", "rule_type": kind, **make(i)})
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=3, help="Cycles after the first, 5 min apart.")
    parser.add_argument("--index-dir", type=Path, help="Keep (and reuse) the index here.")
    args = parser.parse_args()

    index, build_s = open_index(args.index_dir, args.docs)
    if build_s is not None:
        print(f"indexed {args.docs:,} documents in {build_s:.0f} s")
    print(
        f"index holds {index.count():,} documents; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'app.db'}")
        metadata.create_all(engine)
        for spec in rule_mix(args.rules):
            save_rule(engine, spec)
        timings = []
        for cycle in range(args.cycles + 1):
            at = NOW + timedelta(minutes=5 * cycle)
            started, cpu_started = time.perf_counter(), time.process_time()
            fired = run_rules_once(index, engine, at)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            timings.append(elapsed)
            label = "first cycle" if cycle == 0 else f"cycle {cycle} (+{5 * cycle} min)"
            print(
                f"{label}: {args.rules} rules in {elapsed:.2f} s (CPU {cpu:.2f} s), "
                f"{len(fired)} alert(s) fired"
            )
        later = timings[1:] or timings
        print(
            f"per cycle: first {timings[0]:.2f} s; "
            f"later median {statistics.median(later):.2f} s, max {max(later):.2f} s"
        )

        # Where the time goes: decide every rule again (as due) without writing anything.
        per_type: dict[str, list[float]] = defaultdict(list)
        for rule in load_rules(engine, enabled_only=True):
            started = time.perf_counter()
            decide_rule(index, rule, {}, NOW + timedelta(minutes=5 * (args.cycles + 1)))
            per_type[rule.spec.rule_type].append(time.perf_counter() - started)
        for kind, values in sorted(per_type.items(), key=lambda kv: -sum(kv[1])):
            print(
                f"  {kind:15s} {len(values):3d} rules  total {sum(values):6.2f} s  "
                f"mean {1000 * statistics.mean(values):7.1f} ms  max {1000 * max(values):7.1f} ms"
            )
        engine.dispose()
    index.close()


if __name__ == "__main__":
    main()
