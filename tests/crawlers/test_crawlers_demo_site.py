"""The bundled demo site serves the real pages, a parseable RSS feed, a sitemap and robots.txt."""

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import feedparser
import pytest

from crawlers.extract import extract_article
from duluan.demo_site import DemoSite, serve_demo_site


@pytest.fixture(scope="module")
def site():
    with serve_demo_site() as running:
        yield running


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_feed_lists_every_article_with_real_titles_and_dates(site: DemoSite) -> None:
    status, headers, body = _get(site.feed_url)
    assert status == 200 and "rss" in headers["Content-Type"]
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.get("bozo_exception")
    assert len(feed.entries) == 13
    titles = {e.title for e in feed.entries}
    assert "Đau bụng kéo dài, phát hiện ung thư lymphoma ruột non" in titles
    assert "Khung thành sân Mỹ Đình được bắt vít chắc chắn trước trận gặp Malaysia" in titles
    entry = next(e for e in feed.entries if "malaysia-gui-loi" in e.link)
    assert entry.published == "Sat, 24 Dec 2022 19:21:03 +0700"
    assert all(e.link.startswith(site.base_url) for e in feed.entries)


def test_sitemap_and_robots(site: DemoSite) -> None:
    status, _, body = _get(site.sitemap_url)
    assert status == 200
    locs = [el.text for el in ET.fromstring(body).iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert sorted(locs) == sorted(site.article_urls())
    status, _, robots = _get(site.base_url + "/robots.txt")
    assert status == 200 and b"Allow: /" in robots and site.sitemap_url.encode() in robots


def test_article_pages_are_the_real_bytes_and_extract(site: DemoSite) -> None:
    article = site.articles[0]
    status, _, body = _get(site.base_url + article.path)
    assert status == 200
    assert body == article.file.read_bytes()
    extracted = extract_article(body, site.base_url + article.path)
    assert extracted is not None and extracted.canonical_url == article.original_url


def test_conditional_get_and_404(site: DemoSite) -> None:
    url = site.article_urls()[1]
    _, headers, _ = _get(url)
    status, _, body = _get(url, {"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    status, _, _ = _get(site.base_url + "/khong-co-trang-nay.htm")
    assert status == 404


def test_listing_pages_link_articles(site: DemoSite) -> None:
    status, _, body = _get(site.listing_url)
    assert status == 200
    text = body.decode("utf-8")
    for article in site.articles:
        assert f'href="{article.path}"' in text
    status, _, listing = _get(site.base_url + "/dantri/listing/dantri_listing_1.html")
    assert status == 200 and len(listing) > 50_000


def test_close_frees_the_port() -> None:
    running = serve_demo_site()
    url = running.feed_url
    running.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_generated_copies_are_distinct_documents_on_real_templates() -> None:
    with serve_demo_site(copies=3) as big:
        assert len(big.articles) == 39
        copy = next(a for a in big.articles if a.copy == 2 and "vnexpress" in a.path)
        _, _, body = _get(big.base_url + copy.path)
        extracted = extract_article(body, big.base_url + copy.path)
        assert extracted is not None
        assert (
            extracted.canonical_url
            == "https://vnexpress.net/c2/dau-bung-keo-dai-phat-hien-ung-thu-lymphoma-ruot-non-4954454.html"
        )
        assert extracted.title == "Đau bụng kéo dài, phát hiện ung thư lymphoma ruột non"
    with pytest.raises(ValueError, match="copies"):
        serve_demo_site(copies=0)
