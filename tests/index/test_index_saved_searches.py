"""Saved searches in a real SQLite database: save/list/get/delete and validation at save time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from index.backend import SearchFilters
from index.saved_searches import (
    SavedSearchError,
    delete_search,
    filters_from_json,
    filters_to_json,
    get_search,
    get_search_by_id,
    list_searches,
    metadata,
    save_search,
)

VN = timezone(timedelta(hours=7))


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sa.Connection]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        yield conn
    engine.dispose()


def test_save_get_list_update_delete(connection: sa.Connection) -> None:
    filters = SearchFilters(
        topic="dat-dai", date_from=datetime(2026, 11, 1, tzinfo=VN), min_province_relevance=0.5
    )
    first = save_search(connection, "lan", "Đất đai Bình Phước", "đất* binh phuoc -quảng cáo", filters)
    assert first.filters == filters and first.query == "đất* binh phuoc -quảng cáo"
    save_search(connection, "lan", "Giá xăng", "giá xăng", {"sentiment": "negative"})
    save_search(connection, "minh", "Tất cả", "")
    assert [s.name for s in list_searches(connection, "lan")] == ["Giá xăng", "Đất đai Bình Phước"]
    assert len(list_searches(connection)) == 3
    later = datetime.now(UTC) + timedelta(hours=1)
    updated = save_search(connection, "lan", "Giá xăng", "giá xăng OR giá dầu", None, now=later)
    assert updated.query == "giá xăng OR giá dầu" and updated.filters == SearchFilters()
    assert updated.updated_at > updated.created_at
    assert len(list_searches(connection, "lan")) == 2  # updated in place, never duplicated
    assert get_search_by_id(connection, first.id) == get_search(connection, "lan", "Đất đai Bình Phước")
    assert delete_search(connection, "lan", "Giá xăng") is True
    assert delete_search(connection, "lan", "Giá xăng") is False
    assert get_search(connection, "lan", "Giá xăng") is None


@pytest.mark.parametrize(
    ("query", "filters", "message"),
    [
        ('"mở ngoặc', None, "does not parse"),
        ("((a)", None, "does not parse"),
        ("ok", {"colour": "red"}, "unknown filter 'colour'"),
        ("ok", {"date_from": "2026-11-01"}, "time zone"),
        ("ok", {"date_from": "hôm qua"}, "ISO 8601"),
        ("ok", {"min_province_relevance": 3}, "between 0 and 1"),
        ("ok", {"topic": ""}, "non-empty"),
        ("ok", {"date_from": "2026-11-05T00:00:00+07:00", "date_to": "2026-11-01T00:00:00+07:00"}, "before"),
        ("ok", "[1, 2]", "JSON object"),
    ],
)
def test_invalid_searches_are_refused_at_save_time(
    connection: sa.Connection, query: str, filters: object, message: str
) -> None:
    with pytest.raises(SavedSearchError, match=message):
        if isinstance(filters, str):
            filters_from_json(filters)
        else:
            save_search(connection, "lan", "x", query, filters)  # type: ignore[arg-type]
    assert list_searches(connection) == []


def test_owner_and_name_are_required(connection: sa.Connection) -> None:
    with pytest.raises(SavedSearchError, match="owner"):
        save_search(connection, " ", "x", "a")
    with pytest.raises(SavedSearchError, match="name"):
        save_search(connection, "lan", "", "a")


def test_filters_json_round_trip() -> None:
    filters = SearchFilters(source="vnexpress", date_to=datetime(2026, 11, 30, tzinfo=VN), fetched_since=None)
    text = filters_to_json(filters)
    assert text == '{"date_to": "2026-11-30T00:00:00+07:00", "source": "vnexpress"}'
    assert filters_from_json(text) == filters
