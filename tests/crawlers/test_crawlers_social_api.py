"""Facebook Graph API and YouTube Data API v3 families: parsing, errors, and real crawls against a
local server that answers in each API's documented format."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import social_api_server as api
from crawling import crawl

from crawlers import social_api
from crawlers.urls import document_id


@pytest.fixture(scope="module")
def server() -> Iterator[api.SocialApiServer]:
    with api.serve_social_api() as running:
        yield running


def _config(server: api.SocialApiServer) -> dict[str, Any]:
    return {
        "facebook_graph_url": server.graph_url,
        "facebook_page_token": api.PAGE_TOKEN,
        "youtube_api_url": server.youtube_url,
        "youtube_api_key": api.API_KEY,
        "batch_size": 4,
    }


SOURCES = [
    {"id": "fb-baodongnai", "name": "Báo Đồng Nai (Facebook)", "type": "facebook",
     "start_urls": ["https://www.facebook.com/baodongnai.vn/"]},
    {"id": "fb-limited", "name": "Trang bị giới hạn", "type": "facebook",
     "start_urls": ["https://www.facebook.com/trang-bi-gioi-han"]},
    {"id": "fb-html", "name": "Trang trả về HTML", "type": "facebook",
     "start_urls": ["https://www.facebook.com/trang-tra-ve-html"]},
    {"id": "yt-missing", "name": "Kênh không tồn tại", "type": "youtube",
     "start_urls": ["https://www.youtube.com/@khongtontai"]},
    {"id": "yt-channel", "name": "Báo Đồng Nai TV", "type": "youtube",
     "start_urls": ["https://www.youtube.com/@baodongnaitv"]},
    {"id": "yt-search", "name": "YouTube: Đồng Nai ngập", "type": "youtube",
     "start_urls": ["https://www.youtube.com/results?search_query=%C4%90%E1%BB%93ng+Nai+ng%E1%BA%ADp"]},
    {"id": "yt-quota", "name": "YouTube: hết hạn mức", "type": "youtube",
     "start_urls": ["https://www.youtube.com/results?search_query=quota"]},
]  # fmt: skip


def test_facebook_and_youtube_crawls_with_paging_comments_and_errors(
    server: api.SocialApiServer, tmp_path: Path
) -> None:
    report, docs = crawl(tmp_path, SOURCES, config=_config(server))
    by_source: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_source.setdefault(doc["source"], []).append(doc)
    assert all(d["source_type"] == "social" for d in docs)
    assert all(d["id"] == document_id(d["canonical_url"]) for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)

    # Facebook: 3 posts with text over 2 pages (the share without a message is skipped) + 4 comments.
    fb = {d["canonical_url"]: d for d in by_source["fb-baodongnai"]}
    post = fb["https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk1111"]
    assert post["title"].startswith("Đồng Nai: Khởi công nút giao Võ Nguyên Giáp")
    assert "Biên Hòa" in post["text"] and post["author"] == "Báo Đồng Nai" and post["lang"] == "vi"
    assert datetime.fromisoformat(post["published_at"]).isoformat() == "2025-10-22T01:15:00+00:00"
    assert "https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk4444" in fb, "paging.next was followed"
    assert fb["https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk2222"]["images"] == [
        "https://scontent.xx.fbcdn.net/v/t39.30808-6/ngap-tran-bien.jpg"
    ]
    comments = {url: d for url, d in fb.items() if "comment_id=" in url}
    assert len(fb) == 7 and len(comments) == 4, sorted(fb)
    hung = comments["https://www.facebook.com/baodongnai.vn/posts/pfbid02Xk1111?comment_id=90001"]
    assert hung["author"] == "Nguyễn Văn Hùng" and "kẹt xe" in hung["text"]
    assert report["sources"]["fb-baodongnai"]["errors"] == {}

    limited = report["sources"]["fb-limited"]
    assert limited["errors"] == {"rate_limited": 1} and "rate_limited" in limited["unreachable"]
    assert limited["finish_reason"] == "facebook_rate_limited"

    html_page = report["sources"]["fb-html"]
    assert html_page["errors"] == {"api_malformed": 1} and "api_malformed" in html_page["unreachable"]
    missing = report["sources"]["yt-missing"]
    assert missing["errors"] == {"not_found": 1} and "not_found" in missing["unreachable"]

    # YouTube channel: uploads over 2 pages, comments (and a reply) over 2 pages after one 429.
    channel = report["sources"]["yt-channel"]
    assert channel["errors"] == {"comments_disabled": 1}, "a video without comments is no failure"
    assert channel["rate_limited_retries"] == 1 and channel["unreachable"] is None
    videos = {d["canonical_url"]: d for d in by_source["yt-channel"]}
    lu = videos["https://www.youtube.com/watch?v=vidLuDongNai"]
    assert lu["title"] == "Lũ trên sông Đồng Nai dâng cao, nhiều hộ dân ven sông phải di dời"
    assert "di dời 120 hộ dân" in lu["text"] and lu["author"] == "Báo Đồng Nai TV"
    assert lu["published_at"].startswith("2025-10-22T04:00:00") and lu["images"][0].endswith("hqdefault.jpg")
    assert "https://www.youtube.com/watch?v=vidBinhPhuoc" in videos, "nextPageToken was followed"
    yt_comments = [url for url in videos if "lc=" in url]
    assert len(yt_comments) == 4, sorted(videos)
    reply = videos["https://www.youtube.com/watch?v=vidLuDongNai&lc=UgxLu001.AaRep1"]
    assert reply["author"] == "@baodongnaitv" and reply["text"] == "Cảm ơn bạn đã chia sẻ thông tin."
    assert len(videos) == 7

    search = {d["title"]: d for d in by_source["yt-search"]}
    assert 'Đồng Nai ngập nặng sau mưa lớn: "Nước vào tận nhà"' in search, "search.list HTML entities decoded"
    assert len(search) == 2

    quota = report["sources"]["yt-quota"]
    assert quota["errors"] == {"quota_exceeded": 1} and "quota_exceeded" in quota["unreachable"]
    assert quota["finish_reason"] == "youtube_quota_exceeded"

    # Secrets travel in headers only; Graph's paging links lose their access_token before use.
    assert server.requests and not any(api.PAGE_TOKEN in r or api.API_KEY in r for r in server.requests)

    # A second run with the same state collects nothing twice.
    again, docs_again = crawl(tmp_path, [SOURCES[0], SOURCES[4], SOURCES[5]], config=_config(server))
    assert docs_again == []
    assert again["sources"]["fb-baodongnai"]["skipped_seen"] >= 3


def test_a_wrong_token_is_reported_as_auth_and_stops_the_source(
    server: api.SocialApiServer, tmp_path: Path
) -> None:
    config = {**_config(server), "facebook_page_token": "expired"}
    report, docs = crawl(tmp_path, SOURCES[:1], config=config)
    assert docs == []
    source = report["sources"]["fb-baodongnai"]
    assert source["errors"] == {"auth": 1} and "auth" in source["unreachable"]


# ---------------------------------------------------------------- pure parsing


def test_start_urls_name_what_to_read() -> None:
    assert social_api.facebook_page_ref("https://www.facebook.com/baodongnai.vn/") == "baodongnai.vn"
    assert social_api.facebook_page_ref("https://m.facebook.com/profile.php?id=1045234") == "1045234"
    assert social_api.facebook_page_ref("https://www.facebook.com/pg/vtv24/posts/") == "vtv24"
    with pytest.raises(ValueError, match="does not name a Facebook page"):
        social_api.facebook_page_ref("https://www.facebook.com/groups/123")
    target = social_api.youtube_target
    assert target("https://www.youtube.com/@VTV24") == social_api.YoutubeTarget("handle", "@VTV24")
    assert target("https://www.youtube.com/channel/UCabc") == social_api.YoutubeTarget("channel", "UCabc")
    assert target("https://www.youtube.com/results?search_query=B%C3%ACnh+Ph%C6%B0%E1%BB%9Bc") == (
        social_api.YoutubeTarget("search", "Bình Phước")
    )
    with pytest.raises(ValueError, match="not a YouTube address"):
        target("https://vnexpress.net/")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [(4, 400, "rate_limited"), (17, 400, "rate_limited"), (32, 400, "rate_limited"),
     (613, 400, "rate_limited"), (80001, 400, "rate_limited"), (190, 400, "auth"),
     (10, 403, "permission"), (100, 400, "not_found"), (1, 500, "api_error")],
)  # fmt: skip
def test_graph_error_payloads_are_classified(code: int, status: int, kind: str) -> None:
    payload = {"error": {"message": f"(#{code}) lỗi", "type": "OAuthException", "code": code}}
    error = social_api.facebook_error(payload, status)
    assert error is not None and error.kind == kind and error.code == str(code)
    assert error.stops_run == (kind in ("rate_limited", "auth"))
    assert social_api.facebook_error({"data": []}) is None


def test_youtube_error_payloads_are_classified() -> None:
    quota = social_api.youtube_error(api.QUOTA_EXCEEDED, 403)
    assert quota is not None and quota.kind == "quota_exceeded" and quota.stops_run
    disabled = social_api.youtube_error(api.COMMENTS_DISABLED, 403)
    assert disabled is not None and disabled.kind == "comments_disabled" and not disabled.stops_run
    assert social_api.youtube_error({}, 429) == social_api.ApiError(
        "rate_limited", "http_429", "HTTP 429 Too Many Requests"
    )
    missing = social_api.youtube_error(api.youtube_error(403, "forbidden", "missing key", "global"), 403)
    assert missing is not None and missing.kind == "auth"
    assert social_api.youtube_error({"items": []}, 200) is None


def test_malformed_pages_raise_a_clear_error() -> None:
    with pytest.raises(social_api.ApiResponseError, match="no 'data' list"):
        social_api.parse_facebook_posts({"paging": {}})
    with pytest.raises(social_api.ApiResponseError, match="expected a JSON object"):
        social_api.parse_youtube_search([1, 2])


def test_graph_paging_link_loses_its_access_token() -> None:
    page = social_api.parse_facebook_posts(
        {
            "data": [],
            "paging": {"next": "https://graph.facebook.com/v19.0/1/posts?access_token=SECRET&after=X"},
        }
    )
    assert page.next_url == "https://graph.facebook.com/v19.0/1/posts?after=X"
