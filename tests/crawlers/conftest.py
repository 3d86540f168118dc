"""Shared fixtures for the crawler tests: the real Vietnamese pages and their gold file."""

import json
from pathlib import Path
from typing import Any

import pytest

#: The real pages bundled with the demo site (copies of ../shared/pages/vi-news).
PAGES_DIR = Path(__file__).resolve().parents[2] / "duluan" / "demo_site" / "pages"


def load_gold() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (PAGES_DIR / "gold.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def gold() -> list[dict[str, Any]]:
    return load_gold()


@pytest.fixture(scope="session")
def pages_dir() -> Path:
    return PAGES_DIR
