"""The search-backend interface every index implementation honours.

Callers (CLI, web, alerts) depend on this Protocol only, never on a concrete backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from schema import Document

SortOrder = Literal["relevance", "date"]
#: Calendar buckets of `date_histogram`, in local time (Asia/Ho_Chi_Minh by default); weeks start on Monday.
HistogramInterval = Literal["hour", "day", "week", "month"]


@dataclass(frozen=True)
class SearchFilters:
    """Structured filters that combine (AND) with the query string."""

    topic: str | None = None
    sentiment: str | None = None
    source: str | None = None
    source_type: str | None = None
    date_from: datetime | None = None  # on published_at (falls back to fetched_at), inclusive
    date_to: datetime | None = None  # exclusive
    fetched_since: datetime | None = None  # on fetched_at, inclusive: "new since the last alert run"
    min_province_relevance: float | None = None


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float
    highlights: dict[str, str] = field(default_factory=dict)  # field → HTML-escaped snippet with <mark>


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[Hit]


@dataclass(frozen=True)
class StoryHit:
    """One story (cụm tin) in collapsed results: its best-ranked document and how widely it ran.

    `documents` and `outlets` (distinct sources) count the cluster's documents that match the
    same query and filters; a document without `cluster_id` is a story of its own.
    """

    hit: Hit
    documents: int
    outlets: int


class QueryError(ValueError):
    """A query the user typed cannot be parsed; `position` points at the offending character."""

    def __init__(self, message: str, position: int | None = None, message_vi: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.message_vi = message_vi or message


class SearchBackend(Protocol):
    """What an index must do. All methods are safe to call from one process at a time per index."""

    def upsert(self, documents: Iterable[Document]) -> int:
        """Insert or replace by `Document.id` and make them searchable; returns how many were written."""
        ...

    def delete(self, ids: Iterable[str]) -> int: ...

    def get(self, doc_id: str) -> Document | None: ...

    def search(
        self,
        query: str,
        filters: SearchFilters | None = None,
        *,
        sort: SortOrder = "relevance",
        limit: int = 20,
        offset: int = 0,
    ) -> SearchResult:
        """Run a query in the staff query language (see `index.query`); raises `QueryError` on bad syntax."""
        ...

    def count(self, query: str = "", filters: SearchFilters | None = None) -> int: ...

    def terms(
        self, field_name: str, query: str = "", filters: SearchFilters | None = None, size: int = 10
    ) -> list[tuple[str, int]]:
        """Top values of a keyword field (topic, sentiment, source, cluster_id, entity) with counts."""
        ...

    def facets(
        self,
        field_names: Sequence[str],
        query: str = "",
        filters: SearchFilters | None = None,
        size: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        """`terms` for several fields at once (one pass over the matches)."""
        ...

    def scan(self, query: str = "", filters: SearchFilters | None = None) -> Iterator[Document]:
        """Every matching document, for export and reindex, without a result window limit."""
        ...

    def date_histogram(
        self, interval: HistogramInterval = "day", query: str = "", filters: SearchFilters | None = None
    ) -> list[tuple[datetime, int]]:
        """Matching documents per local hour/day/week/month of the publication date, oldest first."""
        ...

    def search_stories(
        self,
        query: str,
        filters: SearchFilters | None = None,
        *,
        sort: SortOrder = "relevance",
        limit: int = 20,
    ) -> list[StoryHit]:
        """Results collapsed by `cluster_id`: one row per story with "N outlets"."""
        ...

    def close(self) -> None: ...
