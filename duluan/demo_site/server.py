"""A local copy of a Vietnamese news site, served on 127.0.0.1 for `duluan demo` and the tests.

The article and listing pages are real Dân trí and VnExpress pages (see `pages/index.jsonl` for
where each came from). Around them this server generates what a crawler meets on a real outlet:
an RSS 2.0 feed and an XML sitemap whose titles and publication times are read from the pages
themselves, a section listing that links the articles, and a permissive robots.txt. Responses carry
ETag/Last-Modified and honour conditional GETs, like the outlets' CDNs do.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from crawlers.extract import extract_article

PAGES_DIR = Path(__file__).resolve().parent / "pages"
#: Publication time used when a page gives none (the date the copies were made).
_FALLBACK_DATE = datetime(2022, 12, 24, tzinfo=UTC)


@dataclass(frozen=True)
class DemoArticle:
    """One article page of the demo site: where it is served and what its feed entry says."""

    path: str
    file: Path
    original_url: str
    title: str
    published_at: datetime
    summary: str
    #: 0 for the page itself; n > 0 for the n-th generated copy (load tests), whose canonical URL and
    #: links to itself are rewritten so it is a distinct document with the same real template.
    copy: int = 0

    def body(self) -> bytes:
        raw = self.file.read_bytes()
        if not self.copy:
            return raw
        template_url = self.original_url.replace(f"/c{self.copy}/", "/", 1)
        return raw.replace(template_url.encode(), self.original_url.encode())


def copy_url(original_url: str, copy: int) -> str:
    """The publisher URL of a generated copy, e.g. https://dantri.com.vn/c7/the-thao/...htm."""
    parts = urlsplit(original_url)
    return f"{parts.scheme}://{parts.netloc}/c{copy}{parts.path}"


def with_copies(articles: tuple[DemoArticle, ...], copies: int) -> tuple[DemoArticle, ...]:
    """The articles plus `copies - 1` generated copies of each (for crawl throughput runs)."""
    generated = [
        replace(
            a,
            path="/" + a.path.split("/")[1] + f"/c{n}/" + a.path.split("/", 2)[2],
            original_url=copy_url(a.original_url, n),
            title=f"{a.title} ({n})",
            copy=n,
        )
        for n in range(1, copies)
        for a in articles
    ]
    return articles + tuple(generated)


def _site_path(original_url: str, outlet: str) -> str:
    """Keep the publisher's own path under an outlet prefix, e.g. /dantri/the-thao/...-2022....htm."""
    return f"/{outlet}{urlsplit(original_url).path}"


@lru_cache(maxsize=1)
def demo_articles() -> tuple[DemoArticle, ...]:
    """The article pages, newest first, with title/date/summary extracted from each page."""
    articles = []
    for line in (PAGES_DIR / "index.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("kind") != "article":
            continue
        file = PAGES_DIR / entry["file"]
        extracted = extract_article(file.read_bytes(), entry["url"], min_body_chars=0)
        if extracted is None:
            raise RuntimeError(f"demo page {file} has no extractable article; check the copy in {PAGES_DIR}")
        first_paragraph = extracted.text.split("\n", 1)[0]
        articles.append(
            DemoArticle(
                path=_site_path(entry["url"], entry["outlet"]),
                file=file,
                original_url=entry["url"],
                title=extracted.title,
                published_at=extracted.published_at or _FALLBACK_DATE,
                summary=first_paragraph[:300],
            )
        )
    return tuple(sorted(articles, key=lambda a: a.published_at, reverse=True))


def listing_files() -> tuple[Path, ...]:
    """The real section/home pages (their article links were blanked in the copies)."""
    return tuple(sorted((PAGES_DIR / "html").glob("*listing_*.html")))


def render_rss(base_url: str, articles: tuple[DemoArticle, ...]) -> str:
    """An RSS 2.0 feed in the shape VnExpress publishes (title, link, guid, pubDate, description)."""
    items = "\n".join(
        "<item>"
        f"<title>{escape(a.title)}</title>"
        f"<link>{escape(base_url + a.path)}</link>"
        f'<guid isPermaLink="true">{escape(base_url + a.path)}</guid>'
        f"<pubDate>{format_datetime(a.published_at)}</pubDate>"
        f"<description>{escape(a.summary)}</description>"
        "</item>"
        for a in articles
    )
    newest = format_datetime(articles[0].published_at) if articles else format_datetime(_FALLBACK_DATE)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Tin mới nhất - Báo điện tử Duluan Demo</title>"
        f"<link>{escape(base_url)}/</link>"
        "<description>Bản sao cục bộ các bài báo Dân trí và VnExpress dùng để chạy thử</description>"
        f"<language>vi</language><pubDate>{newest}</pubDate>\n{items}\n</channel></rss>\n"
    )


