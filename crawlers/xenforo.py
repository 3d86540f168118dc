"""XenForo 2 forums such as voz.vn (diễn đàn): thread listings and thread pages, parsed to posts.

Forum listing: `div.structItem--thread` rows whose `.structItem-title a` links a thread (`/t/<slug>.<id>/`).
Thread page: `article.message` blocks with `data-author`, the post body in `.bbWrapper`, the time in
`time.u-dt[datetime]` and a path permalink (`/t/<slug>.<id>/post-<n>`), `link[rel=next]` for the next
page. Quoted blocks are removed from a post's text: they belong to the post they quote, and keeping
them would make every reply a near-duplicate of the thread's first post. Pure parsing, no fetching.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin

import lxml.html

from crawlers.extract import ExtractedArticle, collapse_whitespace, guess_lang

TITLE_CHARS = 160


@dataclass(frozen=True)
class ThreadPage:
    """The posts of one thread page (post URL, post) and the next page's URL, if any."""

    title: str
    posts: tuple[tuple[str, ExtractedArticle], ...]
    next_url: str | None


def thread_links(html: str | bytes, base_url: str) -> list[str]:
    """Absolute thread URLs of a forum listing page, sticky threads included, in page order."""
    tree = lxml.html.document_fromstring(html)
    hrefs = tree.xpath(
        "//div[contains(@class, 'structItem--thread')]//div[contains(@class, 'structItem-title')]"
        "/a[contains(@href, '/t/') or contains(@href, '/threads/')]/@href"
    )
    seen: list[str] = []
    for href in hrefs:
        absolute = urljoin(base_url, str(href))
        if absolute not in seen:
            seen.append(absolute)
    return seen


def _post_text(body: lxml.html.HtmlElement) -> str:
    for quote in body.xpath(".//blockquote | .//*[contains(@class, 'bbCodeBlock--quote')]"):
        if quote.getparent() is not None:
            quote.drop_tree()  # the reply's own text is often the quote's tail
    for br in body.xpath(".//br"):
        br.tail = "\n" + (br.tail or "")
    lines = (collapse_whitespace(line) for line in body.text_content().split("\n"))
    return unicodedata.normalize("NFC", "\n".join(line for line in lines if line))


def parse_thread(html: str | bytes, url: str) -> ThreadPage:
    """Posts of a thread page; posts with no own text (only a quote or an image) are skipped."""
    tree = lxml.html.document_fromstring(html)
    title = collapse_whitespace(" ".join(tree.xpath("//h1[contains(@class, 'p-title-value')]//text()")))
    posts: list[tuple[str, ExtractedArticle]] = []
    for message in tree.xpath("//article[contains(@class, 'message') and @data-author]"):
        bodies = message.xpath(".//div[contains(@class, 'bbWrapper')]")
        if not bodies:
            continue
        text = _post_text(bodies[0])
        if not text:
            continue
        links = message.xpath(".//a[contains(@href, '/post-')]/@href")
        stamps = message.xpath(".//time[contains(@class, 'u-dt')]/@datetime")
        post_url = urljoin(url, str(links[0])) if links else None
        if post_url is None:
            continue
        images = tuple(
            urljoin(url, str(src))
            for src in bodies[0].xpath(".//img/@data-url | .//img/@src")
            if "http" in str(src)
        )
        posts.append(
            (
                post_url,
                ExtractedArticle(
                    title=(title or text.split("\n", 1)[0])[:TITLE_CHARS],
                    text=text,
                    published_at=datetime.fromisoformat(str(stamps[0])) if stamps else None,
                    author=message.get("data-author") or None,
                    canonical_url=post_url,
                    lang=guess_lang(text),
                    images=images,
                ),
            )
        )
    next_links = tree.xpath("//link[@rel='next']/@href | //a[contains(@class, 'pageNav-jump--next')]/@href")
    return ThreadPage(
        title=title, posts=tuple(posts), next_url=urljoin(url, str(next_links[0])) if next_links else None
    )
