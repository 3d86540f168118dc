"""Public social posts through official APIs (mạng xã hội): Facebook Graph API and YouTube Data API v3.

Pure functions only: which API URL to call for a registry start URL, how to read a response page
into `(permalink, ExtractedArticle)` posts plus the cursor of the next page, and how to classify an
error payload. The spider (`crawlers.spiders`) does the fetching.

A source's start URLs are the public addresses a person would open:

- Facebook: `https://www.facebook.com/<page>` (or `profile.php?id=<id>`) → `GET /<page>/posts`, then
  `GET /<post-id>/comments` per post. The page token goes in the `Authorization` header, never in a URL,
  so it cannot leak into logs; `paging.next` links are followed with their `access_token` removed.
- YouTube: `https://www.youtube.com/channel/<UC…>` or `/@handle` → `channels.list` → the uploads
  playlist → `playlistItems.list`; `https://www.youtube.com/results?search_query=<words>` →
  `search.list` (newest first, Vietnam, Vietnamese); then `commentThreads.list` per video. The key goes
  in the `X-Goog-Api-Key` header.

Document ids come from the canonical permalinks (`https://www.facebook.com/...` as Graph returns it,
`https://www.youtube.com/watch?v=<id>` and `...&lc=<comment id>` for comments).
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from crawlers.extract import ExtractedArticle, collapse_whitespace, guess_lang

TITLE_CHARS = 120

#: Graph API error codes that mean "slow down": app (4), user (17), page (32), per-hour (613) limits
#: and the business-use-case page limits (80001-80014).
FACEBOOK_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
FACEBOOK_AUTH_CODES = frozenset({102, 190, 463, 467})
FACEBOOK_PERMISSION_CODES = frozenset({10, *range(200, 300)})

YOUTUBE_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
YOUTUBE_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
YOUTUBE_AUTH_REASONS = frozenset({"keyInvalid", "keyExpired", "forbidden", "accessNotConfigured"})

FACEBOOK_POST_FIELDS = "id,message,story,created_time,updated_time,permalink_url,from{id,name},full_picture"
FACEBOOK_COMMENT_FIELDS = "id,message,created_time,permalink_url,from{id,name}"

Post = tuple[str, ExtractedArticle]


class ApiResponseError(ValueError):
    """A response that is neither a data page nor a documented error payload."""


@dataclass(frozen=True)
class ApiError:
    """An API error payload, classified.

    `kind` is the counter key: `rate_limited` and `quota_exceeded` stop calling the API for the rest
    of the run (the next scheduled run tries again); `auth` means the token/key must be fixed in
    settings; `permission`, `not_found`, `comments_disabled` and `api_error` concern one object only.
    """

    kind: str
    code: str
    message: str

    @property
    def stops_run(self) -> bool:
        return self.kind in ("rate_limited", "quota_exceeded", "auth")


@dataclass(frozen=True)
class ApiPage:
    """One page of an API listing: posts, ids of objects whose comments to read, next page URL."""

    posts: tuple[Post, ...]
    comment_targets: tuple[tuple[str, str], ...]  # (object id for the API, permalink of the parent)
    next_url: str | None


# ---------------------------------------------------------------- shared helpers


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    lines = (collapse_whitespace(line) for line in unicodedata.normalize("NFC", value).splitlines())
    return "\n".join(line for line in lines if line)


def _title_of(text: str) -> str:
    return text.split("\n", 1)[0][:TITLE_CHARS]


def _time(value: Any) -> datetime | None:
    """Graph ('2025-10-22T12:25:52+0000') and YouTube ('2025-10-22T12:25:52Z') timestamps."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _article(
    text: str, published: datetime | None, author: str | None, url: str, images: tuple[str, ...] = ()
) -> ExtractedArticle:
    return ExtractedArticle(
        title=_title_of(text),
        text=text,
        published_at=published,
        author=author or None,
        canonical_url=url,
        lang=guess_lang(text),
        images=images,
    )


def _with_query(base: str, path: str, params: dict[str, str | int]) -> str:
    return f"{base.rstrip('/')}/{path.lstrip('/')}?{urlencode(params)}"