def render_sitemap(base_url: str, articles: tuple[DemoArticle, ...]) -> str:
    """An XML sitemap (sitemaps.org 0.9) listing every article page with its lastmod."""
    urls = "\n".join(
        f"<url><loc>{escape(base_url + a.path)}</loc><lastmod>{a.published_at.isoformat()}</lastmod></url>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}\n</urlset>\n'
    )


def render_section_listing(articles: tuple[DemoArticle, ...]) -> str:
    """A section page (chuyên mục) linking every article, like an outlet's "Tin mới" page."""
    links = "\n".join(
        f'<article class="article-item"><h3 class="article-title"><a href="{html.escape(a.path)}">'
        f'{html.escape(a.title)}</a></h3><p class="article-excerpt">{html.escape(a.summary)}</p></article>'
        for a in articles
    )
    others = "\n".join(
        f'<li><a href="/dantri/listing/{p.name}">{html.escape(p.stem)}</a></li>' for p in listing_files()
    )
    return (
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8"><title>Tin mới nhất</title></head><body>'
        f'<h1>Tin mới nhất</h1><div class="article-list">{links}</div>'
        f'<nav><ul class="menu">{others}<li><a href="#top">Lên đầu trang</a></li></ul></nav></body></html>\n'
    )


class _DemoHandler(BaseHTTPRequestHandler):
    server: _DemoHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging; the demo and tests do not want it on stderr."""

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def _respond(self, *, send_body: bool) -> None:
        found = self.server.route(urlsplit(self.path).path)
        if found is None:
            body, content_type, status = (
                b"<h1>404 - Kh\xc3\xb4ng t\xc3\xacm th\xe1\xba\xa5y trang</h1>",
                "text/html",
                404,
            )
        else:
            body, content_type = found
            status = 200
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if status == 200 and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", format_datetime(self.server.started_at, usegmt=True))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class _DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, copies: int = 1) -> None:
        super().__init__(("127.0.0.1", port), _DemoHandler)
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.articles = with_copies(demo_articles(), copies)
        self._articles_by_path = {a.path: a for a in self.articles}
        self._listings = {f"/dantri/listing/{p.name}": p for p in listing_files()}
        self._feed = render_rss(self.base_url, self.articles).encode()
        self._sitemap = render_sitemap(self.base_url, self.articles).encode()
        self._section = render_section_listing(self.articles).encode()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def route(self, path: str) -> tuple[bytes, str] | None:
        """Body and content type for a path, or None for 404."""
        if path in self._articles_by_path:
            return self._articles_by_path[path].body(), "text/html"
        if path in self._listings:
            return self._listings[path].read_bytes(), "text/html"
        if path == "/robots.txt":
            text = f"User-agent: *\nAllow: /\n\nSitemap: {self.base_url}/sitemap.xml\n"
            return text.encode(), "text/plain"
        if path == "/rss/tin-moi-nhat.rss":
            return self._feed, "application/rss+xml"
        if path == "/sitemap.xml":
            return self._sitemap, "application/xml"
        if path in ("/", "/tin-moi-nhat.htm"):
            return self._section, "text/html"
        if path == "/rss/vnexpress-2017.xml":
            return (PAGES_DIR / "feeds" / "vnexpress_1.xml").read_bytes(), "application/rss+xml"
        return None


class DemoSite:
    """A running demo site; use as a context manager or call `close()`."""

    def __init__(self, port: int = 0, copies: int = 1) -> None:
        self._server = _DemoHTTPServer(port, copies)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="duluan-demo-site", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """e.g. http://127.0.0.1:54321 (no trailing slash)."""
        return self._server.base_url

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/rss/tin-moi-nhat.rss"

    @property
    def sitemap_url(self) -> str:
        return f"{self.base_url}/sitemap.xml"

    @property
    def listing_url(self) -> str:
        """The generated section page that links every article."""
        return f"{self.base_url}/tin-moi-nhat.htm"

    @property
    def articles(self) -> tuple[DemoArticle, ...]:
        return self._server.articles

    def article_urls(self) -> list[str]:
        return [self.base_url + a.path for a in self.articles]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoSite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve_demo_site(port: int = 0, copies: int = 1) -> DemoSite:
    """Start the demo site on 127.0.0.1 (port 0 picks a free port) in a background thread.

    `copies > 1` adds generated copies of every article (13 × copies pages) for throughput runs.
    """
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    return DemoSite(port, copies)
