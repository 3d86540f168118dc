"""Source health from stored crawl reports, on a real SQLite database."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from crawlers.health import record_crawl_report, source_health
from crawlers.registry import SourceSpec, metadata, upsert_sources
from crawlers.run import CrawlReport, SourceReport

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    metadata.create_all(engine)
    upsert_sources(
        engine,
        [
            SourceSpec(id=sid, name=name, type="rss", start_urls=[f"https://{sid}.vn/rss"])  # type: ignore[arg-type]
            for sid, name in [
                ("dantri", "Dân trí"),
                ("baodongnai", "Báo Đồng Nai"),
                ("nld", "Người Lao Động"),
                ("vov", "VOV"),
                ("moi", "Nguồn mới"),
            ]
        ],
    )
    return engine


def _report(**per_source: SourceReport) -> CrawlReport:
    return CrawlReport(sources=per_source, duration_s=5)


def test_health_statuses(engine: sa.Engine) -> None:
    # dantri: new items every hour, fine. baodongnai: every hour until 10 h ago, then nothing new.
    for hours_ago in range(48, 0, -1):
        at = NOW - timedelta(hours=hours_ago)
        record_crawl_report(
            engine,
            _report(
                dantri=SourceReport("dantri", fetched=5, extracted=5, indexed=5),
                baodongnai=SourceReport(
                    "baodongnai",
                    fetched=3 if hours_ago > 10 else 0,
                    extracted=3 if hours_ago > 10 else 0,
                    indexed=3 if hours_ago > 10 else 0,
                    skipped_seen=0 if hours_ago > 10 else 20,
                ),
            ),
            finished_at=at,
        )
    record_crawl_report(
        engine,
        _report(
            nld=SourceReport("nld", errors={"dns": 1}, unreachable="https://nld.vn/rss: dns"),
            vov=SourceReport("vov", errors={"http_403": 1, "robots_denied": 2}),
        ),
        finished_at=NOW - timedelta(minutes=5),
    )
    health = {h.source_id: h for h in source_health(engine, now=NOW)}

    assert health["dantri"].status == "ok"
    assert health["dantri"].items_24h == 5 * 24
    assert health["dantri"].usual_gap_minutes == 60.0

    assert health["baodongnai"].status == "silent"
    assert health["baodongnai"].last_new_item_at == NOW - timedelta(hours=11)

    assert health["nld"].status == "unreachable" and "dns" in (health["nld"].last_error or "")
    assert health["nld"].last_success_at is None

    assert health["vov"].status == "failing"
    assert health["vov"].robots_denied_24h == 2 and health["vov"].errors_24h == {
        "http_403": 1,
        "robots_denied": 2,
    }

    assert health["moi"].status == "never_run" and health["moi"].last_run_at is None
    assert set(health["dantri"].to_json()) >= {"status", "items_24h", "errors_24h", "last_success_at"}
