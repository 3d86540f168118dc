"""Retry-After parsing (the header comes as seconds or as an HTTP date)."""

from datetime import UTC, datetime

from crawlers.middlewares import retry_after_seconds

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def test_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds(" 5 ", NOW) == 5.0
    assert retry_after_seconds("Mon, 02 Mar 2026 09:00:30 GMT", NOW) == 30.0
    assert retry_after_seconds("Mon, 02 Mar 2026 08:00:00 GMT", NOW) == 0.0


def test_missing_or_garbage() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon", NOW) is None
