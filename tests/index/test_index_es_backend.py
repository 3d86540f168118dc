"""Elasticsearch-specific behaviour against the real ES 7.9.2 node: layout, analysis, rollover, backoff."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch
from elasticsearch import exceptions as es_exceptions
from es_server import CompatProxy, plain_media_type
from index_testdata import corpus, ids, make_doc

from index.es_backend import (
    ElasticsearchIndex,
    document_from_source,
    es_document,
    open_elasticsearch,
    render_highlight,
)


def test_template_alias_and_strict_mapping(es_index: ElasticsearchIndex, es_client: Elasticsearch) -> None:
    assert es_index.backing_indices() == [f"{es_index.alias}-000001"]
    template = es_client.indices.get_index_template(name=es_index.template_name)["index_templates"][0]
    assert template["index_template"]["index_patterns"] == [f"{es_index.alias}-*"]
    mapping = es_client.indices.get_mapping(index=es_index.alias)[f"{es_index.alias}-000001"]["mappings"]
    assert mapping["dynamic"] == "strict"
    with pytest.raises(es_exceptions.BadRequestError, match="strict_dynamic_mapping"):
        es_client.index(index=es_index.alias, id="x", document={"unknown_field": 1})


def test_vietnamese_analysis_chain(es_index: ElasticsearchIndex, es_client: Elasticsearch) -> None:
    index = es_index.backing_indices()[0]

    def tokens(analyzer: str, text: str) -> list[str]:
        response = es_client.indices.analyze(index=index, analyzer=analyzer, text=text)
        return [t["token"] for t in response["tokens"]]

    assert tokens("vi_folded", "Bình Phước, ĐỒNG XOÀI đất-đai") == [
        "binh",
        "phuoc",
        "dong",
        "xoai",
        "dat",
        "dai",
    ]
    assert tokens("vi_exact", "Bình Phước") == ["bình", "phước"]
    assert tokens("vi_folded", "a" * 41 + " ok") == ["ok"]  # junk tokens dropped


def test_document_round_trip_and_highlight_escaping() -> None:
    doc = corpus()[0]
    source = es_document(doc)
    assert "title" not in source["document"] and source["site_match"] == ["vnexpress.net"]
    assert document_from_source(source) == doc
    assert render_highlight("<b>\ue000Bình\ue001</b>") == "&lt;b&gt;<mark>Bình</mark>&lt;/b&gt;"


def test_rollover_keeps_ids_unique(es_index: ElasticsearchIndex) -> None:
    es_index.upsert(corpus())
    assert es_index.rollover() is None  # conditions (30 days / 5M docs) not met
    new_index = es_index.rollover(force=True)
    assert new_index == f"{es_index.alias}-000002"
    assert es_index.backing_indices() == [f"{es_index.alias}-000001", new_index]
    es_index.upsert([make_doc("fresh", "Tin mới sau rollover")])
    changed = corpus()[0].model_copy(update={"title": "Tiêu đề đã sửa"})
    es_index.upsert([changed])  # lives in the old index: replaced there, not duplicated
    assert es_index.count() == len(corpus()) + 1
    assert ids(es_index.search("sửa")) == {changed.id}
    assert es_index.get("fresh") is not None
    assert es_index.delete(["fresh", changed.id]) == 2
    assert es_index.count() == len(corpus()) - 1
    reopened = ElasticsearchIndex(es_index.client, es_index.alias)  # idempotent set-up
    assert reopened.count() == len(corpus()) - 1


def test_bulk_backs_off_on_429(
    es_index: ElasticsearchIndex, elasticsearch_proxy: CompatProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    elasticsearch_proxy.reject_bulk_requests = 2
    before = elasticsearch_proxy.rejected_bulk_requests
    try:
        assert es_index.upsert(corpus()) == len(corpus())
    finally:
        elasticsearch_proxy.reject_bulk_requests = 0
    assert elasticsearch_proxy.rejected_bulk_requests - before == 2
    assert es_index.count() == len(corpus())


def test_open_elasticsearch_factory(elasticsearch_url: str) -> None:
    backend = open_elasticsearch(elasticsearch_url, "factory-test")
    try:
        backend.upsert(corpus()[:2])
        assert backend.count() == 2
        assert backend.stats()["documents"] == 2
    finally:
        backend.drop()
        backend.close()


def test_proxy_rewrites_only_vendor_media_types() -> None:
    assert plain_media_type("application/vnd.elasticsearch+json; compatible-with=8") == "application/json"
    assert (
        plain_media_type("application/vnd.elasticsearch+x-ndjson; compatible-with=8")
        == "application/x-ndjson"
    )
    assert plain_media_type("application/json") == "application/json"
