"""Real-looking Vietnamese documents for alert and digest tests."""

from __future__ import annotations

import hashlib
from datetime import datetime

from schema import Document, Entity

SOURCES = {
    "vnexpress": "https://vnexpress.net",
    "tuoitre": "https://tuoitre.vn",
    "thanhnien": "https://thanhnien.vn",
    "baodongnai": "https://baodongnai.com.vn",
    "dantri": "https://dantri.com.vn",
}


def make_doc(
    slug: str,
    *,
    source: str = "vnexpress",
    title: str = "",
    text: str = "",
    published_at: datetime,
    fetched_at: datetime | None = None,
    topic: str | None = "chinh-tri",
    sentiment: str | None = "neutral",
    cluster_id: str | None = None,
    province_relevance: float = 0.0,
    entities: list[tuple[str, str]] | None = None,
) -> Document:
    url = f"{SOURCES[source]}/{slug}.html"
    return Document(
        id=hashlib.sha1(url.encode()).hexdigest(),
        url=url,
        canonical_url=url,
        source=source,
        title=title or slug.replace("-", " "),
        text=text or f"{title}. Nội dung chi tiết của bài viết {slug}.",
        published_at=published_at,
        fetched_at=fetched_at or published_at,
        topic=topic,
        sentiment=sentiment,
        cluster_id=cluster_id,
        province_relevance=province_relevance,
        entities=[Entity(text=c, label=label, canonical=c) for c, label in (entities or [])],
    )
