"""Fixtures for the index tests: a real tantivy index in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from index_testdata import corpus

from index.tantivy_backend import TantivyIndex


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def empty_index(index_dir: Path) -> Iterator[TantivyIndex]:
    backend = TantivyIndex(index_dir)
    yield backend
    backend.close()


@pytest.fixture
def loaded_index(empty_index: TantivyIndex) -> TantivyIndex:
    assert empty_index.upsert(corpus()) == len(corpus())
    return empty_index
