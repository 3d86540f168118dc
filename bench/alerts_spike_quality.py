"""Benchmark: precision/recall of the spike rule on a synthetic stream with planted spikes.

For two scopes (a quiet one, ~2 documents/hour at the daily peak, and a busy one, ~16/hour), a stream
of documents follows a daily cycle with Poisson noise over `--days` days; spikes are planted in random
hours (at least max(6, 4× the usual rate) extra documents). Everything is indexed in a real tantivy
index (with off-scope documents too) and the real `spike` rule is evaluated at the end of every hour
after the first 14 days (its baseline). An hour is a true positive when the rule fires for a planted
hour. The same counts are also fed to the pure decision function, without the index, as a check.

    .venv/bin/python -m bench.alerts_spike_quality --days 45
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.rules import EvaluationContext, RuleScope, rule_type_for, spike_verdict
from index.backend import SearchFilters
from index.tantivy_backend import TantivyIndex
from schema import Document

START = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
BASELINE_DAYS = 14


@dataclass(frozen=True)
class Stream:
    label: str
    topic: str
    counts: list[list[int]]  # [day][hour]
    planted: set[tuple[int, int]]


def hourly_rate(scale: float, hour: int) -> float:
    """A daily cycle: quiet at night, a peak in the local afternoon."""
    return scale * (0.3 + 1.7 * max(0.0, math.sin((hour - 6) / 24 * 2 * math.pi)))


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method (means here are small)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def make_stream(label: str, topic: str, scale: float, days: int, spikes: int, seed: int) -> Stream:
    rng = random.Random(seed)
    counts = [[poisson(rng, hourly_rate(scale, h)) for h in range(24)] for _ in range(days)]
    planted: set[tuple[int, int]] = set()
    while len(planted) < spikes:
        day, hour = rng.randrange(BASELINE_DAYS, days), rng.randrange(24)
        if (day, hour) in planted:
            continue
        counts[day][hour] += int(max(6, 4 * hourly_rate(scale, hour))) + poisson(rng, 3)
        planted.add((day, hour))
    return Stream(label, topic, counts, planted)


def documents(stream: Stream, rng: random.Random) -> list[Document]:
    docs = []
    for day, hours in enumerate(stream.counts):
        for hour, count in enumerate(hours):
            for i in range(count):
                when = START + timedelta(days=day, hours=hour, seconds=rng.uniform(1, 3599))
                url = f"https://bao.example.vn/{stream.topic}/{day}-{hour}-{i}.html"
                docs.append(
                    Document(
                        id=hashlib.sha1(url.encode()).hexdigest(),
                        url=url,
                        canonical_url=url,
                        source=f"nguon-{rng.randrange(20)}",
                        title=f"Tin {stream.topic} ngày {day} giờ {hour} số {i}",
                        text="Nội dung bài viết tổng hợp để đo chất lượng phát hiện đột biến.",
                        published_at=when,
                        fetched_at=when,
                        topic=stream.topic,
                        sentiment="neutral",
                        province_relevance=0.5,
                    )
                )
    return docs


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, fired: bool, planted: bool) -> None:
        self.tp += fired and planted
        self.fp += fired and not planted
        self.fn += (not fired) and planted

    def __str__(self) -> str:
        precision = self.tp / max(self.tp + self.fp, 1)
        recall = self.tp / max(self.tp + self.fn, 1)
        return f"precision {precision:.2f}, recall {recall:.2f} (tp={self.tp} fp={self.fp} fn={self.fn})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--spikes", type=int, default=25, help="Planted spikes per scope.")
    parser.add_argument("--k", type=float, nargs="+", default=[2.0, 3.0])
    args = parser.parse_args()

    streams = [
        make_stream("quiet scope (~2/h at peak)", "giao-thong", 1.0, args.days, args.spikes, seed=11),
        make_stream("busy scope (~16/h at peak)", "kinh-te", 8.0, args.days, args.spikes, seed=12),
    ]
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        index = TantivyIndex(Path(tmp) / "index")
        all_docs = [doc for stream in streams for doc in documents(stream, rng)]
        index.upsert(all_docs)
        print(f"indexed {len(all_docs):,} documents over {args.days} days; {args.spikes} spikes per scope")
        for stream in streams:
            scope = RuleScope("", SearchFilters(topic=stream.topic))
            for k in args.k:
                rule = rule_type_for("spike", {"k": k, "min_count": 5, "window_minutes": 60})
                through_index, pure = Score(), Score()
                for day in range(BASELINE_DAYS, args.days):
                    for hour in range(24):
                        now = START + timedelta(days=day, hours=hour + 1)
                        fired = bool(rule.evaluate(index, scope, EvaluationContext(now, None)))
                        planted = (day, hour) in stream.planted
                        through_index.add(fired, planted)
                        baseline = [stream.counts[day - d][hour] for d in range(1, BASELINE_DAYS + 1)]
                        pure.add(spike_verdict(stream.counts[day][hour], baseline, k, 5).fired, planted)
                print(f"{stream.label}, k={k:g}: rule on the index: {through_index}; decision alone: {pure}")
        index.close()


if __name__ == "__main__":
    main()
