"""SQLite FTS5 as the peer baseline of the embedded index (issue 8): same corpus, same staff queries.

`Fts5Index` holds the documents in one SQLite file: an FTS5 table over title and text with the
`unicode61 remove_diacritics 2` tokenizer (đ→d is folded before, as FTS5 does not treat đ as a
diacritic), a plain table with the keyword fields, the date and the stored `Document` JSON, and an
entity table. Queries of the staff language (`index.query`) are compiled to an FTS5 MATCH plus SQL
conditions where FTS5 can express them; what it cannot is reported, not approximated:

- quoted phrases with diacritics match folded (FTS5 keeps one tokenization per table), so `"Đồng Nai"`
  also finds "dong nai" — tantivy and Elasticsearch match those exactly;
- `author:` (no author column here) and an OR mixing words with field filters raise `NotExpressible`.

A results page is 20 hits by bm25 (title weighted 2) with a highlighted snippet, rebuilt as
`Document`s like the other backends; facets are one GROUP BY per field over the matches.

    .venv/bin/python bench/index_fts5.py --docs 100000       # alone; index_compare runs it side by side
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from index.query import (  # noqa: E402
    And,
    DateRange,
    Keyword,
    MatchAll,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Term,
    fold,
    keyword_key,
    parse,
)
from index.tantivy_backend import site_of  # noqa: E402
from schema import Document  # noqa: E402

TOKENIZER = "unicode61 remove_diacritics 2"
FACET_COLUMNS = {"topic", "sentiment", "source", "site", "cluster_id", "source_type"}
_KEYWORD_COLUMN = {
    "source": "source",
    "site": "site",
    "topic": "topic",
    "sentiment": "sentiment",
    "source_type": "source_type",
    "toxicity": "toxicity",
    "cluster_id": "cluster_id",
    "id": "id",
}
_WORD = re.compile(r"[^\W_]+")


class NotExpressible(ValueError):
    """The query uses something FTS5 (as set up here) cannot express with the same meaning."""


def _fold_d(text: str) -> str:
    return text.replace("đ", "d").replace("Đ", "D")


@dataclass(frozen=True)
class Fts5Result:
    total: int
    hits: list[tuple[Document, float, str]]


@dataclass
class _Compiled:
    match: str | None  # FTS5 MATCH expression, None = every document
    where: list[str]
    params: list[Any]


class Fts5Index:
    """The baseline index: SQLite FTS5 in one file, batch upserts in one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(
            f"""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS docs (
                rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, source TEXT, source_type TEXT,
                topic TEXT, sentiment TEXT, toxicity TEXT, cluster_id TEXT, site TEXT,
                published_at REAL NOT NULL, json BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS docs_published ON docs(published_at);
            CREATE TABLE IF NOT EXISTS entities (rowid INTEGER NOT NULL, key TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS entities_key ON entities(key, rowid);
            CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(title, text, tokenize = '{TOKENIZER}');
            """
        )

    def upsert(self, documents: Iterable[Document]) -> int:
        written = 0
        with self.db:
            for doc in documents:
                old = self.db.execute("SELECT rowid FROM docs WHERE id = ?", (doc.id,)).fetchone()
                if old:
                    self.db.execute("DELETE FROM fts WHERE rowid = ?", old)
                    self.db.execute("DELETE FROM entities WHERE rowid = ?", old)
                    self.db.execute("DELETE FROM docs WHERE rowid = ?", old)
                host = site_of(doc.canonical_url or doc.url) or site_of(doc.url)
                cursor = self.db.execute(
                    "INSERT INTO docs (id, source, source_type, topic, sentiment, toxicity, cluster_id, site,"
                    " published_at, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc.id,
                        doc.source,
                        doc.source_type.value,
                        doc.topic,
                        doc.sentiment,
                        doc.toxicity,
                        doc.cluster_id,
                        host,
                        (doc.published_at or doc.fetched_at).timestamp(),
                        doc.__pydantic_serializer__.to_json(doc),
                    ),
                )
                rowid = cursor.lastrowid
                self.db.execute(
                    "INSERT INTO fts (rowid, title, text) VALUES (?, ?, ?)",
                    (rowid, _fold_d(doc.title), _fold_d(doc.text)),
                )
                keys = {keyword_key(e.canonical) for e in doc.entities if e.canonical.strip()}
                self.db.executemany("INSERT INTO entities VALUES (?, ?)", [(rowid, k) for k in keys])
                written += 1
        return written

    # -- query compilation

    def _text(self, node: Term | Phrase) -> str:
        if node.scope == "author":
            raise NotExpressible("author: has no column in the FTS5 baseline")
        words = _WORD.findall(fold(node.text))
        if not words:
            raise NotExpressible(f"no words in {node.text!r}")
        expr = '"' + " ".join(words) + '"' + ("*" if isinstance(node, Term) and node.prefix else "")
        return f"{node.scope} : {expr}" if node.scope in ("title", "text") else expr

    def _compile(self, node: Node) -> _Compiled:
        if isinstance(node, MatchAll):
            return _Compiled(None, [], [])
        if isinstance(node, Term | Phrase):
            return _Compiled(self._text(node), [], [])
        if isinstance(node, Near):
            if node.left.scope != node.right.scope or node.left.scope == "author":
                raise NotExpressible("NEAR across fields")
            left, right = (
                " ".join(f'"{w}"' for w in _WORD.findall(fold(n.text))) for n in (node.left, node.right)
            )
            near = f"NEAR({left} {right}, {node.distance})"
            return _Compiled(f"{node.left.scope} : {near}" if node.left.scope != "all" else near, [], [])
        if isinstance(node, Keyword):
            if node.field == "entity":
                return _Compiled(
                    None,
                    ["docs.rowid IN (SELECT rowid FROM entities WHERE key = ?)"],
                    [keyword_key(node.value)],
                )
            column = _KEYWORD_COLUMN[node.field]
            if node.field == "site":
                return _Compiled(
                    None, ["(site = ? OR site LIKE ?)"], [node.value.lower(), "%." + node.value.lower()]
                )
            return _Compiled(None, [f"{column} IN (?, ?)"], [node.value, node.value.lower()])
        if isinstance(node, DateRange):
            conditions: list[str] = []
            values: list[Any] = []
            if node.start is not None:
                conditions.append("published_at >= ?")
                values.append(node.start.timestamp())
            if node.end is not None:
                conditions.append("published_at < ?")
                values.append(node.end.timestamp())
            return _Compiled(None, conditions, values)
        if isinstance(node, Not):
            return self._compile(And((MatchAll(), node)))
        if isinstance(node, And):
            matches: list[str] = []
            negated: list[str] = []
            where: list[str] = []
            params: list[Any] = []
            for child in node.children:
                part = self._compile(child.child if isinstance(child, Not) else child)
                if isinstance(child, Not):
                    if part.match is not None and not part.where:
                        negated.append(part.match)
                        continue
                    clause, clause_params = self._as_condition(part)
                    where.append(f"NOT ({clause})")
                    params += clause_params
                    continue
                if part.match is not None:
                    matches.append(f"({part.match})")
                where += part.where
                params += part.params
            if negated and not matches:  # FTS5 NOT needs a left side: "everything except" in SQL
                where.append("docs.rowid NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
                params.append(" OR ".join(f"({m})" for m in negated))
                negated = []
            match = " AND ".join(matches) if matches else None
            if match and negated:
                match = f"({match}) NOT ({' OR '.join(f'({m})' for m in negated)})"
            return _Compiled(match, where, params)
        if isinstance(node, Or):
            parts = [self._compile(c) for c in node.children]
            if all(p.match is not None and not p.where for p in parts):
                return _Compiled(" OR ".join(f"({p.match})" for p in parts), [], [])
            raise NotExpressible("OR mixing words with field filters")
        raise NotExpressible(f"{type(node).__name__}")

    @staticmethod
    def _as_condition(part: _Compiled) -> tuple[str, list[Any]]:
        clauses = list(part.where)
        params = list(part.params)
        if part.match is not None:
            clauses.append("docs.rowid IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
            params.append(part.match)
        return " AND ".join(clauses) or "1", params

    def _from_where(self, query: str) -> tuple[_Compiled, str, list[Any]]:
        compiled = self._compile(parse(query))
        where = list(compiled.where)
        params: list[Any] = []
        if compiled.match is not None:
            where.insert(0, "fts MATCH ?")
            params.append(compiled.match)
        params += compiled.params
        source = "fts JOIN docs ON docs.rowid = fts.rowid" if compiled.match is not None else "docs"
        return compiled, f"FROM {source}" + (f" WHERE {' AND '.join(where)}" if where else ""), params

    # -- reading

    def search(self, query: str, limit: int = 20) -> Fts5Result:
        compiled, from_where, params = self._from_where(query)
        total = int(self.db.execute(f"SELECT count(*) {from_where}", params).fetchone()[0])
        if compiled.match is not None:
            rows = self.db.execute(
                "SELECT docs.json, -bm25(fts, 2.0, 1.0), snippet(fts, 1, '<mark>', '</mark>', '…', 24) "
                f"{from_where} ORDER BY bm25(fts, 2.0, 1.0) LIMIT ?",
                [*params, limit],
            ).fetchall()
        else:
            rows = self.db.execute(
                f"SELECT docs.json, 0.0, '' {from_where} ORDER BY published_at DESC LIMIT ?", [*params, limit]
            ).fetchall()
        return Fts5Result(total, [(Document.model_validate_json(j), s, snip) for j, s, snip in rows])

    def facets(
        self, field_names: Sequence[str], query: str = "", size: int = 10
    ) -> dict[str, list[tuple[str, int]]]:
        _, from_where, params = self._from_where(query)
        out: dict[str, list[tuple[str, int]]] = {}
        for name in field_names:
            if name not in FACET_COLUMNS:
                raise ValueError(f"no facet column {name!r}; choose one of {sorted(FACET_COLUMNS)}")
            joiner = " AND " if " WHERE " in from_where else " WHERE "
            rows = self.db.execute(
                f"SELECT docs.{name}, count(*) AS n {from_where}{joiner}docs.{name} IS NOT NULL "
                f"GROUP BY docs.{name} ORDER BY n DESC, docs.{name} LIMIT ?",
                [*params, size],
            ).fetchall()
            out[name] = [(str(k), int(n)) for k, n in rows]
        return out

    def optimize(self) -> None:
        """Merge the FTS5 b-trees into one (what a bulk load ends with; counted as indexing)."""
        with self.db:
            self.db.execute("INSERT INTO fts(fts) VALUES ('optimize')")

    def disk_bytes(self) -> int:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def close(self) -> None:
        self.db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests" / "index"))
    from bench.index_compare import FACETS, QUERIES, load, percentile

    index = Fts5Index(Path(tempfile.mkdtemp(prefix="duluan-fts5-")) / "fts.db")
    indexing, _ = load(index, args.docs, args.batch, "fts5")
    t0 = time.perf_counter()
    index.optimize()
    indexing += time.perf_counter() - t0
    latencies = []
    for _ in range(args.repeat):
        for query in QUERIES:
            try:
                t0 = time.perf_counter()
                index.search(query)
                index.facets(FACETS, query)
                latencies.append((time.perf_counter() - t0) * 1000)
            except NotExpressible:
                continue
    print(
        f"fts5: {args.docs / indexing:,.0f} docs/s, p50 {statistics.median(latencies):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms, disk {index.disk_bytes() / 1e6:,.0f} MB"
    )


if __name__ == "__main__":
    main()
