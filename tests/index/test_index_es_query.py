"""The Elasticsearch DSL compiled from the same AST as the tantivy backend (structure only, no server)."""

from __future__ import annotations

from datetime import datetime

from index.backend import SearchFilters
from index.es_query import MAPPINGS, compile_es, filters_es, folded_tokens, search_body, split_wide_bools
from index.query import VIETNAM_TZ, parse


def test_words_search_folded_fields_as_phrases() -> None:
    assert compile_es(parse("covid-19")) == {
        "multi_match": {
            "query": "covid-19",
            "fields": ["title.folded^2", "text.folded"],
            "type": "phrase",
            "slop": 0,
        }
    }


def test_quoted_phrase_with_diacritics_targets_exact_fields() -> None:
    query = compile_es(parse('title:"Bình Phước"'))
    assert query["multi_match"]["fields"] == ["title"]


def test_negation_scope_matches_the_ast() -> None:
    query = compile_es(parse("đồng -bóng nai topic:the-thao"))
    clauses = query["bool"]
    assert [c["multi_match"]["query"] for c in clauses["must"]] == ["đồng", "nai"]
    assert clauses["must_not"][0]["multi_match"]["query"] == "bóng"
    assert clauses["filter"] == [{"terms": {"topic": ["the-thao"]}}]
    assert compile_es(parse("-xăng")) == {"bool": {"must_not": [compile_es(parse("xăng"))]}}


def test_or_prefix_and_dates() -> None:
    query = compile_es(parse("đất* OR date:2026-11-01"))
    prefix, dates = query["bool"]["should"]
    assert prefix["bool"]["should"][0] == {"prefix": {"title.folded": {"value": "dat", "boost": 2.0}}}
    assert dates["bool"]["filter"][0]["range"]["published_at"] == {
        "gte": "2026-11-01T00:00:00+07:00",
        "lt": "2026-11-02T00:00:00+07:00",
    }


def test_filters_and_search_body() -> None:
    filters = SearchFilters(source="VnExpress", date_from=datetime(2026, 11, 1, tzinfo=VIETNAM_TZ))
    assert filters_es(filters) == [
        {"terms": {"source": ["VnExpress", "vnexpress"]}},
        {"range": {"published_at": {"gte": "2026-11-01T00:00:00+07:00"}}},
    ]
    body = search_body(parse(""), filters)
    assert body["bool"]["must"] == [{"match_all": {}}]


def test_mapping_covers_every_compiled_field() -> None:
    properties = MAPPINGS["properties"]
    for name in ("site_match", "entity_key", "published_at", "author_folded", "cluster_id"):
        assert name in properties
    assert "folded" in properties["title"]["fields"]
    assert folded_tokens("Đồng Xoài, covid-19") == ["dong", "xoai", "covid", "19"]


def test_wide_bools_are_nested_below_the_clause_limit() -> None:
    wide = {"bool": {"should": [{"term": {"x": i}} for i in range(1_200)], "minimum_should_match": 1}}
    split = split_wide_bools(wide, max_clauses=500)
    outer = split["bool"]["should"]
    assert len(outer) == 3 and all(len(c["bool"]["should"]) <= 500 for c in outer)
    flattened = [t for c in outer for t in c["bool"]["should"]]
    assert flattened == wide["bool"]["should"]
    narrow = {"bool": {"must_not": [{"term": {"x": 1}}]}}
    assert split_wide_bools(narrow) == narrow
