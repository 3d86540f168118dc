"""Property-based tests of the staff query language (index/query.py) and both query compilers.

* Any string parses to an AST or raises `QueryError` whose position points into the query —
  never another exception; `format_error` and `explain` never fail either.
* Every AST the parser returns compiles for tantivy and for Elasticsearch without raising, and the
  Elasticsearch body is JSON.
* Round trip: printing an AST back to query text and parsing it again gives the same AST (date
  ranges are left out: they print as absolute instants, which the language does not accept).
"""

from __future__ import annotations

import json
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from index.backend import QueryError
from index.es_query import search_body
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
    explain,
    format_error,
    parse,
)
from index.tantivy_backend import QueryCompiler, TantivyIndex, build_schema
from tests.alerts.factories import make_doc

PROPS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
COMPILER = QueryCompiler(build_schema())
_INDEX: list[TantivyIndex] = []


def _index() -> TantivyIndex:
    """One small real index for the module (hypothesis reuses it across examples)."""
    if not _INDEX:
        index = TantivyIndex(Path(tempfile.mkdtemp(prefix="duluan-props-")) / "index")
        index.upsert(
            [
                make_doc(
                    "sat-lo-binh-phuoc",
                    title="Sạt lở ở Bình Phước, ngập sâu tại Đồng Xoài",
                    text="Mưa lớn gây sạt lở đất; covid-19 và giá 3,5 triệu đồng.",
                    published_at=datetime(2026, 11, 2, tzinfo=UTC),
                    topic="the-thao",
                    sentiment="negative",
                )
            ]
        )
        _INDEX.append(index)
    return _INDEX[0]


WORDS = ["Bình", "Phước", "binh", "phuoc", "sạt", "lở", "ngập", "Đồng", "Xoài", "covid-19", "3,5", "đất", "x"]
TOKENS = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: w + "*"),
    st.sampled_from(WORDS).map(lambda w: f'"{w} {w}"'),
    st.sampled_from(["AND", "OR", "NOT", "VÀ", "HOẶC", "KHÔNG", "&&", "||", "-", "!", "+", "NEAR", "NEAR/3"]),
    st.sampled_from(["(", ")", '"', "*", ":", "~", "^", "[", "]", "{", "}", "\\", "/", ".."]),
    st.sampled_from(
        [
            "title:",
            "text:",
            "author:",
            "source:",
            "site:",
            "topic:",
            "sentiment:",
            "type:",
            "entity:",
            "date:",
            "cluster:",
            "id:",
            "foo:",
        ]
    ),
    st.sampled_from(
        ["the-thao", "negative", "vnexpress", "2026-11-01", "2026-11-01..2026-11-27", "11/2026", "..2026"]
    ),
    st.text(min_size=1, max_size=6),
)
QUERY_LIKE = st.lists(TOKENS, max_size=14).map(" ".join) | st.lists(TOKENS, max_size=14).map("".join)


def _check_outcome(query: str) -> Node | None:
    try:
        node = parse(query)
    except QueryError as exc:
        normalised = unicodedata.normalize("NFC", query)
        assert exc.position is None or 0 <= exc.position <= len(normalised), (exc.position, query)
        assert str(exc) and exc.message_vi
        format_error(query, exc)
        return None
    assert explain(query)
    return node


@PROPS
@given(st.text(max_size=80))
@example("(((((((((((((((((((((((((((((((((((a")
@example('title:"')
@example("a NEAR/999 b")
@example("date:2026-13-45")
@example("-" * 50)
def test_any_text_parses_or_fails_with_a_position(query: str) -> None:
    _check_outcome(query)


@PROPS
@given(QUERY_LIKE)
@example("title:(a OR b*) NEAR c")
@example("date:2026-11-27..2026-11-01")
@example("entity:(Bình Phước) -topic:the-thao")
def test_query_like_text_parses_and_compiles_for_both_backends(query: str) -> None:
    node = _check_outcome(query)
    if node is None:
        return
    COMPILER.compile(node)
    json.dumps(search_body(node), default=str)
    result = _index().search(query, limit=3)  # runs the compiled query, with highlighting
    assert result.total >= 0


def render(node: Node) -> str:
    """Query text for an AST (the inverse of `parse` outside date ranges)."""
    if isinstance(node, MatchAll):
        return "*"
    if isinstance(node, Term):
        scope = "" if node.scope == "all" else f"{node.scope}:"
        return f"{scope}{node.text}{'*' if node.prefix else ''}"
    if isinstance(node, Phrase):
        scope = "" if node.scope == "all" else f"{node.scope}:"
        return f'{scope}"{node.text}"'
    if isinstance(node, Keyword):
        return f'{node.field}:"{node.value}"'
    if isinstance(node, Near):
        return f"{render(node.left)} NEAR/{node.distance} {render(node.right)}"
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(render(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"NOT ({render(node.child)})"
    raise AssertionError(f"no text form for {node!r}")


def _has_dates(node: Node) -> bool:
    if isinstance(node, DateRange):
        return True
    if isinstance(node, And | Or):
        return any(_has_dates(c) for c in node.children)
    if isinstance(node, Not):
        return _has_dates(node.child)
    return False


@PROPS
@given(QUERY_LIKE)
@example("title:(Bình OR phuoc*) -source:vnexpress")
@example('"sạt lở" NEAR/3 ngập')
def test_printing_and_parsing_again_gives_the_same_ast(query: str) -> None:
    node = _check_outcome(query)
    if node is None or _has_dates(node):
        return
    assert parse(render(node)) == node, render(node)
