from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.store import metadata
from index.tantivy_backend import TantivyIndex


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'duluan.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TantivyIndex]:
    backend = TantivyIndex(tmp_path / "index")
    yield backend
    backend.close()
