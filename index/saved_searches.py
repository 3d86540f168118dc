"""Saved searches (tìm kiếm đã lưu): a named query + filters per owner, for alert rules and digests.

The table lives on this module's own `metadata`; the composition root adds it to the app's
database and migrations. A search is validated when saved: the query must parse and the filters
must be known fields with valid values, so a rule never references a search that cannot run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from index.backend import QueryError, SearchFilters
from index.query import parse

metadata = sa.MetaData()

MAX_NAME_CHARS = 200
MAX_QUERY_CHARS = 10_000

saved_searches = sa.Table(
    "saved_searches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(MAX_NAME_CHARS), nullable=False),
    sa.Column("query", sa.Text, nullable=False, default=""),
    sa.Column("filters", sa.Text, nullable=False, default="{}"),  # JSON of SearchFilters
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("owner", "name", name="uq_saved_searches_owner_name"),
)

_DATE_FIELDS = {"date_from", "date_to", "fetched_since"}
_FILTER_FIELDS = {f.name for f in fields(SearchFilters)}


class SavedSearchError(ValueError):
    """A saved search cannot be stored as given; the message says which part and how to fix it."""


@dataclass(frozen=True)
class SavedSearch:
    id: int
    owner: str
    name: str
    query: str
    filters: SearchFilters
    created_at: datetime
    updated_at: datetime


def filters_to_json(filters: SearchFilters | None) -> str:
    """Only the filters that are set, dates as ISO 8601 with offset."""
    if filters is None:
        return "{}"
    out: dict[str, Any] = {}
    for name in sorted(_FILTER_FIELDS):
        value = getattr(filters, name)
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, datetime) else value
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def filters_from_json(text: str | dict[str, Any]) -> SearchFilters:
    """Parse and validate filters JSON (or a dict from a form/API); raises `SavedSearchError`."""
    try:
        raw = json.loads(text) if isinstance(text, str) else dict(text)
    except json.JSONDecodeError as exc:
        raise SavedSearchError(f"filters are not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SavedSearchError('filters must be a JSON object such as {"topic": "kinh-te"}')
    unknown = sorted(set(raw) - _FILTER_FIELDS)
    if unknown:
        raise SavedSearchError(f"unknown filter {unknown[0]!r}; known: {', '.join(sorted(_FILTER_FIELDS))}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _DATE_FIELDS:
            values[name] = _aware_datetime(name, value)
        elif name == "min_province_relevance":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise SavedSearchError("min_province_relevance must be a number between 0 and 1")
            values[name] = float(value)
        elif not isinstance(value, str) or not value.strip():
            raise SavedSearchError(f"filter {name!r} must be a non-empty string")
        else:
            values[name] = value.strip()
    filters = SearchFilters(**values)
    if filters.date_from and filters.date_to and filters.date_from >= filters.date_to:
        raise SavedSearchError("date_from must be before date_to")
    return filters


def _aware_datetime(name: str, value: Any) -> datetime:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SavedSearchError(f"filter {name!r}: {value!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise SavedSearchError(f"filter {name!r} needs a time zone offset, e.g. 2026-11-01T00:00:00+07:00")
    return moment


def validate(
    owner: str, name: str, query: str, filters: SearchFilters | dict[str, Any] | None
) -> SearchFilters:
    """Check a search before it is stored; returns the filters as `SearchFilters`."""
    if not owner.strip():
        raise SavedSearchError("a saved search needs an owner")
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise SavedSearchError(f"the name must be 1–{MAX_NAME_CHARS} characters")
    if len(query) > MAX_QUERY_CHARS:
        raise SavedSearchError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    try:
        parse(query)
    except QueryError as exc:
        raise SavedSearchError(f"the query does not parse: {exc} / {exc.message_vi}") from exc
    if isinstance(filters, SearchFilters):
        return filters_from_json(filters_to_json(filters))
    return filters_from_json(filters or {})


def _row(row: sa.Row[Any]) -> SavedSearch:
    return SavedSearch(
        id=row.id,
        owner=row.owner,
        name=row.name,
        query=row.query,
        filters=filters_from_json(row.filters),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite drops the offset


def save_search(
    connection: sa.Connection,
    owner: str,
    name: str,
    query: str,
    filters: SearchFilters | dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> SavedSearch:
    """Create or update `owner`'s search called `name` (validated first); returns it as stored."""
    checked = validate(owner, name, query, filters)
    moment = now or datetime.now(UTC)
    existing = connection.execute(
        sa.select(saved_searches.c.id).where(saved_searches.c.owner == owner, saved_searches.c.name == name)
    ).first()
    values = {"query": query, "filters": filters_to_json(checked), "updated_at": moment}
    if existing is None:
        connection.execute(
            saved_searches.insert().values(owner=owner, name=name, created_at=moment, **values)
        )
    else:
        connection.execute(saved_searches.update().where(saved_searches.c.id == existing.id).values(**values))
    found = get_search(connection, owner, name)
    assert found is not None
    return found


def get_search(connection: sa.Connection, owner: str, name: str) -> SavedSearch | None:
    row = connection.execute(
        sa.select(saved_searches).where(saved_searches.c.owner == owner, saved_searches.c.name == name)
    ).first()
    return _row(row) if row else None


def get_search_by_id(connection: sa.Connection, search_id: int) -> SavedSearch | None:
    """For alert rules and digests that reference a saved search by id."""
    row = connection.execute(sa.select(saved_searches).where(saved_searches.c.id == search_id)).first()
    return _row(row) if row else None


def list_searches(connection: sa.Connection, owner: str | None = None) -> list[SavedSearch]:
    """All searches (of one owner if given), by owner then name."""
    statement = sa.select(saved_searches).order_by(saved_searches.c.owner, saved_searches.c.name)
    if owner is not None:
        statement = statement.where(saved_searches.c.owner == owner)
    return [_row(row) for row in connection.execute(statement)]


def delete_search(connection: sa.Connection, owner: str, name: str) -> bool:
    result = connection.execute(
        saved_searches.delete().where(saved_searches.c.owner == owner, saved_searches.c.name == name)
    )
    return bool(result.rowcount)
