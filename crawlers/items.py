"""What flows through the Scrapy item pipelines, and the per-run context the pipelines share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from crawlers.extract import ExtractedArticle
from schema.document import Document

if TYPE_CHECKING:
    from crawlers.clustering import StoryClusterer
    from crawlers.registry import SourceSpec
    from crawlers.run import CrawlConfig
    from crawlers.state import CrawlState

#: Stats keys every crawler keeps; `crawlers.run` turns them into the `CrawlReport`.
STAT_PREFIX = "duluan/"


@dataclass
class FetchedPage:
    """One article response as the spider hands it over; hints come from the feed/sitemap entry."""

    source_id: str
    url: str
    url_key: str
    body: bytes
    header_charset: str | None
    fetched_at: datetime
    hint_title: str | None = None
    hint_published_at: datetime | None = None


@dataclass
class CrawlItem:
    """The item: a fetched page, then its extracted article, then its `Document`."""

    page: FetchedPage
    article: ExtractedArticle | None = None
    document: Document | None = None

    def __repr__(self) -> str:  # Scrapy logs dropped items; never dump a 5 MB body into the log
        return f"<CrawlItem {self.page.url}>"


@dataclass
class RunContext:
    """Everything a source's crawler shares with its spider and pipelines (set as `crawler.duluan`)."""

    source: SourceSpec
    config: CrawlConfig
    state: CrawlState
    clusterer: StoryClusterer | None
    enrich: Callable[[Document], Document] | None
    sink: Callable[[list[Document]], None]
    #: Document ids already delivered in this run, across all sources (syndicated copies share none,
    #: but one outlet often lists an article in several feeds).
    delivered_ids: set[str] = field(default_factory=set)
    #: Start URL → failure kind, and the start URLs that answered; decide "unreachable" at the end.
    start_failures: dict[str, str] = field(default_factory=dict)
    start_ok: set[str] = field(default_factory=set)
    #: ETag/Last-Modified of start URLs, saved only when the run delivered everything it found.
    pending_validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    sink_failed: bool = False
