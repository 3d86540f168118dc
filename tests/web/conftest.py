"""Fixtures of the web tests: a home with a real index, app database, users and a digest; the real app
served by uvicorn in a child process; and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from crawlers.registry import SourceSpec, upsert_sources
from duluan.accounts import create_user
from duluan.db import open_database
from duluan.operations import render_digest
from duluan.settings import Settings, load_settings
from duluan.wiring import open_backend
from schema import Document

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE_TITLE = "<script>window.__pwned=1</script> Cháy chợ Đồng Xoài"
PASSWORD = "mat-khau-thu-nghiem"
USERS = {"admin1": "admin", "analyst1": "analyst", "staff1": "staff", "leader1": "leader"}


def _doc(i: int, title: str, text: str, *, hours_ago: float, **extra: object) -> Document:
    now = datetime.now(UTC)
    return Document(
        id=f"doc{i}",
        url=f"https://baodongnai.com.vn/tin/bai-{i}-{1000 + i}.html",
        canonical_url=f"https://baodongnai.com.vn/tin/bai-{i}-{1000 + i}.html",
        source=str(extra.pop("source", "baodongnai")),
        title=title,
        text=text,
        published_at=now - timedelta(hours=hours_ago),
        fetched_at=now - timedelta(hours=hours_ago) + timedelta(minutes=5),
        **extra,
    )


def seed_documents() -> list[Document]:
    """A small, varied corpus: a story run by three outlets, a hostile title, other topics."""
    flood = "Mưa lớn gây ngập nhiều tuyến đường ở Đồng Xoài, Bình Phước; người dân phải di dời tài sản."
    return [
        _doc(
            1,
            "Ngập nặng ở Đồng Xoài sau mưa lớn",
            flood,
            hours_ago=20,
            topic="moi-truong",
            sentiment="negative",
            sentiment_scores={"negative": 0.55, "neutral": 0.35, "positive": 0.10},
            cluster_id="c-flood",
            province_relevance=0.9,
        ),
        _doc(
            2,
            "Đồng Xoài ngập sâu, giao thông ùn tắc",
            flood,
            hours_ago=19,
            topic="moi-truong",
            sentiment="negative",
            sentiment_scores={"negative": 0.90, "neutral": 0.08, "positive": 0.02},
            cluster_id="c-flood",
            province_relevance=0.9,
            source="vnexpress",
        ),
        _doc(
            3,
            "Mưa lớn tại Bình Phước gây ngập",
            flood,
            hours_ago=18,
            topic="moi-truong",
            sentiment="negative",
            cluster_id="c-flood",
            province_relevance=0.8,
            source="tuoitre",
        ),
        _doc(
            4,
            HOSTILE_TITLE,
            "Một vụ cháy <b>chợ</b> xảy ra lúc rạng sáng <script>steal()</script>.",
            hours_ago=30,
            topic="phap-luat",
            sentiment="negative",
            sentiment_scores={"negative": 0.40, "neutral": 0.38, "positive": 0.22},
            province_relevance=0.7,
        ),
        _doc(
            5,
            "Khánh thành trường học mới ở Đồng Nai",
            "Trường học mới khang trang phục vụ học sinh.",
            hours_ago=40,
            topic="giao-duc",
            sentiment="positive",
            province_relevance=0.6,
        ),
        _doc(
            6,
            "Giá lúa tăng nhẹ ở miền Tây",
            "Giá lúa tăng nhẹ, nông dân phấn khởi với vụ mùa.",
            hours_ago=50,
            topic="kinh-te",
            sentiment="positive",
            source="vnexpress",
        ),
        _doc(
            7,
            "Đội bóng địa phương thắng trận",
            "Trận bóng đá hấp dẫn trên sân nhà.",
            hours_ago=70,
            topic="the-thao",
            sentiment="neutral",
            source="tuoitre",
        ),
    ]


def build_home(home: Path) -> Settings:
    """Index, app database (migrated), one user per role, sources and today's digest under `home`."""
    settings = load_settings(home=home)
    engine = open_database(settings.db_url)
    for username, role in USERS.items():
        create_user(engine, username, PASSWORD, role, display_name=f"Người dùng {username}")
    upsert_sources(
        engine,
        [
            SourceSpec(
                id="baodongnai",
                name="Báo Đồng Nai",
                type="rss",
                start_urls=["https://baodongnai.com.vn/rss/thoi-su.rss"],
            ),
            SourceSpec(
                id="vnexpress",
                name="VnExpress",
                type="rss",
                start_urls=["https://vnexpress.net/rss/tin-moi-nhat.rss"],
            ),
        ],
    )
    engine.dispose()
    backend = open_backend(settings)
    backend.upsert(seed_documents())
    backend.close()
    render_digest(settings, (datetime.now(settings.tz) - timedelta(hours=20)).date(), None)
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    settings: Settings
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`duluan serve` (uvicorn) on a free loopback port, stopped by PID afterwards."""
    home = tmp_path_factory.mktemp("web") / "home"
    settings = build_home(home)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DULUAN_")}
    env.update(DULUAN_HOME=str(home), DULUAN_WEB__PORT=str(port), DULUAN_WEB__HOST="127.0.0.1")
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "duluan", "serve"], cwd=home.parent, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield LiveServer(url, settings, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
