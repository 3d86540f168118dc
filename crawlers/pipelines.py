"""Item pipelines, one small class per stage: extract → normalise → dedup/cluster → enrich → index.

Each stage catches its own failures: the item is dropped (or, for enrichment, passed on without NLP
fields), the failure is logged with the URL and counted under `duluan/errors/<kind>`, and the crawl
goes on. The enrich and sink callables are injected by the composition root through the crawler's
`RunContext`, so this package imports neither `nlp` nor `index`.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from twisted.internet import task

from crawlers.extract import SiteRules, extract_article
from crawlers.items import STAT_PREFIX, CrawlItem, RunContext
from crawlers.urls import InvalidURLError, document_id, normalize_url
from schema.document import Document

log = logging.getLogger("crawlers.pipelines")


class _Stage:
    """Shared plumbing: the run context and counters of this source's crawler."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.context: RunContext = crawler.duluan  # type: ignore[attr-defined]

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(crawler)

    def count(self, key: str, amount: int = 1) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(STAT_PREFIX + key, amount)

    def fail(self, item: CrawlItem, kind: str, exc: BaseException) -> DropItem:
        self.count(f"errors/{kind}")
        log.error("source %s: %s failed at %s: %r", self.context.source.id, item.page.url, kind, exc)
        return DropItem(f"{kind} failed for {item.page.url}: {exc!r}")

    def drop(self, item: CrawlItem, reason: str) -> DropItem:
        self.count(f"dropped/{reason}")
        return DropItem(f"{reason}: {item.page.url}")


class ExtractPipeline(_Stage):
    """HTML → `ExtractedArticle`; pages without a real body are dropped as `no_body`."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        rules = self.context.source.site_rules
        self._extra_rules = (
            SiteRules(drop_xpaths=tuple(rules.drop_xpaths), author_xpath=rules.author_xpath)
            if rules.drop_xpaths or rules.author_xpath
            else None
        )

    def process_item(self, item: CrawlItem) -> CrawlItem:
        if item.article is not None:  # social posts arrive already parsed by their spider
            self.count("extracted")
            return item
        try:
            article = extract_article(
                item.page.body,
                item.page.url,
                min_body_chars=self.context.config.min_body_chars,
                header_charset=item.page.header_charset,
                site_rules=self._extra_rules,
            )
        except Exception as exc:
            raise self.fail(item, "extract", exc) from exc
        if article is None:
            raise self.drop(item, "no_body")
        self.count("extracted")
        item.article = article
        item.page.body = b""  # the raw page is no longer needed; keep memory flat on long runs
        return item


class NormalisePipeline(_Stage):
    """`ExtractedArticle` → `Document`: id from the canonical URL, feed hints fill the gaps."""

    def process_item(self, item: CrawlItem) -> CrawlItem:
        article, page = item.article, item.page
        assert article is not None
        try:
            canonical = article.canonical_url or normalize_url(page.url)
            item.document = Document(
                id=document_id(canonical),
                url=page.url,
                canonical_url=canonical,
                source=page.source_id,
                source_type=self.context.source.source_type,
                title=article.title or page.hint_title or "",
                text=article.text,
                published_at=article.published_at or page.hint_published_at,
                fetched_at=page.fetched_at,
                author=article.author,
                lang=article.lang,
                images=list(article.images),
            )
        except (ValidationError, InvalidURLError) as exc:
            raise self.fail(item, "normalise", exc) from exc
        return item


class DedupClusterPipeline(_Stage):
    """Drops a document already delivered in this run; gives the rest their story `cluster_id`."""

    def process_item(self, item: CrawlItem) -> CrawlItem:
        document = item.document
        assert document is not None
        if document.id in self.context.delivered_ids:
            raise self.drop(item, "duplicate")
        self.context.delivered_ids.add(document.id)
        if self.context.clusterer is not None:
            try:
                document.cluster_id = self.context.clusterer.assign(
                    document.id, f"{document.title}\n{document.text}", document.source, document.published_at
                )
            except Exception as exc:  # a clustering failure must not lose the document
                self.count("errors/cluster")
                log.error("source %s: clustering %s failed: %r", self.context.source.id, document.url, exc)
        return item


class EnrichPipeline(_Stage):
    """Calls the injected NLP enrichment; on failure the document goes on without NLP fields."""

    def process_item(self, item: CrawlItem) -> CrawlItem:
        enrich = self.context.enrich
        if enrich is None or item.document is None:
            return item
        try:
            enriched = enrich(item.document)
        except Exception as exc:
            self.count("errors/enrich")
            log.error("source %s: enrichment of %s failed: %r", self.context.source.id, item.page.url, exc)
            return item
        if not isinstance(enriched, Document):
            self.count("errors/enrich")
            log.error(
                "source %s: enrich returned %r for %s, not a Document",
                self.context.source.id,
                enriched,
                item.page.url,
            )
            return item
        item.document = enriched
        return item


class IndexPipeline(_Stage):
    """Buffers documents and hands them to the injected sink in batches, on a timer and on close.

    URLs are marked seen only after the sink accepted their batch; a failed batch is counted and
    its URLs stay unseen, so the next run fetches them again.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._buffer: list[CrawlItem] = []
        self._timer: task.LoopingCall | None = None

    def open_spider(self) -> None:
        self._timer = task.LoopingCall(self.flush)
        self._timer.start(self.context.config.flush_interval_s, now=False)

    def process_item(self, item: CrawlItem) -> CrawlItem:
        if item.document is not None:
            self._buffer.append(item)
            if len(self._buffer) >= self.context.config.batch_size:
                self.flush()
        return item

    def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        documents = [item.document for item in batch if item.document is not None]
        try:
            self.context.sink(documents)
        except Exception as exc:
            self.context.sink_failed = True
            self.count("errors/sink", len(documents))
            log.error(
                "source %s: sink rejected a batch of %d documents (first %s): %r",
                self.context.source.id,
                len(documents),
                batch[0].page.url,
                exc,
            )
            return
        self.count("indexed", len(documents))
        self.context.state.mark_seen(
            (item.page.url_key, item.page.source_id, item.document.id if item.document else None)
            for item in batch
        )

    def close_spider(self) -> None:
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self.flush()
