"""Property-based tests of hostile input: HTML extraction, feeds, sitemaps, URLs, configuration.

Each property holds for any input hypothesis generates (bounded examples, derandomised for CI;
longer runs live in bench/fuzz): the code returns a result or rejects the input clearly — it never
raises anything else, and what it returns keeps its documented invariants.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import scrapy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scrapy.http import Request, XmlResponse
from scrapy.utils.test import get_crawler

from crawlers.extract import ExtractedArticle, decode_html, extract_article
from crawlers.items import RunContext
from crawlers.registry import SourceSpec
from crawlers.run import CrawlConfig
from crawlers.spiders import SourceSpider
from crawlers.state import CrawlState
from crawlers.urls import InvalidURLError, document_id, normalize_url
from duluan.settings import ConfigError, Settings, load_settings

PROPS = settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
FEW = settings(PROPS, max_examples=40)

VI_TEXT = st.text(
    alphabet=st.sampled_from(
        list("aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọ ,.;:!?\n")
    ),
    max_size=400,
)

# ---------------------------------------------------------------- HTML extraction

TAGS = ["p", "div", "article", "span", "h1", "h2", "a", "script", "style", "table", "td", "li", "ul", "br"]


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    """Plausible, broken and mis-declared article pages."""
    parts = [
        draw(st.sampled_from(["", "<!DOCTYPE html>", '<?xml version="1.0" encoding="utf-8"?>', "\ufeff"]))
    ]
    charset = draw(st.sampled_from(["utf-8", "windows-1258", "iso-8859-1", "bogus-charset", ""]))
    parts.append(f'<html lang="{draw(st.sampled_from(["vi", "en", "", "x"]))}"><head>')
    if charset:
        parts.append(f'<meta charset="{charset}">')
    parts.append(f"<title>{draw(VI_TEXT)}</title>")
    for name in draw(
        st.lists(st.sampled_from(["og:title", "article:published_time", "og:url", "author"]), max_size=3)
    ):
        parts.append(f'<meta property="{name}" content="{draw(st.text(max_size=40))}">')
    if draw(st.booleans()):
        parts.append(f'<link rel="canonical" href="{draw(st.text(max_size=40))}">')
    parts.append("</head><body>")
    for _ in range(draw(st.integers(0, 12))):
        tag = draw(st.sampled_from(TAGS))
        parts.append(f"<{tag}>{draw(VI_TEXT)}" + (f"</{tag}>" if draw(st.booleans()) else ""))
    if draw(st.booleans()):
        parts.append("</body></html>")
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1258"]))
    return "".join(parts).encode(encoding, errors="replace")


def _check_article(result: ExtractedArticle | None, min_body_chars: int) -> None:
    if result is None:
        return
    assert len(result.text) >= min_body_chars
    assert isinstance(result.title, str)
    if result.canonical_url is not None:
        assert urlsplit(result.canonical_url).scheme in ("http", "https")


@PROPS
@given(st.binary(max_size=3000), st.sampled_from([None, "utf-8", "windows-1258", "nonsense", ""]))
@example(b"\x00\x00\x00", None)
@example(b'<?xml version="1.0" encoding="utf-16"?><html><body><p>x</p></body></html>', "utf-8")
@example(b"\xff\xfe<\x00h\x00", None)
def test_extract_arbitrary_bytes(raw: bytes, header_charset: str | None) -> None:
    assert isinstance(decode_html(raw, header_charset), str)
    _check_article(
        extract_article(
            raw, "https://baomau.example.vn/a.htm", min_body_chars=0, header_charset=header_charset
        ),
        0,
    )


@PROPS
@given(html_pages(), st.sampled_from([None, "https://dantri.com.vn/xa-hoi/a-2026.htm", "not a url", ""]))
def test_extract_generated_pages(page: bytes, url: str | None) -> None:
    for minimum in (0, 200):
        _check_article(extract_article(page, url, min_body_chars=minimum), minimum)
    _check_article(extract_article(page.decode("utf-8", errors="replace"), url, min_body_chars=0), 0)


# ---------------------------------------------------------------- feeds and sitemaps


@contextmanager
def spider_for(kind: str) -> Iterator[SourceSpider]:
    """A real SourceSpider bound to a real crawler and crawl state (no reactor needed to parse)."""
    with tempfile.TemporaryDirectory() as state_dir:
        source = SourceSpec.model_validate(
            {"id": "hostile", "name": "hostile", "type": kind, "start_urls": ["http://127.0.0.1:9/start"]}
        )
        crawler = get_crawler(SourceSpider)
        crawler._apply_settings()
        state = CrawlState(Path(state_dir))
        crawler.duluan = RunContext(  # type: ignore[attr-defined]
            source=source, config=CrawlConfig(), state=state, clusterer=None, enrich=None, sink=lambda b: None
        )
        spider = SourceSpider.from_crawler(crawler)
        crawler.spider = spider
        try:
            yield spider
        finally:
            state.close()


def _response(body: bytes) -> XmlResponse:
    request = Request("http://127.0.0.1:9/start", meta={"start_url": "http://127.0.0.1:9/start"})
    return XmlResponse(url=request.url, body=body, request=request)


def _check_requests(requests: list[Any]) -> None:
    for request in requests:
        assert isinstance(request, scrapy.Request)
        assert urlsplit(request.url).scheme in ("http", "https")


LINKS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "/a.htm",
            "https://dantri.com.vn/x.htm",
            "javascript:alert(1)",
            "mailto:a@b.vn",
            "//evil",
            "http://[::1",
            "",
        ]
    ),
)
DATES = st.one_of(
    st.text(max_size=25),
    st.sampled_from(
        ["Mon, 01 Jan 2024 00:00:00 GMT", "2026-11-01T07:00:00+07:00", "31/12/2026", "9999-99-99"]
    ),
)


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    items = "".join(
        f"<item><title>{draw(st.text(max_size=20))}</title><link>{draw(LINKS)}</link>"
        f"<pubDate>{draw(DATES)}</pubDate></item>"
        for _ in range(draw(st.integers(0, 5)))
    )
    root = draw(st.sampled_from(["rss", "feed", "rdf:RDF", "html"]))
    body = f"<{root}><channel>{items}</channel>" + (f"</{root}>" if draw(st.booleans()) else "")
    return body.encode("utf-8", errors="replace")


@FEW
@given(st.one_of(st.binary(max_size=2000), feeds()))
@example(b"<rss><channel><item><link>http://[::1</link></item></channel></rss>")
def test_feed_parsing_yields_only_fetchable_requests(body: bytes) -> None:
    with spider_for("rss") as spider:
        _check_requests(list(spider.parse_feed(_response(body))))


@st.composite
def sitemaps(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["urlset", "sitemapindex", "html"]))
    entry = "url" if kind == "urlset" else "sitemap"
    entries = "".join(
        f"<{entry}><loc>{draw(LINKS)}</loc><lastmod>{draw(DATES)}</lastmod></{entry}>"
        for _ in range(draw(st.integers(0, 5)))
    )
    body = (
        f'<?xml version="1.0"?><{kind} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{kind}>'
    )
    raw = body.encode("utf-8", errors="replace")
    return gzip.compress(raw) if draw(st.booleans()) else raw


@FEW
@given(
    st.one_of(st.binary(max_size=2000), sitemaps(), st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b))
)
def test_sitemap_parsing_yields_only_fetchable_requests(body: bytes) -> None:
    with spider_for("sitemap") as spider:
        _check_requests(list(spider.parse_sitemap(_response(body))))


# ---------------------------------------------------------------- URL normalisation

HOSTS = st.sampled_from(
    [
        "dantri.com.vn",
        "www.vnexpress.net",
        "m.tuoitre.vn",
        "amp.baodongnai.com.vn",
        "127.0.0.1",
        "www.m.dantri.com.vn",
        "xn--bo-dng-nai-ufb.vn",
        "VNEXPRESS.NET",
    ]
)
SEGMENTS = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"), max_size=8),
    max_size=4,
)
PARAMS = st.lists(
    st.tuples(
        st.sampled_from(["utm_source", "fbclid", "id", "page", "q", "gclid", "a"]), st.text(max_size=6)
    ),
    max_size=4,
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    host = draw(HOSTS)
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = (
        "/"
        + "/".join(draw(SEGMENTS))
        + draw(st.sampled_from(["", "/", "/amp", ".amp", ".htm", "/amp/amp", "-amp.html"]))
    )
    query = "&".join(f"{k}={v}" for k, v in draw(PARAMS))
    fragment = draw(st.sampled_from(["", "#top", "#"]))
    return f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "") + fragment


@PROPS
@given(urls())
@example("https://vnexpress.net/a.html?utm_source=x&b=2&a=1#c")
@example("https://www.m.vnexpress.net/amp/amp/x.amp")  # atheris finding: one prefix stripped per pass
@example("http://dantri.com.vn:80/")
def test_normalize_url_is_idempotent_and_keeps_the_scheme(url: str) -> None:
    normalised = normalize_url(url)
    assert normalize_url(normalised) == normalised
    assert urlsplit(normalised).scheme == urlsplit(url).scheme.lower()
    assert "#" not in normalised and "utm_" not in normalised
    assert document_id(normalised) == document_id(url)
    if urlsplit(url).port is None:  # with an explicit port, http and https are different servers
        other = ("http" if urlsplit(url).scheme.lower() == "https" else "https") + url[url.index(":") :]
        assert document_id(other) == document_id(url), "http and https copies share one id"


@PROPS
@given(st.text(max_size=60))
@example("javascript:alert(1)")
@example("http://M.M..M\x01")  # atheris finding (bench/fuzz urls): normalising twice changed the host
@example("http://")
@example("http://[::1")
@example("https://a.vn:99999/")
def test_normalize_url_accepts_or_rejects_clearly(text: str) -> None:
    try:
        normalised = normalize_url(text)
    except InvalidURLError as exc:
        assert "http" in str(exc)
        return
    assert urlsplit(normalised).scheme in ("http", "https")
    assert normalize_url(normalised) == normalised


# ---------------------------------------------------------------- configuration

_SECTIONS = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
}
LEAF_KEYS = [f"{section}.{key}" for section, model in _SECTIONS.items() for key in model.model_fields] + [
    name for name in Settings.model_fields if name not in _SECTIONS
]
TOML_TEXT = st.characters(blacklist_categories=["Cs"])
TOML_VALUES = st.one_of(
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(TOML_TEXT, max_size=12),
    st.lists(st.text(TOML_TEXT, max_size=6), max_size=3),
    st.sampled_from(
        ["07:00", "25:99", "tantivy", "solr", "Asia/Ho_Chi_Minh", "Mars/Base", "INFO", "http://x"]
    ),
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08x}" for c in value)
    return f'"{escaped}"'


def _toml(config: dict[str, Any]) -> str:
    top = [f"{k} = {_toml_value(v)}" for k, v in config.items() if "." not in k]
    sections: dict[str, list[str]] = {}
    for key, value in config.items():
        if "." in key:
            section, leaf = key.split(".", 1)
            sections.setdefault(section, []).append(f"{leaf} = {_toml_value(value)}")
    return "\n".join(top + [f"[{s}]\n" + "\n".join(lines) for s, lines in sections.items()]) + "\n"


@contextmanager
def config_file(text: str) -> Iterator[str]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("DULUAN_")}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "duluan.toml"
        path.write_text(text, encoding="utf-8")
        for key in saved:
            del os.environ[key]
        os.environ["DULUAN_CONFIG"] = str(path)
        try:
            yield str(path)
        finally:
            del os.environ["DULUAN_CONFIG"]
            os.environ.update(saved)


@PROPS
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(LEAF_KEYS), st.sampled_from(["tpyo", "web.prot", "crawl.x"])),
        TOML_VALUES,
        max_size=6,
    )
)
@example({"web.port": 0})
@example({"index.backend": "solr"})
@example({"tpyo": 1})
def test_random_toml_gives_settings_or_an_error_naming_the_key(config: dict[str, Any]) -> None:
    with config_file(_toml(config)) as path:
        try:
            loaded = load_settings()
        except ConfigError as exc:
            message = str(exc)
            assert path in message
            named = [
                line.strip().split(":", 1)[0] for line in message.splitlines()[1:] if line.startswith("  ")
            ]
            assert named, message
            for key in named:
                # The key named is one we wrote (or the section holding it, for a section-level error).
                assert any(k == key or k.startswith(key + ".") or key.startswith(k + ".") for k in config), (
                    key,
                    config,
                )
            return
    assert isinstance(loaded, Settings)


@FEW
@given(st.text(max_size=200))
@example("[web\nport = 1")
@example('home = "\\x"')
def test_arbitrary_text_as_config_is_settings_or_config_error(text: str) -> None:
    with config_file(text) as path:
        try:
            load_settings()
        except ConfigError as exc:
            assert path in str(exc)
