"""The web app: probes, search API with problem details, and a search page that escapes crawled text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from duluan.accounts import create_api_token, create_user
from duluan.db import open_database
from duluan.settings import Settings, load_settings
from duluan.web import create_app
from duluan.wiring import open_backend
from schema import Document

HOSTILE_TITLE = "<script>alert('xss')</script> Bình Phước mưa lớn"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(home=tmp_path / "home")
    engine = open_database(s.db_url)
    create_user(engine, "staff1", "mat-khau-dai-1", "staff")
    engine.dispose()
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


def _api_client(settings: Settings) -> TestClient:
    """A client that authenticates like a script: with a bearer API token."""
    engine = open_database(settings.db_url)
    token = create_api_token(engine, "staff1", "test")
    engine.dispose()
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})


def _browser_client(settings: Settings) -> TestClient:
    """A client that signs in through the login form, like a person (session cookie + CSRF)."""
    client = TestClient(create_app(settings))
    form = client.get("/login").text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post(
        "/login",
        data={"username": "staff1", "password": "mat-khau-dai-1", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    return client


def test_probes(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "index": "ok"}


def test_search_api_filters_and_problem_details(settings: Settings) -> None:
    anonymous = TestClient(create_app(settings)).get("/api/v1/search", params={"q": "dong xoai"})
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith(
        "application/problem"
    )
    client = _api_client(settings)
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
    client = _browser_client(settings)
    page = client.get("/", params={"q": "mưa"}).text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<script>steal" not in page
    assert 'rel="noopener noreferrer"' in page
    listing = client.get("/").text
    assert 'href="javascript:' not in listing and "Bài đăng có đường dẫn lạ" in listing
