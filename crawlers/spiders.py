"""Spider families driven by the registry: RSS/Atom feeds, XML sitemaps, section listing pages.

One `SourceSpider` crawler runs per source; its family (`SourceSpec.type`) decides how the start
URLs are read. Every request has an errback that classifies the failure (timeout, DNS, refused,
HTTP status, robots.txt, size cap, redirect loop…) into a stats counter and a log line with the
URL, so a bad source or page is reported and never stops the crawl.
"""

from __future__ import annotations

import calendar
import gzip
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response, TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.utils.sitemap import Sitemap
from twisted.python.failure import Failure

from crawlers import social_api, xenforo
from crawlers.extract import ExtractedArticle
from crawlers.items import STAT_PREFIX, CrawlItem, FetchedPage, RunContext
from crawlers.registry import SourceKind
from crawlers.telegram import channel_of, parse_preview
from crawlers.urls import InvalidURLError, normalize_url, site_of

log = logging.getLogger("crawlers.spiders")

_CHARSET = re.compile(r"charset=([\w.:-]+)", re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml")


def classify_failure(failure: Failure) -> str:
    """A short, stable name for why a request failed; used as the error counter key."""
    from scrapy import exceptions as scrapy_errors
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import defer
    from twisted.internet import error as net

    value = failure.value
    text = str(value).lower()
    if isinstance(value, HttpError):
        return f"http_{value.response.status}"
    if isinstance(value, scrapy_errors.IgnoreRequest):
        from crawlers.middlewares import PrivateTargetBlocked

        if isinstance(value, PrivateTargetBlocked):
            return "blocked_private"
        if "robots" in text:
            return "robots_denied"
        if "maxsize" in text or "max size" in text:
            return "too_large"
        if "redirect" in text:
            return "redirect_loop"
        return "ignored"
    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        ((scrapy_errors.CannotResolveHostError, net.DNSLookupError), "dns"),
        ((scrapy_errors.DownloadTimeoutError, net.TimeoutError, net.TCPTimedOutError), "timeout"),
        ((scrapy_errors.DownloadConnectionRefusedError, net.ConnectionRefusedError), "connection_refused"),
        ((scrapy_errors.DownloadCancelledError, defer.CancelledError), "too_large"),
        (
            (scrapy_errors.DownloadFailedError, scrapy_errors.ResponseDataLossError, net.ConnectionLost),
            "connection_lost",
        ),
    ]
    for types, kind in kinds:
        if isinstance(value, types):
            if kind == "too_large" and "size" not in text and "maxsize" not in text:
                return "cancelled"
            return kind
    name = type(value).__name__
    if "ResponseNeverReceived" in name or "ResponseFailed" in name:
        return "connection_lost"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _aware_from_struct(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)


def _charset_of(response: Response) -> str | None:
    content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
    match = _CHARSET.search(content_type)
    return match.group(1) if match else None


