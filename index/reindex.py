"""Copy documents between backends (tantivy ⇄ Elasticsearch), for migrations and rebuilds."""

from __future__ import annotations

from collections.abc import Callable

from index.backend import SearchBackend, SearchFilters
from schema import Document


def reindex(
    source: SearchBackend,
    target: SearchBackend,
    *,
    query: str = "",
    filters: SearchFilters | None = None,
    batch_size: int = 1_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Upsert every document of `source` matching `query`/`filters` into `target`; returns how many.

    Idempotent (upsert by id), so an interrupted run can simply be restarted. `progress` is called
    with the running total after each batch (for a CLI progress bar).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    copied = 0
    batch: list[Document] = []
    for document in source.scan(query, filters):
        batch.append(document)
        if len(batch) >= batch_size:
            copied += target.upsert(batch)
            batch = []
            if progress:
                progress(copied)
    if batch:
        copied += target.upsert(batch)
        if progress:
            progress(copied)
    return copied
