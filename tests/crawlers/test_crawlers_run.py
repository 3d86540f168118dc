"""End-to-end crawls with `run_crawl` in a child process against servers on 127.0.0.1."""

import gzip
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from crawling import crawl

from crawlers.urls import document_id
from duluan.demo_site import DemoSite, serve_demo_site


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with serve_demo_site() as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rss_crawl_of_demo_site_then_incremental_rerun(site: DemoSite, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/rss/tin-moi-nhat.rss"
    sources = [
        {"id": "demo-rss", "name": "Demo", "type": "rss", "start_urls": [site.feed_url]},
        {"id": "offline", "name": "Báo không truy cập được", "type": "rss", "start_urls": [dead]},
    ]
    report, docs = crawl(tmp_path, sources, enrich_fail_on="Đại thắng")

    demo = report["sources"]["demo-rss"]
    assert demo["fetched"] == 13 and demo["extracted"] == 13 and demo["indexed"] == 13
    assert demo["errors"] == {"enrich": 1}, "the one failing enrichment is counted"
    assert demo["unreachable"] is None
    assert len(docs) == 13 and len({d["id"] for d in docs}) == 13
    by_title = {d["title"]: d for d in docs}
    failed = by_title["Đại thắng 5-0 trước Lào, Malaysia gửi lời thách thức tới Việt Nam"]
    assert failed["keywords"] == [], "document kept without NLP fields when enrichment fails"
    assert sum(d["keywords"] == ["đã làm giàu"] for d in docs) == 12
    vne = by_title["Đau bụng kéo dài, phát hiện ung thư lymphoma ruột non"]
    assert (
        vne["canonical_url"]
        == "https://vnexpress.net/dau-bung-keo-dai-phat-hien-ung-thu-lymphoma-ruot-non-4954454.html"
    )
    assert vne["id"] == document_id(vne["canonical_url"])
    assert vne["url"].startswith(site.base_url)
    assert datetime.fromisoformat(vne["published_at"]).isoformat() == "2025-10-22T19:25:52+07:00"
    assert vne["author"] == "Lê Phương" and vne["lang"] == "vi" and vne["source"] == "demo-rss"
    assert all(d["cluster_id"] for d in docs)
    assert len({d["cluster_id"] for d in docs}) == 13, "distinct stories are distinct clusters"

    offline = report["sources"]["offline"]
    assert offline["unreachable"] and "connection_refused" in offline["unreachable"]
    assert offline["fetched"] == 0

    # Second run, same state: the feed answers 304 Not Modified and nothing is fetched again.
    again, docs_again = crawl(tmp_path, sources[:1])
    assert again["sources"]["demo-rss"]["not_modified"] == 1
    assert again["sources"]["demo-rss"]["fetched"] == 0 and docs_again == []


def test_crawl_killed_with_sigkill_resumes_without_loss_or_duplicates(site: DemoSite, tmp_path: Path) -> None:
    sources = [{"id": "demo-rss", "name": "Demo", "type": "rss", "start_urls": [site.feed_url]}]
    config = {"batch_size": 5, "flush_interval_s": 60}
    killed, first = crawl(tmp_path, sources, config=config, kill_on_batch=2)
    assert killed == {"killed": True}
    assert len(first) == 5, "only the first batch reached the index before the kill"
    report, second = crawl(tmp_path, sources, config=config)
    assert report["sources"]["demo-rss"]["skipped_seen"] == 5
    assert len(second) == 8
    ids = [d["id"] for d in first + second]
    assert len(ids) == len(set(ids)) == 13


def test_listing_and_sitemap_families(site: DemoSite, tmp_path: Path) -> None:
    # The listing's link rules find exactly the 13 articles (not the menu or listing-page links).
    report, docs = crawl(
        tmp_path,
        [{"id": "demo-listing", "name": "Demo", "type": "listing", "start_urls": [site.listing_url]}],
    )
    assert report["sources"]["demo-listing"]["indexed"] == 13
    assert sorted(d["url"] for d in docs) == sorted(site.article_urls())
    # A sitemap crawl sharing the state skips every URL the listing crawl already delivered.
    report, docs = crawl(
        tmp_path,
        [{"id": "demo-sitemap", "name": "Demo", "type": "sitemap", "start_urls": [site.sitemap_url]}],
    )
    sitemap = report["sources"]["demo-sitemap"]
    assert sitemap["skipped_seen"] == 13 and sitemap["fetched"] == 0 and docs == []
    assert report["sources"]["demo-sitemap"]["unreachable"] is None


# ---------------------------------------------------------------- bad input

ARTICLE = (
    '<html lang="vi"><head><meta charset="utf-8"><title>{title}</title></head><body><article>'
    "<h1>{title}</h1>"
    + "<p>Ủy ban nhân dân tỉnh Đồng Nai chỉ đạo các sở, ngành khẩn trương khắc phục hậu quả mưa lớn, "
    "bảo đảm an toàn cho người dân vùng trũng thấp và ổn định đời sống sau ngập úng kéo dài.</p>"
    * 4
    + "</article></body></html>"
)


class BadSiteHandler(BaseHTTPRequestHandler):
    """Every kind of bad response a real outlet sometimes gives."""

    throttled_hits = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        path = self.path
        if path == "/robots.txt":
            self._send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif path == "/broken-feed.rss":
            links = ["ok-10001.html", "truncated-10002.html", "empty-10003.html", "huge-10004.html",
                     "bomb-10005.html", "loop-10006.html", "error-10007.html", "busy-10008.html",
                     "doc-10009.pdf", "private/secret-10010.html", "throttled-10011.html"]  # fmt: skip
            items = "".join(
                f"<item><title>Tin {i}</title><link>{base}/{link}</link></item>"
                for i, link in enumerate(links)
            )
            # Unclosed channel/rss and a bare ampersand: not well-formed, still readable.
            self._send(
                200, f'<?xml version="1.0"?><rss version="2.0"><channel><title>A & B</title>{items}'.encode()
            )
        elif path == "/garbage-feed.rss":
            self._send(200, b"\x00\x01<<not xml at all", "application/rss+xml")
        elif path == "/ok-10001.html":
            self._send(200, ARTICLE.format(title="Đồng Nai khắc phục hậu quả mưa lớn").encode())
        elif path == "/truncated-10002.html":
            full = ARTICLE.format(title="Bài bị cắt cụt giữa chừng").encode()
            self._send(200, full[: len(full) - 120])
        elif path == "/empty-10003.html":
            self._send(200, b"")
        elif path == "/huge-10004.html":
            self._send(200, b"<html><body>" + b"<p>x</p>" * 400_000 + b"</body></html>")
        elif path == "/bomb-10005.html":
            self._send(200, gzip.compress(b" " * 50_000_000, compresslevel=9), Content_Encoding="gzip")
        elif path.startswith("/loop-10006.html"):
            # A session-id redirect loop: every hop a new URL, so only the redirect cap stops it.
            hop = int(path.rpartition("=")[2]) if "=" in path else 0
            self._send(302, b"", Location=f"{base}/loop-10006.html?sid={hop + 1}")
        elif path == "/error-10007.html":
            self._send(500, b"<h1>Internal Server Error</h1>")
        elif path == "/busy-10008.html":
            self._send(429, b"slow down", "text/plain", Retry_After="3600")  # longer than we wait
        elif path == "/throttled-10011.html":
            BadSiteHandler.throttled_hits += 1
            if BadSiteHandler.throttled_hits == 1:
                self._send(429, b"slow down", "text/plain", Retry_After="1")
            else:
                self._send(200, ARTICLE.format(title="Bài trả về sau khi chờ Retry-After").encode())
        elif path == "/doc-10009.pdf":
            self._send(200, b"%PDF-1.4 ...", "application/pdf")
        else:
            self._send(404, b"not found")


@pytest.fixture
def bad_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BadSiteHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bad_input_is_counted_never_fatal(bad_site: str, tmp_path: Path) -> None:
    sources = [
        {"id": "bad", "name": "Bad", "type": "rss", "start_urls": [f"{bad_site}/broken-feed.rss"]},
        {"id": "garbage", "name": "Garbage", "type": "rss", "start_urls": [f"{bad_site}/garbage-feed.rss"]},
    ]
    report, docs = crawl(tmp_path, sources, config={"max_page_bytes": 1_000_000, "min_body_chars": 100})
    bad = report["sources"]["bad"]
    errors = bad["errors"]
    assert errors.get("feed_malformed") == 1
    assert errors.get("too_large") == 2, errors  # the 3.2 MB page and the 50 MB gzip bomb
    assert errors.get("redirect_loop") == 1, errors
    assert errors.get("http_500") == 1 and errors.get("http_429") == 1, errors
    assert errors.get("robots_denied") == 1, errors
    assert bad["dropped_by_reason"] == {"no_body": 1, "not_html": 1}
    assert bad["unreachable"] is None
    assert bad["rate_limited_retries"] == 1
    titles = sorted(d["title"] for d in docs)
    assert titles == [
        "Bài bị cắt cụt giữa chừng",
        "Bài trả về sau khi chờ Retry-After",
        "Đồng Nai khắc phục hậu quả mưa lớn",
    ]
    garbage = report["sources"]["garbage"]
    assert garbage["errors"] == {"feed_malformed": 1} and garbage["fetched"] == 0


def test_unconfigured_and_unreachable_sources_are_reported_quickly(tmp_path: Path) -> None:
    port = _closed_port()
    sources = [
        {"id": "a", "name": "A", "type": "sitemap", "start_urls": [f"http://127.0.0.1:{port}/sitemap.xml"]},
        {"id": "b", "name": "B", "type": "listing", "start_urls": [f"http://127.0.0.1:{port}/"]},
        {
            "id": "yt",
            "name": "Kênh YouTube",
            "type": "youtube",
            "start_urls": ["https://www.youtube.com/@vtv24"],
        },
    ]
    report, docs = crawl(tmp_path, sources)
    assert docs == []
    assert "connection_refused" in report["sources"]["a"]["unreachable"]
    assert "connection_refused" in report["sources"]["b"]["unreachable"]
    assert report["sources"]["yt"]["errors"] == {"no_credentials": 1}, "no API key configured"
    assert "no_credentials" in report["sources"]["yt"]["unreachable"]
    assert report["duration_s"] < 20