class SourceSpider(scrapy.Spider):
    """Crawls one registry source; its `RunContext` comes from `crawler.duluan`."""

    name = "duluan_source"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scheduled: set[str] = set()

    @property
    def context(self) -> RunContext:
        context: RunContext = self.crawler.duluan  # type: ignore[attr-defined]
        return context

    def count(self, key: str, amount: int = 1) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(STAT_PREFIX + key, amount)

    # ---------------------------------------------------------------- start pages

    async def start(self) -> AsyncIterator[Any]:
        source = self.context.source
        callbacks = {
            SourceKind.rss: self.parse_feed,
            SourceKind.sitemap: self.parse_sitemap,
            SourceKind.telegram: self.parse_telegram,
            SourceKind.xenforo: self.parse_forum,
        }
        if source.type in (SourceKind.facebook, SourceKind.youtube):
            for request in self._api_start_requests():
                yield request
            return
        callback = callbacks.get(source.type, self.parse_listing)
        for url in source.start_urls:
            headers = {}
            etag, last_modified = self.context.state.validators(url)
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            yield scrapy.Request(
                url,
                callback=callback,
                errback=self.on_start_error,
                headers=headers,
                dont_filter=True,
                meta={"handle_httpstatus_list": [304], "start_url": url},
                priority=10,
            )

    def on_start_error(self, failure: Failure) -> None:
        url = failure.request.meta.get("start_url", failure.request.url)  # type: ignore[attr-defined]
        kind = classify_failure(failure)
        self.context.start_failures[url] = kind
        self.count(f"errors/{kind}")
        log.error("source %s: start URL %s failed: %s (%s)", self.context.source.id, url, kind, failure.value)

    def _start_answered(self, response: Response) -> bool:
        """Record the answer; False when the start page is unchanged since the last complete run."""
        url = response.meta["start_url"]
        self.context.start_ok.add(url)
        if response.status == 304:
            self.count("not_modified")
            log.info("source %s: %s not modified since the last run", self.context.source.id, url)
            return False
        etag = response.headers.get(b"ETag")
        last_modified = response.headers.get(b"Last-Modified")
        self.context.pending_validators[url] = (
            etag.decode("latin-1") if etag else None,
            last_modified.decode("latin-1") if last_modified else None,
        )
        return True

    # ---------------------------------------------------------------- families

    def parse_feed(self, response: Response) -> Iterator[scrapy.Request]:
        """RSS 2.0 / Atom: one article request per entry; broken XML is recovered where possible."""
        if not self._start_answered(response):
            return
        feed = feedparser.parse(response.body)
        if feed.bozo:
            self.count("errors/feed_malformed")
            log.warning(
                "source %s: feed %s is not well-formed (%s); recovered %d entries",
                self.context.source.id,
                response.url,
                feed.get("bozo_exception"),
                len(feed.entries),
            )
        if not feed.entries and feed.bozo:
            return
        for entry in feed.entries:
            link = (entry.get("link") or "").strip()
            published = _aware_from_struct(entry.get("published_parsed") or entry.get("updated_parsed"))
            title = (entry.get("title") or "").strip() or None
            yield from self._article_request(self._join(response, link), title, published)

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        """XML sitemaps and sitemap indexes (gzip allowed); newest child sitemaps first."""
        if response.meta.get("start_url") and not self._start_answered(response):
            return
        body = self._sitemap_body(response)
        if body is None:
            return
        try:
            sitemap = Sitemap(body)
        except Exception as exc:  # lxml raises several types on hopeless input
            self.count("errors/sitemap_malformed")
            log.warning(
                "source %s: sitemap %s cannot be parsed: %s", self.context.source.id, response.url, exc
            )
            return
        rules = self.context.source.site_rules
        entries = sorted(sitemap, key=lambda e: e.get("lastmod", ""), reverse=True)
        if sitemap.type == "sitemapindex":
            for entry in entries[: rules.max_sitemaps]:
                child = self._join(response, entry["loc"])
                if child.startswith(("http://", "https://")):
                    yield scrapy.Request(child, callback=self.parse_sitemap, errback=self.on_page_error)
                else:
                    self.count("dropped/bad_link")
            return
        for entry in entries:
            published = _parse_lastmod(entry.get("lastmod"))
            yield from self._article_request(self._join(response, entry["loc"]), None, published)

    @staticmethod
    def _join(response: Response, link: str) -> str:
        """`link` made absolute against the page; "" for a link that is not a URL at all (`http://[::1`),
        which `_article_request` then counts as a bad link instead of aborting the whole feed."""
        try:
            return response.urljoin(link)
        except ValueError:
            return ""

    def _sitemap_body(self, response: Response) -> bytes | None:
        body = response.body
        if body[:2] == b"\x1f\x8b":
            limit = self.context.config.max_page_bytes
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(body)) as archive:
                    body = archive.read(limit + 1)
            except (OSError, EOFError) as exc:
                self.count("errors/sitemap_malformed")
                log.warning("source %s: bad gzip in %s: %s", self.context.source.id, response.url, exc)
                return None
            if len(body) > limit:
                self.count("errors/too_large")
                log.warning(
                    "source %s: %s inflates beyond %d bytes; skipped",
                    self.context.source.id,
                    response.url,
                    limit,
                )
                return None
        return body

    def parse_listing(self, response: Response) -> Iterator[scrapy.Request]:
        """Section pages (chuyên mục): follow links that match the source's article patterns."""
        if not self._start_answered(response):
            return
        if not isinstance(response, TextResponse):
            self.count("errors/not_html")
            return
        rules = self.context.source.site_rules
        extractor = LinkExtractor(allow=rules.link_allow, deny=rules.link_deny, unique=True)
        home = site_of(response.url)
        for link in extractor.extract_links(response):
            host = site_of(link.url)
            if host == home or host.endswith("." + home):
                yield from self._article_request(link.url, link.text.strip() or None, None)

    def parse_telegram(self, response: Response) -> Iterator[Any]:
        """`t.me/s/<channel>` preview: posts become items directly; older pages until seen or capped."""
        if response.meta.get("start_url") and not self._start_answered(response):
            return
        channel = channel_of(response.url)
        try:
            page = parse_preview(response.body, channel)
        except Exception as exc:  # lxml raises several types on hopeless input
            self.count("errors/telegram_malformed")
            log.warning(
                "source %s: preview %s cannot be parsed: %s", self.context.source.id, response.url, exc
            )
            return
        items = list(self._post_items(page.posts))
        fresh = len(items)
        yield from items
        if fresh and page.older_cursor:
            older = response.urljoin(f"/s/{channel}?before={page.older_cursor}")
            yield scrapy.Request(older, callback=self.parse_telegram, errback=self.on_page_error)

    def parse_forum(self, response: Response) -> Iterator[scrapy.Request]:
        """XenForo forum listing: read the listed threads (newest activity first on the page)."""
        if not self._start_answered(response):
            return
        for url in xenforo.thread_links(response.body, response.url)[
            : self.context.source.site_rules.max_items
        ]:
            yield scrapy.Request(
                url, callback=self.parse_thread, errback=self.on_page_error, meta={"thread_page": 1}
            )

    def parse_thread(self, response: Response) -> Iterator[Any]:
        """XenForo thread page: each unseen post becomes an item; follow a few next pages."""
        try:
            page = xenforo.parse_thread(response.body, response.url)
        except Exception as exc:  # lxml raises several types on hopeless input
            self.count("errors/forum_malformed")
            log.warning(
                "source %s: thread %s cannot be parsed: %s", self.context.source.id, response.url, exc
            )
            return
        yield from self._post_items(page.posts)
        number = int(response.meta.get("thread_page", 1))
        if page.next_url and number < self.context.source.site_rules.max_thread_pages:
            yield scrapy.Request(
                page.next_url,
                callback=self.parse_thread,
                errback=self.on_page_error,
                meta={"thread_page": number + 1},
            )

    def _post_items(self, posts: tuple[tuple[str, ExtractedArticle], ...]) -> Iterator[CrawlItem]:
        """Items for posts parsed by a social/forum family (no article page to fetch)."""
        for url, post in posts:
            try:
                url_key = normalize_url(url)
            except InvalidURLError:
                self.count("dropped/bad_link")
                continue
            if url_key in self._scheduled:
                continue
            if self.context.state.is_seen(url_key):
                self.count("skipped_seen")
                continue
            if len(self._scheduled) >= self.context.source.site_rules.max_items:
                self.count("skipped_cap")
                return
            self._scheduled.add(url_key)
            self.count("fetched")
            yield CrawlItem(
                page=FetchedPage(
                    source_id=self.context.source.id,
                    url=url,
                    url_key=url_key,
                    body=b"",
                    header_charset=None,
                    fetched_at=datetime.now(UTC),
                ),
                article=post,
            )

    # ---------------------------------------------------------------- social APIs (Facebook, YouTube)

    def _api_request(
        self, url: str, callback: Any, meta: dict[str, Any], start_url: str | None = None
    ) -> scrapy.Request:
        """An API call: secret in a header, every status handed to the callback, robots.txt not
        consulted (an API is not a crawlable site; its terms govern its use)."""
        config = self.context.config
        if self.context.source.type == SourceKind.facebook:
            headers = {"Authorization": f"Bearer {config.facebook_page_token}"}
        else:
            headers = {"X-Goog-Api-Key": config.youtube_api_key}
        headers["Accept"] = "application/json"
        full_meta = {**meta, "handle_httpstatus_all": True, "dont_obey_robotstxt": True}
        if start_url:
            full_meta["start_url"] = start_url
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.on_start_error if start_url else self.on_page_error,
            headers=headers,
            meta=full_meta,
            dont_filter=bool(start_url),
        )

    def _api_start_requests(self) -> Iterator[scrapy.Request]:
        source, config = self.context.source, self.context.config
        is_facebook = source.type == SourceKind.facebook
        secret, setting = (
            (config.facebook_page_token, "crawl.facebook_page_token")
            if is_facebook
            else (config.youtube_api_key, "crawl.youtube_api_key")
        )
        if not secret:
            log.error("source %s: no credentials; set %s to read %s", source.id, setting, source.type.value)
            for url in source.start_urls:
                self.context.start_failures[url] = "no_credentials"
            self.count("errors/no_credentials")
            return
        since = (
            datetime.now(UTC) - timedelta(days=source.site_rules.max_age_days)
            if source.site_rules.max_age_days
            else None
        )
        for url in source.start_urls:
            if is_facebook:
                api_url = social_api.facebook_posts_url(
                    config.facebook_graph_url, social_api.facebook_page_ref(url)
                )
                yield self._api_request(api_url, self.parse_facebook_posts, {"api_pages": 1}, url)
                continue
            target = social_api.youtube_target(url)
            base = config.youtube_api_url
            if target.kind == "search":
                api_url = social_api.youtube_search_url(base, target.value, published_after=since)
                meta = {"yt_search": target.value, "yt_since": since, "api_pages": 1}
                yield self._api_request(api_url, self.parse_youtube_videos, meta, url)
            elif target.kind == "playlist":
                api_url = social_api.youtube_playlist_items_url(base, target.value)
                meta = {"yt_playlist": target.value, "api_pages": 1}
                yield self._api_request(api_url, self.parse_youtube_videos, meta, url)
            else:
                api_url = social_api.youtube_channels_url(base, target)
                yield self._api_request(api_url, self.parse_youtube_channel, {}, url)

    def _api_payload(self, response: Response) -> Any | None:
        """The JSON data of an API response, or None after counting and logging its error.

        Rate limits, exhausted quota and bad credentials stop this source's crawl (`CloseSpider`):
        calling on would only burn quota; the next scheduled run starts afresh.
        """
        source = self.context.source
        try:
            payload: Any = json.loads(response.body)
        except ValueError:
            payload = None
        if source.type == SourceKind.facebook:
            error = social_api.facebook_error(payload, response.status)
        else:
            error = social_api.youtube_error(payload, response.status)
        if error is None and (payload is None or response.status >= 400):
            error = social_api.ApiError("api_malformed", f"http_{response.status}", "the body is not JSON")
        start_url = response.meta.get("start_url")
        if error is None:
            if start_url:
                self.context.start_ok.add(start_url)
            return payload
        self.count(f"errors/{error.kind}")
        if start_url and start_url not in self.context.start_ok:
            self.context.start_failures[start_url] = error.kind
        level = logging.INFO if error.kind == "comments_disabled" else logging.ERROR
        advice = {
            "rate_limited": "stopping this source until its next scheduled run",
            "quota_exceeded": "daily quota used up (resets at midnight Pacific time); stopping this source",
            "auth": "check the token/key in settings (crawl.facebook_page_token / crawl.youtube_api_key)",
        }.get(error.kind, "skipped")
        log.log(
            level,
            "source %s: %s API error %s (%s) on %s: %s; %s",
            source.id,
            source.type.value,
            error.code,
            error.kind,
            response.url,
            error.message,
            advice,
        )
        if error.stops_run:
            raise CloseSpider(f"{source.type.value}_{error.kind}")
        return None

    def _api_page(self, parse: Any, payload: Any, *args: Any) -> Any | None:
        try:
            return parse(payload, *args)
        except social_api.ApiResponseError as exc:
            self.count("errors/api_malformed")
            log.error("source %s: unexpected API response: %s", self.context.source.id, exc)
            return None

    def _comment_requests(self, targets: tuple[tuple[str, str], ...]) -> Iterator[scrapy.Request]:
        rules, config = self.context.source.site_rules, self.context.config
        if not rules.comments:
            return
        for object_id, parent_url in targets:
            if self.context.source.type == SourceKind.facebook:
                url = social_api.facebook_comments_url(
                    config.facebook_graph_url, object_id, limit=min(100, rules.max_comments)
                )
                meta = {"parent_url": parent_url, "comments_read": 0}
                yield self._api_request(url, self.parse_facebook_comments, meta)
            else:
                url = social_api.youtube_comment_threads_url(config.youtube_api_url, object_id)
                yield self._api_request(
                    url, self.parse_youtube_comments, {"video_id": object_id, "comments_read": 0}
                )

    def parse_facebook_posts(self, response: Response) -> Iterator[Any]:
        """`/<page>/posts`: each unseen post is an item; comments of every listed post are read;
        older pages follow `paging.next` while they still bring unseen posts."""
        payload = self._api_payload(response)
        page = self._api_page(social_api.parse_facebook_posts, payload) if payload is not None else None
        if page is None:
            return
        items = list(self._post_items(page.posts))
        yield from items
        yield from self._comment_requests(page.comment_targets)
        pages = int(response.meta.get("api_pages", 1))
        if items and page.next_url and pages < self.context.source.site_rules.max_api_pages:
            yield self._api_request(page.next_url, self.parse_facebook_posts, {"api_pages": pages + 1})

    def parse_facebook_comments(self, response: Response) -> Iterator[Any]:
        """`/<post>/comments`, newest first: unseen comments are items; next pages while fresh."""
        payload = self._api_payload(response)
        parent = response.meta["parent_url"]
        page = (
            self._api_page(social_api.parse_facebook_comments, payload, parent)
            if payload is not None
            else None
        )
        if page is None:
            return
        items = list(self._post_items(page.posts))
        yield from items
        read = int(response.meta.get("comments_read", 0)) + len(page.posts)
        if items and page.next_url and read < self.context.source.site_rules.max_comments:
            meta = {"parent_url": parent, "comments_read": read}
            yield self._api_request(page.next_url, self.parse_facebook_comments, meta)

    def parse_youtube_channel(self, response: Response) -> Iterator[scrapy.Request]:
        """`channels.list` → the channel's uploads playlist."""
        payload = self._api_payload(response)
        if payload is None:
            return
        uploads = self._api_page(social_api.parse_youtube_channels, payload)
        if not uploads:
            self.count("errors/not_found")
            start_url = response.meta.get("start_url")
            if start_url:
                self.context.start_ok.discard(start_url)
                self.context.start_failures[start_url] = "not_found"
            log.error("source %s: no YouTube channel found for %s", self.context.source.id, start_url)
            return
        url = social_api.youtube_playlist_items_url(self.context.config.youtube_api_url, uploads)
        yield self._api_request(url, self.parse_youtube_videos, {"yt_playlist": uploads, "api_pages": 1})

    def parse_youtube_videos(self, response: Response) -> Iterator[Any]:
        """`playlistItems.list` or `search.list` page: unseen videos are items, their comments read."""
        payload = self._api_payload(response)
        if payload is None:
            return
        query = response.meta.get("yt_search")
        parse = social_api.parse_youtube_search if query else social_api.parse_youtube_playlist_items
        parsed = self._api_page(parse, payload)
        if parsed is None:
            return
        page, next_token = parsed
        items = list(self._post_items(page.posts))
        yield from items
        yield from self._comment_requests(page.comment_targets)
        pages = int(response.meta.get("api_pages", 1))
        if not (items and next_token and pages < self.context.source.site_rules.max_api_pages):
            return
        base = self.context.config.youtube_api_url
        meta = {
            **{k: response.meta.get(k) for k in ("yt_search", "yt_since", "yt_playlist")},
            "api_pages": pages + 1,
        }
        url = (
            social_api.youtube_search_url(base, query, next_token, response.meta.get("yt_since"))
            if query
            else social_api.youtube_playlist_items_url(base, response.meta["yt_playlist"], next_token)
        )
        yield self._api_request(url, self.parse_youtube_videos, meta)

    def parse_youtube_comments(self, response: Response) -> Iterator[Any]:
        """`commentThreads.list`, newest first: unseen comments and replies are items."""
        payload = self._api_payload(response)
        video_id = response.meta["video_id"]
        parsed = (
            self._api_page(social_api.parse_youtube_comment_threads, payload, video_id) if payload else None
        )
        if parsed is None:
            return
        page, next_token = parsed
        items = list(self._post_items(page.posts))
        yield from items
        read = int(response.meta.get("comments_read", 0)) + len(page.posts)
        if items and next_token and read < self.context.source.site_rules.max_comments:
            url = social_api.youtube_comment_threads_url(
                self.context.config.youtube_api_url, video_id, next_token
            )
            yield self._api_request(
                url, self.parse_youtube_comments, {"video_id": video_id, "comments_read": read}
            )

    # ---------------------------------------------------------------- articles

    def _article_request(
        self, url: str, title: str | None, published: datetime | None
    ) -> Iterator[scrapy.Request]:
        rules = self.context.source.site_rules
        try:
            url_key = normalize_url(url)
        except InvalidURLError:
            self.count("dropped/bad_link")
            return
        if url_key in self._scheduled:
            return
        if self.context.state.is_seen(url_key):
            self.count("skipped_seen")
            return
        if (
            rules.max_age_days
            and published
            and published < datetime.now(UTC) - timedelta(days=rules.max_age_days)
        ):
            self.count("skipped_old")
            return
        if len(self._scheduled) >= rules.max_items:
            self.count("skipped_cap")
            return
        self._scheduled.add(url_key)
        yield scrapy.Request(
            url,
            callback=self.parse_article,
            errback=self.on_page_error,
            meta={"url_key": url_key, "hint_title": title, "hint_published_at": published},
        )

    def on_page_error(self, failure: Failure) -> None:
        kind = classify_failure(failure)
        self.count(f"errors/{kind}")
        log.warning("source %s: %s failed: %s", self.context.source.id, failure.request.url, kind)  # type: ignore[attr-defined]

    def parse_article(self, response: Response) -> Iterator[CrawlItem]:
        self.count("fetched")
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1").lower()
        if content_type and not content_type.startswith(_HTML_TYPES):
            self.count("dropped/not_html")
            log.info(
                "source %s: %s is %s, not an article page", self.context.source.id, response.url, content_type
            )
            return
        yield CrawlItem(
            page=FetchedPage(
                source_id=self.context.source.id,
                url=response.url,
                url_key=response.meta["url_key"],
                body=response.body,
                header_charset=_charset_of(response),
                fetched_at=datetime.now(UTC),
                hint_title=response.meta.get("hint_title"),
                hint_published_at=response.meta.get("hint_published_at"),
            )
        )


def _parse_lastmod(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
