"""The Alembic migrations create exactly the tables the stages declare."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from duluan.db import ALL_METADATA, migrate, open_database


def test_migrations_match_declared_tables(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), ALL_METADATA)
    assert diff == [], f"tables changed without a migration: {diff}"
    assert {"sources", "alert_rules", "alerts"} <= set(sa.inspect(engine).get_table_names())


def test_migrate_is_idempotent_and_keeps_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = open_database(url)
    from crawlers.registry import SourceSpec, list_sources, upsert_sources

    upsert_sources(
        engine,
        [SourceSpec(id="baobinhphuoc", name="Báo Bình Phước", type="rss", start_urls=["https://x.vn/rss"])],
    )
    migrate(url)
    assert [s.id for s in list_sources(engine)] == ["baobinhphuoc"]
