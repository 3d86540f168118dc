"""A local stand-in for the Facebook Graph API (v19.0) and the YouTube Data API v3 on 127.0.0.1.

Responses follow the documented shapes of each API (`data` + `paging.cursors/next` for Graph,
`kind`/`etag`/`items`/`nextPageToken`/`pageInfo` for YouTube, and each API's error payload), with
Vietnamese content of the kind a provincial IOC watches. It checks the credentials the way the APIs do
(Graph: OAuth token, here expected in the Authorization header; YouTube: the key, here expected in
`X-Goog-Api-Key`) and records every request path so tests can check no secret ever went into a URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE_TOKEN = "EAAGm0PX4ZCpsBAKtest-page-token"
API_KEY = "AIzaSyTestKey-for-127.0.0.1"
PAGE_ID = "104523456789012"

FB_POSTS_PAGE_1 = [
    {
        "id": f"{PAGE_ID}_1111",
        "message": "Đồng Nai: Khởi công nút giao Võ Nguyên Giáp – Quốc lộ 1, "
        "tổng vốn hơn 1.300 tỷ đồng.\nDự kiến hoàn thành vào cuối năm 2026, giảm ùn tắc cửa ngõ Biên Hòa.",
        "created_time": "2025-10-22T01:15:00+0000",
        "updated_time": "2025-10-22T03:00:00+0000",
        "permalink_url": "https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk1111",
        "from": {"id": PAGE_ID, "name": "Báo Đồng Nai"},
    },
    {
        "id": f"{PAGE_ID}_2222",
        "message": "Mưa lớn kéo dài khiến nhiều tuyến đường ở phường Trấn Biên ngập sâu, "
        "người dân phải dắt bộ xe máy qua đoạn ngập.",
        "created_time": "2025-10-21T11:40:00+0000",
        "permalink_url": "https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk2222",
        "from": {"id": PAGE_ID, "name": "Báo Đồng Nai"},
        "full_picture": "https://scontent.xx.fbcdn.net/v/t39.30808-6/ngap-tran-bien.jpg",
    },
    {  # a shared link without a message: no text to collect, but its comments are read
        "id": f"{PAGE_ID}_3333",
        "created_time": "2025-10-21T09:00:00+0000",
        "permalink_url": "https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk3333",
        "from": {"id": PAGE_ID, "name": "Báo Đồng Nai"},
    },
]
FB_POSTS_PAGE_2 = [
    {
        "id": f"{PAGE_ID}_4444",
        "message": "Tỉnh Đồng Nai (mới) công bố đường dây nóng tiếp nhận phản ánh của người dân "
        "các xã, phường thuộc tỉnh Bình Phước cũ.",
        "created_time": "2025-10-20T08:05:00+0000",
        "permalink_url": "https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk4444",
        "from": {"id": PAGE_ID, "name": "Báo Đồng Nai"},
    }
]
FB_COMMENTS = {
    f"{PAGE_ID}_1111": [
        [
            {
                "id": "1111_90001",
                "message": "Mong dự án làm đúng tiến độ, đoạn này kẹt xe quá lâu rồi.",
                "created_time": "2025-10-22T02:00:00+0000",
                "from": {"id": "9001", "name": "Nguyễn Văn Hùng"},
            },
            {
                "id": "1111_90002",
                "message": "Tiền đền bù giải tỏa cho dân đã xong chưa ạ?",
                "created_time": "2025-10-22T01:50:00+0000",
                "permalink_url": "https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk1111?comment_id=90002",
            },
        ],
        [
            {
                "id": "1111_90003",
                "message": "Tin vui cho người dân Biên Hòa 👍",
                "created_time": "2025-10-22T01:20:00+0000",
                "from": {"id": "9003", "name": "Trần Thị Mai"},
            }
        ],
    ],
    f"{PAGE_ID}_3333": [
        [
            {
                "id": "3333_90004",
                "message": "Bài viết rất hữu ích, cảm ơn Báo Đồng Nai.",
                "created_time": "2025-10-21T10:00:00+0000",
                "from": {"id": "9004", "name": "Lê Minh Tuấn"},
            }
        ]
    ],
}

YT_CHANNEL_ID = "UCk2dDoNgNaiTV000000000"
YT_UPLOADS = "UUk2dDoNgNaiTV000000000"
YT_UPLOADS_PAGE_1 = [
    ("vidLuDongNai", "Lũ trên sông Đồng Nai dâng cao, nhiều hộ dân ven sông phải di dời",
     "Sáng 22/10, mực nước sông Đồng Nai đoạn qua phường Trấn Biên vượt báo động 2.\n"
     "Chính quyền địa phương đã hỗ trợ di dời 120 hộ dân.", "2025-10-22T04:00:00Z"),
    ("vidCaoToc", "Cao tốc Biên Hòa – Vũng Tàu thông xe đoạn qua Long Thành",
     "Đoạn cao tốc dài 18 km giúp rút ngắn thời gian di chuyển.", "2025-10-21T10:30:00Z"),
]  # fmt: skip
YT_UPLOADS_PAGE_2 = [
    ("vidBinhPhuoc", "Người dân Bình Phước cũ làm thủ tục hành chính tại trung tâm phục vụ mới",
     "Từ 1/7/2025 tỉnh Bình Phước sáp nhập vào tỉnh Đồng Nai.", "2025-10-19T02:00:00Z"),
]  # fmt: skip
YT_SEARCH = [
    ("vidSearch1", "Đồng Nai ngập nặng sau mưa lớn: &quot;Nước vào tận nhà&quot;",
     "Clip người dân ghi lại cảnh ngập tại Biên Hòa chiều 21/10 &amp; sáng 22/10.", "2025-10-22T06:00:00Z"),
    ("vidSearch2", "Ngập ở Đồng Nai: vì sao mưa 30 phút đã ngập?",
     "Chuyên gia phân tích nguyên nhân hệ thống thoát nước quá tải.", "2025-10-21T15:00:00Z"),
]  # fmt: skip


def _comment(comment_id: str, video: str, author: str, text: str, when: str) -> dict[str, Any]:
    return {
        "kind": "youtube#comment",
        "etag": f"etag-{comment_id}",
        "id": comment_id,
        "snippet": {
            "channelId": YT_CHANNEL_ID,
            "videoId": video,
            "textDisplay": text,
            "textOriginal": text,
            "authorDisplayName": author,
            "authorChannelUrl": f"http://www.youtube.com/@{author.replace(' ', '')}",
            "canRate": True,
            "viewerRating": "none",
            "likeCount": 3,
            "publishedAt": when,
            "updatedAt": when,
        },
    }


def _thread(comment: dict[str, Any], replies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    thread: dict[str, Any] = {
        "kind": "youtube#commentThread",
        "etag": f"etag-t-{comment['id']}",
        "id": comment["id"],
        "snippet": {
            "channelId": YT_CHANNEL_ID,
            "videoId": comment["snippet"]["videoId"],
            "topLevelComment": comment,
            "canReply": True,
            "totalReplyCount": len(replies or []),
            "isPublic": True,
        },
    }
    if replies:
        thread["replies"] = {"comments": replies}
    return thread


YT_COMMENTS_PAGE_1 = [
    _thread(
        _comment("UgxLu001", "vidLuDongNai", "@hoangnam", "Bà con ven sông cẩn thận nhé, nước lên nhanh lắm.",
                 "2025-10-22T05:00:00Z"),
        [_comment("UgxLu001.AaRep1", "vidLuDongNai", "@baodongnaitv", "Cảm ơn bạn đã chia sẻ thông tin.",
                  "2025-10-22T05:10:00Z")],
    ),
    _thread(_comment("UgxLu002", "vidLuDongNai", "@thuytrang", "Năm nào cũng ngập, bao giờ mới có đê bao?",
                     "2025-10-22T04:40:00Z")),
]  # fmt: skip
YT_COMMENTS_PAGE_2 = [
    _thread(_comment("UgxLu003", "vidLuDongNai", "@quanghuy", "Chính quyền hỗ trợ di dời kịp thời, rất tốt.",
                     "2025-10-22T04:20:00Z")),
]  # fmt: skip


def _snippet(video: str, title: str, description: str, when: str, channel: str) -> dict[str, Any]:
    return {
        "publishedAt": when,
        "channelId": YT_CHANNEL_ID,
        "title": title,
        "description": description,
        "thumbnails": {
            "default": {"url": f"https://i.ytimg.com/vi/{video}/default.jpg", "width": 120, "height": 90},
            "high": {"url": f"https://i.ytimg.com/vi/{video}/hqdefault.jpg", "width": 480, "height": 360},
        },
        "channelTitle": channel,
    }


def _playlist_items(videos: list[tuple[str, str, str, str]], next_token: str | None) -> dict[str, Any]:
    items = []
    for video, title, description, when in videos:
        snippet = _snippet(video, title, description, "2025-10-23T00:00:00Z", "Báo Đồng Nai TV")
        snippet |= {
            "playlistId": YT_UPLOADS,
            "position": len(items),
            "resourceId": {"kind": "youtube#video", "videoId": video},
            "videoOwnerChannelTitle": "Báo Đồng Nai TV",
            "videoOwnerChannelId": YT_CHANNEL_ID,
        }
        items.append(
            {
                "kind": "youtube#playlistItem",
                "etag": f"etag-{video}",
                "id": f"VVUxMjM0{video}",
                "snippet": snippet,
                "contentDetails": {"videoId": video, "videoPublishedAt": when},
            }
        )
    body: dict[str, Any] = {
        "kind": "youtube#playlistItemListResponse",
        "etag": "etag-list",
        "items": items,
        "pageInfo": {"totalResults": 3, "resultsPerPage": 50},
    }
    if next_token:
        body["nextPageToken"] = next_token
    return body


def _search(videos: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    return {
        "kind": "youtube#searchListResponse",
        "etag": "etag-search",
        "regionCode": "VN",
        "pageInfo": {"totalResults": len(videos), "resultsPerPage": 50},
        "items": [
            {
                "kind": "youtube#searchResult",
                "etag": f"etag-{video}",
                "id": {"kind": "youtube#video", "videoId": video},
                "snippet": _snippet(video, title, description, when, "Tin nhanh Đồng Nai")
                | {"liveBroadcastContent": "none", "publishTime": when},
            }
            for video, title, description, when in videos
        ],
    }


def youtube_error(status: int, reason: str, message: str, domain: str = "youtube.quota") -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


QUOTA_EXCEEDED = youtube_error(
    403,
    "quotaExceeded",
    'The request cannot be completed because you have exceeded your <a href="/youtube/v3/getting-started'
    '#quota">quota</a>.',
)
COMMENTS_DISABLED = youtube_error(
    403,
    "commentsDisabled",
    'The video identified by the <code><a href="/youtube/v3/docs/commentThreads/list#videoId">videoId'
    "</a></code> parameter has disabled comments.",
    domain="youtube.commentThread",
)
GRAPH_PAGE_LIMIT = {
    "error": {
        "message": "(#32) Page request limit reached",
        "type": "OAuthException",
        "code": 32,
        "fbtrace_id": "AWx1c2VfbGltaXQ",
    }
}
GRAPH_BAD_TOKEN = {
    "error": {
        "message": "Invalid OAuth access token - Cannot parse access token",
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "AbCdEfGh123",
    }
}


@dataclass
class SocialApiServer:
    base_url: str
    requests: list[str] = field(default_factory=list)
    throttled_once: set[str] = field(default_factory=set)

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v19.0"

    @property
    def youtube_url(self) -> str:
        return f"{self.base_url}/youtube/v3"


def _route(server: SocialApiServer, path: str, query: dict[str, str], headers: Any) -> tuple[int, Any, dict]:
    if path.startswith("/v19.0/"):
        if headers.get("Authorization") != f"Bearer {PAGE_TOKEN}":
            return 400, GRAPH_BAD_TOKEN, {}
        return _graph(server, path.removeprefix("/v19.0/"), query)
    if path.startswith("/youtube/v3/"):
        if headers.get("X-Goog-Api-Key") != API_KEY:
            message = "The request is missing a valid API key."
            return 403, youtube_error(403, "forbidden", message, domain="global"), {}
        return _youtube(server, path.removeprefix("/youtube/v3/"), query)
    return 404, {"error": "no such route"}, {}


def _graph(server: SocialApiServer, path: str, query: dict[str, str]) -> tuple[int, Any, dict]:
    node, _, edge = path.partition("/")
    if edge == "posts" and node == "trang-tra-ve-html":  # a captive portal / login wall, not JSON
        return 200, "<html><body>Vui lòng đăng nhập</body></html>", {"Content-Type": "text/html"}
    if edge == "posts" and node == "trang-bi-gioi-han":
        return 400, GRAPH_PAGE_LIMIT, {}
    if edge == "posts" and node in ("baodongnai.vn", PAGE_ID):
        if query.get("after") == "QVFIUnBhZ2Uy":
            return 200, {"data": FB_POSTS_PAGE_2, "paging": {"cursors": {"before": "QVFIUnBhZ2Uy"}}}, {}
        # Graph puts the access token into paging.next; the crawler must strip it before following.
        nxt = f"{server.graph_url}/{PAGE_ID}/posts?access_token={PAGE_TOKEN}&limit=25&after=QVFIUnBhZ2Uy"
        return (
            200,
            {"data": FB_POSTS_PAGE_1, "paging": {"cursors": {"after": "QVFIUnBhZ2Uy"}, "next": nxt}},
            {},
        )
    if edge == "comments":
        pages = FB_COMMENTS.get(node, [])
        number = int(query.get("after", "0") or 0)
        if not pages:
            return 200, {"data": []}, {}
        body: dict[str, Any] = {"data": pages[number]}
        if number + 1 < len(pages):
            body["paging"] = {
                "next": f"{server.graph_url}/{node}/comments?access_token={PAGE_TOKEN}&after={number + 1}"
            }
        return 200, body, {}
    return (
        400,
        {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100}},
        {},
    )


def _youtube(server: SocialApiServer, path: str, query: dict[str, str]) -> tuple[int, Any, dict]:
    if path == "channels":
        if query.get("forHandle") == "@baodongnaitv":
            item = {
                "kind": "youtube#channel",
                "etag": "etag-channel",
                "id": YT_CHANNEL_ID,
                "snippet": {"title": "Báo Đồng Nai TV", "customUrl": "@baodongnaitv"},
                "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": YT_UPLOADS}},
            }
            return 200, {"kind": "youtube#channelListResponse", "items": [item]}, {}
        return 200, {"kind": "youtube#channelListResponse", "pageInfo": {"totalResults": 0}}, {}
    if path == "playlistItems" and query.get("playlistId") == YT_UPLOADS:
        if query.get("pageToken") == "EAAaBlBUOkNBSQ":
            return 200, _playlist_items(YT_UPLOADS_PAGE_2, None), {}
        return 200, _playlist_items(YT_UPLOADS_PAGE_1, "EAAaBlBUOkNBSQ"), {}
    if path == "search":
        if query.get("q") == "quota":
            return 403, QUOTA_EXCEEDED, {}
        return 200, _search(YT_SEARCH), {}
    if path == "commentThreads":
        video = query.get("videoId", "")
        if video == "vidCaoToc":
            return 403, COMMENTS_DISABLED, {}
        if video == "vidLuDongNai":
            if video not in server.throttled_once:  # one 429 + Retry-After, then the answer
                server.throttled_once.add(video)
                return (
                    429,
                    youtube_error(429, "rateLimitExceeded", "Too many requests", "usageLimits"),
                    {"Retry-After": "1"},
                )
            if query.get("pageToken") == "QURTSl9pMg":
                return 200, {"kind": "youtube#commentThreadListResponse", "items": YT_COMMENTS_PAGE_2}, {}
            body = {
                "kind": "youtube#commentThreadListResponse",
                "items": YT_COMMENTS_PAGE_1,
                "nextPageToken": "QURTSl9pMg",
            }
            return 200, body, {}
        return 200, {"kind": "youtube#commentThreadListResponse", "items": []}, {}
    return 404, youtube_error(404, "notFound", "Not Found", domain="global"), {}


@contextmanager
def serve_social_api() -> Iterator[SocialApiServer]:
    """Serve both APIs on 127.0.0.1 (ephemeral port) for the duration of the block."""
    state: dict[str, SocialApiServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server = state["server"]
            server.requests.append(self.path)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            status, body, headers = _route(server, parts.path, query, self.headers)
            data = (body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)).encode("utf-8")
            self.send_response(status)
            content_type = headers.pop("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["server"] = SocialApiServer(base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
