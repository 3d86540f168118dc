"""The application database (SQLite by default, PostgreSQL for multi-worker set-ups).

Each stage declares its own tables on its own `MetaData`; this module gathers them, and Alembic
migrations in `duluan/migrations/` create and evolve them. `open_database` always migrates to head,
so an upgraded service never runs on an old schema.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event

import crawlers.health  # noqa: F401  (declares crawl_runs on the registry's metadata)
from alerts.store import metadata as alerts_metadata
from crawlers.registry import metadata as crawlers_metadata
from duluan.accounts import metadata as accounts_metadata
from duluan.digest_subscriptions import metadata as subscriptions_metadata
from duluan.source_claims import metadata as source_claims_metadata
from index.saved_searches import metadata as saved_searches_metadata
from nlp.registry import metadata as model_registry_metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Every table the service owns, for Alembic autogenerate.
ALL_METADATA: list[sa.MetaData] = [
    crawlers_metadata,
    alerts_metadata,
    accounts_metadata,
    saved_searches_metadata,
    model_registry_metadata,
    subscriptions_metadata,
    source_claims_metadata,
]


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # WAL lets the web process read while a crawl subprocess writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_db_engine(url: str) -> sa.Engine:
    """An engine with the SQLite settings a multi-process service needs."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


#: Alembic keeps its running context in module globals, so two threads migrating at once (the web app
#: starting while a scheduled job opens the database) break each other; one at a time per process.
_MIGRATE_LOCK = threading.Lock()


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (idempotent)."""
    with _MIGRATE_LOCK:
        command.upgrade(alembic_config(url), "head")


def open_database(url: str) -> sa.Engine:
    """Migrate, then return an engine: the one way the service opens its database."""
    migrate(url)
    return create_db_engine(url)
