"""Crawl state that outlives one run (trạng thái thu thập): seen URLs and HTTP validators.

A small SQLite file under the crawl state directory. A URL is marked seen only after its document
was handed to the sink successfully, so a crawl killed at any point (even SIGKILL) loses nothing:
the next run re-reads the feed and fetches whatever was not yet delivered, and because document ids
come from the canonical URL, re-delivering a document updates it instead of duplicating it.
Several crawl processes (one per source) may share the file: WAL mode plus a busy timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_urls (
    url_key TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    document_id TEXT,
    seen_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS validators (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    updated_at TEXT NOT NULL
);
"""


class CrawlState:
    """Seen-URL set and ETag/Last-Modified store for one crawl state directory."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "crawl_state.sqlite"
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def is_seen(self, url_key: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM seen_urls WHERE url_key = ?", (url_key,)).fetchone()
        return row is not None

    def mark_seen(self, entries: Iterable[tuple[str, str, str | None]]) -> None:
        """Record (url_key, source_id, document_id) triples in one transaction."""
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR REPLACE INTO seen_urls (url_key, source_id, document_id, seen_at)"
                " VALUES (?, ?, ?, ?)",
                [(key, source, doc, now) for key, source, doc in entries],
            )

    def seen_count(self, source_id: str | None = None) -> int:
        if source_id is None:
            return int(self._conn.execute("SELECT COUNT(*) FROM seen_urls").fetchone()[0])
        query = "SELECT COUNT(*) FROM seen_urls WHERE source_id = ?"
        return int(self._conn.execute(query, (source_id,)).fetchone()[0])

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """The (ETag, Last-Modified) last served for a feed/sitemap/listing URL."""
        row = self._conn.execute(
            "SELECT etag, last_modified FROM validators WHERE url = ?", (url,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def save_validators(self, url: str, etag: str | None, last_modified: str | None) -> None:
        if not etag and not last_modified:
            return
        self._conn.execute(
            "INSERT OR REPLACE INTO validators (url, etag, last_modified, updated_at) VALUES (?, ?, ?, ?)",
            (url, etag, last_modified, datetime.now(UTC).isoformat()),
        )

    def close(self) -> None:
        self._conn.close()
