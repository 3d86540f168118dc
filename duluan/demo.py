"""`duluan demo`: the whole loop on one machine with no internet.

Serves the bundled news site on 127.0.0.1, crawls it with the real crawler (an RSS source and a
sitemap source), enriches with the shipped models, indexes into the embedded store, runs the alert
rules once and renders a digest. Document ids come from canonical URLs, so a second run updates
the same documents instead of adding copies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.store import get_rule, save_rule
from crawlers.registry import SourceSpec, set_enabled, upsert_sources
from duluan.db import open_database
from duluan.demo_site import DemoSite, serve_demo_site
from duluan.operations import crawl_sources, install_default_rules, render_digest, run_alert_rules
from duluan.settings import Settings
from duluan.wiring import open_backend
from index.backend import SearchFilters

DEMO_SOURCE_IDS = ("demo-rss", "demo-sitemap")

#: The province rules watch fresh news about the province; the bundled pages are older and about the
#: whole country, so the demo adds one rule that fires on them: every new negative story on the demo site.
DEMO_RULE: dict[str, Any] = {
    "name": "Demo — tin tiêu cực mới trên trang mẫu",
    "description": "Luật minh hoạ của `duluan demo`: mỗi câu chuyện tiêu cực mới trên trang tin mẫu.",
    "owner": "demo",
    "rule_type": "match",
    "query": "source:demo-rss OR source:demo-sitemap",
    "filters": {"sentiment": "negative"},
    "params": {"max_age_hours": 24 * 365 * 20},
    "suppression_minutes": 24 * 60,
}


@dataclass
class DemoSummary:
    """What the demo did; printed as a table and returned for tests."""

    crawled: int = 0
    extracted: int = 0
    indexed_now: int = 0
    documents_in_index: int = 0
    with_topic_and_sentiment: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    sentiments: dict[str, int] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)
    rules_installed: list[str] = field(default_factory=list)
    alerts_fired: int = 0
    digest_path: Path | None = None
    digest_day: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["digest_path"] = str(self.digest_path) if self.digest_path else None
        return data


def demo_sources(site: DemoSite) -> list[SourceSpec]:
    """The bundled site as two registry sources: its RSS feed and its sitemap."""
    polite_local = {"download_delay_s": 0.0, "concurrency": 4}
    return [
        SourceSpec.model_validate(
            {
                "id": "demo-rss",
                "name": "Trang tin mẫu — RSS",
                "type": "rss",
                "start_urls": [site.feed_url],
                "politeness": polite_local,
            }
        ),
        SourceSpec.model_validate(
            {
                "id": "demo-sitemap",
                "name": "Trang tin mẫu — sitemap",
                "type": "sitemap",
                "start_urls": [site.sitemap_url],
                "politeness": polite_local,
            }
        ),
    ]


def run_demo(settings: Settings) -> DemoSummary:
    """Run the loop once and summarise it. Leaves the demo sources disabled (their site is gone after)."""
    summary = DemoSummary()
    engine = open_database(settings.db_url)
    with serve_demo_site() as site:
        upsert_sources(engine, demo_sources(site))
        report = crawl_sources(settings, list(DEMO_SOURCE_IDS))
    for source_id in DEMO_SOURCE_IDS:
        set_enabled(engine, source_id, False)
    engine.dispose()
    for source_report in report.sources.values():
        summary.crawled += source_report.fetched
        summary.extracted += source_report.extracted
        summary.indexed_now += source_report.indexed
    summary.unreachable = report.unreachable

    backend = open_backend(settings)
    try:
        demo_docs = [d for s in DEMO_SOURCE_IDS for d in backend.scan("", SearchFilters(source=s))]
        summary.documents_in_index = len(demo_docs)
        summary.with_topic_and_sentiment = sum(1 for d in demo_docs if d.topic and d.sentiment)
        for doc in demo_docs:
            if doc.topic:
                summary.topics[doc.topic] = summary.topics.get(doc.topic, 0) + 1
            if doc.sentiment:
                summary.sentiments[doc.sentiment] = summary.sentiments.get(doc.sentiment, 0) + 1
        dated = [d.published_at for d in demo_docs if d.published_at]
    finally:
        backend.close()

    summary.rules_installed = install_default_rules(settings)
    engine = open_database(settings.db_url)
    try:
        if get_rule(engine, DEMO_RULE["name"]) is None:
            save_rule(engine, DEMO_RULE)
            summary.rules_installed.append(DEMO_RULE["name"])
    finally:
        engine.dispose()
    summary.alerts_fired = len(run_alert_rules(settings))
    # The bundled pages are old: brief on the day they cover best rather than on an empty today.
    per_day = Counter(moment.astimezone(settings.tz).date() for moment in dated)
    day = max(per_day, key=lambda d: (per_day[d], d)) if per_day else None
    summary.digest_path = render_digest(settings, day, None)
    summary.digest_day = day.isoformat() if day else None
    return summary
