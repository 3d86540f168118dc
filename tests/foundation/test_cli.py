"""The `duluan` command line: usage errors, config errors, extraction and bulk loading + search."""

from __future__ import annotations

import json
from pathlib import Path

from tests.foundation.conftest import REPO, run_duluan

PAGES = REPO / "duluan" / "demo_site" / "pages"


def test_unknown_option_prints_usage(home: Path) -> None:
    result = run_duluan("search", "--no-such-option", home=home)
    assert result.returncode == 2
    assert "Usage" in result.stderr and "--no-such-option" in result.stderr


def test_invalid_config_exits_2_naming_key_and_file(home: Path) -> None:
    (home.parent / "duluan.toml").write_text("[alerts]\ndigest_time = '7 giờ'\n", encoding="utf-8")
    result = run_duluan("index", "stats", home=home)
    assert result.returncode == 2
    assert "alerts.digest_time" in result.stderr and "duluan.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_extract_prints_one_json_object(home: Path) -> None:
    gold = {
        json.loads(line)["file"]: json.loads(line) for line in (PAGES / "gold.jsonl").read_text().splitlines()
    }
    page = "html/dantri_10.html"
    result = run_duluan("extract", str(PAGES / page), "--url", gold[page]["url"], home=home)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"title", "text", "published_at", "author", "canonical_url", "lang"}
    assert out["title"] == gold[page]["title"]
    assert gold[page]["with"][0] in " ".join(out["text"].split())
    assert out["lang"] == "vi"


def test_extract_missing_file_is_a_usage_error(home: Path) -> None:
    result = run_duluan("extract", str(home / "nope.html"), home=home)
    assert result.returncode == 2 and "nope.html" in result.stderr


def _docs() -> list[dict[str, object]]:
    return [
        {
            "url": "https://vnexpress.net/bong-da-viet-nam-thang-thai-lan-4800001.html",
            "source": "vnexpress",
            "title": "Đội tuyển Việt Nam thắng Thái Lan 3-0 ở chung kết AFF Cup",
            "text": "Đội tuyển bóng đá Việt Nam đã giành chiến thắng thuyết phục 3-0 trước Thái Lan "
            "trong trận chung kết lượt về. Huấn luyện viên khen ngợi các cầu thủ thi đấu xuất sắc, "
            "cổ động viên ăn mừng khắp các con phố.",
            "published_at": "2026-11-20T20:00:00+07:00",
        },
        {
            "url": "https://baobinhphuoc.com.vn/news/sat-lo-dat-dong-xoai-4800002.html",
            "source": "baobinhphuoc",
            "title": "Sạt lở đất ở Đồng Xoài, nhiều hộ dân phải di dời khẩn cấp",
            "text": "Mưa lớn kéo dài gây sạt lở đất nghiêm trọng tại phường Tân Phú, thành phố Đồng Xoài, "
            "tỉnh Bình Phước. UBND tỉnh đã chỉ đạo di dời khẩn cấp 30 hộ dân, "
            "thiệt hại ước tính hàng tỷ đồng.",
            "published_at": "2026-11-21T08:00:00+07:00",
            "topic": "moi-truong",
            "sentiment": "negative",
        },
    ]


def test_index_load_then_search_with_field_filters(home: Path) -> None:
    data = home.parent / "docs.jsonl"
    lines = [json.dumps(d, ensure_ascii=False) for d in _docs()]
    data.write_text(
        "\n".join([*lines, "{not json", json.dumps({"title": "no url"})]) + "\n", encoding="utf-8"
    )
    loaded = run_duluan("index", "load", str(data), home=home)
    report = json.loads(loaded.stdout)
    assert report["loaded"] == 2 and report["rejected"] == 2
    assert [e["line"] for e in report["errors"]] == [3, 4]
    assert loaded.returncode == 1  # rejected lines are an error the caller must see

    # The first document had no NLP fields: they were computed. The second kept the given ones.
    hits = [json.loads(x) for x in run_duluan("search", "--json", home=home).stdout.splitlines()]
    by_source = {h["source"]: h for h in hits}
    assert by_source["vnexpress"]["topic"] == "the-thao"
    assert by_source["baobinhphuoc"]["topic"] == "moi-truong"
    assert set(by_source["vnexpress"]) == {
        "id", "url", "title", "published_at", "source", "topic", "sentiment", "score"
    }  # fmt: skip

    filtered = run_duluan("search", "topic:the-thao", "--json", home=home)
    assert [json.loads(x)["source"] for x in filtered.stdout.splitlines()] == ["vnexpress"]
    folded = run_duluan("search", "dong xoai", "--json", home=home)
    assert [json.loads(x)["source"] for x in folded.stdout.splitlines()] == ["baobinhphuoc"]
    by_option = run_duluan("search", "--source", "vnexpress", "--json", "--limit", "5", home=home)
    assert [json.loads(x)["source"] for x in by_option.stdout.splitlines()] == ["vnexpress"]

    # Loading the same file again updates, never duplicates.
    run_duluan("index", "load", str(data), home=home)
    stats = json.loads(run_duluan("index", "stats", home=home).stdout)
    assert stats["documents"] == 2


def test_search_syntax_error_points_at_position(home: Path) -> None:
    result = run_duluan("search", '"Bình Phước AND', home=home)
    assert result.returncode == 2
    assert "Lỗi truy vấn" in result.stderr and "Query error" in result.stderr and "^" in result.stderr
