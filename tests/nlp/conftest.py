"""Shared fixtures for the NLP tests: paths to the read-only datasets and pages (never copied)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
DATASETS = SHARED / "datasets"
PAGES = SHARED / "pages" / "vi-news"


def read_rows(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session")
def pages() -> Path:
    if not PAGES.is_dir():
        pytest.skip(f"shared pages not found at {PAGES}")
    return PAGES
