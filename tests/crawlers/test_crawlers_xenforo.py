"""XenForo forums (voz.vn layout): listing → threads → posts, parsed and crawled from a local server."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_crawlers_run import crawl

from crawlers.xenforo import parse_thread, thread_links

FORUM = """<!DOCTYPE html><html lang="vi-VN"><head><meta charset="utf-8">
<title>Chuyện trò linh tinh™ | VOZ</title></head><body>
<div class="p-body-pageContent"><div class="structItemContainer">
<div class="structItem structItem--thread is-prefix1 js-inlineModContainer js-threadListItem-901">
 <div class="structItem-cell structItem-cell--main"><div class="structItem-title">
  <a href="/t/ket-xe-kinh-hoang-tren-cao-toc-tp-hcm-long-thanh.901/" class="" data-tp-primary="on">
  Kẹt xe kinh hoàng trên cao tốc TP.HCM - Long Thành chiều nay</a></div>
  <div class="structItem-minor"><ul class="structItem-parts">
  <li><a href="/u/thim-ben-hoa.5/" class="username">thím Biên Hòa</a></li></ul></div></div></div>
<div class="structItem structItem--thread js-threadListItem-902">
 <div class="structItem-cell structItem-cell--main"><div class="structItem-title">
  <a href="/t/gia-dat-dong-xoai-tang-manh-sau-sap-nhap.902/">Giá đất Đồng Xoài tăng mạnh sau sáp nhập?</a>
 </div></div></div>
</div></div></body></html>"""


def _post(thread: str, post_id: int, author: str, when: str, body: str) -> str:
    return f"""
<article class="message message--post js-post js-inlineModContainer" data-author="{author}"
  data-content="post-{post_id}" id="js-post-{post_id}">
 <div class="message-inner"><div class="message-cell message-cell--main"><div class="message-main">
  <header class="message-attribution message-attribution--split">
   <ul class="message-attribution-main listInline">
   <li class="u-concealed"><a href="/t/{thread}/post-{post_id}" rel="nofollow">
   <time class="u-dt" dir="auto" datetime="{when}" data-time="1772366400">Hôm nay lúc 15:00</time>
   </a></li></ul>
  </header>
  <div class="message-content js-messageContent"><div class="message-userContent lbContainer js-lbContainer">
   <article class="message-body js-selectToQuote"><div class="bbWrapper">{body}</div></article>
  </div></div></div></div></div>
</article>"""


def _thread(thread: str, title: str, posts: str, next_href: str | None) -> bytes:
    link = f'<link rel="next" href="{next_href}" />' if next_href else ""
    return (
        '<!DOCTYPE html><html lang="vi-VN"><head><meta charset="utf-8">'
        f"<title>{title} | VOZ</title>{link}</head>"
        f'<body><div class="p-title"><h1 class="p-title-value">{title}</h1></div>'
        f'<div class="block-body js-replyNewMessageContainer">{posts}</div></body></html>'
    ).encode()


T1 = "ket-xe-kinh-hoang-tren-cao-toc-tp-hcm-long-thanh.901"
T2 = "gia-dat-dong-xoai-tang-manh-sau-sap-nhap.902"
QUOTE = (
    '<blockquote data-attributes="member: 5" data-quote="thím Biên Hòa" '
    'class="bbCodeBlock bbCodeBlock--expandable bbCodeBlock--quote js-expandWatch">'
    '<div class="bbCodeBlock-content">Kẹt cứng từ nút giao Vành đai 2</div>'
    "</blockquote>"
)
PAGES = {
    "/f/chuyen-tro-linh-tinh.17/": FORUM.encode(),
    f"/t/{T1}/": _thread(
        T1,
        "Kẹt xe kinh hoàng trên cao tốc TP.HCM - Long Thành chiều nay",
        _post(T1, 1001, "thím Biên Hòa", "2026-03-01T15:00:00+0700",
              "Kẹt cứng từ nút giao Vành đai 2 tới Long Thành,<br />"
              "xe nhích từng mét, các thím tránh đường này nhé.")
        + _post(T1, 1002, "dân Đồng Nai", "2026-03-01T15:20:00+0700",
                QUOTE + "Đi Quốc lộ 51 cũng kẹt không kém."),
        next_href=f"/t/{T1}/page-2",
    ),
    f"/t/{T1}/page-2": _thread(
        T1,
        "Kẹt xe kinh hoàng trên cao tốc TP.HCM - Long Thành chiều nay",
        _post(T1, 1003, "xe ôm công nghệ", "2026-03-01T16:05:00+0700", QUOTE),  # only a quote: skipped
        next_href=None,
    ),
    f"/t/{T2}/": _thread(
        T2,
        "Giá đất Đồng Xoài tăng mạnh sau sáp nhập?",
        _post(T2, 2001, "nhà đầu tư F0", "2026-02-28T09:00:00+0700",
              "Nghe nói đất nền Đồng Xoài lên 20% sau khi Bình Phước nhập vào Đồng Nai, "
              "có thật không các thím?"),
        next_href=None,
    ),
}  # fmt: skip


def test_parse_listing_and_thread() -> None:
    base = "https://voz.vn/f/chuyen-tro-linh-tinh.17/"
    assert thread_links(FORUM, base) == [f"https://voz.vn/t/{T1}/", f"https://voz.vn/t/{T2}/"]
    page = parse_thread(PAGES[f"/t/{T1}/"], f"https://voz.vn/t/{T1}/")
    assert page.title == "Kẹt xe kinh hoàng trên cao tốc TP.HCM - Long Thành chiều nay"
    assert page.next_url == f"https://voz.vn/t/{T1}/page-2"
    (url1, first), (_, reply) = page.posts
    assert url1 == f"https://voz.vn/t/{T1}/post-1001"
    assert first.author == "thím Biên Hòa"
    assert first.text == (
        "Kẹt cứng từ nút giao Vành đai 2 tới Long Thành,\nxe nhích từng mét, các thím tránh đường này nhé."
    )
    assert first.published_at is not None and first.published_at.astimezone(UTC) == datetime(
        2026, 3, 1, 8, 0, tzinfo=UTC
    )
    assert reply.text == "Đi Quốc lộ 51 cũng kẹt không kém.", "quoted text is not part of the reply"
    assert parse_thread(PAGES[f"/t/{T1}/page-2"], f"https://voz.vn/t/{T1}/page-2").posts == ()


class ForumHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"User-agent: *\nAllow: /\n" if self.path == "/robots.txt" else PAGES.get(self.path)
        self.send_response(200 if body else 404)
        body = body or b"not found"
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def forum() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ForumHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_crawl_forum(forum: str, tmp_path: Path) -> None:
    source = {
        "id": "voz-cttl",
        "name": "VOZ - Chuyện trò linh tinh",
        "type": "xenforo",
        "source_type": "forum",
        "start_urls": [f"{forum}/f/chuyen-tro-linh-tinh.17/"],
    }
    report, docs = crawl(tmp_path, [source])
    assert report["sources"]["voz-cttl"]["indexed"] == 3
    assert sorted(d["url"].rsplit("/", 1)[1] for d in docs) == ["post-1001", "post-1002", "post-2001"]
    assert {d["source_type"] for d in docs} == {"forum"}
    assert {d["author"] for d in docs} == {"thím Biên Hòa", "dân Đồng Nai", "nhà đầu tư F0"}
