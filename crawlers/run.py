"""Run one crawl over registry sources with Scrapy, in-process and blocking.

`run_crawl` starts a `CrawlerProcess` with one crawler per source (so each source gets its own
politeness settings and its own counters), waits for all of them, and returns a `CrawlReport`.
Twisted's reactor cannot be restarted, so call it once per process: the scheduler runs each crawl
as a child process (`duluan crawl --source ID`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler, CrawlerProcess

from crawlers.clustering import StoryClusterer
from crawlers.items import STAT_PREFIX, RunContext
from crawlers.registry import API_KINDS, WEB_KINDS, SourceSpec
from crawlers.spiders import SourceSpider
from crawlers.state import CrawlState
from schema.document import Document

log = logging.getLogger("crawlers.run")

PIPELINES = {
    "crawlers.pipelines.ExtractPipeline": 100,
    "crawlers.pipelines.NormalisePipeline": 200,
    "crawlers.pipelines.DedupClusterPipeline": 300,
    "crawlers.pipelines.EnrichPipeline": 400,
    "crawlers.pipelines.IndexPipeline": 500,
}


@dataclass(frozen=True)
class CrawlConfig:
    """Crawl knobs; the composition root fills them from `Settings.crawl`."""

    user_agent: str = "DuluanBot/0.1 (+IOC press monitoring)"
    obey_robots: bool = True
    concurrency_per_domain: int = 2
    download_delay_s: float = 1.0
    max_page_bytes: int = 5_000_000
    min_body_chars: int = 200
    timeout_s: float = 30.0
    retry_times: int = 2
    max_retry_after_s: float = 120.0
    rate_limit_retries: int = 3
    batch_size: int = 50
    flush_interval_s: float = 10.0
    cluster_stories: bool = True
    log_level: str = "INFO"
    #: Let Scrapy install its root log handler; False when the caller configured logging already.
    configure_logging: bool = True
    #: Social APIs; the secrets never appear in URLs, logs or this dataclass's repr.
    facebook_graph_url: str = "https://graph.facebook.com/v19.0"
    facebook_page_token: str = field(default="", repr=False)
    youtube_api_url: str = "https://www.googleapis.com/youtube/v3"
    youtube_api_key: str = field(default="", repr=False)


@dataclass
class SourceReport:
    """What one source's crawl did (sức khoẻ nguồn): the CLI and the health view read this."""

    source_id: str
    fetched: int = 0
    extracted: int = 0
    indexed: int = 0
    dropped: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    skipped_seen: int = 0
    not_modified: int = 0
    rate_limited_retries: int = 0
    unreachable: str | None = None
    finish_reason: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.unreachable is None and "errors/sink" not in self.errors and "sink" not in self.errors


@dataclass
class CrawlReport:
    """Per-source reports of one `run_crawl` call."""

    sources: dict[str, SourceReport] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def indexed(self) -> int:
        return sum(r.indexed for r in self.sources.values())

    @property
    def unreachable(self) -> list[str]:
        return [sid for sid, r in self.sources.items() if r.unreachable]

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 2),
            "indexed": self.indexed,
            "sources": {sid: asdict(report) for sid, report in self.sources.items()},
        }


def scrapy_settings(config: CrawlConfig) -> dict[str, Any]:
    """The process-wide Scrapy settings for a crawl config (each one documented by Scrapy)."""
    return {
        "USER_AGENT": config.user_agent,
        "ROBOTSTXT_OBEY": config.obey_robots,
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": config.concurrency_per_domain,
        "DOWNLOAD_DELAY": config.download_delay_s,
        "DOWNLOAD_DELAY_JITTER": 0.5,
        "DOWNLOAD_TIMEOUT": config.timeout_s,
        "DNS_TIMEOUT": max(1, int(config.timeout_s)),
        "DOWNLOAD_MAXSIZE": config.max_page_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_ENABLED": config.retry_times > 0,
        "RETRY_TIMES": config.retry_times,
        # 429 is left to RetryAfterMiddleware, which waits as the server asks instead of hammering it.
        "RETRY_HTTP_CODES": [408, 500, 502, 503, 504, 522, 524],
        # The SSRF guard runs first on every request, redirects included (they come back as requests).
        "DOWNLOADER_MIDDLEWARES": {
            "crawlers.middlewares.PrivateTargetMiddleware": 50,
            "crawlers.middlewares.RetryAfterMiddleware": 560,
        },
        "DULUAN_MAX_RETRY_AFTER_S": config.max_retry_after_s,
        "DULUAN_RATE_LIMIT_RETRIES": config.rate_limit_retries,
        "REDIRECT_MAX_TIMES": 5,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": config.log_level,
        "LOG_INSTALL_ROOT_HANDLER": config.configure_logging,
        "ITEM_PIPELINES": PIPELINES,
        "SPIDER_LOADER_WARN_ONLY": True,
        # Drops (no body, duplicate) are routine; real failures are logged at ERROR by the pipelines.
        "DEFAULT_DROPITEM_LOG_LEVEL": "INFO",
    }


