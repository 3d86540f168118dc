"""The embedded search index (chỉ mục nhúng): tantivy in a local folder, no server to run.

Every title and body is indexed twice: folded (lowercase, diacritics stripped, đ→d) so "binh phuoc"
finds "Bình Phước", and exact (lowercase, diacritics kept) for quoted phrases typed with diacritics.
The whole `Document` is stored as JSON so hits rebuild it losslessly.

The folder is shared between processes (the service and crawl subprocesses): no `IndexWriter` is
kept open between calls. Each `upsert`/`delete` opens a writer, commits and releases the lock; when
another process holds it we retry with backoff for `lock_timeout` seconds, then raise
`IndexLockedError`. Readers reload before each query so they see other processes' commits.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tantivy
from tantivy import FieldType, Filter, Occur, Order, Query, TextAnalyzer, TextAnalyzerBuilder, Tokenizer

from index.backend import HistogramInterval, Hit, QueryError, SearchFilters, SearchResult, SortOrder, StoryHit
from index.query import (
    VIETNAM_TZ,
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
    TextScope,
    keyword_key,
    parse,
    positive_leaves,
)
from schema import Document

FOLDED_TOKENIZER = "vi_folded"
EXACT_TOKENIZER = "vi_exact"
#: Longest token kept in the text fields; longer ones are URLs, hashes or base64 junk.
MAX_TOKEN_CHARS = 40
#: Deepest page reachable by `search`; `scan` walks any number of documents.
MAX_RESULT_WINDOW = 10_000
SCAN_PAGE_SIZE = 2_000
TITLE_BOOST = 2.0
SNIPPET_CHARS = 220
#: How many top documents `search_stories` groups into stories.
STORY_WINDOW = 500
RELOAD_ATTEMPTS = 4
#: Keyword values longer than this are cut in the index (the stored document keeps them whole).
MAX_KEYWORD_CHARS = 512
#: With `writer_threads=0` (automatic), a commit of fewer documents than this is indexed by one
#: writer thread: every indexing thread writes its own segment at commit, and for small batches
#: (crawl upserts, `duluan index load` in batches of 500) the fixed cost of a second segment and
#: its later merge outweighs the parallelism (measured in bench/RESULTS.md, 2026-12-04).
SINGLE_THREAD_BELOW = 2_000

#: Keyword fields `terms` can aggregate, by public name.
TERMS_FIELDS = (
    "topic",
    "sentiment",
    "source",
    "source_type",
    "toxicity",
    "cluster_id",
    "entity",
    "author",
    "site",
)

#: Query-language keyword field → index field holding comparable values.
_KEYWORD_INDEX_FIELD = {
    "source": "source",
    "site": "site_match",
    "topic": "topic",
    "sentiment": "sentiment",
    "source_type": "source_type",
    "toxicity": "toxicity",
    "cluster_id": "cluster_id",
    "entity": "entity_key",
    "id": "id",
}


class IndexLockedError(RuntimeError):
    """Another process kept the index writer lock longer than we are willing to wait."""


class IndexSchemaError(RuntimeError):
    """The folder holds an index built with another schema version."""


class IndexStorageError(OSError):
    """The index folder cannot be written (disk full, read-only, no permission); says where and what to do."""


#: How tantivy reports an I/O failure (its errors reach Python as ValueError with the Rust text).
_IO_FAILURE = re.compile(r"IoError|io::Error|index writer was killed|Lockfile|No space|Read-only", re.I)


def _storage_error(path: Path, action: str, exc: BaseException) -> IndexStorageError:
    try:
        free = f"{shutil.disk_usage(path).free / 1e6:.1f} MB free there"
    except OSError:
        free = "free space unknown"
    return IndexStorageError(
        f"{action} the index in {path} failed: {exc} ({free}). The disk may be full or read-only, or the "
        "folder not writable (the index keeps a lock file even for searching). Free space or fix the "
        "mount/permissions, then rerun; the index keeps its last committed state."
    )


# ---------------------------------------------------------------- schema and analysis


def text_analyzer(*, folded: bool) -> TextAnalyzer:
    """Split on non-alphanumerics, drop junk tokens, lowercase, and (folded) strip diacritics."""
    builder = (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(Filter.lowercase())
    )
    if folded:
        builder = builder.filter(Filter.ascii_fold())
    return builder.build()


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", tokenizer_name="raw")
    builder.add_bytes_field("document_json", stored=True)
    builder.add_unsigned_field("scan_key", indexed=True, fast=True)
    for name in ("title", "text"):
        builder.add_text_field(f"{name}_folded", tokenizer_name=FOLDED_TOKENIZER)
        builder.add_text_field(f"{name}_exact", tokenizer_name=EXACT_TOKENIZER)
    builder.add_text_field("author_folded", tokenizer_name=FOLDED_TOKENIZER)
    for name in TERMS_FIELDS:  # fast: aggregations read them column-wise
        builder.add_text_field(name, tokenizer_name="raw", fast=True)
    for name in ("site_match", "entity_key"):  # only matched, never aggregated
        builder.add_text_field(name, tokenizer_name="raw")
    builder.add_date_field("published_at", indexed=True, fast=True)
    builder.add_date_field("fetched_at", indexed=True, fast=True)
    builder.add_float_field("province_relevance", indexed=True, fast=True)
    return builder.build()


def site_of(url: str) -> str:
    """The host of a URL without `www.`, lowercased (trang nguồn)."""
    match = _NETLOC.match(url)
    netloc = match.group(1) if match else (urlsplit(url).netloc or "")
    host = netloc.rpartition("@")[2]
    host = host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
    return host.lower().removeprefix("www.")


_NETLOC = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


@functools.lru_cache(maxsize=4096)
def _site_fields(url_host: str) -> tuple[str, ...]:
    return tuple(site_suffixes(url_host))


@functools.lru_cache(maxsize=16384)
def _entity_fields(canonical: str) -> tuple[str, str]:
    name = _nfc(canonical)
    return _clip(name), _clip(keyword_key(name))


def site_suffixes(host: str) -> list[str]:
    """`e.vnexpress.net` → [`e.vnexpress.net`, `vnexpress.net`]: `site:vnexpress.net` covers subdomains."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))] if host else []