def without_param(url: str, name: str) -> str:
    """`url` without the query parameter `name` (drops `access_token` from Graph paging links)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _require_mapping(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ApiResponseError(f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


# ---------------------------------------------------------------- Facebook Graph API


def facebook_page_ref(url: str) -> str:
    """'https://www.facebook.com/baodongnai.vn/' → 'baodongnai.vn'; 'profile.php?id=123' → '123'."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host.endswith("facebook.com"):
        raise ValueError(f"{url!r} is not a Facebook page address (https://www.facebook.com/<page>)")
    path = parts.path.strip("/")
    if path == "profile.php":
        page_id = dict(parse_qsl(parts.query)).get("id", "")
        if page_id.isdigit():
            return page_id
    segments = [s for s in path.split("/") if s]
    if segments and segments[0] == "pg":  # https://www.facebook.com/pg/<page>/posts
        segments = segments[1:]
    if not segments or segments[0] in ("profile.php", "groups", "watch", "share"):
        raise ValueError(f"{url!r} does not name a Facebook page; use https://www.facebook.com/<page>")
    return segments[0]


def facebook_posts_url(base: str, page_ref: str, limit: int = 25) -> str:
    return _with_query(base, f"{quote(page_ref)}/posts", {"fields": FACEBOOK_POST_FIELDS, "limit": limit})


def facebook_comments_url(base: str, post_id: str, limit: int = 100) -> str:
    params: dict[str, str | int] = {
        "fields": FACEBOOK_COMMENT_FIELDS,
        "limit": limit,
        "order": "reverse_chronological",
        "filter": "stream",
    }
    return _with_query(base, f"{quote(post_id)}/comments", params)


def facebook_error(payload: Any, status: int = 200) -> ApiError | None:
    """The Graph error in `{"error": {...}}`, classified; None for a data payload."""
    if not isinstance(payload, dict) or "error" not in payload:
        if status == 429:
            return ApiError("rate_limited", "http_429", "HTTP 429 Too Many Requests")
        return None
    error = payload["error"] if isinstance(payload["error"], dict) else {"message": str(payload["error"])}
    code = error.get("code")
    message = str(error.get("message") or "no message")
    if (isinstance(code, int) and code in FACEBOOK_RATE_LIMIT_CODES) or status == 429:
        kind = "rate_limited"
    elif code in FACEBOOK_AUTH_CODES or (error.get("type") == "OAuthException" and code is None):
        kind = "auth"
    elif code in FACEBOOK_PERMISSION_CODES:
        kind = "permission"
    elif code == 100 or status == 404:
        kind = "not_found"
    else:
        kind = "api_error"
    subcode = error.get("error_subcode")
    return ApiError(kind, f"{code}" + (f"/{subcode}" if subcode else ""), message)


def _facebook_next(payload: dict[str, Any]) -> str | None:
    paging = payload.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    return without_param(nxt, "access_token") if isinstance(nxt, str) and nxt else None


def _facebook_author(item: dict[str, Any]) -> str | None:
    author = item.get("from")
    return str(author.get("name")) if isinstance(author, dict) and author.get("name") else None


def parse_facebook_posts(payload: Any) -> ApiPage:
    """A `/<page>/posts` page: posts with text (shares without a message are skipped), every post's
    comments as targets, and the next page link."""
    payload = _require_mapping(payload, "Graph posts")
    data = payload.get("data")
    if not isinstance(data, list):
        raise ApiResponseError("Graph posts: no 'data' list in the response")
    posts: list[Post] = []
    targets: list[tuple[str, str]] = []
    for item in data:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        post_id = str(item["id"])
        url = str(item.get("permalink_url") or f"https://www.facebook.com/{post_id}")
        targets.append((post_id, url))
        text = _text(item.get("message")) or _text(item.get("story"))
        if not text:
            continue
        picture = item.get("full_picture")
        images = (str(picture),) if isinstance(picture, str) and picture else ()
        posts.append(
            (url, _article(text, _time(item.get("created_time")), _facebook_author(item), url, images))
        )
    return ApiPage(tuple(posts), tuple(targets), _facebook_next(payload))


def parse_facebook_comments(payload: Any, post_url: str) -> ApiPage:
    """A `/<post>/comments` page; a comment without its own permalink gets `<post>?comment_id=<id>`."""
    payload = _require_mapping(payload, "Graph comments")
    data = payload.get("data")
    if not isinstance(data, list):
        raise ApiResponseError("Graph comments: no 'data' list in the response")
    posts: list[Post] = []
    separator = "&" if "?" in post_url else "?"
    for item in data:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        text = _text(item.get("message"))
        if not text:
            continue
        comment_id = str(item["id"]).rsplit("_", 1)[-1]
        url = str(item.get("permalink_url") or f"{post_url}{separator}comment_id={comment_id}")
        posts.append((url, _article(text, _time(item.get("created_time")), _facebook_author(item), url)))
    return ApiPage(tuple(posts), (), _facebook_next(payload))


# ---------------------------------------------------------------- YouTube Data API v3


