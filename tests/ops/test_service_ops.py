"""The running service: loopback bind, /metrics from the shared state, `duluan status`, secrets in logs."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alerts.lease import try_acquire
from alerts.store import save_rule
from crawlers.health import record_crawl_report
from crawlers.registry import SourceSpec, upsert_sources
from crawlers.run import CrawlReport, SourceReport
from duluan.db import create_db_engine, open_database
from duluan.metrics import LatencyRecorder, record_job_outcome
from duluan.operations import run_alert_rules
from duluan.service import deliver_outbox
from index.tantivy_backend import TantivyIndex
from tests.foundation.conftest import duluan_env, free_port, run_duluan
from tests.ops.conftest import build_home, make_document, settings_for

SMTP_PASSWORD = "smtp-Pa55-VERY-secret-91"
BOT_TOKEN = "987654:TELEGRAM-secret-token-XYZ"
FB_TOKEN = "EAAG-facebook-secret-token-77"
YT_KEY = "AIza-youtube-secret-key-55"
SECRETS = (SMTP_PASSWORD, BOT_TOKEN, FB_TOKEN, YT_KEY, "TELEGRAM-secret", "secret-token", "secret-key")


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def _record_some_activity(settings) -> None:
    engine = open_database(settings.db_url)
    report = CrawlReport(
        sources={"baodongnai": SourceReport("baodongnai", fetched=12, extracted=10, indexed=9, dropped=1)}
    )
    report.sources["baodongnai"].errors.update({"http_404": 2})
    record_crawl_report(engine, report)
    engine.dispose()
    latency = LatencyRecorder()
    for seconds in (0.004, 0.02, 0.02, 0.3):
        latency.observe(seconds)
    latency.flush(settings.home)
    record_job_outcome(settings.home, "alerts:rules", "success")
    record_job_outcome(settings.home, "alerts:rules", "error", error="boom")


def test_serve_binds_loopback_and_metrics_read_the_shared_state(tmp_path: Path) -> None:
    settings = build_home(tmp_path / "home", documents=30)
    _record_some_activity(settings)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "duluan", "serve"],
        cwd=tmp_path,
        env=duluan_env(settings.home, DULUAN_WEB__PORT=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "duluan serve did not start"
            time.sleep(0.2)
        # Bound to 127.0.0.1 only (not 0.0.0.0, not another interface).
        assert _listen_addresses(port) == {"0100007F"}
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200, metrics.text
        text = metrics.text
        for line in (
            "duluan_index_documents 30.0",
            'duluan_documents_fetched_total{source="baodongnai"} 12.0',
            'duluan_documents_indexed_total{source="baodongnai"} 9.0',
            'duluan_documents_failed_total{kind="http_404",source="baodongnai"} 2.0',
            'duluan_nlp_enrich_seconds_bucket{le="0.025"} 3.0',
            "duluan_nlp_enrich_seconds_count 4.0",
            'duluan_scheduler_job_runs_total{job="alerts:rules",outcome="error"} 1.0',
            "duluan_scheduler_lease_valid 0.0",
            'duluan_outbox_oldest_pending_age_seconds{kind="alert"} 0.0',
            'duluan_metrics_collect_errors{part="index"} 0.0',
        ):
            assert line in text, line
        # Through a reverse proxy the loopback peer proves nothing: a token is needed.
        proxied = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=10)
        assert proxied.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_status_reports_health_and_exit_code(tmp_path: Path) -> None:
    settings = build_home(tmp_path / "home", documents=12)
    _record_some_activity(settings)
    down = run_duluan("status", "--json", home=settings.home, timeout=120)
    assert down.returncode == 1, down.stderr
    report = json.loads(down.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["healthy"] is False and checks["scheduler"]["level"] == "fail"
    assert checks["database"]["level"] == "ok" and checks["database"]["details"]["revision"]
    assert checks["index"]["details"]["documents"] == 12 and checks["index"]["details"]["last_indexed_at"]
    assert checks["sources"]["details"]["counts"] == {"ok": 1}
    engine = create_db_engine(settings.db_url)
    try_acquire(engine, "scheduler", "ioc-1:77:cafe", timedelta(minutes=10), datetime.now(UTC))
    engine.dispose()
    up = run_duluan("status", home=settings.home, timeout=120)
    assert "ioc-1:77:cafe" in up.stdout and "alerts:rules" in up.stdout and "GiB free" in up.stdout
    # The last rules run failed: a warning, not a failure; everything else is fine.
    assert up.returncode == 0, up.stdout + up.stderr
    missing = run_duluan("status", home=tmp_path / "nowhere", timeout=120)
    assert missing.returncode == 1 and "no database" in missing.stdout


def test_secrets_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    closed = free_port()  # nothing listens: every channel and API call fails and is logged
    overrides = {
        "log_level": "DEBUG",
        "crawl": {
            "facebook_graph_url": f"http://127.0.0.1:{closed}/v19.0",
            "facebook_page_token": FB_TOKEN,
            "youtube_api_url": f"http://127.0.0.1:{closed}/youtube/v3",
            "youtube_api_key": YT_KEY,
            "timeout_s": 3,
        },
        "alerts": {
            "smtp": {"host": "127.0.0.1", "port": closed, "username": "ioc", "password": SMTP_PASSWORD},
            "telegram": {"bot_token": BOT_TOKEN, "api_base": f"http://127.0.0.1:{closed}"},
        },
    }
    settings = build_home(tmp_path / "home", documents=0)
    settings = settings_for(settings.home, **overrides)
    now = datetime.now(UTC)
    index = TantivyIndex(settings.index_dir)
    index.upsert(
        [make_document(i).model_copy(update={"fetched_at": now, "published_at": now}) for i in range(3)]
    )
    index.close()
    engine = open_database(settings.db_url)
    save_rule(
        engine,
        {
            "name": "mọi tin",
            "owner": "admin",
            "rule_type": "match",
            "channels": [
                {"channel": "email", "recipients": ["lanhdao@ioc.gov.vn"]},
                {"channel": "telegram", "recipients": ["-100123"]},
            ],
        },
    )
    upsert_sources(
        engine,
        [
            SourceSpec(
                id="fb", name="FB", type="facebook", start_urls=["https://www.facebook.com/baodongnai"]
            ),
            SourceSpec(
                id="yt", name="YT", type="youtube", start_urls=["https://www.youtube.com/@baodongnai"]
            ),
        ],
    )
    engine.dispose()
    with caplog.at_level(logging.DEBUG):
        assert run_alert_rules(settings)
        outbox = deliver_outbox(settings)
    assert outbox.channels_down or outbox.retrying  # the failures really happened and were logged
    env = {
        "DULUAN_LOG_LEVEL": "DEBUG",
        "DULUAN_CRAWL__FACEBOOK_GRAPH_URL": f"http://127.0.0.1:{closed}/v19.0",
        "DULUAN_CRAWL__FACEBOOK_PAGE_TOKEN": FB_TOKEN,
        "DULUAN_CRAWL__YOUTUBE_API_URL": f"http://127.0.0.1:{closed}/youtube/v3",
        "DULUAN_CRAWL__YOUTUBE_API_KEY": YT_KEY,
        "DULUAN_CRAWL__TIMEOUT_S": "3",
        "DULUAN_ALERTS__SMTP__PASSWORD": SMTP_PASSWORD,
        "DULUAN_ALERTS__TELEGRAM__BOT_TOKEN": BOT_TOKEN,
    }
    crawl = run_duluan("crawl", "--source", "fb", "--source", "yt", home=settings.home, timeout=240, **env)
    logs = caplog.text + crawl.stdout + crawl.stderr
    assert "127.0.0.1" in crawl.stdout + crawl.stderr  # the API calls were made and logged at DEBUG
    assert "telegram" in caplog.text.lower() and "email" in caplog.text.lower()
    for secret in SECRETS:
        assert secret not in logs, f"{secret!r} leaked into the logs"


def _ok_job() -> None:
    pass


def _failing_job() -> None:
    raise RuntimeError("source gone")


def test_scheduler_job_outcomes_are_journaled(tmp_path: Path) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from duluan.metrics import JOBS_JOURNAL, install_job_journal, journal_dir, read_journal

    scheduler = BackgroundScheduler(timezone="UTC")
    install_job_journal(scheduler, tmp_path)
    scheduler.start()
    try:
        scheduler.add_job(_ok_job, id="housekeeping:daily")
        scheduler.add_job(_failing_job, id="crawl:gone")
        deadline = time.monotonic() + 10
        while len(read_journal(journal_dir(tmp_path) / JOBS_JOURNAL)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    journal = read_journal(journal_dir(tmp_path) / JOBS_JOURNAL)
    assert journal["housekeeping:daily"]["outcomes"] == {"success": 1}
    assert journal["crawl:gone"]["last_outcome"] == "error"
    assert "source gone" in journal["crawl:gone"]["last_error"]
