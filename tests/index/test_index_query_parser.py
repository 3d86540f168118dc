"""The staff query language: AST shape, precedence, field filters and error positions (no index needed)."""

from __future__ import annotations

from datetime import datetime

import pytest

from index.backend import QueryError
from index.query import (
    MAX_DEPTH,
    VIETNAM_TZ,
    And,
    DateRange,
    Keyword,
    MatchAll,
    Near,
    Not,
    Or,
    Phrase,
    Term,
    explain,
    fold,
    format_error,
    parse,
)


def test_fold_strips_vietnamese_diacritics_and_d_stroke() -> None:
    assert fold("Bình Phước Đồng Xoài đất") == "binh phuoc dong xoai dat"
    assert fold("Bi\u0300nh") == "binh"  # decomposed input (NFD) folds the same


@pytest.mark.parametrize("query", ["", "   ", "*"])
def test_empty_query_and_star_match_everything(query: str) -> None:
    assert parse(query) == MatchAll()


def test_implicit_and_and_negation_scope() -> None:
    assert parse("a -b c") == And((Term("a"), Not(Term("b")), Term("c")))
    assert parse("NOT a b") == And((Not(Term("a")), Term("b")))
    assert parse("a !b") == And((Term("a"), Not(Term("b"))))
    assert parse("x -(a OR b)") == And((Term("x"), Not(Or((Term("a"), Term("b"))))))


def test_or_binds_looser_than_and() -> None:
    assert parse("a OR b c") == Or((Term("a"), And((Term("b"), Term("c")))))
    assert parse("(a OR b) c") == And((Or((Term("a"), Term("b"))), Term("c")))


def test_vietnamese_operators_equal_english_ones() -> None:
    assert parse("đất VÀ (quy HOẶC dự) KHÔNG lừa") == parse("đất AND (quy OR dự) NOT lừa")


def test_lowercase_operator_words_are_plain_words() -> None:
    assert parse("mưa và không or gió") == And(
        (Term("mưa"), Term("và"), Term("không"), Term("or"), Term("gió"))
    )


def test_phrases_are_exact_only_when_typed_with_diacritics() -> None:
    assert parse('"Bình Phước"') == Phrase("Bình Phước", exact=True)
    assert parse('"binh phuoc"') == Phrase("binh phuoc", exact=False)


def test_prefix_and_hyphenated_words() -> None:
    assert parse("đất*") == Term("đất", prefix=True)
    assert parse("covid-19") == Term("covid-19")


def test_field_filters() -> None:
    assert parse("topic:the-thao") == Keyword("topic", "the-thao")
    assert parse("source:vnexpress sentiment:NEGATIVE") == And(
        (Keyword("source", "vnexpress"), Keyword("sentiment", "negative"))
    )
    assert parse("site:https://www.VnExpress.net/x") == Keyword("site", "vnexpress.net")
    assert parse('entity:"Bình Phước"') == Keyword("entity", "binh phuoc")
    assert parse('title:(mưa OR "ngập lụt")') == Or(
        (Term("mưa", "title"), Phrase("ngập lụt", "title", exact=True))
    )
    assert parse("author:nguyễn") == Term("nguyễn", "author")


def test_date_ranges_are_whole_days_in_vietnam() -> None:
    node = parse("date:2026-11-01..2026-11-27")
    assert node == DateRange(
        datetime(2026, 11, 1, tzinfo=VIETNAM_TZ), datetime(2026, 11, 28, tzinfo=VIETNAM_TZ)
    )
    assert isinstance(node, DateRange) and node.start is not None
    assert node.start.utcoffset() is not None and node.start.utcoffset().total_seconds() == 7 * 3600  # type: ignore[union-attr]
    assert parse("date:2026-11") == DateRange(
        datetime(2026, 11, 1, tzinfo=VIETNAM_TZ), datetime(2026, 12, 1, tzinfo=VIETNAM_TZ)
    )
    assert parse("date:..2026-11-27") == DateRange(None, datetime(2026, 11, 28, tzinfo=VIETNAM_TZ))
    assert parse("date:05/11/2026") == DateRange(
        datetime(2026, 11, 5, tzinfo=VIETNAM_TZ), datetime(2026, 11, 6, tzinfo=VIETNAM_TZ)
    )


def test_near() -> None:
    assert parse("mưa NEAR/3 ngập") == Near(Term("mưa"), Term("ngập"), 3)


def test_punctuation_only_words_are_ignored_but_not_a_whole_query() -> None:
    assert parse("mưa – lớn") == And((Term("mưa"), Term("lớn")))
    with pytest.raises(QueryError):
        parse("– !!! ...")


@pytest.mark.parametrize(
    ("query", "position", "fragment"),
    [
        ('mưa "Bình Phước', 4, "quote"),
        ("mưa AND", 7, "ends too early"),
        ("(mưa lớn", 8, "ends too early"),
        ("mưa) lớn", 3, "parenthesis"),
        ("OR mưa", 0, "operator OR"),
        ("foo:bar", 0, "Unknown field"),
        ("mưa~2", 3, "Lucene"),
        ("ti[1 TO 5]", 2, "Lucene"),
        ("đ*t", 1, "wildcard"),
        ("x*", 0, "prefix"),
        ("date:2026-13-01", 5, "Invalid date"),
        ("date:2026-11-05..2026-11-01", 5, "ends before"),
        ("topic:thethao", 0, "Unknown topic"),
        ("mưa NEAR (a b)", 9, "NEAR"),
    ],
)
def test_errors_point_at_the_position_in_both_languages(query: str, position: int, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    error = caught.value
    assert error.position == position
    assert fragment in str(error)
    assert error.message_vi != str(error) and "vị trí" in error.message_vi.lower()
    rendered = format_error(query, error)
    assert rendered.splitlines()[-1].index("^") == 2 + position


def test_deep_nesting_is_refused_with_a_clear_error() -> None:
    with pytest.raises(QueryError) as caught:
        parse("(" * 5000 + "a" + ")" * 5000)
    assert caught.value.position == MAX_DEPTH
    assert parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == Term("a")
    with pytest.raises(QueryError, match="deeper than") as chain:
        parse("NOT " * 3000 + "a")
    assert chain.value.position == 4 * MAX_DEPTH
    assert parse("NOT NOT a") == Not(Not(Term("a")))


def test_long_queries_parse_and_oversize_ones_are_refused() -> None:
    words = [f"tu{i}" for i in range(1500)]
    query = " OR ".join(words)  # about 10 KB: a long keyword list is normal in monitoring
    assert len(query) > 10_000
    node = parse(query)
    assert isinstance(node, Or) and len(node.children) == 1500
    with pytest.raises(QueryError, match="too long"):
        parse("a " * 15_000)


def test_explain_prints_the_tree() -> None:
    text = explain('"Bình Phước" -mưa topic:the-thao')
    assert text.splitlines() == [
        "AND",
        "  PHRASE 'Bình Phước' in all (exact, diacritics kept)",
        "  NOT",
        "    WORD 'mưa' in all (diacritic-insensitive)",
        "  FIELD topic = 'the-thao'",
    ]
