"""Fixtures for the reliability tests: a recording demo news site, a pre-forked crawl worker, homes.

Every server here is real and listens on 127.0.0.1; every process is started by the test and
stopped by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest

from crawlers.registry import list_sources, set_enabled, upsert_sources
from duluan.demo import demo_sources
from duluan.demo_site.server import _DemoHandler, _DemoHTTPServer
from duluan.operations import ensure_sources_seeded
from duluan.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
ZYGOTE = Path(__file__).resolve().parent / "crawl_zygote.py"


def child_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """A child's environment: no inherited DULUAN_* settings, the repo importable, one BLAS thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DULUAN_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "COLUMNS": "400",
        }
    )
    if home is not None:
        env["DULUAN_HOME"] = str(home)
    env.update(extra)
    return env


# ---------------------------------------------------------------- a demo site with an access log


@dataclass
class AccessLog:
    """Every request the site received, per crawl run, and an optional kill switch on the n-th one."""

    runs: list[list[str]] = field(default_factory=lambda: [[]])
    kill_on_request: int | None = None
    target_pid: int | None = None
    pid_known: threading.Event = field(default_factory=threading.Event)
    killed_at: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_run(self, kill_on_request: int | None = None) -> None:
        with self.lock:
            self.runs.append([])
            self.kill_on_request, self.target_pid, self.killed_at = kill_on_request, None, None
            self.pid_known.clear()

    def set_pid(self, pid: int) -> None:
        self.target_pid = pid
        self.pid_known.set()

    def record(self, path: str) -> None:
        with self.lock:
            self.runs[-1].append(path)
            hit = self.kill_on_request is not None and len(self.runs[-1]) == self.kill_on_request
        if hit and self.pid_known.wait(5) and self.target_pid:
            # SIGKILL while the crawler waits for this response: a kill in the middle of a fetch.
            self.killed_at = path
            os.kill(self.target_pid, signal.SIGKILL)


class _RecordingHandler(_DemoHandler):
    server: _RecordingServer

    def _respond(self, *, send_body: bool) -> None:
        self.server.access.record(urlsplit(self.path).path)
        super()._respond(send_body=send_body)


class _RecordingServer(_DemoHTTPServer):
    def __init__(self) -> None:
        super().__init__(0)
        self.RequestHandlerClass = _RecordingHandler
        self.access = AccessLog()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A crawler killed mid-request resets its connections; that is the point, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class RecordingSite:
    server: _RecordingServer

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def access(self) -> AccessLog:
        return self.server.access

    @property
    def article_paths(self) -> set[str]:
        return {a.path for a in self.server.articles}

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/rss/tin-moi-nhat.rss"

    @property
    def sitemap_url(self) -> str:
        return f"{self.base_url}/sitemap.xml"


@pytest.fixture
def site() -> Iterator[RecordingSite]:
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, name="reliability-site", daemon=True)
    thread.start()
    yield RecordingSite(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def prepare_home(home: Path, site: RecordingSite) -> Settings:
    """A home whose registry holds only the two demo sources (RSS + sitemap) pointing at `site`."""
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=home)
    engine = ensure_sources_seeded(settings)
    try:
        for source in list_sources(engine, enabled_only=False):
            set_enabled(engine, source.id, False)
        upsert_sources(engine, demo_sources(site))  # type: ignore[arg-type]
    finally:
        engine.dispose()
    return settings


def seen_url_keys(home: Path) -> set[str]:
    """The crawl frontier's seen set, read straight from its SQLite file."""
    path = home / "crawl" / "crawl_state.sqlite"
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return {row[0] for row in conn.execute("SELECT url_key FROM seen_urls")}
    except sqlite3.OperationalError as exc:  # the crawl process has not created its tables yet
        if "no such table" not in str(exc):
            raise
        return set()
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# ---------------------------------------------------------------- the pre-forked crawl worker


class CrawlZygote:
    """Drives `crawl_zygote.py`: one forked, real crawl process per `start()`."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / "zygote.stderr"
        self._stderr: IO[bytes] = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ZYGOTE), str(workdir / "home")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=workdir,
            env=child_env(),
        )
        ready = self._read()
        assert ready.get("ready"), ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"crawl zygote died: {self.stderr_path.read_text(errors='replace')[-3000:]}")
        return dict(json.loads(line))

    def start(self, job: dict[str, Any]) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return int(self._read()["pid"])

    def wait(self, pid: int) -> int:
        """The child's wait status turned into a return code (negative: killed by that signal)."""
        done = self._read()
        assert done["pid"] == pid
        return os.waitstatus_to_exitcode(int(done["status"]))

    def stderr_tail(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._stderr.close()


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrawlZygote]:
    worker = CrawlZygote(tmp_path_factory.mktemp("zygote"))
    yield worker
    worker.close()


def kill_after(pid: int, delay_s: float) -> Callable[[], None]:
    """SIGKILL `pid` after `delay_s` from a timer thread; returns a cancel function."""
    timer = threading.Timer(delay_s, lambda: kill_quietly(pid))
    timer.daemon = True
    timer.start()
    return timer.cancel


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
