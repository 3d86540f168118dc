"""Exports as background jobs (xuất kết quả chạy nền): start, follow progress, download.

Each job lives in its own directory `<home>/exports/<id>/`: `status.json` (owner, query, filters,
format, state, rows written, total) and, once done, the file. The id is 32 random hex digits and is
checked against that pattern before any path is built, so a request can never name a file outside
the exports directory. Jobs run on a small thread pool of the web process and write through
`index.export` (streaming CSV/XLSX, cells neutralised against formula injection). Status files are
replaced atomically, so any worker process of the web app can read a consistent state.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from index.backend import SearchBackend, SearchFilters
from index.export import ExportFormat, write_csv, write_xlsx
from index.saved_searches import filters_from_json, filters_to_json
from schema import Document

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: A job exports at most this many documents (the status says when the result was cut).
MAX_ROWS = 200_000
#: Finished jobs and their files are removed after this long.
KEEP_FOR = timedelta(days=7)
#: A running job whose status has not moved for this long died with its process.
STALE_AFTER = timedelta(minutes=10)
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ExportJobError(ValueError):
    """The job cannot be found or used as asked; the message says why."""


class Cancelled(Exception):
    """Raised inside the writer when someone cancelled the job."""


@dataclass
class ExportJob:
    id: str
    owner: str
    query: str
    filters: str  # JSON of the SearchFilters that are set
    format: ExportFormat
    state: JobState = "queued"
    rows: int = 0
    total: int = 0
    limit: int = MAX_ROWS
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    updated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    error: str | None = None
    filename: str | None = None

    @property
    def expected(self) -> int:
        return min(self.total, self.limit)

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return int(100 * self.rows / self.expected) if self.expected else 0

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "filters": json.loads(self.filters),
            "percent": self.percent,
            "truncated": self.truncated,
            "status_url": f"/api/v1/exports/{self.id}",
            "download_url": f"/api/v1/exports/{self.id}/download" if self.state == "done" else None,
        }


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".status.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class ExportJobs:
    """The export jobs of one home; `start` queues a job on a thread pool of `workers` threads."""

    def __init__(self, root: Path, workers: int = 1) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export")
        self._lock = threading.Lock()
        self._cancel: set[str] = set()  # jobs to stop (the server is closing)
        self._mine: set[str] = set()  # jobs queued or running in this process

    # -- paths and status files --

    def _dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ExportJobError(f"{job_id!r} is not an export id (32 hex digits)")
        return self.root / job_id

    def _write(self, job: ExportJob) -> None:
        job.updated_at = datetime.now(UTC).isoformat()
        _atomic_json(self._dir(job.id) / "status.json", asdict(job))

    def get(self, job_id: str) -> ExportJob:
        path = self._dir(job_id) / "status.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ExportJobError(
                f"no export {job_id!r} (finished exports are kept {KEEP_FOR.days} days)"
            ) from None
        job = ExportJob(**raw)
        updated = datetime.fromisoformat(job.updated_at)
        if job.state in ("queued", "running") and datetime.now(UTC) - updated > STALE_AFTER:
            job.state, job.error = "failed", "interrupted: the web process stopped during the export"
        return job

    def list(self, owner: str | None = None) -> list[ExportJob]:
        """Jobs newest first; only `owner`'s when given."""
        if not self.root.is_dir():
            return []
        jobs = []
        for entry in self.root.iterdir():
            if JOB_ID.match(entry.name) and (entry / "status.json").is_file():
                try:
                    job = self.get(entry.name)
                except (ExportJobError, ValueError, TypeError):
                    continue
                if owner is None or job.owner == owner:
                    jobs.append(job)
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def file(self, job: ExportJob) -> Path:
        """The finished file of `job` (inside its own directory, by construction)."""
        if job.state != "done" or job.filename is None:
            raise ExportJobError(f"export {job.id} is {job.state}, not done; poll its status first")
        path = self._dir(job.id) / f"result.{job.format}"
        if not path.is_file():
            raise ExportJobError(f"the file of export {job.id} is gone; start the export again")
        return path

    # -- lifecycle --

    def start(
        self,
        backend: SearchBackend,
        owner: str,
        query: str,
        filters: SearchFilters,
        fmt: ExportFormat,
        *,
        limit: int = MAX_ROWS,
    ) -> ExportJob:
        """Count the matches (a bad query raises `QueryError` here, before anything is queued), record
        the job and run it in the background."""
        if fmt not in MEDIA_TYPES:
            raise ExportJobError(f"unknown export format {fmt!r}; use csv or xlsx")
        total = backend.count(query, filters)
        self.prune()
        job = ExportJob(
            id=secrets.token_hex(16),
            owner=owner,
            query=query,
            filters=filters_to_json(filters),
            format=fmt,
            total=total,
            limit=limit,
        )
        self._dir(job.id).mkdir(parents=True)
        self._write(job)
        with self._lock:
            self._mine.add(job.id)
        self._pool.submit(self._run, backend, job)
        return job

    def cancel(self, job_id: str) -> ExportJob:
        """Stop a queued/running job, or delete a finished one's file; returns the job as it was.

        A running job is stopped through a `cancel` file in its directory, so the request may reach
        any worker process of the web app, not only the one running the export."""
        job = self.get(job_id)
        if job.state in ("queued", "running"):
            (self._dir(job_id) / "cancel").touch()
        else:
            shutil.rmtree(self._dir(job_id), ignore_errors=True)
        return job

    def _cancelled(self, job_id: str) -> bool:
        with self._lock:
            if job_id in self._cancel:
                return True
        return (self._dir(job_id) / "cancel").exists()

    def _run(self, backend: SearchBackend, job: ExportJob) -> None:
        directory = self._dir(job.id)
        part = directory / f"result.{job.format}.part"
        job.state = "running"
        self._write(job)

        def progress(rows: int) -> None:
            if self._cancelled(job.id):
                raise Cancelled()
            job.rows = rows
            self._write(job)

        try:
            progress(0)  # cancelled (or the server stopped) while it waited in the queue?
            documents: Iterator[Document] = islice(
                backend.scan(job.query, filters_from_json(job.filters)), job.limit
            )
            if job.format == "xlsx":
                job.rows = write_xlsx(documents, part, progress=progress)
            else:
                with part.open("w", encoding="utf-8-sig", newline="") as out:
                    job.rows = write_csv(documents, out, progress=progress)
            part.rename(directory / f"result.{job.format}")
            job.state, job.filename = "done", f"duluan-export-{job.created_at[:10]}.{job.format}"
        except Cancelled:
            job.state, job.error = "cancelled", "cancelled by a user"
        except Exception as exc:  # the job reports what went wrong instead of vanishing
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            part.unlink(missing_ok=True)
        job.finished_at = datetime.now(UTC).isoformat()
        with self._lock:
            stopping = job.id in self._cancel
        if job.state == "cancelled" and not stopping:  # a user cancelled it: nothing to keep
            shutil.rmtree(directory, ignore_errors=True)
        else:
            self._write(job)
        with self._lock:
            self._mine.discard(job.id)

    def prune(self, now: datetime | None = None) -> int:
        """Remove finished jobs older than KEEP_FOR; returns how many."""
        moment = now or datetime.now(UTC)
        removed = 0
        for job in self.list():
            if (
                job.state not in ("queued", "running")
                and moment - datetime.fromisoformat(job.created_at) > KEEP_FOR
            ):
                shutil.rmtree(self._dir(job.id), ignore_errors=True)
                removed += 1
        return removed

    def wait(self, job_id: str, timeout: float = 30.0) -> ExportJob:
        """Block until the job leaves queued/running (tests and the CLI); returns its last state."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.state not in ("queued", "running") or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def close(self) -> None:
        """Stop this process's jobs (at the next progress report) and wait for the threads; a job
        stopped this way reads `failed: the web server stopped` rather than staying `running`."""
        with self._lock:
            mine = set(self._mine)
            self._cancel.update(mine)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for job_id in mine:
            try:
                job = self.get(job_id)
            except ExportJobError:
                continue
            if job.state in ("queued", "running", "cancelled"):
                job.state, job.error = "failed", "the web server stopped during the export; start it again"
                job.finished_at = datetime.now(UTC).isoformat()
                self._dir(job_id).mkdir(parents=True, exist_ok=True)
                self._write(job)
