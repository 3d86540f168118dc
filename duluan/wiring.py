"""Builds each stage's objects from `Settings`: the only place that knows every stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from duluan.settings import Settings
from index.backend import SearchBackend

if TYPE_CHECKING:
    from crawlers.run import CrawlConfig
    from nlp.enrich import Enricher


class BackendUnavailable(RuntimeError):
    """The configured index cannot be opened; the message says which one and what to check."""


def open_backend(settings: Settings, kind: str | None = None) -> SearchBackend:
    """The configured search index, or the one named by `kind` ("tantivy" | "elasticsearch")."""
    kind = kind or settings.index.backend
    if kind == "tantivy":
        from index.tantivy_backend import TantivyIndex

        settings.index_dir.mkdir(parents=True, exist_ok=True)
        return TantivyIndex(settings.index_dir)
    if kind == "elasticsearch":
        from elasticsearch import ApiError, TransportError

        from index.es_backend import open_elasticsearch

        config = settings.index
        try:
            return open_elasticsearch(
                config.elasticsearch_url,
                config.elasticsearch_index,
                shards=config.elasticsearch_shards,
                replicas=config.elasticsearch_replicas,
                request_timeout=config.elasticsearch_timeout_s,
                rollover_max_age=config.elasticsearch_rollover_max_age,
                rollover_max_docs=config.elasticsearch_rollover_max_docs,
                segmenter=segmented_text,
            )
        except (ApiError, TransportError) as exc:
            raise BackendUnavailable(
                f"cannot open Elasticsearch index {config.elasticsearch_index!r} at "
                f"{_without_password(config.elasticsearch_url)}: {exc}. Check that the cluster runs and "
                "index.elasticsearch_url (DULUAN_INDEX__ELASTICSEARCH_URL) points at it."
            ) from exc
    raise BackendUnavailable(f"unknown index backend {kind!r}; use tantivy or elasticsearch")


def segmented_text(text: str) -> str:
    """`text` with the syllables of each word joined by "_" (underthesea's word boundaries, via `nlp`).

    The Elasticsearch backend indexes it beside the text ("học_sinh", "Bình_Phước"); `index` cannot
    import `nlp` itself, so the composition root hands it this function.
    """
    from nlp.pipeline import segment

    return " ".join(text[start:end].replace(" ", "_") for start, end in segment(text))


def _without_password(url: str) -> str:
    """The URL as it may appear in logs and errors: basic-auth credentials removed."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def make_enricher(settings: Settings) -> Enricher:
    from nlp.enrich import Enricher

    return Enricher(
        models_dir=settings.models_dir,
        province=settings.province.name,
        province_aliases=settings.province.aliases,
        watchlist_path=settings.nlp.watchlist_path,
        strong_models_dir=settings.nlp.strong_models_dir,
        strong_weight=settings.nlp.strong_weight,
        strong_for_news=settings.nlp.strong_for_news,
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
