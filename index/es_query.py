"""Compile the staff query AST (`index.query`) to Elasticsearch/OpenSearch query DSL.

Only the DSL shared by Elasticsearch 7.10+, 8.x, 9.x and OpenSearch is used (no combined_fields,
runtime fields or PIT). The field layout is `MAPPINGS` below and mirrors the tantivy schema:
`title`/`text` keep diacritics (lowercased) and their `.folded` sub-fields fold them (đ→d), so
the same AST gives the same hits in both backends (checked by the conformance suite once the
Elasticsearch backend lands).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from index.backend import SearchFilters
from index.query import (
    And,
    DateRange,
    Keyword,
    MatchAll,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Term,
    TextScope,
    fold,
)

EsQuery = dict[str, Any]

TITLE_BOOST = 2.0
MAX_TOKEN_CHARS = 40

#: Index settings: the two analyzers every text field uses.
SETTINGS: dict[str, Any] = {
    "analysis": {
        "analyzer": {
            "vi_exact": {
                "type": "custom",
                "tokenizer": "vi_words",
                "filter": ["vi_drop_long", "lowercase"],
            },
            "vi_folded": {
                "type": "custom",
                "char_filter": ["vi_d_stroke"],
                "tokenizer": "vi_words",
                "filter": ["vi_drop_long", "lowercase", "asciifolding"],
            },
        },
        # asciifolding already maps đ→d; the explicit mapping keeps it true whatever the folding table.
        "char_filter": {"vi_d_stroke": {"type": "mapping", "mappings": ["đ => d", "Đ => D"]}},
        "tokenizer": {"vi_words": {"type": "pattern", "pattern": r"[^\p{L}\p{N}]+"}},
        "filter": {"vi_drop_long": {"type": "length", "max": MAX_TOKEN_CHARS}},
    }
}

_KEYWORD = {"type": "keyword"}
_FOLDED_TEXT = {
    "type": "text",
    "analyzer": "vi_exact",
    # offsets in the postings: snippets are highlighted without re-analysing the whole text
    "fields": {"folded": {"type": "text", "analyzer": "vi_folded", "index_options": "offsets"}},
}

#: Explicit mapping (`dynamic: strict`): the same fields as the tantivy schema.
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "document": {"type": "object", "enabled": False},  # the whole Document, stored not indexed
        "title": _FOLDED_TEXT,
        "text": _FOLDED_TEXT,
        "author_folded": {"type": "text", "analyzer": "vi_folded"},
        **{
            name: _KEYWORD
            for name in (
                "topic",
                "sentiment",
                "source",
                "source_type",
                "toxicity",
                "cluster_id",
                "entity",
                "author",
                "site",
                "site_match",
                "entity_key",
            )
        },
        "published_at": {"type": "date"},
        "fetched_at": {"type": "date"},
        "province_relevance": {"type": "float"},
    },
}

_KEYWORD_FIELD = {
    "source": "source",
    "site": "site_match",
    "topic": "topic",
    "sentiment": "sentiment",
    "source_type": "source_type",
    "toxicity": "toxicity",
    "cluster_id": "cluster_id",
    "entity": "entity_key",
    "id": "id",
}


def _fields(scope: TextScope, exact: bool) -> list[str]:
    suffix = "" if exact else ".folded"
    if scope == "all":
        return [f"title{suffix}^{TITLE_BOOST:g}", f"text{suffix}"]
    if scope == "author":
        return ["author_folded"]
    return [f"{scope}{suffix}"]


def folded_tokens(text: str) -> list[str]:
    """The tokens `vi_folded` produces, computed here where a query needs terms (prefix)."""
    return [t for t in re.findall(r"[^\W_]+", fold(text)) if len(t) <= MAX_TOKEN_CHARS]


def _phrase(text: str, fields: list[str], slop: int = 0) -> EsQuery:
    return {"multi_match": {"query": text, "fields": fields, "type": "phrase", "slop": slop}}


def _text(node: Term | Phrase) -> EsQuery:
    exact = isinstance(node, Phrase) and node.exact and node.scope != "author"
    fields = _fields(node.scope, exact)
    if isinstance(node, Term) and node.prefix:
        tokens = folded_tokens(node.text)
        if len(tokens) == 1:
            clauses = []
            for field in fields:
                name, _, boost = field.partition("^")
                clauses.append({"prefix": {name: {"value": tokens[0], "boost": float(boost or 1)}}})
            return {"bool": {"should": clauses, "minimum_should_match": 1}}
        return {
            "multi_match": {
                "query": " ".join(tokens),
                "fields": fields,
                "type": "phrase_prefix",
                "max_expansions": 1000,
            }
        }
    return _phrase(node.text, fields)


def _near(node: Near) -> EsQuery:
    exact = all(isinstance(n, Phrase) and n.exact for n in (node.left, node.right))
    scope = node.left.scope if node.left.scope == node.right.scope else "all"
    fields = _fields(scope, exact)
    forward = f"{node.left.text} {node.right.text}"
    backward = f"{node.right.text} {node.left.text}"
    return {
        "bool": {
            "should": [_phrase(forward, fields, node.distance), _phrase(backward, fields, node.distance)],
            "minimum_should_match": 1,
        }
    }


def _keyword(field: str, value: str) -> EsQuery:
    return {"terms": {_KEYWORD_FIELD[field]: sorted({value, value.lower()})}}


def _date_range(field: str, start: datetime | None, end: datetime | None) -> EsQuery:
    bounds: dict[str, str] = {}
    if start is not None:
        bounds["gte"] = start.isoformat()
    if end is not None:
        bounds["lt"] = end.isoformat()
    return {"range": {field: bounds}}


def _is_filter(node: Node) -> bool:
    return isinstance(node, Keyword | DateRange)


def compile_es(node: Node) -> EsQuery:
    """The AST as query DSL. Keyword and date parts are filters (no score), like in tantivy."""
    if isinstance(node, MatchAll):
        return {"match_all": {}}
    if isinstance(node, Term | Phrase):
        return _text(node)
    if isinstance(node, Near):
        return _near(node)
    if isinstance(node, Keyword):
        return {"bool": {"filter": [_keyword(node.field, node.value)]}}
    if isinstance(node, DateRange):
        return {"bool": {"filter": [_date_range("published_at", node.start, node.end)]}}
    if isinstance(node, Not):
        return {"bool": {"must_not": [compile_es(node.child)]}}
    if isinstance(node, And):
        must = [compile_es(c) for c in node.children if not isinstance(c, Not) and not _is_filter(c)]
        filters = [_filter_clause(c) for c in node.children if _is_filter(c)]
        must_not = [compile_es(c.child) for c in node.children if isinstance(c, Not)]
        clauses: dict[str, Any] = {}
        for key, value in (("must", must), ("filter", filters), ("must_not", must_not)):
            if value:
                clauses[key] = value
        return {"bool": clauses}
    if isinstance(node, Or):
        return {"bool": {"should": [compile_es(c) for c in node.children], "minimum_should_match": 1}}
    raise TypeError(f"cannot compile {node!r}")  # pragma: no cover


def _filter_clause(node: Node) -> EsQuery:
    if isinstance(node, Keyword):
        return _keyword(node.field, node.value)
    assert isinstance(node, DateRange)
    return _date_range("published_at", node.start, node.end)


def filters_es(filters: SearchFilters | None) -> list[EsQuery]:
    """`SearchFilters` as filter clauses, with the same meaning as in the tantivy backend."""
    if filters is None:
        return []
    out = [
        _keyword(field, value)
        for field, value in (
            ("topic", filters.topic),
            ("sentiment", filters.sentiment),
            ("source", filters.source),
            ("source_type", filters.source_type),
        )
        if value
    ]
    if filters.date_from or filters.date_to:
        out.append(_date_range("published_at", filters.date_from, filters.date_to))
    if filters.fetched_since:
        out.append(_date_range("fetched_at", filters.fetched_since, None))
    if filters.min_province_relevance is not None:
        out.append({"range": {"province_relevance": {"gte": filters.min_province_relevance}}})
    return out


#: Clauses per bool query kept below Elasticsearch 7.x's default `indices.query.bool.max_clause_count`.
MAX_BOOL_CLAUSES = 512


def split_wide_bools(query: Any, max_clauses: int = MAX_BOOL_CLAUSES) -> Any:
    """Nest bool clause lists longer than `max_clauses` into chunks, with the same meaning.

    A 1,500-word OR typed by staff must not hit "maxClauseCount is set to 1024" on 7.x clusters;
    the limit applies per bool query, so `should: [a…z]` becomes `should: [{should: [a…m]}, …]`.
    """
    if isinstance(query, list):
        return [split_wide_bools(item, max_clauses) for item in query]
    if not isinstance(query, dict):
        return query
    out = {key: split_wide_bools(value, max_clauses) for key, value in query.items()}
    bool_query = out.get("bool")
    if not isinstance(bool_query, dict):
        return out
    for key in ("should", "must", "filter", "must_not"):
        clauses = bool_query.get(key)
        while isinstance(clauses, list) and len(clauses) > max_clauses:
            chunks = [clauses[i : i + max_clauses] for i in range(0, len(clauses), max_clauses)]
            if key in ("should", "must_not"):  # (none of) any clause of any chunk
                clauses = [{"bool": {"should": c, "minimum_should_match": 1}} for c in chunks]
            else:  # all of every chunk
                clauses = [{"bool": {key: c}} for c in chunks]
            bool_query[key] = clauses
    return out


def search_body(node: Node, filters: SearchFilters | None = None) -> EsQuery:
    """The `query` part of a search request: the compiled AST ANDed with the structured filters."""
    compiled = compile_es(node)
    extra = filters_es(filters)
    query = {"bool": {"must": [compiled], "filter": extra}} if extra else compiled
    return dict(split_wide_bools(query))
