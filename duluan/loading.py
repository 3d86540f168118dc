"""Bulk-loading documents from JSONL (`duluan index load`): validate, enrich what is missing, index.

One bad line never stops the load: it is reported with its line number and the rest are indexed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.progress import Progress

from crawlers.urls import InvalidURLError, document_id, normalize_url
from duluan.settings import Settings
from duluan.wiring import make_enricher, open_backend
from schema import Document


def parse_document_line(raw: dict[str, Any]) -> Document:
    """A JSON object → `Document`, filling id, canonical_url and fetched_at when they are absent."""
    data = dict(raw)
    if "url" not in data:
        raise ValueError("missing 'url'")
    data.setdefault("canonical_url", normalize_url(str(data["url"])))
    data.setdefault("id", document_id(str(data["canonical_url"])))
    data.setdefault("fetched_at", datetime.now(UTC).isoformat())
    return Document.model_validate(data)


def _read_jsonl(path: Path, rejected: list[dict[str, Any]]) -> Iterator[Document]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield parse_document_line(json.loads(line))
            except (json.JSONDecodeError, ValidationError, ValueError, InvalidURLError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if isinstance(exc, ValidationError):
                    reason = "; ".join(
                        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
                    )
                rejected.append({"line": line_no, "error": reason})


def load_jsonl(settings: Settings, path: Path, *, batch_size: int = 5000) -> dict[str, Any]:
    """Index every valid document of `path`; returns counts and the rejected lines."""
    rejected: list[dict[str, Any]] = []
    enricher = None
    backend = open_backend(settings)
    loaded = 0
    enriched = 0
    batch: list[Document] = []
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"Loading {path.name}", total=None)
            for doc in _read_jsonl(path, rejected):
                if doc.topic is None or doc.sentiment is None:
                    enricher = enricher or make_enricher(settings)
                    doc = enricher.enrich(doc)
                    enriched += 1
                batch.append(doc)
                if len(batch) >= batch_size:
                    loaded += backend.upsert(batch)
                    batch = []
                    progress.update(task, completed=loaded)
            if batch:
                loaded += backend.upsert(batch)
    finally:
        backend.close()
    return {"loaded": loaded, "enriched": enriched, "rejected": len(rejected), "errors": rejected[:100]}
