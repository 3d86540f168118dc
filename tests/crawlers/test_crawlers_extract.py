"""Extraction against the real Dân trí / VnExpress gold pages, plus charset and bad-input cases."""

import re
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trafilatura

from crawlers.extract import decode_html, extract_article, extract_to_json

GOLD_IDS = [
    "dantri_10", "dantri_12", "dantri_14", "dantri_16", "dantri_18", "dantri_2", "dantri_21",
    "dantri_23", "dantri_25", "dantri_4", "dantri_6", "dantri_8", "vnexpress_1",
]  # fmt: skip


def norm(text: str) -> str:
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", text)).strip()


def _entry(gold: list[dict[str, Any]], page: str) -> dict[str, Any]:
    return next(g for g in gold if g["file"] == f"html/{page}.html")


@pytest.mark.parametrize("page", GOLD_IDS)
def test_gold_page(gold: list[dict[str, Any]], pages_dir: Path, page: str) -> None:
    entry = _entry(gold, page)
    article = extract_article((pages_dir / entry["file"]).read_bytes(), entry["url"])
    assert article is not None
    text = norm(article.text)
    missing = [s for s in entry["with"] if norm(s) not in text]
    leaked = [s for s in entry["without"] if norm(s) in text]
    assert not missing, f"body sentences not extracted: {missing}"
    assert not leaked, f"boilerplate leaked into the body: {leaked}"
    assert article.title == entry["title"]
    assert article.canonical_url == entry["url"]
    assert article.lang == "vi"
    expected_date = entry["date"] or entry.get("date_from_url")
    assert article.published_at == datetime.fromisoformat(expected_date)
    if entry["author"]:
        assert article.author == entry["author"]
        assert entry["author"] not in article.text.split("\n"), "the byline line must not stay in the body"
    assert article.images and all(src.startswith("http") for src in article.images)
    assert unicodedata.is_normalized("NFC", article.text)


def test_beats_trafilatura_alone_on_leaks(gold: list[dict[str, Any]], pages_dir: Path) -> None:
    """The related-article teasers inside the Dân trí body leak with trafilatura alone, not with us."""
    entry = _entry(gold, "dantri_16")
    raw = (pages_dir / entry["file"]).read_bytes()
    baseline = norm(trafilatura.extract(raw, url=entry["url"]) or "")
    ours = norm(extract_article(raw, entry["url"]).text)  # type: ignore[union-attr]
    related = "HLV Malaysia tuyên bố thắng đậm Lào để vượt qua đội tuyển Việt Nam"
    assert related in baseline
    assert related not in ours


def test_extract_to_json_has_exactly_the_cli_keys(gold: list[dict[str, Any]], pages_dir: Path) -> None:
    entry = _entry(gold, "vnexpress_1")
    result = extract_to_json((pages_dir / entry["file"]).read_bytes(), entry["url"])
    assert set(result) == {"title", "text", "published_at", "author", "canonical_url", "lang"}
    assert result["published_at"] == "2025-10-22T19:25:52+07:00"
    assert result["author"] == "Lê Phương"


def test_extract_to_json_without_url_uses_the_canonical_link(
    gold: list[dict[str, Any]], pages_dir: Path
) -> None:
    entry = _entry(gold, "dantri_12")
    result = extract_to_json((pages_dir / entry["file"]).read_bytes(), None)
    assert result["canonical_url"] == entry["url"]
    assert result["published_at"] == "2022-12-24T08:32:24+07:00"


# ------------------------------------------------------------------ charsets

BODY = (
    "Chiều 24/12, Ủy ban nhân dân tỉnh Đồng Nai tổ chức hội nghị tổng kết công tác năm, "
    "đánh giá kết quả phát triển kinh tế - xã hội và đề ra nhiệm vụ trọng tâm cho năm tới. "
    "Lãnh đạo tỉnh yêu cầu các sở, ngành đẩy nhanh tiến độ giải ngân vốn đầu tư công, "
    "tháo gỡ khó khăn cho doanh nghiệp và bảo đảm an sinh xã hội dịp Tết Nguyên đán."
)


