"""Builds each stage's objects from `Settings`: the only place that knows every stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from duluan.settings import Settings
from index.backend import SearchBackend

if TYPE_CHECKING:
    from crawlers.run import CrawlConfig
    from nlp.enrich import Enricher


def open_backend(settings: Settings) -> SearchBackend:
    """The configured search index (the embedded tantivy store under <home>/index)."""
    from index.tantivy_backend import TantivyIndex

    settings.index_dir.mkdir(parents=True, exist_ok=True)
    return TantivyIndex(settings.index_dir)


def make_enricher(settings: Settings) -> Enricher:
    from nlp.enrich import Enricher

    return Enricher(
        models_dir=settings.models_dir,
        province=settings.province.name,
        province_aliases=settings.province.aliases,
    )


def crawl_config(settings: Settings) -> CrawlConfig:
    from crawlers.run import CrawlConfig

    c = settings.crawl
    return CrawlConfig(
        user_agent=c.user_agent,
        obey_robots=c.obey_robots,
        concurrency_per_domain=c.concurrency_per_domain,
        download_delay_s=c.download_delay_s,
        max_page_bytes=c.max_page_bytes,
        min_body_chars=c.min_body_chars,
        timeout_s=c.timeout_s,
        log_level=settings.log_level,
        configure_logging=False,  # duluan.logs already configured the root logger
        facebook_graph_url=c.facebook_graph_url,
        facebook_page_token=c.facebook_page_token.get_secret_value(),
        youtube_api_url=c.youtube_api_url,
        youtube_api_key=c.youtube_api_key.get_secret_value(),
    )
