"""The one document model that flows crawlers → nlp → index → alerts.

A `Document` is a news article (bài báo), a public social post (bài đăng) or a forum post.
Crawlers fill the fetched fields; nlp fills the analysis fields; index stores all of them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Longest text we keep per document; longer bodies are truncated before indexing.
MAX_TEXT_CHARS = 200_000


class SourceType(StrEnum):
    """What kind of channel a document came from (loại nguồn)."""

    news = "news"
    social = "social"
    forum = "forum"


class Entity(BaseModel):
    """A named entity (thực thể) found in a document, linked to a canonical name."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The surface form as written in the document.")
    label: str = Field(description="PER, ORG or LOC.")
    canonical: str = Field(description="Canonical name; old and new administrative names map together.")


class Document(BaseModel):
    """One collected item with everything the later stages add to it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(
        description="Stable hash of the normalised canonical URL: a re-crawl updates, never duplicates."
    )
    url: str
    canonical_url: str
    source: str = Field(description="Source registry id, e.g. 'vnexpress'.")
    source_type: SourceType = SourceType.news
    title: str = ""
    text: str = ""
    published_at: datetime | None = None
    fetched_at: datetime
    author: str | None = None
    lang: str | None = None
    images: list[str] = Field(default_factory=list)

    topic: str | None = None
    topic_scores: dict[str, float] = Field(default_factory=dict)
    sentiment: str | None = None
    sentiment_scores: dict[str, float] = Field(default_factory=dict)
    toxicity: str | None = None
    toxicity_scores: dict[str, float] = Field(default_factory=dict)
    entities: list[Entity] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    cluster_id: str | None = None
    province_relevance: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("published_at", "fetched_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("datetime must carry a time zone offset (e.g. +07:00)")
        return value

    @field_validator("text")
    @classmethod
    def _cap_text(cls, value: str) -> str:
        return value[:MAX_TEXT_CHARS]
