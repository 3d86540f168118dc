"""Daily housekeeping rolls the Elasticsearch index over when the write index is due (real ES)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from index_testdata import corpus

from duluan.service import housekeeping, roll_over_index
from duluan.settings import ConfigError, Settings, load_settings
from duluan.wiring import open_backend
from index.es_backend import ElasticsearchIndex
from tests.foundation.conftest import free_port


def _es_settings(tmp_path: Path, url: str, alias: str, **index: object) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        index={"backend": "elasticsearch", "elasticsearch_url": url, "elasticsearch_index": alias, **index},
    )


def test_housekeeping_rolls_over_a_full_write_index_and_search_still_sees_everything(
    tmp_path: Path, elasticsearch_url: str
) -> None:
    settings = _es_settings(
        tmp_path, elasticsearch_url, f"test-roll-{uuid.uuid4().hex[:10]}", elasticsearch_rollover_max_docs=3
    )
    docs = corpus()[:5]
    backend = open_backend(settings)
    assert isinstance(backend, ElasticsearchIndex)
    try:
        backend.upsert(docs)
        backend.refresh()
        assert len(backend.backing_indices()) == 1

        housekeeping(settings)  # 5 documents ≥ max_docs 3: a new write index

        backend._backing_indices = None  # another process rolled over: read the alias again
        assert len(backend.backing_indices()) == 2
        assert roll_over_index(settings) is None, "the new write index is empty and young: not due"
        assert backend.count("") == 5
        backend.upsert(docs[:2])  # re-upserting lands on the documents' own index, never a copy
        backend.refresh()
        assert backend.count("") == 5
    finally:
        backend.drop()
        backend.close()


def test_rollover_of_an_unreachable_cluster_is_skipped_not_raised(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = _es_settings(tmp_path, dead, "duluan", elasticsearch_timeout_s=2)
    assert roll_over_index(settings) is None


def test_rollover_age_must_be_days_or_hours(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="elasticsearch_rollover_max_age"):
        _es_settings(tmp_path, "http://127.0.0.1:9200", "duluan", elasticsearch_rollover_max_age="soon")