def scan_key(doc_id: str) -> int:
    """A stable unsigned 64-bit key used to page through results in a fixed order (keyset paging)."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _clip(value: str) -> str:
    return value[:MAX_KEYWORD_CHARS]


def index_document(doc: Document) -> tantivy.Document:
    """The tantivy form of a `Document` (published date falls back to the fetch date)."""
    out = tantivy.Document()
    out.add_text("id", doc.id)
    out.add_bytes("document_json", doc.__pydantic_serializer__.to_json(doc))  # = model_dump_json, as bytes
    out.add_unsigned("scan_key", scan_key(doc.id))
    title, text = _nfc(doc.title), _nfc(doc.text)
    for field, value in (("title", title), ("text", text)):
        out.add_text(f"{field}_folded", value)
        out.add_text(f"{field}_exact", value)
    out.add_text("source", _clip(doc.source))
    out.add_text("source_type", doc.source_type.value)
    for field, optional in (
        ("topic", doc.topic),
        ("sentiment", doc.sentiment),
        ("toxicity", doc.toxicity),
        ("cluster_id", doc.cluster_id),
    ):
        if optional:
            out.add_text(field, _clip(optional))
    if doc.author:
        out.add_text("author", _clip(_nfc(doc.author)))
        out.add_text("author_folded", _nfc(doc.author))
    host = site_of(doc.canonical_url or doc.url) or site_of(doc.url)
    if host:
        out.add_text("site", host)
        for suffix in _site_fields(host):
            out.add_text("site_match", suffix)
    for name, key in sorted({_entity_fields(e.canonical) for e in doc.entities if e.canonical.strip()}):
        out.add_text("entity", name)
        out.add_text("entity_key", key)
    out.add_date("published_at", doc.published_at or doc.fetched_at)
    out.add_date("fetched_at", doc.fetched_at)
    out.add_float("province_relevance", doc.province_relevance)
    return out


# ---------------------------------------------------------------- AST → tantivy query


class QueryCompiler:
    """Compiles `index.query` AST nodes to tantivy queries with the index's own analyzers."""

    def __init__(self, schema: tantivy.Schema) -> None:
        self.schema = schema
        self.folded = text_analyzer(folded=True)
        self.exact = text_analyzer(folded=False)

    # -- text

    def _fields(self, scope: TextScope, exact: bool) -> list[tuple[str, float]]:
        suffix = "exact" if exact else "folded"
        if scope == "all":
            return [(f"title_{suffix}", TITLE_BOOST), (f"text_{suffix}", 1.0)]
        if scope == "author":
            return [("author_folded", 1.0)]
        return [(f"{scope}_{suffix}", 1.0)]

    def _tokens_query(self, field: str, tokens: list[str], *, prefix: bool = False, slop: int = 0) -> Query:
        if not tokens:
            return Query.empty_query()
        if prefix:
            if len(tokens) == 1:
                return Query.regex_query(self.schema, field, _regex_escape(tokens[0]) + ".*")
            return Query.phrase_prefix_query(self.schema, field, _words(tokens))
        if len(tokens) == 1:
            return Query.term_query(self.schema, field, tokens[0])
        return Query.phrase_query(self.schema, field, _words(tokens), slop=slop)

    def _over_fields(self, fields: list[tuple[str, float]], make: Any) -> Query:
        parts = [
            (Occur.Should, Query.boost_query(make(f), boost) if boost != 1.0 else make(f))
            for f, boost in fields
        ]
        return parts[0][1] if len(parts) == 1 else Query.boolean_query(parts)

    def _text(self, node: Term | Phrase) -> Query:
        exact = isinstance(node, Phrase) and node.exact and node.scope != "author"
        analyzer = self.exact if exact else self.folded
        tokens = analyzer.analyze(_nfc(node.text))
        prefix = isinstance(node, Term) and node.prefix
        return self._over_fields(
            self._fields(node.scope, exact), lambda field: self._tokens_query(field, tokens, prefix=prefix)
        )

    def _near(self, node: Near) -> Query:
        exact = all(isinstance(n, Phrase) and n.exact for n in (node.left, node.right))
        analyzer = self.exact if exact else self.folded
        left: list[str | tuple[int, str]] = list(analyzer.analyze(_nfc(node.left.text)))
        right: list[str | tuple[int, str]] = list(analyzer.analyze(_nfc(node.right.text)))
        scope = node.left.scope if node.left.scope == node.right.scope else "all"
        if not left or not right:
            return Query.empty_query()

        def either_order(field: str) -> Query:
            return Query.boolean_query(
                [
                    (Occur.Should, Query.phrase_query(self.schema, field, left + right, slop=node.distance)),
                    (Occur.Should, Query.phrase_query(self.schema, field, right + left, slop=node.distance)),
                ]
            )

        return self._over_fields(self._fields(scope, exact), either_order)

    # -- filters

    def keyword(self, field: str, value: str) -> Query:
        index_field = _KEYWORD_INDEX_FIELD[field]
        values = sorted({value, value.lower()})
        query = (
            Query.term_query(self.schema, index_field, values[0])
            if len(values) == 1
            else Query.term_set_query(self.schema, index_field, values)
        )
        return Query.const_score_query(query, 0.0)

    def date_range(self, field: str, start: datetime | None, end: datetime | None) -> Query:
        """Half-open [start, end) on a date field."""
        query = Query.range_query(
            self.schema, field, FieldType.Date, start, end, include_lower=True, include_upper=end is None
        )
        return Query.const_score_query(query, 0.0)

    # -- boolean structure

    def compile(self, node: Node) -> Query:
        if isinstance(node, MatchAll):
            return Query.all_query()
        if isinstance(node, Term | Phrase):
            return self._text(node)
        if isinstance(node, Near):
            return self._near(node)
        if isinstance(node, Keyword):
            return self.keyword(node.field, node.value)
        if isinstance(node, DateRange):
            return self.date_range("published_at", node.start, node.end)
        if isinstance(node, Not):
            return self.conjunction([], [self.compile(node.child)])
        if isinstance(node, And):
            musts = [self.compile(c) for c in node.children if not isinstance(c, Not)]
            must_nots = [self.compile(c.child) for c in node.children if isinstance(c, Not)]
            return self.conjunction(musts, must_nots)
        if isinstance(node, Or):
            return Query.boolean_query([(Occur.Should, self.compile(c)) for c in node.children])
        raise TypeError(f"cannot compile {node!r}")  # pragma: no cover

    @staticmethod
    def conjunction(musts: list[Query], must_nots: list[Query]) -> Query:
        """AND of `musts` minus `must_nots`; a pure negation means "everything except"."""
        if len(musts) == 1 and not must_nots:
            return musts[0]
        clauses = [(Occur.Must, q) for q in (musts or [Query.all_query()])]
        clauses += [(Occur.MustNot, q) for q in must_nots]
        return Query.boolean_query(clauses)

    def filters(self, filters: SearchFilters | None) -> list[Query]:
        if filters is None:
            return []
        out = [
            self.keyword(field, value)
            for field, value in (
                ("topic", filters.topic),
                ("sentiment", filters.sentiment),
                ("source", filters.source),
                ("source_type", filters.source_type),
            )
            if value
        ]
        if filters.date_from or filters.date_to:
            out.append(self.date_range("published_at", filters.date_from, filters.date_to))
        if filters.fetched_since:
            out.append(self.date_range("fetched_at", filters.fetched_since, None))
        if filters.min_province_relevance is not None:
            relevance = Query.range_query(
                self.schema, "province_relevance", FieldType.Float, filters.min_province_relevance, None
            )
            out.append(Query.const_score_query(relevance, 0.0))
        return out

    def highlight_terms(self, node: Node, searcher: tantivy.Searcher) -> Query | None:
        """Folded single-term queries for every positive word of `node`, to mark them in snippets."""
        terms: set[tuple[str, str]] = set()
        for leaf in positive_leaves(node):
            sides = [leaf.left, leaf.right] if isinstance(leaf, Near) else [leaf]
            for side in sides:
                tokens = self.folded.analyze(_nfc(side.text))
                fields = [f for f, _ in self._fields(side.scope, exact=False) if f != "author_folded"]
                prefix = isinstance(side, Term) and side.prefix and bool(tokens)
                whole = tokens[:-1] if prefix else tokens
                for field in fields:
                    if prefix:
                        expanded = searcher.terms_with_prefix(field, tokens[-1], limit=50)
                        terms.update((field, t) for t, _ in expanded)
                    terms.update((field, t) for t in whole)
        if not terms:
            return None
        return Query.boolean_query(
            [(Occur.Should, Query.term_query(self.schema, f, t)) for f, t in sorted(terms)]
        )


