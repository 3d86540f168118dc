"""Downloader middleware for rate limits: honour `429 Too Many Requests` + `Retry-After`.

Scrapy's own retry middleware retries a 429 at once, which is what gets a crawler blocked. This one
waits the time the server asked for (seconds or an HTTP date), up to `max_retry_after_s`, and retries
at most `rate_limit_retries` times; a longer wait or exhausted retries leave the 429 to be reported
as `http_429` for the source.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.utils.asyncio import sleep

from crawlers.items import STAT_PREFIX

log = logging.getLogger("crawlers.middlewares")

RATE_LIMIT_STATUSES = (429, 503)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterMiddleware:
    """Waits out `Retry-After` on 429/503 and retries the request."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.max_wait = crawler.settings.getfloat("DULUAN_MAX_RETRY_AFTER_S", 120.0)
        self.max_retries = crawler.settings.getint("DULUAN_RATE_LIMIT_RETRIES", 3)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        return cls(crawler)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if response.status not in RATE_LIMIT_STATUSES:
            return response
        header = response.headers.get(b"Retry-After")
        delay = retry_after_seconds(header.decode("latin-1") if header else None)
        attempts = int(request.meta.get("duluan_rate_limit_retries", 0))
        if delay is None or delay > self.max_wait or attempts >= self.max_retries:
            return response
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(STAT_PREFIX + "rate_limited_retries")
        log.warning(
            "rate limited on %s (HTTP %d): waiting %.0f s as asked", request.url, response.status, delay
        )
        await sleep(delay)
        meta: dict[str, Any] = {**request.meta, "duluan_rate_limit_retries": attempts + 1}
        return request.replace(dont_filter=True, meta=meta)