@dataclass(frozen=True)
class YoutubeTarget:
    """What a YouTube start URL asks for: a channel's uploads (by id or @handle) or a keyword search."""

    kind: str  # "channel" | "handle" | "search" | "playlist"
    value: str


def youtube_target(url: str) -> YoutubeTarget:
    """Read a public YouTube address into what to list; raises ValueError with the accepted forms."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host.endswith("youtube.com"):
        raise ValueError(f"{url!r} is not a YouTube address")
    segments = [s for s in parts.path.split("/") if s]
    query = dict(parse_qsl(parts.query))
    if segments[:1] == ["results"] and query.get("search_query", "").strip():
        return YoutubeTarget("search", query["search_query"].strip())
    if segments[:1] == ["channel"] and len(segments) > 1:
        return YoutubeTarget("channel", segments[1])
    if segments and segments[0].startswith("@"):
        return YoutubeTarget("handle", segments[0])
    if segments[:1] == ["playlist"] and query.get("list"):
        return YoutubeTarget("playlist", query["list"])
    raise ValueError(
        f"{url!r}: use https://www.youtube.com/channel/<id>, https://www.youtube.com/@<handle>, "
        "https://www.youtube.com/playlist?list=<id> or https://www.youtube.com/results?search_query=<words>"
    )


def youtube_channels_url(base: str, target: YoutubeTarget) -> str:
    key = "forHandle" if target.kind == "handle" else "id"
    return _with_query(base, "channels", {"part": "snippet,contentDetails", key: target.value})


def youtube_playlist_items_url(base: str, playlist_id: str, page_token: str | None = None) -> str:
    params: dict[str, str | int] = {
        "part": "snippet,contentDetails",
        "playlistId": playlist_id,
        "maxResults": 50,
    }
    if page_token:
        params["pageToken"] = page_token
    return _with_query(base, "playlistItems", params)


def youtube_search_url(
    base: str, query: str, page_token: str | None = None, published_after: datetime | None = None
) -> str:
    params: dict[str, str | int] = {
        "part": "snippet",
        "q": query,
        "type": "video",
        "order": "date",
        "regionCode": "VN",
        "relevanceLanguage": "vi",
        "maxResults": 50,
    }
    if published_after is not None:
        params["publishedAfter"] = published_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    if page_token:
        params["pageToken"] = page_token
    return _with_query(base, "search", params)


def youtube_comment_threads_url(base: str, video_id: str, page_token: str | None = None) -> str:
    params: dict[str, str | int] = {
        "part": "snippet,replies",
        "videoId": video_id,
        "order": "time",
        "textFormat": "plainText",
        "maxResults": 100,
    }
    if page_token:
        params["pageToken"] = page_token
    return _with_query(base, "commentThreads", params)


def youtube_error(payload: Any, status: int) -> ApiError | None:
    """The `{"error": {"code", "message", "errors": [{"reason", "domain"}]}}` payload, classified."""
    if not isinstance(payload, dict) or "error" not in payload:
        if status == 429:
            return ApiError("rate_limited", "http_429", "HTTP 429 Too Many Requests")
        if status >= 400:
            return ApiError("api_error", f"http_{status}", f"HTTP {status} without an error payload")
        return None
    error = payload["error"] if isinstance(payload["error"], dict) else {"message": str(payload["error"])}
    raw_details = error.get("errors")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    reasons = [str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")]
    reason = reasons[0] if reasons else str(error.get("status") or error.get("code") or status)
    message = html.unescape(str(error.get("message") or "no message"))
    if YOUTUBE_QUOTA_REASONS & set(reasons):
        kind = "quota_exceeded"
    elif YOUTUBE_RATE_REASONS & set(reasons) or status == 429:
        kind = "rate_limited"
    elif "commentsDisabled" in reasons:
        kind = "comments_disabled"
    elif YOUTUBE_AUTH_REASONS & set(reasons) or status == 401 or reason == "PERMISSION_DENIED":
        kind = "auth"
    elif status == 404 or any(r.endswith("NotFound") for r in reasons):
        kind = "not_found"
    else:
        kind = "api_error"
    return ApiError(kind, reason, message)


def _youtube_items(payload: Any, what: str) -> list[dict[str, Any]]:
    payload = _require_mapping(payload, what)
    items = payload.get("items", [])
    if not isinstance(items, list):
        raise ApiResponseError(f"{what}: 'items' is not a list")
    return [item for item in items if isinstance(item, dict)]


def parse_youtube_channels(payload: Any) -> str | None:
    """The uploads playlist id of the first channel in a `channels.list` response; None if unknown."""
    for item in _youtube_items(payload, "channels.list"):
        uploads = _dict(_dict(item.get("contentDetails")).get("relatedPlaylists")).get("uploads")
        if isinstance(uploads, str) and uploads:
            return uploads
    return None


def video_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def _thumbnail(snippet: dict[str, Any]) -> tuple[str, ...]:
    thumbs = snippet.get("thumbnails")
    if not isinstance(thumbs, dict):
        return ()
    for size in ("maxres", "standard", "high", "medium", "default"):
        thumb = thumbs.get(size)
        if isinstance(thumb, dict) and isinstance(thumb.get("url"), str):
            return (thumb["url"],)
    return ()


def _video_post(
    video_id: str, snippet: dict[str, Any], published: Any, author: Any, unescape: bool
) -> Post | None:
    title, description = str(snippet.get("title") or ""), str(snippet.get("description") or "")
    if unescape:  # search.list returns HTML-escaped titles and descriptions
        title, description = html.unescape(title), html.unescape(description)
    title = _text(title).replace("\n", " ")
    body = _text(description)
    text = "\n".join(part for part in (title, body) if part)
    if not text or title in ("Private video", "Deleted video"):
        return None
    url = video_url(video_id)
    article = _article(text, _time(published), str(author) if author else None, url, _thumbnail(snippet))
    article = ExtractedArticle(
        title=title[:TITLE_CHARS] or article.title,
        text=article.text,
        published_at=article.published_at,
        author=article.author,
        canonical_url=url,
        lang=article.lang,
        images=article.images,
    )
    return url, article


def _youtube_next(payload: Any) -> str | None:
    token = payload.get("nextPageToken") if isinstance(payload, dict) else None
    return str(token) if token else None


def parse_youtube_playlist_items(payload: Any) -> tuple[ApiPage, str | None]:
    """A `playlistItems.list` page of a channel's uploads → (videos, next page token)."""
    posts: list[Post] = []
    targets: list[tuple[str, str]] = []
    for item in _youtube_items(payload, "playlistItems.list"):
        snippet = _dict(item.get("snippet"))
        details = _dict(item.get("contentDetails"))
        video_id = details.get("videoId") or _dict(snippet.get("resourceId")).get("videoId")
        if not video_id:
            continue
        published = details.get("videoPublishedAt") or snippet.get("publishedAt")
        author = snippet.get("videoOwnerChannelTitle") or snippet.get("channelTitle")
        post = _video_post(str(video_id), snippet, published, author, unescape=False)
        if post is not None:
            posts.append(post)
            targets.append((str(video_id), post[0]))
    return ApiPage(tuple(posts), tuple(targets), None), _youtube_next(payload)