def _words(tokens: list[str]) -> list[str | tuple[int, str]]:
    return list(tokens)


def _count(result: tantivy.SearchResult) -> int:
    """Total matches of a search run with `count=True` (missing from the type stubs)."""
    return int(getattr(result, "count", 0) or 0)


def _regex_escape(token: str) -> str:
    return "".join("\\" + c if not c.isalnum() else c for c in token)


# ---------------------------------------------------------------- snippets


def render_snippet(fragment: str, ranges: list[tuple[int, int]]) -> str:
    """HTML-escape `fragment` and wrap the UTF-8 byte `ranges` in <mark>: safe to render as is."""
    raw = fragment.encode()
    out: list[str] = []
    cursor = 0
    for start, end in sorted(ranges):
        if start < cursor:
            continue
        out.append(html.escape(raw[cursor:start].decode(errors="ignore")))
        out.append("<mark>" + html.escape(raw[start:end].decode(errors="ignore")) + "</mark>")
        cursor = end
    out.append(html.escape(raw[cursor:].decode(errors="ignore")))
    return "".join(out)


def leading_text(text: str, max_chars: int = SNIPPET_CHARS) -> str:
    """The start of a text cut on a word boundary, escaped: the snippet when no word matched."""
    if len(text) <= max_chars:
        return html.escape(text)
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return html.escape(cut) + "…"


