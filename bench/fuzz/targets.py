"""The fuzz targets: one function per target taking the raw bytes libFuzzer generated."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

import atheris

with atheris.instrument_imports(include=["index", "crawlers"]):
    from crawlers.extract import decode_html, extract_article
    from crawlers.urls import InvalidURLError, document_id, normalize_url
    from index.backend import QueryError
    from index.es_query import search_body
    from index.query import parse
    from index.tantivy_backend import QueryCompiler, build_schema

_COMPILER = QueryCompiler(build_schema())


def fuzz_query(data: bytes) -> None:
    """Any text parses (and compiles for tantivy and Elasticsearch) or raises QueryError in range."""
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        node = parse(text)
    except QueryError as exc:
        limit = len(unicodedata.normalize("NFC", text))
        if exc.position is not None and not 0 <= exc.position <= limit:
            raise AssertionError(f"error position {exc.position} outside the query of {limit} chars") from exc
        return
    _COMPILER.compile(node)
    json.dumps(search_body(node), default=str)


def fuzz_extract(data: bytes) -> None:
    """Any bytes decode; extraction gives an article with a body or None, never an exception."""
    provider = atheris.FuzzedDataProvider(data)
    charset = provider.PickValueInList([None, "utf-8", "windows-1258", "latin-1", "x-bogus"])
    raw = provider.ConsumeBytes(provider.remaining_bytes())
    decode_html(raw, charset)
    article = extract_article(
        raw, "https://baomau.example.vn/a.htm", min_body_chars=0, header_charset=charset
    )
    if article is not None and article.canonical_url is not None:
        assert urlsplit(article.canonical_url).scheme in ("http", "https"), article.canonical_url


def fuzz_urls(data: bytes) -> None:
    """normalize_url returns an idempotent http(s) URL or raises InvalidURLError."""
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    for candidate in (text, "https://vnexpress.net/" + text, "http://" + text):
        try:
            normalised = normalize_url(candidate)
        except InvalidURLError:
            continue
        assert normalize_url(normalised) == normalised, (candidate, normalised)
        assert urlsplit(normalised).scheme in ("http", "https")
        assert document_id(normalised) == document_id(candidate)


def fuzz_all(data: bytes) -> None:
    """The three targets in one run: the first byte chooses."""
    if not data:
        return
    ALL_TARGETS[("query", "extract", "urls")[data[0] % 3]](data[1:])


ALL_TARGETS: dict[str, Callable[[bytes], None]] = {
    "query": fuzz_query,
    "extract": fuzz_extract,
    "urls": fuzz_urls,
}
TARGETS: dict[str, Callable[[bytes], None]] = {**ALL_TARGETS, "all": fuzz_all}
