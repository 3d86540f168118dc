"""URL identity: every variant of one article URL gets the same normalised form and document id."""

import itertools
import random

import pytest

from crawlers.urls import InvalidURLError, document_id, normalize_url, site_of

ARTICLES = [
    "https://vnexpress.net/dau-bung-keo-dai-phat-hien-ung-thu-lymphoma-ruot-non-4954454.html",
    "https://dantri.com.vn/the-thao/dai-thang-5-0-truoc-lao-malaysia-gui-loi-thach-thuc-toi-viet-nam-20221224192103764.htm",
    "https://tuoitre.vn/dong-nai-khoi-cong-cao-toc-20250701.htm",
    "https://baobinhphuoc.com.vn/news/4/171234/tin-tuc?id=171234",
]


def _variants(url: str, rng: random.Random) -> list[str]:
    """Realistic shared-link variants: mirror hosts, AMP, trackers, fragments, case, default port."""
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    hosts = [host, "www." + host, "m." + host, host.upper(), host + ":443"]
    paths = ["/" + path, "/amp/" + path]
    trackers = [
        "",
        "utm_source=facebook&utm_medium=social",
        "fbclid=IwAR0abc",
        "gclid=xyz&zarsrc=30",
        "utm_campaign=x",
    ]
    fragments = ["", "#box_comment", "#vnexpress_comment"]
    out = []
    for h, p, t, f in itertools.product(hosts, paths, trackers, fragments):
        query = p.split("?", 1)[1] if "?" in p else ""
        base = p.split("?", 1)[0]
        params = "&".join(x for x in (t, query) if x)
        out.append(f"{scheme}://{h}{base}{'?' + params if params else ''}{f}")
    rng.shuffle(out)
    return out[:60]


@pytest.mark.parametrize("url", ARTICLES)
def test_all_variants_share_one_id(url: str) -> None:
    rng = random.Random(url)
    expected = normalize_url(url)
    for variant in _variants(url, rng):
        assert normalize_url(variant) == expected, variant
        assert document_id(variant) == document_id(url), variant


@pytest.mark.parametrize("url", ARTICLES)
def test_normalisation_is_idempotent(url: str) -> None:
    for variant in _variants(url, random.Random(1)):
        once = normalize_url(variant)
        assert normalize_url(once) == once


def test_examples() -> None:
    assert (
        normalize_url("HTTPS://WWW.VnExpress.net/a-1.html?utm_source=fb&fbclid=x&b=2&a=1#frag")
        == "https://vnexpress.net/a-1.html?a=1&b=2"
    )
    assert (
        normalize_url("https://m.dantri.com.vn/x-1.htm?gclid=1&zarsrc=3") == "https://dantri.com.vn/x-1.htm"
    )
    assert normalize_url("https://tuoitre.vn/a-1.htm/amp") == "https://tuoitre.vn/a-1.htm"
    assert normalize_url("https://x.vn/a-1.amp.html") == "https://x.vn/a-1.html"
    assert normalize_url("https://thanhnien.vn/x.htm?amp=1") == "https://thanhnien.vn/x.htm"
    # A bare two-label host keeps its name: "www.vn" is not "vn".
    assert normalize_url("https://www.vn/x") == "https://www.vn/x"


def test_meaningful_query_parameters_are_kept() -> None:
    assert normalize_url("https://dongnai.gov.vn/Pages/tin.aspx?ItemID=12&utm_source=z") == (
        "https://dongnai.gov.vn/Pages/tin.aspx?ItemID=12"
    )
    assert document_id("https://x.vn/a?id=1") != document_id("https://x.vn/a?id=2")


def test_id_ignores_scheme_and_is_sha1_hex() -> None:
    a = document_id("http://vnexpress.net/a-1.html")
    assert a == document_id("https://vnexpress.net/a-1.html")
    assert len(a) == 40 and int(a, 16) >= 0


def test_different_articles_differ() -> None:
    assert len({document_id(u) for u in ARTICLES}) == len(ARTICLES)


@pytest.mark.parametrize(
    "bad", ["", "vnexpress.net/a.html", "ftp://x.vn/a", "javascript:void(0)", "https://"]
)
def test_invalid_urls_raise_a_clear_error(bad: str) -> None:
    with pytest.raises(InvalidURLError, match="absolute http"):
        normalize_url(bad)


def test_site_of() -> None:
    assert site_of("https://m.dantri.com.vn/x.htm") == "dantri.com.vn"