def parse_youtube_search(payload: Any) -> tuple[ApiPage, str | None]:
    """A `search.list` page (type=video) → (videos, next page token)."""
    posts: list[Post] = []
    targets: list[tuple[str, str]] = []
    for item in _youtube_items(payload, "search.list"):
        ident = _dict(item.get("id"))
        snippet = _dict(item.get("snippet"))
        video_id = ident.get("videoId")
        if not video_id:
            continue
        post = _video_post(
            str(video_id), snippet, snippet.get("publishedAt"), snippet.get("channelTitle"), True
        )
        if post is not None:
            posts.append(post)
            targets.append((str(video_id), post[0]))
    return ApiPage(tuple(posts), tuple(targets), None), _youtube_next(payload)


def _comment_post(comment: Any, video_id: str) -> Post | None:
    if not isinstance(comment, dict) or not comment.get("id"):
        return None
    snippet = _dict(comment.get("snippet"))
    text = _text(html.unescape(str(snippet.get("textDisplay") or snippet.get("textOriginal") or "")))
    if not text:
        return None
    url = f"{video_url(str(snippet.get('videoId') or video_id))}&lc={comment['id']}"
    return url, _article(text, _time(snippet.get("publishedAt")), snippet.get("authorDisplayName"), url)


def parse_youtube_comment_threads(payload: Any, video_id: str) -> tuple[ApiPage, str | None]:
    """A `commentThreads.list` page → (top-level comments and their returned replies, next token)."""
    posts: list[Post] = []
    for thread in _youtube_items(payload, "commentThreads.list"):
        snippet = _dict(thread.get("snippet"))
        top = _comment_post(snippet.get("topLevelComment"), video_id)
        if top is not None:
            posts.append(top)
        replies = _dict(thread.get("replies"))
        reply_list = replies.get("comments")
        for reply in reply_list if isinstance(reply_list, list) else []:
            post = _comment_post(reply, video_id)
            if post is not None:
                posts.append(post)
    return ApiPage(tuple(posts), (), None), _youtube_next(payload)
