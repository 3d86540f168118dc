"""The Elasticsearch backend (cụm Elasticsearch): the same `SearchBackend` on a cluster, for larger sites.

Layout: a composable index template `<name>-template` (explicit mapping, `dynamic: strict`, the
Vietnamese analyzers of `es_query.SETTINGS`) covers time-based indices `<name>-000001`,
`<name>-000002`… behind the alias `<name>`; `rollover()` starts a new index when the write index is
old or big enough (no ILM needed, so it also runs on the OSS/OpenSearch distributions). Reads go
through the alias (all indices); upserts go to the write index, except documents already stored in
an older index, which are replaced where they are so an id never exists twice.

Word segmentation: with a `segmenter` (the composition root injects underthesea's, from `nlp`;
`index` does not import `nlp`) titles and texts are also indexed segmented, syllables of a word
joined by `_` ("Bình_Phước", "học_sinh"), in `title_seg`/`text_seg`. A quoted phrase that forms a
word adds an optional `match_phrase` on them: documents where the phrase is that word rank above
those where its syllables only touch across a word boundary ("đi học sinh_hoạt"). It changes
ranking only, never which documents match, counts or facets.

Only query DSL shared by Elasticsearch 7.10+, 8.x, 9.x and OpenSearch is used: no combined_fields,
runtime fields, PIT or kNN. Writes use bulk with exponential backoff on 429 (queue full) and an
explicit refresh policy (`refresh=True` by default, so an `upsert` is searchable when it returns).
"""

from __future__ import annotations

import contextlib
import html
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from elasticsearch import Elasticsearch, NotFoundError, helpers
from elasticsearch import exceptions as es_exceptions

from index.backend import (
    HistogramInterval,
    Hit,
    QueryError,
    SearchBackend,
    SearchFilters,
    SearchResult,
    SortOrder,
    StoryHit,
)
from index.es_query import (
    MAPPINGS,
    SETTINGS,
    TITLE_BOOST,
    EsQuery,
    folded_tokens,
    search_body,
    split_wide_bools,
)
from index.query import VIETNAM_TZ, Near, Node, Phrase, Term, keyword_key, parse, positive_leaves
from index.tantivy_backend import (
    MAX_KEYWORD_CHARS,
    MAX_RESULT_WINDOW,
    SNIPPET_CHARS,
    STORY_WINDOW,
    TERMS_FIELDS,
    leading_text,
    site_of,
    site_suffixes,
)
from schema import Document

#: Fields of `Document` kept top-level (indexed) and left out of the stored `document` object.
_TEXT_FIELDS = {"title", "text"}
#: Private-use characters the highlighter puts around matches before we escape the text.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
SCAN_PAGE_SIZE = 1_000
#: Most buckets a date histogram may have (tantivy's own limit; ES's `search.max_buckets` is 10k–65k).
MAX_HISTOGRAM_BUCKETS = 65_000
BULK_CHUNK_DOCS = 500
Refresh = bool | Literal["wait_for"]
#: Text → the same text with the syllables of each word joined by "_" ("học sinh" → "học_sinh").
Segmenter = Callable[[str], str]
#: The segmented fields: `standard` keeps "bình_phước" one token (Unicode word rules join on "_"),
#: lowercases and keeps diacritics; a built-in analyzer, so older indices take the fields as they are.
SEG_FIELDS: dict[str, Any] = {
    name: {"type": "text", "analyzer": "standard"} for name in ("title_seg", "text_seg")
}
#: Weight of a phrase matching as a word, on top of the phrase's own score.
SEG_BOOST = 2.0


class ElasticsearchIndexError(RuntimeError):
    """Elasticsearch refused documents or a request; the message names the index and the reason."""


