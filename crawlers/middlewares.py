"""Downloader middlewares: rate limits (`RetryAfterMiddleware`) and the SSRF guard at fetch time
(`PrivateTargetMiddleware`).

Scrapy's own retry middleware retries a 429 at once, which is what gets a crawler blocked.
`RetryAfterMiddleware` waits the time the server asked for (seconds or an HTTP date), up to
`max_retry_after_s`, and retries at most `rate_limit_retries` times; a longer wait or exhausted
retries leave the 429 to be reported as `http_429` for the source.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.asyncio import sleep

from crawlers.items import STAT_PREFIX
from crawlers.registry import WEB_KINDS
from crawlers.ssrf import PrivateTargetError, Resolver, check_url, system_resolver

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


class PrivateTargetBlocked(IgnoreRequest):
    """A request of a public source that led into a private network (counted as `blocked_private`)."""


class PrivateTargetMiddleware:
    """The SSRF guard (chặn truy cập mạng nội bộ) for every request, not only the start URLs.

    The registry refuses a private start URL unless an admin allowed it (crawlers/ssrf.py), but a
    public site can still send the crawler inward: a redirect to `http://127.0.0.1:9200/`, a feed or
    listing linking to `http://10.0.0.5/`, a host name that resolves to a private address. So for a
    source whose start URLs are all public and that is not `allow_private`, every request (redirects
    come back through here as new requests) must target a public host too. Sources whose start URLs
    are themselves private (admin-seeded from YAML, or allowed) are the admin's decision and are not
    checked. Host lookups are cached per crawl; a name that does not resolve is let through (the fetch
    then fails with a DNS error). Not covered: a DNS answer that changes between this check and
    Scrapy's own lookup (rebinding) — firewall the crawler host for that (SECURITY.md).
    """

    def __init__(self, crawler: Crawler, resolver: Resolver = system_resolver) -> None:
        self.crawler = crawler
        self._resolver = resolver
        self._verdicts: dict[str, str | None] = {}
        self._guarded: bool | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateTargetMiddleware:
        return cls(crawler)

    def _problem(self, url: str) -> str | None:
        """Why `url` may not be fetched (None when it may), cached per host (all it depends on)."""
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            host = ""
        if host not in self._verdicts:
            try:
                check_url(url, self._resolver, what="URL")
                self._verdicts[host] = None
            except PrivateTargetError as exc:
                self._verdicts[host] = str(exc)
        return self._verdicts[host]

    def _is_guarded(self) -> bool:
        if self._guarded is None:
            context = getattr(self.crawler, "duluan", None)
            source = getattr(context, "source", None)
            self._guarded = bool(
                source is not None
                and source.type in WEB_KINDS
                and not source.allow_private
                and source.start_urls
                and all(self._problem(url) is None for url in source.start_urls)
            )
        return self._guarded

    def process_request(self, request: Request) -> None:
        if not self._is_guarded():
            return
        problem = self._problem(request.url)
        if problem is None:
            return
        source = self.crawler.duluan.source  # type: ignore[attr-defined]
        log.warning("source %s: refused to fetch %s: %s", source.id, request.url, problem)
        raise PrivateTargetBlocked(f"private network target refused: {problem}")
