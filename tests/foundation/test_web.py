"""The web app: probes, search API with problem details, and a search page that escapes crawled text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from duluan.db import open_database
from duluan.settings import Settings, load_settings
from duluan.web import create_app
from duluan.wiring import open_backend
from schema import Document

HOSTILE_TITLE = "<script>alert('xss')</script> Bình Phước mưa lớn"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(home=tmp_path / "home")
    open_database(s.db_url).dispose()
    backend = open_backend(s)
    backend.upsert(
        [
            Document(
                id="d1",
                url="https://baobinhphuoc.com.vn/tin/mua-lon-1.html",
                canonical_url="https://baobinhphuoc.com.vn/tin/mua-lon-1.html",
                source="baobinhphuoc",
                title=HOSTILE_TITLE,
                text="Mưa lớn gây ngập <b>nhiều</b> tuyến đường ở Đồng Xoài <script>steal()</script>.",
                published_at=datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
                fetched_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
                topic="moi-truong",
                sentiment="negative",
            ),
            Document(
                id="d2",
                url="javascript:alert(1)",
                canonical_url="javascript:alert(1)",
                source="forum",
                title="Bài đăng có đường dẫn lạ",
                text="Đường dẫn không phải http.",
                fetched_at=datetime(2026, 11, 21, 2, 0, tzinfo=UTC),
                topic="doi-song",
                sentiment="neutral",
            ),
        ]
    )
    backend.close()
    return s


def test_probes(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "index": "ok"}


def test_search_api_filters_and_problem_details(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    body = client.get("/api/v1/search", params={"q": "dong xoai", "topic": "moi-truong"}).json()
    assert body["total"] == 1 and body["hits"][0]["id"] == "d1"
    assert "<script>" not in body["hits"][0]["highlights"].get("text", "")
    bad = client.get("/api/v1/search", params={"q": '"Bình Phước'})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    problem = bad.json()
    assert problem["title"] == "Invalid query" and problem["position"] is not None and problem["detail_vi"]
    assert client.get("/api/v1/documents/d1").json()["title"] == HOSTILE_TITLE
    missing = client.get("/api/v1/documents/nope")
    assert missing.status_code == 404 and "search first" in missing.json()["detail"]
    assert client.get("/api/v1/search", params={"limit": 0}).status_code == 422


def test_search_page_escapes_crawled_text(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    page = client.get("/", params={"q": "mưa"}).text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<script>steal" not in page
    assert 'rel="noopener noreferrer"' in page
    listing = client.get("/").text
    assert 'href="javascript:' not in listing and "Bài đăng có đường dẫn lạ" in listing
