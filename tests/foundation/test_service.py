"""`duluan up`: the service answers /healthz quickly and survives sources it cannot reach."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.foundation.conftest import duluan_env, free_port


def _wait_for(url: str, deadline_s: float) -> httpx.Response:
    end = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError as exc:
            last = exc
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {deadline_s}s: {last!r}")


def test_up_serves_health_and_reports_unreachable_source(home: Path) -> None:
    dead_port = free_port()  # nothing listens here: the source is unreachable
    seed = home.parent / "seed.yaml"
    seed.write_text(
        "sources:\n"
        "  - id: dead-outlet\n"
        "    name: Báo không truy cập được\n"
        "    type: rss\n"
        f"    start_urls: [http://127.0.0.1:{dead_port}/rss.xml]\n"
        "    schedule: every 30m\n",
        encoding="utf-8",
    )
    port = free_port()
    log = home.parent / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "duluan", "up"],
            cwd=home.parent,
            env=duluan_env(
                home,
                DULUAN_WEB__PORT=str(port),
                DULUAN_CRAWL__SOURCES_SEED=str(seed),
                DULUAN_CRAWL__TIMEOUT_S="3",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/healthz", 60)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        # The crawl of the dead source runs at start; its failure is logged per source, the service stays up.
        end = time.monotonic() + 90
        while time.monotonic() < end and "source dead-outlet unreachable" not in log.read_text():
            time.sleep(0.5)
        text = log.read_text()
        assert "source dead-outlet unreachable" in text, text[-3000:]
        assert proc.poll() is None, "service exited after an unreachable source"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