def _page(meta_charset: str) -> str:
    return (
        f'<html lang="vi"><head><meta charset="{meta_charset}"><title>Hội nghị tổng kết</title>'
        '<meta property="article:published_time" content="2024-12-24T15:00:00">'
        f"</head><body><article><h1>Hội nghị tổng kết</h1><p>{BODY}</p><p>{BODY}</p></article></body></html>"
    )


TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def encode_cp1258(text: str) -> bytes:
    """Encode like a legacy Windows-1258 page: precomposed base letter plus a combining tone mark."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", ch)
            base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in TONE_MARKS))
            tones = "".join(c for c in decomposed if c in TONE_MARKS)
            out += base.encode("cp1258") + tones.encode("cp1258")
    return bytes(out)


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        pytest.param(_page("utf-8").encode("utf-8"), None, id="utf8-declared"),
        pytest.param(_page("utf-8").encode("utf-8"), "iso-8859-1", id="utf8-page-latin1-header"),
        pytest.param(_page("windows-1258").encode("utf-8"), None, id="utf8-page-wrong-meta"),
        pytest.param(encode_cp1258(_page("windows-1258")), None, id="cp1258-declared"),
        pytest.param(encode_cp1258(_page("windows-1258")), "utf-8", id="cp1258-page-wrong-utf8-header"),
        pytest.param(encode_cp1258(_page("utf-8")), None, id="cp1258-page-no-true-declaration"),
        pytest.param(b"\xef\xbb\xbf" + _page("utf-8").encode("utf-8"), "windows-1252", id="bom-wins"),
    ],
)
def test_charset_conflicts_decode_to_nfc_vietnamese(raw: bytes, header: str | None) -> None:
    article = extract_article(raw, "https://baodongnai.com.vn/tin/hoi-nghi-1.html", header_charset=header)
    assert article is not None
    assert BODY in article.text
    assert article.title == "Hội nghị tổng kết"
    assert unicodedata.is_normalized("NFC", article.text)


def test_windows_1258_combining_marks_are_composed() -> None:
    raw = encode_cp1258("Đồng Nai")
    assert raw != "Đồng Nai".encode("cp1258", errors="replace")  # really uses a combining mark
    assert decode_html(raw, "windows-1258") == "Đồng Nai"


def test_decomposed_str_input_is_normalised() -> None:
    article = extract_article(unicodedata.normalize("NFD", _page("utf-8")), None)
    assert article is not None and BODY in article.text


def test_naive_times_are_vietnam_time() -> None:
    article = extract_article(_page("utf-8"), "https://baodongnai.com.vn/tin/hoi-nghi-1.html")
    assert article is not None and article.published_at is not None
    assert article.published_at.utcoffset() == timedelta(hours=7)
    assert article.published_at.hour == 15


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("raw", [b"", b"   ", "", b"\x00\x01\x02", b"<html><body></body></html>", b"<<<>>>"])
def test_empty_or_garbage_input_gives_none(raw: bytes | str) -> None:
    assert extract_article(raw, "https://x.vn/a.html") is None


def test_short_body_is_dropped_by_threshold() -> None:
    page = "<html><body><article><p>Tin ngắn: mưa lớn ở Đồng Xoài.</p></article></body></html>"
    assert extract_article(page, None, min_body_chars=200) is None
    short = extract_article(page, None, min_body_chars=10)
    assert short is not None and "Đồng Xoài" in short.text


def test_truncated_html_still_extracts(gold: list[dict[str, Any]], pages_dir: Path) -> None:
    entry = _entry(gold, "dantri_10")
    raw = (pages_dir / entry["file"]).read_bytes()
    cut = raw.find(norm(entry["with"][2]).encode("utf-8")[:40])
    assert cut > 0
    article = extract_article(raw[: cut + 10], entry["url"])
    assert article is not None
    assert norm(entry["with"][0]) in norm(article.text)


def test_no_body_page_json_is_empty_not_error() -> None:
    assert extract_to_json(b"<html><head><title>x</title></head></html>", None)["text"] == ""


def test_xhtml_with_xml_declaration() -> None:
    page = '<?xml version="1.0" encoding="utf-8"?>\n' + _page("utf-8")
    for raw in (page, page.encode("utf-8")):
        article = extract_article(raw, None)
        assert article is not None and BODY in article.text
