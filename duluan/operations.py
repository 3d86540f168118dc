"""The service's operations, shared by the CLI, the scheduler and the demo.

Each function takes `Settings`, opens what it needs, does one thing and closes what it opened.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crawlers.registry import DEFAULT_SEED_FILE, get_source, list_sources, load_seed_yaml, upsert_sources
from duluan.db import open_database
from duluan.metrics import LatencyRecorder
from duluan.settings import Settings
from index.backend import SearchBackend
from schema import Document

if TYPE_CHECKING:
    from alerts.engine import FiredAlert
    from crawlers.run import CrawlReport
    from nlp.enrich import Enricher

log = logging.getLogger("duluan")


def ensure_sources_seeded(settings: Settings) -> sa.Engine:
    """Open the app database and, when the source registry is empty, seed it from the seed file."""
    engine = open_database(settings.db_url)
    if not list_sources(engine, enabled_only=False):
        seed: Path = settings.crawl.sources_seed or DEFAULT_SEED_FILE
        written = upsert_sources(engine, load_seed_yaml(seed))
        log.info("seeded %d source(s) from %s", written, seed)
    return engine


def crawl_sources(settings: Settings, source_ids: list[str] | None = None) -> CrawlReport:
    """Crawl the named sources (default: every enabled one) once: fetch → extract → enrich → index.

    Blocking, and only once per process (Scrapy's reactor): the scheduler runs it in a child process.
    Unknown ids raise `UnknownSourceError`; unreachable sources are reported, never raised.
    """
    from crawlers.health import record_crawl_report
    from crawlers.run import run_crawl
    from duluan.wiring import crawl_config, make_enricher, open_backend

    engine = ensure_sources_seeded(settings)
    if source_ids:
        specs = []
        for source_id in source_ids:
            spec = get_source(engine, source_id)
            if spec is None:
                known = ", ".join(s.id for s in list_sources(engine, enabled_only=False)) or "none"
                raise UnknownSourceError(f"no source with id {source_id!r}; known ids: {known}")
            specs.append(spec)
    else:
        specs = list_sources(engine, enabled_only=True)
    engine.dispose()
    enrichers: list[Enricher] = []
    latency = LatencyRecorder()  # NLP time per document, for /metrics (duluan/metrics.py)

    def enrich(doc: Document) -> Document:
        # Models load on the first document, so a crawl of an unreachable source stays cheap.
        if not enrichers:
            enrichers.append(make_enricher(settings))
        with latency.time():
            return enrichers[0].enrich(doc)

    backend = open_backend(settings)
    try:
        report = run_crawl(
            specs,
            config=crawl_config(settings),
            enrich=enrich,
            sink=lambda docs: _index_batch(backend, docs),
            state_dir=settings.crawl_state_dir,
        )
    finally:
        backend.close()
    engine = open_database(settings.db_url)
    try:
        record_crawl_report(engine, report)  # source health reads these rows
    finally:
        engine.dispose()
        latency.flush(settings.home)
    return report


def _index_batch(backend: SearchBackend, docs: list[Document]) -> None:
    backend.upsert(docs)


class UnknownSourceError(LookupError):
    """A source id that is not in the registry."""


def run_alert_rules(settings: Settings, now: datetime | None = None) -> list[FiredAlert]:
    """Evaluate every enabled alert rule once; fired alerts go to the outbox."""
    from alerts.engine import run_rules_once
    from duluan.wiring import open_backend

    engine = open_database(settings.db_url)
    backend = open_backend(settings)
    try:
        return run_rules_once(backend, engine, now or datetime.now(UTC))
    finally:
        backend.close()
        engine.dispose()


def install_default_rules(settings: Settings) -> list[str]:
    """Install the shipped rules for the monitored province that do not exist yet."""
    from alerts.seed import install_seed_rules
    from duluan.wiring import open_backend

    engine = open_database(settings.db_url)
    backend = open_backend(settings)
    try:
        return install_seed_rules(engine, settings.province.name, backend=backend)
    finally:
        backend.close()
        engine.dispose()


def render_digest(settings: Settings, day: date | None, out: Path | None) -> Path:
    """Render the digest of local day `day` (default: today) to `out` (HTML, or PDF when `out` ends in
    .pdf) or, without `out`, into the digest archive as HTML + PDF (the HTML path is returned)."""
    from alerts.digest import archive_digest, build_digest, render_digest_html, render_digest_pdf
    from duluan.wiring import open_backend

    tz = settings.tz
    day = day or datetime.now(tz).date()
    backend = open_backend(settings)
    try:
        digest = build_digest(backend, day, tz, settings.province.name)
    finally:
        backend.close()
    if out is None:
        return archive_digest(digest, settings.digests_dir).html
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".pdf":
        atomic_write_bytes(out, render_digest_pdf(digest))
    else:
        atomic_write_text(out, render_digest_html(digest))
    return out


@contextmanager
def atomic_destination(path: Path) -> Iterator[Path]:
    """A temp path beside `path` to write into; renamed over `path` only if the block succeeds."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temp_name)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a crash never leaves half a file behind."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves half a file behind."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
