"""Story clustering (gom cụm tin): one `cluster_id` for one story republished across outlets.

Vietnamese outlets syndicate heavily (TTXVN copy, provincial papers reprinting national stories), so
near-duplicate bodies are grouped with MinHash LSH over word shingles. Vietnamese words are
mostly one to three syllables; shingles of `SHINGLE_SYLLABLES` consecutive syllables cover the same
phrases as segmented-word shingles without running a segmenter on every page (a speed choice; not
yet compared against underthesea-segmented shingles).

The LSH bands live in SQLite next to the crawl state, so clusters span runs and the per-source crawl
processes. A cluster's id is the document id of its first publisher; the cluster table records that
publisher, its source, the first publication time and the cluster size.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from datasketch import MinHash

NUM_PERM = 128
BANDS = 16  # 16 bands x 8 rows: pairs above ~0.7 Jaccard almost always collide
ROWS = NUM_PERM // BANDS
#: Estimated Jaccard similarity from which two bodies count as the same story.
SAME_STORY_JACCARD = 0.5
SHINGLE_SYLLABLES = 4
#: Only this many members of a cluster are indexed in the LSH bands: enough to catch rewrites of the
#: story, while a story copied 200 times does not make every later lookup compare 200 signatures.
REPRESENTATIVES_PER_CLUSTER = 8
_TOKEN = re.compile(r"\w+", re.UNICODE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS story_bands (
    band INTEGER NOT NULL, bucket TEXT NOT NULL, document_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS story_bands_lookup ON story_bands (band, bucket);
CREATE TABLE IF NOT EXISTS story_members (
    document_id TEXT PRIMARY KEY, cluster_id TEXT NOT NULL, signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS story_clusters (
    cluster_id TEXT PRIMARY KEY, first_document_id TEXT NOT NULL, first_source TEXT NOT NULL,
    first_published_at TEXT, size INTEGER NOT NULL
);
"""


def shingles(text: str, k: int = SHINGLE_SYLLABLES) -> set[str]:
    """Lower-cased k-syllable shingles of a text (NFC); short texts give one shingle of everything."""
    tokens = _TOKEN.findall(unicodedata.normalize("NFC", text).lower())
    if len(tokens) <= k:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


def signature(text: str) -> np.ndarray:
    """The MinHash signature (NUM_PERM uint64 values) of a text's shingles."""
    minhash = MinHash(num_perm=NUM_PERM, seed=7)
    minhash.update_batch([shingle.encode("utf-8") for shingle in shingles(text)])
    return np.asarray(minhash.hashvalues, dtype=np.uint64)


def _band_buckets(values: np.ndarray) -> list[str]:
    return [hashlib.sha1(values[b * ROWS : (b + 1) * ROWS].tobytes()).hexdigest()[:16] for b in range(BANDS)]


@dataclass(frozen=True)
class StoryCluster:
    """A story and its coverage: first publisher and how many documents carry it."""

    cluster_id: str
    first_document_id: str
    first_source: str
    first_published_at: str | None
    size: int


class StoryClusterer:
    """Assigns cluster ids; persistent across runs and processes through one SQLite file."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            state_dir / "story_clusters.sqlite", timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def assign(self, document_id: str, text: str, source: str, published_at: datetime | None) -> str:
        """The cluster id for a document, creating a new cluster when no earlier story matches.

        Re-assigning a known document returns its cluster unchanged (re-crawls do not grow clusters).
        """
        known = self._conn.execute(
            "SELECT cluster_id FROM story_members WHERE document_id = ?", (document_id,)
        ).fetchone()
        if known:
            return str(known[0])
        values = signature(text)
        buckets = _band_buckets(values)
        empty = not shingles(text)  # an empty body is no evidence of sameness
        cluster_id = None if empty else self._best_match(values, buckets)
        published = published_at.isoformat() if published_at else None
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if cluster_id is None:
                cluster_id = document_id
                self._conn.execute(
                    "INSERT OR IGNORE INTO story_clusters VALUES (?, ?, ?, ?, 0)",
                    (cluster_id, document_id, source, published),
                )
            self._conn.execute(
                "INSERT INTO story_members VALUES (?, ?, ?)", (document_id, cluster_id, values.tobytes())
            )
            size = self._conn.execute(
                "SELECT size FROM story_clusters WHERE cluster_id = ?", (cluster_id,)
            ).fetchone()
            if not empty and (size is None or size[0] < REPRESENTATIVES_PER_CLUSTER):
                self._conn.executemany(
                    "INSERT INTO story_bands VALUES (?, ?, ?)",
                    [(b, bucket, document_id) for b, bucket in enumerate(buckets)],
                )
            self._conn.execute(
                "UPDATE story_clusters SET size = size + 1 WHERE cluster_id = ?", (cluster_id,)
            )
            self._update_first_publisher(cluster_id, document_id, source, published)
        return cluster_id

    def _update_first_publisher(
        self, cluster_id: str, document_id: str, source: str, published: str | None
    ) -> None:
        """An earlier publication time discovered later (crawl order is not publication order) wins."""
        row = self._conn.execute(
            "SELECT first_published_at FROM story_clusters WHERE cluster_id = ?", (cluster_id,)
        ).fetchone()
        if published and row and row[0] and published < row[0]:
            self._conn.execute(
                "UPDATE story_clusters SET first_document_id = ?, first_source = ?, first_published_at = ? "
                "WHERE cluster_id = ?",
                (document_id, source, published, cluster_id),
            )

    def _best_match(self, values: np.ndarray, buckets: list[str]) -> str | None:
        """The cluster of the most similar indexed document above the threshold, if any."""
        condition = " OR ".join(["(b.band = ? AND b.bucket = ?)"] * len(buckets))
        params = [p for band, bucket in enumerate(buckets) for p in (band, bucket)]
        rows = self._conn.execute(
            "SELECT DISTINCT m.document_id, m.cluster_id, m.signature FROM story_bands b "
            f"JOIN story_members m ON m.document_id = b.document_id WHERE {condition}",
            params,
        ).fetchall()
        best: tuple[float, str] | None = None
        for _, cluster_id, blob in rows:
            similarity = float(np.mean(np.frombuffer(blob, dtype=np.uint64) == values))
            if similarity >= SAME_STORY_JACCARD and (best is None or similarity > best[0]):
                best = (similarity, str(cluster_id))
        return best[1] if best else None

    def cluster(self, cluster_id: str) -> StoryCluster | None:
        row = self._conn.execute(
            "SELECT * FROM story_clusters WHERE cluster_id = ?", (cluster_id,)
        ).fetchone()
        return StoryCluster(*row) if row else None

    def close(self) -> None:
        self._conn.close()