# ---------------------------------------------------------------- the index


class TantivyIndex:
    """`SearchBackend` over a tantivy folder; creates the index on first open."""

    def __init__(
        self,
        path: Path,
        *,
        writer_heap_bytes: int = 64_000_000,
        writer_threads: int = 0,
        lock_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.writer_heap_bytes = writer_heap_bytes
        self.writer_threads = writer_threads
        self.lock_timeout = lock_timeout
        self.schema = build_schema()
        try:
            self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            if "schema does not match" in str(exc):
                raise IndexSchemaError(
                    f"The index in {self.path} was built with another schema version. Move the folder "
                    "away and rebuild it (duluan index load / reindex)."
                ) from exc
            if _IO_FAILURE.search(str(exc)):
                raise _storage_error(self.path, "Opening", exc) from exc
            raise
        self._index.register_tokenizer(FOLDED_TOKENIZER, text_analyzer(folded=True))
        self._index.register_tokenizer(EXACT_TOKENIZER, text_analyzer(folded=False))
        self._index.config_reader("manual")
        self._compiler = QueryCompiler(self.schema)
        self._write_lock = threading.Lock()

    # -- writing

    def _threads_for(self, documents: int) -> int:
        """Writer threads for a commit of `documents` (the configured count, or tantivy's choice)."""
        if self.writer_threads or documents >= SINGLE_THREAD_BELOW:
            return self.writer_threads
        return 1

    def _open_writer(self, threads: int) -> tantivy.IndexWriter:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                return self._index.writer(self.writer_heap_bytes, threads)
            except ValueError as exc:
                if "LockBusy" not in str(exc):
                    if _IO_FAILURE.search(str(exc)):
                        raise _storage_error(self.path, "Writing to", exc) from exc
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise IndexLockedError(
                        f"The index in {self.path} is locked by another writer (a crawl or load process?) "
                        f"for more than {self.lock_timeout:.0f} s; retry later or stop that process."
                    ) from exc
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.5)

    def _write(self, apply: Any, documents: int) -> int:
        """Open a writer, apply changes, commit, release the lock (also on failure).

        `documents` is how many documents `apply` adds (it picks the writer's thread count).
        """
        with self._write_lock:
            writer = self._open_writer(self._threads_for(documents))
            try:
                written = int(apply(writer))
                writer.commit()
            except BaseException as exc:
                with contextlib.suppress(ValueError):  # a writer killed by an I/O error cannot roll back
                    writer.rollback()
                if isinstance(exc, (ValueError, OSError)) and _IO_FAILURE.search(str(exc)):
                    raise _storage_error(self.path, "Writing to", exc) from exc
                raise
            finally:
                with contextlib.suppress(ValueError):  # a killed writer's threads repeat the I/O error
                    writer.wait_merging_threads()
        return written

    def upsert(self, documents: Iterable[Document]) -> int:
        """Insert or replace by id in one commit; documents are streamed into the writer.

        Preparing a document (Python) overlaps with indexing the previous ones (tantivy threads).
        The input is materialised first so a slow generator never holds the shared writer lock.
        Nothing is written if any document fails: the batch is rolled back.
        """
        given = list(documents)
        if not given:
            return 0
        by_id = {doc.id: doc for doc in given}  # a repeated id: the last one wins, as in sequence
        batch = list(by_id.values())
        ids = list(by_id)

        def apply(writer: tantivy.IndexWriter) -> int:
            # Deleting by id costs a term lookup per id in every segment at commit, which grows with
            # the index; a fresh load (no id of the batch stored yet) skips it. We hold the writer
            # lock, so no other process can commit one of these ids before our commit.
            replace = self._any_stored(ids)
            for doc in batch:
                if replace:
                    writer.delete_documents_by_term("id", doc.id)
                writer.add_document(index_document(doc))
            return len(given)  # counted as given, repeats included (like writing them in turn)

        return self._write(apply, len(batch))

    def _any_stored(self, ids: list[str]) -> bool:
        """Whether any of `ids` is in the last commit (one term-set query, not one query per id)."""
        query = Query.term_set_query(self.schema, "id", ids)
        return _count(self._searcher().search(query, 1, count=True)) > 0

    def delete(self, ids: Iterable[str]) -> int:
        searcher = self._searcher()
        present = [
            doc_id
            for doc_id in sorted(set(ids))
            if _count(searcher.search(Query.term_query(self.schema, "id", doc_id), 1))
        ]
        if not present:
            return 0

        def apply(writer: tantivy.IndexWriter) -> int:
            for doc_id in present:
                writer.delete_documents_by_term("id", doc_id)
            return len(present)

        return self._write(apply, 0)

    # -- reading

    def _searcher(self) -> tantivy.Searcher:
        """A searcher on the latest commit of any process.

        Another process may merge and delete segment files between our reading `meta.json` and
        opening them; that race is transient, so a reload that fails is retried a few times.
        """
        for attempt in range(RELOAD_ATTEMPTS):
            try:
                self._index.reload()
                return self._index.searcher()
            except (ValueError, OSError):
                if attempt == RELOAD_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _query(self, query: str | Node, filters: SearchFilters | None) -> tuple[Node, Query]:
        node = parse(query) if isinstance(query, str) else query
        compiled = self._compiler.compile(node)
        extra = self._compiler.filters(filters)
        if extra:
            compiled = Query.boolean_query([(Occur.Must, q) for q in (compiled, *extra)])
        return node, compiled

    @staticmethod
    def _load(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> Document:
        stored = searcher.doc(address).get_first("document_json")
        if not isinstance(stored, bytes):
            raise RuntimeError(f"index entry {address} has no stored document; rebuild the index")
        return Document.model_validate_json(stored)

    def get(self, doc_id: str) -> Document | None:
        searcher = self._searcher()
        result = searcher.search(Query.term_query(self.schema, "id", doc_id), 1)
        return self._load(searcher, result.hits[0][1]) if result.hits else None

    def search(
        self,
        query: str,
        filters: SearchFilters | None = None,
        *,
        sort: SortOrder = "relevance",
        limit: int = 20,
        offset: int = 0,
    ) -> SearchResult:
        """Hits with HTML-safe highlights; for date sort `score` is 0 (newest first)."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        if offset + limit > MAX_RESULT_WINDOW:
            raise QueryError(
                f"Results beyond {MAX_RESULT_WINDOW} cannot be paged (offset + limit); narrow the query "
                "or export the full result set",
                None,
                f"Không thể phân trang quá {MAX_RESULT_WINDOW} kết quả; "
                "hãy thu hẹp truy vấn hoặc xuất toàn bộ kết quả",
            )
        node, compiled = self._query(query, filters)
        searcher = self._searcher()
        total, ranked = self._ranked(searcher, compiled, sort, limit, offset)
        highlight = self._highlighter(searcher, node)
        hits = [Hit(document=doc, score=score, highlights=highlight(doc)) for score, doc in ranked]
        return SearchResult(total=total, hits=hits)

    def _ranked(
        self, searcher: tantivy.Searcher, compiled: Query, sort: SortOrder, limit: int, offset: int
    ) -> tuple[int, list[tuple[float, Document]]]:
        """Total matches and the (score, document) pairs of one page."""
        if sort == "date":
            result = searcher.search(
                compiled,
                max(limit, 1),
                count=True,
                order_by_field="published_at",
                offset=offset,
                order=Order.Desc,
            )
        else:
            result = searcher.search(compiled, max(limit, 1), count=True, offset=offset)
        ranked = [
            (float(value) if sort == "relevance" else 0.0, self._load(searcher, address))
            for value, address in result.hits[:limit]
        ]
        return _count(result), ranked

    def search_stories(
        self,
        query: str,
        filters: SearchFilters | None = None,
        *,
        sort: SortOrder = "relevance",
        limit: int = 20,
    ) -> list[StoryHit]:
        """One row per story (cluster): its best document in `sort` order, with documents and outlets.

        Stories are picked from the first `STORY_WINDOW` matching documents.
        """
        if limit < 1:
            return []
        node, compiled = self._query(query, filters)
        searcher = self._searcher()
        window = min(max(limit * 10, STORY_WINDOW), MAX_RESULT_WINDOW)
        _, ranked = self._ranked(searcher, compiled, sort, window, 0)
        best: dict[str, tuple[float, Document]] = {}
        for score, doc in ranked:
            best.setdefault(doc.cluster_id or f"\0{doc.id}", (score, doc))
            if len(best) == limit:
                break
        highlight = self._highlighter(searcher, node)
        stories = []
        for score, doc in best.values():
            documents, outlets = 1, 1
            if doc.cluster_id:
                in_cluster = Query.boolean_query(
                    [
                        (Occur.Must, compiled),
                        (Occur.Must, Query.term_query(self.schema, "cluster_id", doc.cluster_id)),
                    ]
                )
                aggregation = {"sources": {"terms": {"field": "source", "size": 65_000}}}
                buckets = searcher.aggregate(in_cluster, aggregation)["sources"]["buckets"]
                documents, outlets = sum(int(b["doc_count"]) for b in buckets), len(buckets)
            stories.append(StoryHit(Hit(doc, score, highlight(doc)), documents=documents, outlets=outlets))
        return stories

    def _highlighter(self, searcher: tantivy.Searcher, node: Node) -> Any:
        terms = self._compiler.highlight_terms(node, searcher)
        generators: dict[str, tantivy.SnippetGenerator] = {}
        if terms is not None:
            for field, chars in (("title", 1_000), ("text", SNIPPET_CHARS)):
                generator = tantivy.SnippetGenerator.create(searcher, terms, self.schema, f"{field}_folded")
                generator.set_max_num_chars(chars)
                generators[field] = generator

        def highlight(document: Document) -> dict[str, str]:
            title, text = _nfc(document.title), _nfc(document.text)
            out = {"title": html.escape(title), "text": leading_text(text)}
            for field, value in (("title", title), ("text", text)):
                if field not in generators or not value:
                    continue
                snippet = generators[field].snippet_from_doc(tantivy.Document(**{f"{field}_folded": [value]}))
                ranges = [(r.start, r.end) for r in snippet.highlighted()]
                if not ranges:
                    continue
                if field == "title":  # whole title, marks shifted to absolute offsets
                    base = snippet.fragment_range().start
                    out[field] = render_snippet(value, [(s + base, e + base) for s, e in ranges])
                else:
                    out[field] = render_snippet(snippet.fragment(), ranges)
            return out

        return highlight

    def count(self, query: str = "", filters: SearchFilters | None = None) -> int:
        _, compiled = self._query(query, filters)
        return _count(self._searcher().search(compiled, 1, count=True))

    def terms(
        self, field_name: str, query: str = "", filters: SearchFilters | None = None, size: int = 10
    ) -> list[tuple[str, int]]:
        """Top values of a keyword field with document counts, largest first (ties by value)."""
        return self.facets([field_name], query, filters, size)[field_name]

    def facets(
        self,
        field_names: Sequence[str],
        query: str = "",
        filters: SearchFilters | None = None,
        size: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        """`terms` for several fields in one pass over the matches (the facet panel of a search page)."""
        unknown = [name for name in field_names if name not in TERMS_FIELDS]
        if unknown:
            raise ValueError(f"cannot aggregate on {unknown[0]!r}; choose one of {', '.join(TERMS_FIELDS)}")
        if size < 1:
            raise ValueError("size must be >= 1")
        if not field_names:
            return {}
        _, compiled = self._query(query, filters)
        wanted = max(size * 2, size + 20)  # extra buckets so ties at the cut are broken by value
        aggregation = {
            name: {"terms": {"field": name, "size": wanted, "segment_size": max(wanted * 10, 10_000)}}
            for name in field_names
        }
        result = self._searcher().aggregate(compiled, aggregation)
        out: dict[str, list[tuple[str, int]]] = {}
        for name in field_names:
            buckets = [(str(b["key"]), int(b["doc_count"])) for b in result[name]["buckets"]]
            out[name] = sorted(buckets, key=lambda kv: (-kv[1], kv[0]))[:size]
        return out

    def date_histogram(
        self,
        interval: HistogramInterval = "day",
        query: str = "",
        filters: SearchFilters | None = None,
        tz: tzinfo = VIETNAM_TZ,
    ) -> list[tuple[datetime, int]]:
        """Document counts per local hour/day/week (from Monday)/month of the publication date.

        Buckets between the first and last document are all present (zeros included), or over the
        whole `date_from`..`date_to` range when the filters give both ends. `tz` must
        have a fixed UTC offset, which holds for Asia/Ho_Chi_Minh (no daylight saving since 1975).
        """
        _, compiled = self._query(query, filters)
        offset = tz.utcoffset(datetime(2000, 1, 1))
        assert offset is not None, "tz must be an aware time zone"
        spec: dict[str, Any] = {
            "field": "published_at",
            "fixed_interval": "1h" if interval == "hour" else "1d",
        }
        if interval != "hour":
            seconds = int(-offset.total_seconds())
            spec["offset"] = f"{'-' if seconds < 0 else ''}{abs(seconds)}s"
        if filters is not None and filters.date_from and filters.date_to:  # charts span the asked range
            spec["extended_bounds"] = {
                "min": filters.date_from.timestamp() * 1000,
                "max": filters.date_to.timestamp() * 1000 - 1,
            }
        try:
            result = self._searcher().aggregate(compiled, {"agg": {"date_histogram": spec}})
        except ValueError as exc:
            if "bucket limit" not in str(exc):
                raise
            raise ValueError(
                f"Too many {interval} buckets for the matching documents' date span; narrow the date range "
                "(date_from/date_to) or choose a coarser interval"
            ) from exc
        raw = [
            (datetime.fromtimestamp(b["key"] / 1000, UTC).astimezone(tz), int(b["doc_count"]))
            for b in result["agg"]["buckets"]
        ]
        if interval in ("hour", "day"):
            return raw
        return rollup(raw, interval, tz)

    def scan(self, query: str = "", filters: SearchFilters | None = None) -> Iterator[Document]:
        """Every match, in a stable order, from one snapshot of the index (keyset paging)."""
        _, compiled = self._query(query, filters)
        searcher = self._searcher()  # one snapshot for the whole export
        last: int | None = None
        seen_at_last: set[str] = set()
        while True:
            page_query = compiled
            if last is not None:
                after = Query.range_query(self.schema, "scan_key", FieldType.Unsigned, last, None)
                page_query = Query.boolean_query([(Occur.Must, compiled), (Occur.Must, after)])
            requested = SCAN_PAGE_SIZE + len(seen_at_last)
            result = searcher.search(page_query, requested, order_by_field="scan_key", order=Order.Asc)
            fresh = 0
            for key, address in result.hits:
                document = self._load(searcher, address)
                if key == last and document.id in seen_at_last:
                    continue
                if key != last:
                    last, seen_at_last = int(key), set()
                seen_at_last.add(document.id)
                fresh += 1
                yield document
            if fresh == 0 or len(result.hits) < requested:
                return

    def close(self) -> None:
        """Nothing to release: no writer is kept open between calls."""


def rollup(
    daily: list[tuple[datetime, int]], interval: HistogramInterval, tz: tzinfo
) -> list[tuple[datetime, int]]:
    """Sum local-day buckets into weeks (starting Monday) or calendar months."""
    totals: dict[date, int] = {}
    for start, count in daily:
        day = start.astimezone(tz).date()
        key = day - timedelta(days=day.weekday()) if interval == "week" else day.replace(day=1)
        totals[key] = totals.get(key, 0) + count
    return [(datetime(k.year, k.month, k.day, tzinfo=tz), v) for k, v in sorted(totals.items())]
