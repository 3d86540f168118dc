"""Prometheus metrics (chỉ số vận hành), read from the shared state at scrape time.

The service is several processes (web workers, the scheduler, one crawl subprocess per run), so
in-process counters would each see a slice. Instead a custom `Collector` reads, on every scrape:

- the app database: per-source crawl counters summed over `crawl_runs`, source status, alert and
  digest outbox backlog, the scheduler lease;
- the index: document count and the time of its last commit;
- the ops journal under `<home>/metrics/`: the NLP enrichment latency histogram (merged by every
  crawl process when it ends) and scheduler job outcomes (written by the lease holder). Each journal
  file is updated read-modify-write under an exclusive `flock`, so concurrent processes on one
  machine never lose an update.

Any part that fails (database down, index locked) is reported in `duluan_metrics_collect_errors`
instead of failing the whole scrape. `/metrics` is served by the web app to loopback clients or to a
bearer token of an admin account (see `metrics_allowed`).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from duluan.settings import Settings

log = logging.getLogger("duluan.metrics")

#: Upper bounds (seconds) of the NLP enrichment latency histogram buckets.
NLP_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NLP_JOURNAL = "nlp_latency.json"
JOBS_JOURNAL = "scheduler_jobs.json"


def journal_dir(home: Path) -> Path:
    return home / "metrics"


@contextlib.contextmanager
def _locked_json(path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write a small JSON file under an exclusive lock (one writer at a time, any process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    data = {}
            except (OSError, json.JSONDecodeError):
                data = {}
            yield data
            temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(temp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_journal(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class LatencyRecorder:
    """An in-process latency histogram, merged into the home's journal by `flush` (thread-safe)."""

    def __init__(self, buckets: tuple[float, ...] = NLP_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # last: +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sum += seconds

    @contextlib.contextmanager
    def time(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started)

    @property
    def count(self) -> int:
        return sum(self._counts)

    def flush(self, home: Path, name: str = NLP_JOURNAL) -> None:
        """Add what was observed to the journal and start again from zero; never raises (metrics must
        not fail a crawl)."""
        with self._lock:
            counts, total, self._counts, self._sum = self._counts, self._sum, [0] * len(self._counts), 0.0
        if not any(counts):
            return
        try:
            with _locked_json(journal_dir(home) / name) as data:
                if data.get("buckets") != list(self.buckets):
                    data.clear()
                    data.update(buckets=list(self.buckets), counts=[0] * len(counts), sum=0.0)
                data["counts"] = [a + b for a, b in zip(data["counts"], counts, strict=True)]
                data["sum"] = float(data["sum"]) + total
        except OSError as exc:
            log.warning("could not write the NLP latency journal under %s: %s", home, exc)


def record_job_outcome(
    home: Path, job_id: str, outcome: str, at: datetime | None = None, error: str = ""
) -> None:
    """Count one scheduler job run by outcome (success, error, missed); never raises."""
    moment = (at or datetime.now(UTC)).timestamp()
    try:
        with _locked_json(journal_dir(home) / JOBS_JOURNAL) as data:
            job = data.setdefault(job_id, {"outcomes": {}, "last": {}})
            job["outcomes"][outcome] = int(job["outcomes"].get(outcome, 0)) + 1
            job["last"][outcome] = moment
            job["last_outcome"] = outcome
            job["last_run_at"] = moment
            if error:
                job["last_error"] = error[:500]
    except OSError as exc:
        log.warning("could not write the scheduler job journal under %s: %s", home, exc)


def job_outcome_listener(home: Path) -> Any:
    """An APScheduler listener recording every executed/failed/missed job in the journal."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

    def listener(event: Any) -> None:
        outcome = {EVENT_JOB_EXECUTED: "success", EVENT_JOB_ERROR: "error", EVENT_JOB_MISSED: "missed"}.get(
            event.code, "other"
        )
        error = repr(event.exception) if getattr(event, "exception", None) else ""
        record_job_outcome(home, str(event.job_id), outcome, error=error)

    listener.mask = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED  # type: ignore[attr-defined]
    return listener


def install_job_journal(scheduler: Any, home: Path) -> None:
    """Record job outcomes of `scheduler` in `<home>/metrics/` (for /metrics and `duluan status`)."""
    listener = job_outcome_listener(home)
    scheduler.add_listener(listener, listener.mask)


# ------------------------------------------------------------------------------------ the collector


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def index_last_commit(settings: Settings) -> datetime | None:
    """When the embedded index was last committed (its meta.json is rewritten by every commit)."""
    meta = settings.index_dir / "meta.json"
    try:
        return datetime.fromtimestamp(meta.stat().st_mtime, UTC)
    except OSError:
        return None


class DuluanCollector(Collector):
    """Reads the database, the index and the journal at scrape time (see the module docstring)."""

    def __init__(self, settings: Settings, engine: sa.Engine, count_documents: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.count_documents = count_documents

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "duluan_metrics_collect_errors", "1 when a part of the metrics could not be read", labels=["part"]
        )
        for part, produce in (
            ("crawl", self._crawl),
            ("outbox", self._outbox),
            ("scheduler", self._scheduler),
            ("index", self._index),
            ("nlp", self._nlp),
        ):
            try:
                yield from list(produce())
                errors.add_metric([part], 0)
            except Exception as exc:  # one broken part must not hide the others
                log.warning("metrics: cannot read %s: %s", part, exc)
                errors.add_metric([part], 1)
        yield errors

    def _crawl(self) -> Iterator[Metric]:
        from crawlers.health import crawl_runs_table as runs
        from crawlers.health import source_health

        totals = {
            "fetched": CounterMetricFamily(
                "duluan_documents_fetched", "Pages fetched, per source (all recorded runs)", labels=["source"]
            ),
            "extracted": CounterMetricFamily(
                "duluan_documents_extracted", "Pages that became documents, per source", labels=["source"]
            ),
            "indexed": CounterMetricFamily(
                "duluan_documents_indexed", "Documents written to the index, per source", labels=["source"]
            ),
            "dropped": CounterMetricFamily(
                "duluan_documents_dropped",
                "Pages dropped (too big, too short, duplicates)",
                labels=["source"],
            ),
        }
        failed = CounterMetricFamily(
            "duluan_documents_failed",
            "Fetch/extract/enrich errors, per source and kind",
            labels=["source", "kind"],
        )
        run_outcomes = CounterMetricFamily(
            "duluan_crawl_runs", "Crawl runs per source and outcome", labels=["source", "outcome"]
        )
        query = sa.select(
            runs.c.source_id,
            sa.func.sum(runs.c.fetched),
            sa.func.sum(runs.c.extracted),
            sa.func.sum(runs.c.indexed),
            sa.func.sum(runs.c.dropped),
            sa.func.count(),
            sa.func.sum(sa.case((runs.c.unreachable.is_not(None), 1), else_=0)),
        ).group_by(runs.c.source_id)
        errors_by: dict[tuple[str, str], int] = {}
        with self.engine.connect() as conn:
            for source, fetched, extracted, indexed, dropped, count, unreachable in conn.execute(query):
                for key, value in zip(totals, (fetched, extracted, indexed, dropped), strict=True):
                    totals[key].add_metric([source], float(value or 0))
                run_outcomes.add_metric([source, "reached"], float(count - (unreachable or 0)))
                run_outcomes.add_metric([source, "unreachable"], float(unreachable or 0))
            for source, errs in conn.execute(sa.select(runs.c.source_id, runs.c.errors)):
                for kind, value in (errs or {}).items():
                    errors_by[(source, str(kind))] = errors_by.get((source, str(kind)), 0) + int(value or 0)
        for (source, kind), value in sorted(errors_by.items()):
            failed.add_metric([source, kind], float(value))
        yield from totals.values()
        yield failed
        yield run_outcomes
        status = GaugeMetricFamily(
            "duluan_source_status",
            "1 for each enabled source's health status (ok, silent, unreachable, failing, never_run)",
            labels=["source", "status"],
        )
        last_success = GaugeMetricFamily(
            "duluan_source_last_success_timestamp_seconds",
            "Last run that reached the source",
            labels=["source"],
        )
        for health in source_health(self.engine):
            if not health.enabled:
                continue
            status.add_metric([health.source_id, health.status], 1)
            if health.last_success_at:
                last_success.add_metric([health.source_id], health.last_success_at.timestamp())
        yield status
        yield last_success

    def _outbox(self) -> Iterator[Metric]:
        from alerts.store import alert_deliveries, digest_deliveries

        backlog = GaugeMetricFamily(
            "duluan_outbox_messages",
            "Outbox rows by kind and status (pending = backlog)",
            labels=["kind", "status"],
        )
        oldest = GaugeMetricFamily(
            "duluan_outbox_oldest_pending_age_seconds", "Age of the oldest pending message", labels=["kind"]
        )
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            for kind, table in (("alert", alert_deliveries), ("digest", digest_deliveries)):
                for status_value, count in conn.execute(
                    sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
                ):
                    backlog.add_metric([kind, str(status_value)], float(count))
                first = conn.execute(
                    sa.select(sa.func.min(table.c.created_at)).where(
                        table.c.status.in_(("pending", "sending", "transmitting"))
                    )
                ).scalar()
                age = (now - _aware(first)).total_seconds() if first else 0.0
                oldest.add_metric([kind], max(age, 0.0))
        yield backlog
        yield oldest

    def _scheduler(self) -> Iterator[Metric]:
        from alerts.store import service_leases

        held = GaugeMetricFamily(
            "duluan_scheduler_lease_valid", "1 while some process holds a valid scheduler lease"
        )
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(service_leases).where(service_leases.c.name == "scheduler")).first()
        held.add_metric([], 1.0 if row and _aware(row.expires_at) > datetime.now(UTC) else 0.0)
        yield held
        runs = CounterMetricFamily(
            "duluan_scheduler_job_runs", "Scheduled job runs by job and outcome", labels=["job", "outcome"]
        )
        last = GaugeMetricFamily(
            "duluan_scheduler_job_last_run_timestamp_seconds",
            "Last run per job and outcome",
            labels=["job", "outcome"],
        )
        for job_id, job in sorted(read_journal(journal_dir(self.settings.home) / JOBS_JOURNAL).items()):
            for outcome, count in sorted(job.get("outcomes", {}).items()):
                runs.add_metric([job_id, outcome], float(count))
            for outcome, moment in sorted(job.get("last", {}).items()):
                last.add_metric([job_id, outcome], float(moment))
        yield runs
        yield last

    def _index(self) -> Iterator[Metric]:
        documents = GaugeMetricFamily("duluan_index_documents", "Documents in the search index")
        documents.add_metric([], float(self.count_documents()))
        yield documents
        committed = index_last_commit(self.settings)
        if committed is not None:
            last = GaugeMetricFamily(
                "duluan_index_last_commit_timestamp_seconds", "When the embedded index was last written"
            )
            last.add_metric([], committed.timestamp())
            yield last

    def _nlp(self) -> Iterator[Metric]:
        data = read_journal(journal_dir(self.settings.home) / NLP_JOURNAL)
        histogram = HistogramMetricFamily(
            "duluan_nlp_enrich_seconds", "Time to enrich one document (all NLP steps), from crawl processes"
        )
        bounds = data.get("buckets") or list(NLP_BUCKETS)
        counts = data.get("counts") or [0] * (len(bounds) + 1)
        cumulative, buckets = 0, []
        for bound, count in zip([*bounds, float("inf")], counts, strict=True):
            cumulative += int(count)
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(cumulative)))
        histogram.add_metric([], buckets, float(data.get("sum", 0.0)))
        yield histogram


#: Headers a reverse proxy adds: a request carrying one came through a proxy, so its loopback peer
#: address says nothing about the real client.
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def metrics_allowed(client_host: str | None, headers: Any, token_valid: bool) -> bool:
    """Who may read /metrics: any valid API bearer token (a remote Prometheus, with the token of a
    dedicated low-privilege account), or a loopback client that did not come through a reverse proxy
    (Prometheus or curl on the same machine). A proxy on the same machine would make every visitor
    look local, so a request with X-Forwarded-For / Forwarded / X-Real-IP needs the token."""
    import ipaddress

    if token_valid:
        return True
    if not client_host or any(name in headers for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False
