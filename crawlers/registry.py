"""The source registry (danh mục nguồn): which outlets, feeds and channels we collect, and how politely.

Sources live in the app database table `sources` (declared here on `metadata`; the composition root
owns the Alembic migrations) and are seeded from YAML (`crawlers/sources.yaml` ships the national
and provincial outlets). A `SourceSpec` is the validated, plain-data form every spider family reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crawlers.social_api import facebook_page_ref, youtube_target
from crawlers.ssrf import PrivateTargetError, check_urls
from schema.document import SourceType

#: The seed list shipped with the service.
DEFAULT_SEED_FILE = Path(__file__).resolve().parent / "sources.yaml"

metadata = sa.MetaData()

sources_table = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("source_type", sa.String(16), nullable=False),
    sa.Column("start_urls", sa.JSON, nullable=False),
    sa.Column("schedule", sa.String(64), nullable=False),
    sa.Column("politeness", sa.JSON, nullable=False),
    sa.Column("site_rules", sa.JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class SourceKind(StrEnum):
    """Which spider family reads the source."""

    rss = "rss"
    sitemap = "sitemap"
    listing = "listing"
    facebook = "facebook"
    youtube = "youtube"
    xenforo = "xenforo"
    telegram = "telegram"


#: Families whose start URLs are web pages or XML documents fetched over HTTP.
WEB_KINDS = frozenset(
    {SourceKind.rss, SourceKind.sitemap, SourceKind.listing, SourceKind.telegram, SourceKind.xenforo}
)
#: Families read through an official API (key or token from settings); start URLs name what to read.
API_KINDS = frozenset({SourceKind.facebook, SourceKind.youtube})
#: The `source_type` a family's documents get when the entry does not say.
_DEFAULT_SOURCE_TYPE = {
    SourceKind.facebook: SourceType.social,
    SourceKind.youtube: SourceType.social,
    SourceKind.telegram: SourceType.social,
    SourceKind.xenforo: SourceType.forum,
}

_INTERVAL = re.compile(r"^(?:every\s+)?(\d+)\s*(m|min|h|d)$")
_CRON = re.compile(r"^\S+(\s+\S+){4}$")


class Politeness(BaseModel):
    """Per-source overrides of the crawl defaults (lịch sự khi thu thập)."""

    model_config = ConfigDict(extra="forbid")

    download_delay_s: float | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1, le=16)
    obey_robots: bool | None = None


class SiteRulesSpec(BaseModel):
    """How to read a site: which links are articles, what to strip, how far to go."""

    model_config = ConfigDict(extra="forbid")

    link_allow: list[str] = Field(
        default_factory=lambda: [r"-\d{5,}\.html?$"],
        description="Regexes an article link must match (listing pages). Default: Vietnamese article ids.",
    )
    link_deny: list[str] = Field(default_factory=list)
    drop_xpaths: list[str] = Field(
        default_factory=list, description="Extra boilerplate to strip before extraction."
    )
    author_xpath: str | None = None
    max_items: int = Field(default=300, ge=1, description="At most this many article pages per run.")
    max_age_days: float | None = Field(default=None, gt=0, description="Skip older feed/sitemap entries.")
    max_sitemaps: int = Field(default=5, ge=1, description="Newest N child sitemaps.")
    max_thread_pages: int = Field(default=3, ge=1, description="Forum: pages read per thread and run.")
    comments: bool = Field(default=True, description="Facebook/YouTube: also read comments (bình luận).")
    max_comments: int = Field(default=100, ge=1, description="Facebook/YouTube: comments per post and run.")
    max_api_pages: int = Field(
        default=3, ge=1, description="Facebook/YouTube: pages of posts/videos per start URL and run."
    )

    @field_validator("link_allow", "link_deny")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return patterns


class SourceSpec(BaseModel):
    """One source as configured: validated plain data, no behaviour beyond reading itself."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Stable slug, e.g. 'vnexpress'.")
    name: str = Field(min_length=1)
    type: SourceKind
    source_type: SourceType = SourceType.news
    start_urls: list[str] = Field(default_factory=list)
    schedule: str = Field(default="every 30m", description="'every 30m', '2h', '1d' or cron.")
    politeness: Politeness = Field(default_factory=lambda: Politeness())
    site_rules: SiteRulesSpec = Field(default_factory=lambda: SiteRulesSpec())
    enabled: bool = True
    allow_private: bool = Field(
        default=False,
        description="Admin-set: start URLs may target loopback/private addresses (crawlers/ssrf.py).",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        value = value.strip()
        if _INTERVAL.match(value) or _CRON.match(value):
            return value
        raise ValueError(
            f"schedule {value!r} is neither an interval like 'every 30m' nor a 5-field cron expression"
        )

    @field_validator("start_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"start URL {url!r} must be an absolute http(s) URL")
        return urls

    @model_validator(mode="after")
    def _web_sources_need_urls(self) -> SourceSpec:
        if self.type in WEB_KINDS | API_KINDS and not self.start_urls:
            raise ValueError(f"a {self.type.value} source needs at least one start URL")
        for url in self.start_urls:
            if self.type == SourceKind.facebook:
                facebook_page_ref(url)
            elif self.type == SourceKind.youtube:
                youtube_target(url)
        if "source_type" not in self.model_fields_set and self.type in _DEFAULT_SOURCE_TYPE:
            self.source_type = _DEFAULT_SOURCE_TYPE[self.type]
        return self

    @model_validator(mode="after")
    def _public_targets(self, info: ValidationInfo) -> SourceSpec:
        # Only URLs people enter (validated with CHECK_TARGETS) are resolved and checked: stored
        # sources and the admin's seed file load without DNS look-ups.
        checked = bool(info.context and info.context.get("check_targets"))
        if checked and not self.allow_private and self.type in WEB_KINDS:
            try:
                check_urls(self.start_urls)
            except PrivateTargetError as exc:
                raise ValueError(str(exc)) from None
        return self

    def interval_minutes(self) -> int:
        """How often to crawl, in minutes; for a cron schedule, the gap between its next two runs."""
        match = _INTERVAL.match(self.schedule)
        if match:
            amount, unit = int(match.group(1)), match.group(2)
            return max(1, amount * {"m": 1, "min": 1, "h": 60, "d": 1440}[unit])
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(self.schedule, timezone="Asia/Ho_Chi_Minh")
        now = datetime.now(UTC)
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
        if first is None or second is None:
            return 1440
        return max(1, int((second - first).total_seconds() // 60))


#: Validation context for user-entered sources: `SourceSpec.model_validate(raw, context=CHECK_TARGETS)`.
CHECK_TARGETS: dict[str, Any] = {"check_targets": True}


class SeedFileError(ValueError):
    """A seed YAML file that cannot be used; the message names the file, the entry and the key."""


def _entry_label(index: int, raw: Any) -> str:
    name = raw.get("id") if isinstance(raw, dict) else None
    return f"entry #{index + 1}" + (f" (id {name!r})" if name else "")


def parse_seed(data: Any, origin: str = "<seed>") -> list[SourceSpec]:
    """Validate already-loaded YAML data (`{'sources': [...]}` or a bare list) into specs."""
    entries = data.get("sources") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise SeedFileError(f"{origin}: expected a top-level 'sources:' list of source entries")
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    problems: list[str] = []
    for index, raw in enumerate(entries):
        label = _entry_label(index, raw)
        try:
            spec = SourceSpec.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "(entry)"
                problems.append(f"{origin}: {label}: key '{key}': {err['msg']}")
            continue
        if spec.id in seen:
            problems.append(f"{origin}: {label}: key 'id': duplicate id {spec.id!r}; ids must be unique")
            continue
        seen.add(spec.id)
        specs.append(spec)
    if problems:
        raise SeedFileError("invalid source seed file:\n  " + "\n  ".join(problems))
    return specs


def load_seed_yaml(path: Path | str = DEFAULT_SEED_FILE) -> list[SourceSpec]:
    """Read and validate a seed file; every problem is reported with file, entry and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedFileError(f"{path}: cannot read the seed file ({exc.strerror}); check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SeedFileError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_seed(data, str(path))


def _row(spec: SourceSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "type": spec.type.value,
        "source_type": spec.source_type.value,
        "start_urls": list(spec.start_urls),
        "schedule": spec.schedule,
        # allow_private rides in the politeness JSON column (no schema migration for one flag).
        "politeness": {**spec.politeness.model_dump(), "allow_private": spec.allow_private},
        "site_rules": spec.site_rules.model_dump(),
        "enabled": spec.enabled,
    }


def upsert_sources(engine: sa.Engine, specs: Iterable[SourceSpec]) -> int:
    """Insert new sources and update existing ones by id; returns how many rows were written."""
    now = datetime.now(UTC)
    written = 0
    with engine.begin() as conn:
        existing = {row.id for row in conn.execute(sa.select(sources_table.c.id))}
        for spec in specs:
            values = _row(spec)
            if spec.id in existing:
                conn.execute(
                    sa.update(sources_table)
                    .where(sources_table.c.id == spec.id)
                    .values(**values, updated_at=now)
                )
            else:
                conn.execute(
                    sa.insert(sources_table).values(id=spec.id, **values, created_at=now, updated_at=now)
                )
                existing.add(spec.id)
            written += 1
    return written


def _spec_from_row(row: sa.Row[Any]) -> SourceSpec:
    return SourceSpec.model_validate(
        {
            "id": row.id,
            "name": row.name,
            "type": row.type,
            "source_type": row.source_type,
            "start_urls": row.start_urls,
            "schedule": row.schedule,
            "politeness": {k: v for k, v in (row.politeness or {}).items() if k != "allow_private"},
            "allow_private": bool((row.politeness or {}).get("allow_private", False)),
            "site_rules": row.site_rules,
            "enabled": row.enabled,
        }
    )


def list_sources(engine: sa.Engine, enabled_only: bool = True) -> list[SourceSpec]:
    """Sources in id order; disabled ones only when asked."""
    query = sa.select(sources_table).order_by(sources_table.c.id)
    if enabled_only:
        query = query.where(sources_table.c.enabled.is_(True))
    with engine.connect() as conn:
        return [_spec_from_row(row) for row in conn.execute(query)]


def get_source(engine: sa.Engine, source_id: str) -> SourceSpec | None:
    """One source by id, enabled or not."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sources_table).where(sources_table.c.id == source_id)).first()
    return _spec_from_row(row) if row else None


def set_enabled(engine: sa.Engine, source_id: str, enabled: bool) -> bool:
    """Switch a source on or off; False when no source has that id."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(sources_table)
            .where(sources_table.c.id == source_id)
            .values(enabled=enabled, updated_at=datetime.now(UTC))
        )
    return bool(result.rowcount)