def es_document(doc: Document, segmenter: Segmenter | None = None) -> dict[str, Any]:
    """The indexed form of a `Document`: the fields of `es_query.MAPPINGS`, same values as tantivy.

    With a `segmenter`, also the word-segmented title and text (`SEG_FIELDS`).
    """

    def nfc(value: str) -> str:
        return unicodedata.normalize("NFC", value)

    host = site_of(doc.canonical_url or doc.url) or site_of(doc.url)
    entities = sorted(
        {
            (nfc(e.canonical)[:MAX_KEYWORD_CHARS], keyword_key(nfc(e.canonical))[:MAX_KEYWORD_CHARS])
            for e in doc.entities
            if e.canonical.strip()
        }
    )
    body: dict[str, Any] = {
        "id": doc.id,
        "document": doc.model_dump(mode="json", exclude=_TEXT_FIELDS),
        "title": nfc(doc.title),
        "text": nfc(doc.text),
        "source": doc.source[:MAX_KEYWORD_CHARS],
        "source_type": doc.source_type.value,
        "published_at": (doc.published_at or doc.fetched_at).isoformat(),
        "fetched_at": doc.fetched_at.isoformat(),
        "province_relevance": doc.province_relevance,
        "entity": [name for name, _ in entities],
        "entity_key": [key for _, key in entities],
    }
    for name, value in (
        ("topic", doc.topic),
        ("sentiment", doc.sentiment),
        ("toxicity", doc.toxicity),
        ("cluster_id", doc.cluster_id),
    ):
        if value:
            body[name] = value[:MAX_KEYWORD_CHARS]
    if doc.author:
        body["author"] = nfc(doc.author)[:MAX_KEYWORD_CHARS]
        body["author_folded"] = nfc(doc.author)
    if host:
        body["site"] = host
        body["site_match"] = site_suffixes(host)
    if segmenter is not None:
        body["title_seg"] = segmenter(body["title"])
        body["text_seg"] = segmenter(body["text"])
    return body


def document_from_source(source: dict[str, Any]) -> Document:
    """Rebuild the `Document` from a hit's `_source` (stored object + the top-level text fields)."""
    return Document.model_validate({**source["document"], "title": source["title"], "text": source["text"]})


def render_highlight(fragment: str) -> str:
    """Escape a highlighter fragment and turn the private-use marks into <mark>: safe to render."""
    escaped = html.escape(fragment)
    return escaped.replace(_MARK_OPEN, "<mark>").replace(_MARK_CLOSE, "</mark>")


def highlight_query(node: Node) -> EsQuery | None:
    """Folded match queries for every positive word of `node`, to mark them in the folded fields."""
    should: list[EsQuery] = []
    for leaf in positive_leaves(node):
        sides = [leaf.left, leaf.right] if isinstance(leaf, Near) else [leaf]
        for side in sides:
            if side.scope == "author":
                continue
            fields = ["title.folded", "text.folded"] if side.scope == "all" else [f"{side.scope}.folded"]
            tokens = folded_tokens(side.text)
            if not tokens:
                continue
            prefix = isinstance(side, Term) and side.prefix
            for field in fields:
                if prefix:
                    should.append({"prefix": {field: tokens[-1]}})
                    tokens_whole = tokens[:-1]
                else:
                    tokens_whole = tokens
                if tokens_whole:
                    should.append({"match": {field: " ".join(tokens_whole)}})
    return split_wide_bools({"bool": {"should": should}}) if should else None


