"""The SSRF guard at fetch time: a public source cannot lead the crawler into the private network.

The "public" site is a host name that does not resolve here (`tin.bao-mau.vn`), reached through a
forward HTTP proxy on 127.0.0.1 (Scrapy's HttpProxyMiddleware, `http_proxy`), so the crawl sees an
ordinary public URL; the proxy also relays requests for the internal server, as a network would.
Its feed links once straight to a loopback address and once to a page that redirects there. A second
server on 127.0.0.1 stands for the internal service: it must receive nothing.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest
from crawling import crawl

from duluan.demo_site.server import PAGES_DIR

PUBLIC = "http://tin.bao-mau.vn"


class _Internal(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Internal.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"<html><body><p>secret</p></body></html>")

    def log_message(self, *args: object) -> None:
        pass


def _proxy_handler(internal_port: int) -> type[BaseHTTPRequestHandler]:
    article = (PAGES_DIR / "html" / "dantri_10.html").read_bytes()
    feed = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Báo mẫu</title><link>{PUBLIC}/</link>
<item><title>Bài công khai</title><link>{PUBLIC}/bai-cong-khai.html</link></item>
<item><title>Liên kết nội bộ</title><link>http://127.0.0.1:{internal_port}/noi-bo.html</link></item>
<item><title>Chuyển hướng</title><link>{PUBLIC}/chuyen-huong.html</link></item>
</channel></rss>""".encode()

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the request line carries the absolute URL (proxy form)
            url = urlsplit(self.path)
            if (url.hostname, url.port) == ("127.0.0.1", internal_port):
                # Scrapy keeps the proxy for a same-scheme redirect: relay to the internal server.
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(self.path, timeout=5) as answer:
                    self._send(answer.status, answer.read(), answer.headers["Content-Type"])
                return
            if url.hostname != "tin.bao-mau.vn":
                self.send_error(502, "this proxy only serves the fixture site")
                return
            if url.path == "/rss":
                self._send(200, feed, "application/rss+xml")
            elif url.path == "/bai-cong-khai.html":
                self._send(200, article, "text/html; charset=utf-8")
            elif url.path == "/chuyen-huong.html":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{internal_port}/sau-chuyen-huong.html")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Proxy


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def through_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The internal server and the proxy running, and the crawl's environment pointing at the proxy."""
    _Internal.hits = []
    internal, _ = _serve(_Internal)
    proxy, _ = _serve(_proxy_handler(int(internal.server_address[1])))
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    try:
        yield
    finally:
        proxy.shutdown()
        internal.shutdown()


@pytest.mark.usefixtures("through_proxy")
def test_public_source_cannot_reach_private_addresses(tmp_path: Path) -> None:
    source = {"id": "bao-mau", "name": "Báo mẫu", "type": "rss", "start_urls": [f"{PUBLIC}/rss"]}

    report, docs = crawl(tmp_path, [source], config={"obey_robots": False})

    summary = report["sources"]["bao-mau"]
    assert _Internal.hits == [], "the internal server must receive no request"
    assert summary["errors"].get("blocked_private") == 2, summary  # the direct link and the redirect
    assert [d["url"] for d in docs] == [f"{PUBLIC}/bai-cong-khai.html"], "the public article is kept"


@pytest.mark.usefixtures("through_proxy")
def test_an_allowed_source_may_follow_into_the_private_network(tmp_path: Path) -> None:
    source = {
        "id": "bao-mau",
        "name": "Báo mẫu",
        "type": "rss",
        "start_urls": [f"{PUBLIC}/rss"],
        "allow_private": True,
    }

    report, _ = crawl(tmp_path, [source], config={"obey_robots": False})

    summary = report["sources"]["bao-mau"]
    assert "blocked_private" not in summary["errors"], summary
    assert sorted(_Internal.hits) == ["/noi-bo.html", "/sau-chuyen-huong.html"], summary
