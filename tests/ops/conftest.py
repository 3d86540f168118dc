"""Fixtures of the ops tests: a real home (app database, sources, tantivy index, a model in use)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawlers.registry import SourceSpec, upsert_sources
from duluan.db import open_database
from duluan.settings import Settings, load_settings
from index.tantivy_backend import TantivyIndex
from schema import Document

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "nlp" / "models" / "sentiment"
TOPICS = ("giao-thong", "moi-truong", "the-thao", "phap-luat")
WORDS = ("Đồng Xoài", "Bình Phước", "ngập", "tai nạn", "bóng đá", "cháy chợ", "mưa lớn", "cao tốc")


def make_document(i: int, source: str = "baodongnai") -> Document:
    now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    a, b = WORDS[i % len(WORDS)], WORDS[(i * 3 + 1) % len(WORDS)]
    return Document(
        id=f"doc-{i:06d}",
        url=f"https://baodongnai.com.vn/tin/bai-{i}-{100000 + i}.html",
        canonical_url=f"https://baodongnai.com.vn/tin/bai-{i}-{100000 + i}.html",
        source=source,
        title=f"Tin {i}: {a} và {b}",
        text=f"Bài số {i} viết về {a} ở tỉnh Đồng Nai. Người dân nói về {b}. " * 3,
        published_at=now - timedelta(minutes=i),
        fetched_at=now - timedelta(minutes=i) + timedelta(minutes=2),
        topic=TOPICS[i % len(TOPICS)],
        sentiment=("negative", "neutral", "positive")[i % 3],
    )


def settings_for(home: Path, **extra: object) -> Settings:
    return load_settings(home=home, **extra)


def build_home(home: Path, documents: int = 300) -> Settings:
    """A home as a running service leaves it: migrated database with sources, indexed documents and a
    (real, shipped) model copied into <home>/models as if promoted."""
    settings = settings_for(home)
    engine = open_database(settings.db_url)
    upsert_sources(
        engine,
        [
            SourceSpec(
                id="baodongnai", name="Báo Đồng Nai", type="rss", start_urls=["https://baodongnai.com.vn/rss"]
            )
        ],
    )
    engine.dispose()
    index = TantivyIndex(settings.index_dir)
    index.upsert(make_document(i) for i in range(documents))
    index.close()
    shutil.copytree(SHIPPED_MODEL, settings.models_dir / "sentiment")
    return settings


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Settings]:
    yield build_home(tmp_path / "home")
