"""Telegram public channel previews (t.me/s/<channel>), parsed and crawled from a local server."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_crawlers_run import crawl

from crawlers.telegram import channel_of, parse_preview


def _message(post: str, text_html: str, when: str, photo: str | None = None) -> str:
    photo_html = (
        f'<a class="tgme_widget_message_photo_wrap blured" href="https://t.me/{post}" '
        f"style=\"width:800px;background-image:url('{photo}')\"></a>"
        if photo
        else ""
    )
    text = (
        f'<div class="tgme_widget_message_text js-message_text" dir="auto">{text_html}</div>'
        if text_html
        else ""
    )
    return (
        '<div class="tgme_widget_message_wrap js-widget_message_wrap">'
        f'<div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{post}">'
        '<div class="tgme_widget_message_bubble"><div class="tgme_widget_message_author accent_color">'
        '<a class="tgme_widget_message_owner_name" href="https://t.me/baodongnai_tg"><span dir="auto">'
        "Báo Đồng Nai</span></a></div>"
        f"{photo_html}{text}"
        '<div class="tgme_widget_message_footer compact js-message_footer">'
        '<div class="tgme_widget_message_info">'
        '<span class="tgme_widget_message_views">1.2K</span><span class="tgme_widget_message_meta">'
        f'<a class="tgme_widget_message_date" href="https://t.me/{post}">'
        f'<time datetime="{when}" class="time">'
        "08:15</time></a></span></div></div></div></div></div>"
    )


def _page(messages: list[str], before: str | None) -> bytes:
    more = (
        '<div class="tgme_widget_message_centered js-messages_more_wrap">'
        f'<a href="/s/baodongnai_tg?before={before}"'
        f' class="tme_messages_more js-messages_more" data-before="{before}"></a></div>'
        if before
        else ""
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Báo Đồng Nai – Telegram</title></head><body>'
        f'<section class="tgme_channel_history js-message_history">{more}{"".join(messages)}</section>'
        "</body></html>"
    ).encode()


LATEST = _page(
    [
        _message(
            "baodongnai_tg/1201",
            "Đồng Nai: Sạt lở bờ sông Đồng Nai đoạn qua phường Bửu Long<br/>"
            "Chiều 1/3, chính quyền địa phương đã di dời 12 hộ dân ra khỏi khu vực nguy hiểm.",
            "2026-03-01T08:15:00+00:00",
            photo="https://cdn4.cdn-telegram.org/file/sat-lo.jpg",
        ),
        _message(
            "baodongnai_tg/1202",
            "",
            "2026-03-01T09:00:00+00:00",
            photo="https://cdn4.cdn-telegram.org/file/x.jpg",
        ),
        _message(
            "baodongnai_tg/1203",
            "<b>Cao tốc Biên Hòa – Vũng Tàu</b> thông xe đoạn qua Long Thành trước Tết.",
            "2026-03-01T10:30:00+00:00",
        ),
    ],
    before="1201",
)
OLDER = _page(
    [
        _message(
            "baodongnai_tg/1199",
            "Bình Phước (cũ): Người dân Đồng Xoài phản ánh đường ngập sau mưa lớn.",
            "2026-02-28T07:00:00+00:00",
        ),
        _message(
            "baodongnai_tg/1200", "Thời tiết Đồng Nai hôm nay: mưa rào rải rác.", "2026-02-28T23:00:00+00:00"
        ),
    ],
    before=None,
)


def test_parse_preview() -> None:
    page = parse_preview(LATEST, "baodongnai_tg")
    assert page.older_cursor == "1201"
    assert [url for url, _ in page.posts] == [
        "https://t.me/baodongnai_tg/1201",
        "https://t.me/baodongnai_tg/1203",
    ]
    first = page.posts[0][1]
    assert first.title == "Đồng Nai: Sạt lở bờ sông Đồng Nai đoạn qua phường Bửu Long"
    assert first.text.split("\n")[1].startswith("Chiều 1/3")
    assert first.published_at == datetime(2026, 3, 1, 8, 15, tzinfo=UTC)
    assert first.author == "Báo Đồng Nai" and first.lang == "vi"
    assert first.images == ("https://cdn4.cdn-telegram.org/file/sat-lo.jpg",)
    assert parse_preview(OLDER, "baodongnai_tg").older_cursor is None
    assert channel_of("https://t.me/s/baodongnai_tg?before=10") == "baodongnai_tg"


class TelegramHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            body, status = b"User-agent: *\nAllow: /\n", 200
        elif self.path == "/s/baodongnai_tg":
            body, status = LATEST, 200
        elif self.path == "/s/baodongnai_tg?before=1201":
            body, status = OLDER, 200
        else:
            body, status = b"not found", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def telegram_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TelegramHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_crawl_channel_with_pagination(telegram_site: str, tmp_path: Path) -> None:
    source = {
        "id": "tg-baodongnai",
        "name": "Báo Đồng Nai (Telegram)",
        "type": "telegram",
        "source_type": "social",
        "start_urls": [f"{telegram_site}/s/baodongnai_tg"],
    }
    report, docs = crawl(tmp_path, [source])
    assert report["sources"]["tg-baodongnai"]["indexed"] == 4, json.dumps(report)
    assert sorted(d["url"] for d in docs) == [
        f"https://t.me/baodongnai_tg/{n}" for n in (1199, 1200, 1201, 1203)
    ]
    assert {d["source_type"] for d in docs} == {"social"}
    assert all(d["published_at"] and d["cluster_id"] for d in docs)