def _tz_name(tz: tzinfo) -> str:
    if isinstance(tz, ZoneInfo):
        return tz.key
    offset = tz.utcoffset(datetime(2000, 1, 1))
    if offset is None:
        raise ValueError("tz must be an aware time zone")
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class ElasticsearchIndex:
    """`SearchBackend` on Elasticsearch (7.10+/8.x/9.x) or OpenSearch, behind the alias `index_name`."""

    def __init__(
        self,
        client_or_url: Elasticsearch | str,
        index_name: str = "duluan",
        *,
        shards: int = 1,
        replicas: int = 0,
        refresh: Refresh = True,
        rollover_max_age: str = "30d",
        rollover_max_docs: int = 5_000_000,
        request_timeout: float = 60.0,
        segmenter: Segmenter | None = None,
    ) -> None:
        self._owns_client = isinstance(client_or_url, str)  # a client handed in is the caller's to close
        if isinstance(client_or_url, str):
            client_or_url = Elasticsearch(client_or_url, request_timeout=request_timeout)
        # 503 is also how a failed search phase answers: retrying it only delays the error.
        self.client = client_or_url.options(
            request_timeout=request_timeout, retry_on_status=(429, 502, 504), max_retries=3
        )
        self.alias = index_name
        self.segmenter = segmenter
        self.refresh_policy: Refresh = refresh
        self.rollover_conditions = {"max_age": rollover_max_age, "max_docs": rollover_max_docs}
        self._settings = {**SETTINGS, "number_of_shards": shards, "number_of_replicas": replicas}
        self._backing_indices: list[str] | None = None
        self.ensure_index()

    # -- layout

    @property
    def template_name(self) -> str:
        return f"{self.alias}-template"

    def ensure_index(self) -> None:
        """Create or update the template, and the first index with the write alias if missing."""
        self.client.indices.put_index_template(
            name=self.template_name,
            index_patterns=[f"{self.alias}-*"],
            template={"settings": self._settings, "mappings": self.mappings},
            priority=200,
        )
        if not self.client.indices.exists_alias(name=self.alias):
            try:
                self.client.indices.create(
                    index=f"{self.alias}-000001", aliases={self.alias: {"is_write_index": True}}
                )
            except es_exceptions.BadRequestError as exc:
                if "resource_already_exists_exception" not in str(exc):
                    raise
        self.client.cluster.health(index=self.alias, wait_for_status="yellow", timeout="30s")
        # indices made before the segmented fields existed take them (adding fields is allowed)
        self.client.indices.put_mapping(index=self.alias, properties=SEG_FIELDS)
        self._backing_indices = None

    @property
    def mappings(self) -> dict[str, Any]:
        """`es_query.MAPPINGS` plus the segmented fields."""
        return {**MAPPINGS, "properties": {**MAPPINGS["properties"], **SEG_FIELDS}}

    def backing_indices(self) -> list[str]:
        """The concrete indices behind the alias, oldest first."""
        if self._backing_indices is None:
            self._backing_indices = sorted(self.client.indices.get_alias(name=self.alias).body)
        return self._backing_indices

    def rollover(self, *, force: bool = False) -> str | None:
        """Start a new write index if the current one is old or big enough; the new name, or None."""
        conditions = None if force else self.rollover_conditions
        response = self.client.indices.rollover(alias=self.alias, conditions=conditions)
        self._backing_indices = None
        return str(response["new_index"]) if response.get("rolled_over") else None

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.alias)

    def drop(self) -> None:
        """Delete every index behind the alias and the template (tests, rebuilds)."""
        indices = self.backing_indices()
        if indices:
            self.client.indices.delete(index=",".join(indices), ignore_unavailable=True)
        with contextlib.suppress(NotFoundError):
            self.client.indices.delete_index_template(name=self.template_name)
        self._backing_indices = None

    # -- writing

    def _locate(self, ids: Sequence[str]) -> dict[str, str]:
        """Where existing ids live when the alias spans several indices (after a rollover)."""
        if len(self.backing_indices()) < 2 or not ids:
            return {}
        found: dict[str, str] = {}
        for start in range(0, len(ids), 10_000):
            chunk = list(ids[start : start + 10_000])
            response = self.client.search(
                index=self.alias,
                query={"ids": {"values": chunk}},
                source=False,
                size=len(chunk),
            )
            found.update({h["_id"]: h["_index"] for h in response["hits"]["hits"]})
        return found

    def _bulk(self, actions: list[dict[str, Any]]) -> int:
        """Send actions with backoff on 429 and the refresh policy; raise if any item failed."""
        errors: list[str] = []
        done = 0
        for ok, item in helpers.streaming_bulk(
            self.client,
            actions,
            chunk_size=BULK_CHUNK_DOCS,
            max_chunk_bytes=20 * 1024 * 1024,
            max_retries=6,
            initial_backoff=1,
            max_backoff=30,
            raise_on_error=False,
            raise_on_exception=True,
            refresh=self.refresh_policy if self.refresh_policy is not True else False,
        ):
            ((operation, result),) = item.items()
            if ok or (operation == "delete" and result.get("status") == 404):
                done += 1 if ok else 0
            else:
                errors.append(f"{result.get('_id')}: {result.get('error') or result.get('status')}")
        if self.refresh_policy is True:
            self.refresh()
        if errors:
            raise ElasticsearchIndexError(
                f"Elasticsearch index {self.alias!r} rejected {len(errors)} of {len(actions)} documents; "
                f"first: {errors[0]}"
            )
        return done

    def upsert(self, documents: Iterable[Document]) -> int:
        """Insert or replace by id (the last of duplicates wins); searchable on return with refresh=True."""
        handed_in = list(documents)
        batch = {doc.id: doc for doc in handed_in}
        if not batch:
            return 0
        where = self._locate(list(batch))
        actions = [
            {
                "_op_type": "index",
                "_index": where.get(doc_id, self.alias),
                "_id": doc_id,
                "_source": es_document(doc, self.segmenter),
            }
            for doc_id, doc in batch.items()
        ]
        self._bulk(actions)  # raises unless every document was written
        return len(handed_in)  # like tantivy: every document handed in, duplicates included

    def delete(self, ids: Iterable[str]) -> int:
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        present = self._present(wanted)
        if not present:
            return 0
        actions = [
            {"_op_type": "delete", "_index": index, "_id": doc_id} for doc_id, index in present.items()
        ]
        return self._bulk(actions)

    def _present(self, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), 10_000):
            chunk = list(ids[start : start + 10_000])
            response = self.client.search(
                index=self.alias, query={"ids": {"values": chunk}}, source=False, size=len(chunk)
            )
            found.update({h["_id"]: h["_index"] for h in response["hits"]["hits"]})
        return found

    # -- reading

    def _query(self, query: str | Node, filters: SearchFilters | None) -> tuple[Node, EsQuery]:
        node = parse(query) if isinstance(query, str) else query
        return node, search_body(node, filters)

    def _ranking(self, node: Node, compiled: EsQuery) -> EsQuery:
        """`compiled` plus optional clauses on the segmented fields for quoted phrases that form words.

        `should` beside a `must` only adds score: the matching documents stay the same.
        """
        if self.segmenter is None:
            return compiled
        should: list[EsQuery] = []
        for leaf in positive_leaves(node):
            if not isinstance(leaf, Phrase) or leaf.scope == "author":
                continue
            segmented = self.segmenter(unicodedata.normalize("NFC", leaf.text))
            if "_" not in segmented:  # no multi-syllable word in the phrase: nothing to prefer
                continue
            scopes = ["title", "text"] if leaf.scope == "all" else [leaf.scope]
            for scope in scopes:
                boost = SEG_BOOST * (TITLE_BOOST if scope == "title" and leaf.scope == "all" else 1.0)
                should.append({"match_phrase": {f"{scope}_seg": {"query": segmented, "boost": boost}}})
        return {"bool": {"must": [compiled], "should": should}} if should else compiled

    def get(self, doc_id: str) -> Document | None:
        response = self.client.search(index=self.alias, query={"ids": {"values": [doc_id]}}, size=1)
        hits = response["hits"]["hits"]
        return document_from_source(hits[0]["_source"]) if hits else None

    def _highlight_spec(self, node: Node) -> dict[str, Any] | None:
        query = highlight_query(node)
        if query is None:
            return None
        return {
            "type": "unified",
            "pre_tags": [_MARK_OPEN],
            "post_tags": [_MARK_CLOSE],
            "highlight_query": query,
            "require_field_match": True,
            "fields": {
                "title.folded": {"number_of_fragments": 0},
                "text.folded": {"fragment_size": SNIPPET_CHARS, "number_of_fragments": 1},
            },
        }

    @staticmethod
    def _hit(raw: dict[str, Any], sort: SortOrder) -> Hit:
        document = document_from_source(raw["_source"])
        out = {"title": html.escape(document.title), "text": leading_text(document.text)}
        for field, fragments in (raw.get("highlight") or {}).items():
            name = field.split(".")[0]
            if fragments:
                out[name] = render_highlight(fragments[0])
        score = float(raw.get("_score") or 0.0) if sort == "relevance" else 0.0
        return Hit(document=document, score=score, highlights=out)

    @staticmethod
    def _sort(sort: SortOrder) -> list[Any]:
        if sort == "date":
            return [{"published_at": {"order": "desc"}}, {"id": {"order": "asc"}}]
        return [{"_score": {"order": "desc"}}, {"published_at": {"order": "desc"}}, {"id": {"order": "asc"}}]

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
        body: dict[str, Any] = {
            "query": self._ranking(node, compiled) if sort == "relevance" else compiled,
            "size": limit,
            "from": offset,
            "track_total_hits": True,
            "sort": self._sort(sort),
        }
        highlight = self._highlight_spec(node)
        if highlight and limit:
            body["highlight"] = highlight
        if sort == "relevance":
            body["track_scores"] = True
        response = self.client.search(index=self.alias, **body)
        hits = [self._hit(raw, sort) for raw in response["hits"]["hits"]]
        return SearchResult(total=int(response["hits"]["total"]["value"]), hits=hits)

    def search_stories(
        self,
        query: str,
        filters: SearchFilters | None = None,
        *,
        sort: SortOrder = "relevance",
        limit: int = 20,
    ) -> list[StoryHit]:
        """One row per story (cluster): its best document in `sort` order, with documents and outlets.

        Stories are picked from the first `STORY_WINDOW` matching documents, as in the tantivy backend.
        """
        if limit < 1:
            return []
        node, compiled = self._query(query, filters)
        window = min(max(limit * 10, STORY_WINDOW), MAX_RESULT_WINDOW)
        ranked = self.client.search(
            index=self.alias,
            query=self._ranking(node, compiled) if sort == "relevance" else compiled,
            size=window,
            sort=self._sort(sort),
            source={"includes": ["cluster_id"]},
            track_total_hits=False,
        )["hits"]["hits"]
        best: dict[str, str] = {}
        for raw in ranked:
            key = raw["_source"].get("cluster_id") or f"\0{raw['_id']}"
            best.setdefault(key, raw["_id"])
            if len(best) == limit:
                break
        if not best:
            return []
        body: dict[str, Any] = {
            "query": compiled,  # aggregations see every match; only the hits are limited to the best
            "post_filter": {"ids": {"values": list(best.values())}},
            "size": len(best),
            "sort": self._sort(sort),
        }
        highlight = self._highlight_spec(node)
        if highlight:
            body["highlight"] = highlight
        if sort == "relevance":
            body["track_scores"] = True
        clusters = [key for key in best if not key.startswith("\0")]
        if clusters:
            body["aggs"] = {
                "clusters": {
                    "terms": {"field": "cluster_id", "include": clusters, "size": len(clusters)},
                    "aggs": {"outlets": {"terms": {"field": "source", "size": 10_000}}},
                }
            }
        response = self.client.search(index=self.alias, **body)
        by_id = {raw["_id"]: self._hit(raw, sort) for raw in response["hits"]["hits"]}
        sizes: dict[str, tuple[int, int]] = {}
        if clusters:
            for bucket in response["aggregations"]["clusters"]["buckets"]:
                sizes[str(bucket["key"])] = (int(bucket["doc_count"]), len(bucket["outlets"]["buckets"]))
        stories = []
        for key, doc_id in best.items():
            if doc_id not in by_id:  # deleted between the two requests
                continue
            documents, outlets = sizes.get(key, (1, 1))
            stories.append(StoryHit(by_id[doc_id], documents=documents, outlets=outlets))
        return stories

    def count(self, query: str = "", filters: SearchFilters | None = None) -> int:
        _, compiled = self._query(query, filters)
        return int(self.client.count(index=self.alias, query=compiled)["count"])

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
        """`terms` for several fields in one request (the facet panel of a search page)."""
        unknown = [name for name in field_names if name not in TERMS_FIELDS]
        if unknown:
            raise ValueError(f"cannot aggregate on {unknown[0]!r}; choose one of {', '.join(TERMS_FIELDS)}")
        if size < 1:
            raise ValueError("size must be >= 1")
        if not field_names:
            return {}
        _, compiled = self._query(query, filters)
        aggs = {
            name: {
                "terms": {
                    "field": name,
                    "size": size,
                    "shard_size": max(size * 10, 1_000),
                    "order": [{"_count": "desc"}, {"_key": "asc"}],
                }
            }
            for name in field_names
        }
        response = self.client.search(
            index=self.alias, query=compiled, size=0, aggs=aggs, track_total_hits=False
        )
        return {
            name: [(str(b["key"]), int(b["doc_count"])) for b in response["aggregations"][name]["buckets"]]
            for name in field_names
        }

    def date_histogram(
        self,
        interval: HistogramInterval = "day",
        query: str = "",
        filters: SearchFilters | None = None,
        tz: tzinfo = VIETNAM_TZ,
    ) -> list[tuple[datetime, int]]:
        """Document counts per local hour/day/week (from Monday)/month of the publication date.

        Empty buckets between the first and last match are included, or over the whole
        `date_from`..`date_to` range when the filters give both ends (same as the tantivy backend).
        """
        _, compiled = self._query(query, filters)
        if interval in ("hour", "day"):
            self._check_bucket_count(interval, compiled, filters)
        spec: dict[str, Any] = {
            "field": "published_at",
            "calendar_interval": interval,
            "time_zone": _tz_name(tz),
            "min_doc_count": 0,
        }
        if filters is not None and filters.date_from and filters.date_to:
            spec["extended_bounds"] = {
                "min": int(filters.date_from.timestamp() * 1000),
                "max": int(filters.date_to.timestamp() * 1000) - 1,
            }
        response = self.client.search(
            index=self.alias,
            query=compiled,
            size=0,
            aggs={"agg": {"date_histogram": spec}},
            track_total_hits=False,
        )
        return [
            (datetime.fromtimestamp(b["key"] / 1000, UTC).astimezone(tz), int(b["doc_count"]))
            for b in response["aggregations"]["agg"]["buckets"]
        ]

    def _check_bucket_count(
        self, interval: HistogramInterval, compiled: EsQuery, filters: SearchFilters | None
    ) -> None:
        """Refuse spans over `MAX_HISTOGRAM_BUCKETS` buckets before the cluster does (as tantivy)."""
        response = self.client.search(
            index=self.alias,
            query=compiled,
            size=0,
            aggs={"first": {"min": {"field": "published_at"}}, "last": {"max": {"field": "published_at"}}},
            track_total_hits=False,
        )
        aggregations = response["aggregations"]
        first, last = aggregations["first"]["value"], aggregations["last"]["value"]
        if filters is not None and filters.date_from and filters.date_to:
            first, last = filters.date_from.timestamp() * 1000, filters.date_to.timestamp() * 1000
        if first is None or last is None:
            return
        bucket_ms = 3_600_000 if interval == "hour" else 86_400_000
        if (last - first) / bucket_ms + 1 > MAX_HISTOGRAM_BUCKETS:
            raise ValueError(
                f"Too many {interval} buckets for the matching documents' date span; narrow the date range "
                "(date_from/date_to) or choose a coarser interval"
            )

    def scan(self, query: str = "", filters: SearchFilters | None = None) -> Iterator[Document]:
        """Every match from one snapshot (scroll), without the result-window limit."""
        _, compiled = self._query(query, filters)
        for raw in helpers.scan(
            self.client,
            index=self.alias,
            query={"query": compiled},
            size=SCAN_PAGE_SIZE,
            scroll="2m",
            clear_scroll=True,
        ):
            yield document_from_source(raw["_source"])

    def stats(self) -> dict[str, int]:
        """Documents and on-disk bytes of the primaries behind the alias (benchmarks, status page)."""
        primaries = self.client.indices.stats(index=self.alias, metric="docs,store")["_all"]["primaries"]
        return {
            "documents": int(primaries["docs"]["count"]),
            "store_bytes": int(primaries["store"]["size_in_bytes"]),
        }

    def close(self) -> None:
        """Close the connection pool if this index opened it (from a URL); a shared client stays open."""
        if self._owns_client:
            self.client.close()


def open_elasticsearch(url: str, index_name: str = "duluan", **options: Any) -> ElasticsearchIndex:
    """The composition root's factory: connect to `url` and make sure the template and alias exist."""
    return ElasticsearchIndex(url, index_name, **options)


def _satisfies_protocol(index: ElasticsearchIndex) -> SearchBackend:
    """Static check (mypy): `ElasticsearchIndex` implements the whole `SearchBackend` Protocol."""
    return index
