"""Links from crawled documents into our pages."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_url(url: str) -> str:
    """Only http(s) links reach a page or message: a crawled `javascript:` URL becomes an inert '#'."""
    return url if urlsplit(url).scheme in ("http", "https") else "#"