def _source_settings(source: SourceSpec) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if source.politeness.download_delay_s is not None:
        overrides["DOWNLOAD_DELAY"] = source.politeness.download_delay_s
    if source.politeness.concurrency is not None:
        overrides["CONCURRENT_REQUESTS_PER_DOMAIN"] = source.politeness.concurrency
    if source.politeness.obey_robots is not None:
        overrides["ROBOTSTXT_OBEY"] = source.politeness.obey_robots
    return overrides


def _report_from_stats(source_id: str, stats: dict[str, Any], context: RunContext) -> SourceReport:
    def stat(key: str) -> int:
        return int(stats.get(STAT_PREFIX + key, 0))

    report = SourceReport(source_id=source_id)
    report.fetched, report.extracted, report.indexed = stat("fetched"), stat("extracted"), stat("indexed")
    report.skipped_seen, report.not_modified = stat("skipped_seen"), stat("not_modified")
    report.rate_limited_retries = stat("rate_limited_retries")
    for key, value in stats.items():
        if key.startswith(STAT_PREFIX + "errors/"):
            report.errors[key.removeprefix(STAT_PREFIX + "errors/")] = int(value)
        elif key.startswith(STAT_PREFIX + "dropped/"):
            report.dropped_by_reason[key.removeprefix(STAT_PREFIX + "dropped/")] = int(value)
    report.dropped = sum(report.dropped_by_reason.values())
    if context.start_failures and not context.start_ok:
        report.unreachable = "; ".join(
            f"{url}: {kind}" for url, kind in sorted(context.start_failures.items())
        )
    report.finish_reason = stats.get("finish_reason")
    start, finish = stats.get("start_time"), stats.get("finish_time")
    if start and finish:
        report.duration_s = (finish - start).total_seconds()
    return report


def run_crawl(
    sources: list[SourceSpec],
    *,
    config: CrawlConfig,
    enrich: Callable[[Document], Document] | None,
    sink: Callable[[list[Document]], None],
    state_dir: Path,
) -> CrawlReport:
    """Crawl the given sources once and report per source; never raises for a bad source or page.

    `sink` receives batches of documents (bulk index writes); `enrich` is applied per document.
    Seen URLs and feed validators persist under `state_dir`. Blocking; one call per process.
    """
    started = time.monotonic()
    report = CrawlReport()
    state = CrawlState(state_dir)
    clusterer = StoryClusterer(state_dir) if config.cluster_stories else None
    delivered: set[str] = set()
    process = CrawlerProcess(scrapy_settings(config))
    crawlers: list[tuple[Crawler, RunContext]] = []
    for source in sources:
        if source.type not in WEB_KINDS | API_KINDS:
            log.error("source %s: type %s has no spider in this build; skipped", source.id, source.type.value)
            report.sources[source.id] = SourceReport(source_id=source.id, errors={"unsupported_type": 1})
            continue
        spider_class = type(
            f"SourceSpider_{source.id.replace('-', '_')}",
            (SourceSpider,),
            {"name": f"source_{source.id}", "custom_settings": _source_settings(source)},
        )
        crawler = process.create_crawler(spider_class)
        context = RunContext(
            source=source,
            config=config,
            state=state,
            clusterer=clusterer,
            enrich=enrich,
            sink=sink,
            delivered_ids=delivered,
        )
        crawler.duluan = context  # type: ignore[attr-defined]
        process.crawl(crawler)
        crawlers.append((crawler, context))
    if crawlers:
        process.start(install_signal_handlers=False)
    for crawler, context in crawlers:
        assert crawler.stats is not None
        source_report = _report_from_stats(context.source.id, crawler.stats.get_stats(), context)
        report.sources[context.source.id] = source_report
        if not context.sink_failed and source_report.finish_reason == "finished":
            for url, (etag, last_modified) in context.pending_validators.items():
                state.save_validators(url, etag, last_modified)
    state.close()
    if clusterer is not None:
        clusterer.close()
    report.duration_s = time.monotonic() - started
    return report
