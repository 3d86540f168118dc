"""The service's scheduled jobs: job store sync, misfires, crashes, channels from settings, and the
daily digest + alert outbox delivered end to end to a real SMTP server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from alerts.engine import run_rules_once
from alerts.store import KeyState, save_rule, upsert_rule_state
from duluan.db import open_database
from duluan.service import (
    JobSpec,
    channels_from_settings,
    deliver_outbox,
    housekeeping,
    new_scheduler,
    produce_daily_digest,
    service_jobs,
    sync_jobs,
)
from duluan.settings import Settings, load_settings
from index.tantivy_backend import TantivyIndex
from tests.alerts import scheduler_worker
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, SmtpInbox
from tests.alerts.test_alert_digest import DAY, _seed


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'duluan.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def scheduler(engine: sa.Engine) -> Iterator[BackgroundScheduler]:
    scheduler = new_scheduler(engine, UTC)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=True)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.txt"
    monkeypatch.setenv(scheduler_worker.CALLS_ENV, str(path))
    return path


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sync_keeps_unchanged_jobs_replaces_changed_and_removes_stale(scheduler: BackgroundScheduler) -> None:
    every_10m = IntervalTrigger(minutes=10, timezone=UTC)
    jobs = [
        JobSpec("alerts:rules", scheduler_worker.count_call, every_10m, "rules"),
        JobSpec("crawl:a", scheduler_worker.count_call, every_10m, "crawl a", run_now_if_new=True),
    ]
    scheduler.add_job(scheduler_worker.count_call, "interval", hours=1, id="someone-else:job")
    before = datetime.now(UTC)
    sync_jobs(scheduler, jobs, managed_prefixes=("alerts:", "crawl:"))
    crawl = scheduler.get_job("crawl:a")
    assert crawl is not None and crawl.next_run_time <= datetime.now(UTC)  # new source: crawled at once
    rules = scheduler.get_job("alerts:rules")
    assert rules is not None and rules.next_run_time >= before + timedelta(minutes=9)

    stored_time = datetime.now(UTC) + timedelta(minutes=3)
    rules.modify(next_run_time=stored_time)
    sync_jobs(scheduler, jobs, managed_prefixes=("alerts:", "crawl:"))  # a restart: nothing changed
    rules = scheduler.get_job("alerts:rules")
    assert rules is not None and abs((rules.next_run_time - stored_time).total_seconds()) < 0.01

    changed = [JobSpec("alerts:rules", scheduler_worker.count_call, IntervalTrigger(minutes=30), "rules")]
    sync_jobs(scheduler, changed, managed_prefixes=("alerts:", "crawl:"))
    rules = scheduler.get_job("alerts:rules")
    assert rules is not None and str(rules.trigger) == "interval[0:30:00]"
    assert scheduler.get_job("crawl:a") is None  # source disabled since: its job is gone
    assert scheduler.get_job("someone-else:job") is not None


def test_missed_runs_are_coalesced_within_grace_and_skipped_beyond(
    scheduler: BackgroundScheduler, calls: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    # Down for 2 minutes with a 1 s interval: 120 missed runs become ONE run.
    scheduler.add_job(
        scheduler_worker.count_call,
        IntervalTrigger(seconds=60),
        id="within-grace",
        next_run_time=now - timedelta(minutes=2),
    )
    # Down for longer than the 15 min grace time: the run is skipped and logged, the next one is kept.
    scheduler.add_job(
        scheduler_worker.crash_on_first_run,
        IntervalTrigger(hours=1),
        id="beyond-grace",
        next_run_time=now - timedelta(minutes=20),
    )
    with caplog.at_level(logging.WARNING, logger="duluan.service"):
        scheduler.resume()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "missed its run" not in caplog.text:
            time.sleep(0.05)
        time.sleep(0.5)
    assert _count(calls) == 1
    assert "scheduled job beyond-grace missed its run" in caplog.text
    job = scheduler.get_job("beyond-grace")
    assert job is not None and job.next_run_time > now


def test_a_crashing_job_is_logged_and_runs_again(
    scheduler: BackgroundScheduler, calls: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler.add_job(scheduler_worker.crash_on_first_run, IntervalTrigger(seconds=1), id="flaky")
    with caplog.at_level(logging.ERROR, logger="duluan.service"):
        scheduler.resume()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and _count(calls) < 2:
            time.sleep(0.05)
    assert _count(calls) >= 2, "the job did not run again after crashing"
    assert "scheduled job flaky crashed: RuntimeError('lỗi thử nghiệm: first run crashes')" in caplog.text
    assert scheduler.running


def _settings(home: Path, **alerts: object) -> Settings:
    return load_settings(home=home, alerts=alerts)


def test_only_configured_channels_exist_and_secrets_stay_hidden(tmp_path: Path) -> None:
    assert channels_from_settings(_settings(tmp_path).alerts) == {}
    settings = _settings(
        tmp_path,
        smtp={"host": "mail.ioc.example.vn", "username": "duluan", "password": "mat-khau-bi-mat"},
        telegram={"bot_token": "123456:bi-mat-telegram"},
        webhook={"secret": "bi-mat-webhook"},
    )
    channels = channels_from_settings(settings.alerts)
    assert sorted(channels) == ["email", "telegram", "webhook"]
    shown = repr(settings) + str(settings.model_dump())
    for secret in ("mat-khau-bi-mat", "bi-mat-telegram", "bi-mat-webhook"):
        assert secret not in shown


def test_service_jobs_cover_rules_outbox_digest_and_housekeeping(tmp_path: Path, engine: sa.Engine) -> None:
    ids = {job.id for job in service_jobs(_settings(tmp_path, delivery_interval_seconds=30), engine)}
    assert {"alerts:rules", "alerts:deliver", "digest:daily", "housekeeping:daily"} <= ids


def test_daily_digest_and_alerts_reach_smtp_and_unconfigured_channels_wait(
    tmp_path: Path, smtp_server: SmtpInbox, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    groups = {"lanh-dao": ["chu-tich@ioc.example.vn"], "truc-ban": ["truc@ioc.example.vn"]}
    smtp = {
        "host": smtp_server.host,
        "port": smtp_server.port,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "ca_file": smtp_server.ca_file,
        "sender": "ban-tin@ioc.example.vn",
    }
    settings = _settings(home, smtp=smtp, digest_groups=groups)
    home.mkdir()
    index = TantivyIndex(settings.index_dir)
    try:
        _seed(index)
        engine = open_database(settings.db_url)
        save_rule(
            engine,
            {
                "name": "Tin tiêu cực về Đồng Nai",
                "owner": "ioc",
                "rule_type": "match",
                "filters": {"sentiment": "negative", "min_province_relevance": 0.5},
                "params": {"first_run_lookback_minutes": 24 * 60},
                "channels": [
                    {"channel": "email", "recipients": ["truc@ioc.example.vn"]},
                    {"channel": "telegram", "recipients": ["-1001234567890"]},
                ],
            },
        )
        fired = run_rules_once(index, engine, datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
        assert fired
    finally:
        index.close()

    archive = produce_daily_digest(settings, DAY)
    assert archive.pdf is not None and archive.pdf.is_file() and archive.email is not None
    with caplog.at_level(logging.WARNING, logger="duluan.service"):
        result = deliver_outbox(settings)
    assert result.unconfigured == {"telegram"}
    assert (
        "messages for channel telegram are waiting: the channel is not configured; set alerts.telegram"
        in (caplog.text)
    )
    subjects = sorted(str(m["Subject"]) for m in smtp_server.messages)
    assert subjects.count("Bản tin dư luận Đồng Nai – Thứ Sáu, 27/11/2026") == 2
    # Two digests, and the rule's two alerts (two stories) grouped into one message to the same person.
    assert "[Duluan] Tin tiêu cực về Đồng Nai: 2 cảnh báo mới" in subjects and len(subjects) == 3
    assert result.sent == 4
    # Producing the same day again re-archives but does not send twice.
    produce_daily_digest(settings, DAY)
    assert deliver_outbox(settings).sent == 0 and len(smtp_server.messages) == 3
    engine.dispose()


def test_housekeeping_forgets_old_per_key_state(tmp_path: Path) -> None:
    settings = _settings(tmp_path, state_retention_days=14)
    engine = open_database(settings.db_url)
    rule_id = save_rule(engine, {"name": "r", "owner": "ioc", "rule_type": "match", "query": "sạt lở"})
    old, recent = datetime.now(UTC) - timedelta(days=30), datetime.now(UTC) - timedelta(days=1)
    with engine.begin() as conn:
        upsert_rule_state(conn, rule_id, KeyState("cluster:old", old, "f1", {}), old)
        upsert_rule_state(conn, rule_id, KeyState("cluster:new", recent, "f2", {}), recent)
    assert housekeeping(settings) == 1
    engine.dispose()


def test_the_morning_digest_covers_the_previous_full_day() -> None:
    from zoneinfo import ZoneInfo

    from duluan.service import morning_digest_day

    seven_am = datetime(2026, 11, 28, 7, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert morning_digest_day(seven_am).isoformat() == "2026-11-27"
