"""Telegram public channels through the `t.me/s/<channel>` web preview (kênh Telegram công khai).

The preview page lists the latest posts as `div.tgme_widget_message` blocks (`data-post` =
"<channel>/<id>", text in `.tgme_widget_message_text`, time in `time[datetime]`), newest last, with a
"load more" link `?before=<id>` for older posts. No API key and no login are needed; only public
channels have a preview. Pure parsing here; the spider does the fetching.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import lxml.html

from crawlers.extract import ExtractedArticle, collapse_whitespace, guess_lang

TITLE_CHARS = 120


@dataclass(frozen=True)
class TelegramPage:
    """The posts of one preview page and the `before` cursor for older posts (None at the start)."""

    posts: tuple[tuple[str, ExtractedArticle], ...]  # (post URL, post)
    older_cursor: str | None


def _post_text(node: lxml.html.HtmlElement) -> str:
    for br in node.xpath(".//br"):
        br.tail = "\n" + (br.tail or "")
    lines = (collapse_whitespace(line) for line in node.text_content().split("\n"))
    return "\n".join(line for line in lines if line)


def parse_preview(html: str | bytes, channel: str) -> TelegramPage:
    """Parse a `t.me/s/<channel>` page into posts; posts without text (photos only) are skipped."""
    tree = lxml.html.document_fromstring(html)
    posts: list[tuple[str, ExtractedArticle]] = []
    for message in tree.xpath(
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' tgme_widget_message ') and @data-post]"
    ):
        post_id = message.get("data-post", "")
        text_nodes = message.xpath(".//div[contains(@class, 'tgme_widget_message_text')]")
        if not post_id or not text_nodes:
            continue
        text = unicodedata.normalize("NFC", _post_text(text_nodes[0]))
        if not text:
            continue
        stamps = message.xpath(".//time/@datetime")
        published = datetime.fromisoformat(stamps[0]) if stamps else None
        owner = message.xpath(".//*[contains(@class, 'tgme_widget_message_owner_name')]//text()")
        images = tuple(
            style.split("url('", 1)[1].split("')", 1)[0]
            for style in message.xpath(".//a[contains(@class, 'tgme_widget_message_photo_wrap')]/@style")
            if "url('" in style
        )
        url = f"https://t.me/{post_id}"
        first_line = text.split("\n", 1)[0]
        posts.append(
            (
                url,
                ExtractedArticle(
                    title=first_line[:TITLE_CHARS],
                    text=text,
                    published_at=published,
                    author=collapse_whitespace("".join(owner)) or channel,
                    canonical_url=url,
                    lang=guess_lang(text),
                    images=images,
                ),
            )
        )
    more = tree.xpath("//a[contains(@class, 'tme_messages_more') and @data-before]/@data-before")
    return TelegramPage(posts=tuple(posts), older_cursor=more[0] if more else None)


def channel_of(url: str) -> str:
    """'https://t.me/s/baodongnai?before=10' → 'baodongnai'."""
    path = urlsplit(url).path.strip("/")
    return path.removeprefix("s/").split("/", 1)[0]
