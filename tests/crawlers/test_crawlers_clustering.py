"""Story clustering: syndicated copies share a cluster, other stories do not; state persists."""

import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crawlers.clustering import StoryClusterer, shingles
from crawlers.extract import extract_article
from crawlers.urls import document_id


def _bodies(pages_dir: Path, gold: list[dict[str, Any]]) -> dict[str, str]:
    bodies = {}
    for entry in gold:
        article = extract_article((pages_dir / entry["file"]).read_bytes(), entry["url"])
        assert article is not None
        bodies[entry["url"]] = article.text
    return bodies


def _syndicated(text: str) -> str:
    """How a provincial paper reprints a national story: new lead line, credit, a few edits."""
    paragraphs = text.split("\n")
    edited = [p.replace("Thủ tướng", "Thủ tướng Chính phủ", 1) for p in paragraphs]
    return "\n".join(["(Báo Đồng Nai) - Theo Dân trí:", *edited, "Nguồn: Dân trí"])


def test_syndicated_copy_joins_the_first_publishers_cluster(tmp_path: Path, pages_dir: Path, gold) -> None:
    bodies = _bodies(pages_dir, gold)
    clusterer = StoryClusterer(tmp_path)
    t0 = datetime(2022, 12, 24, 8, 0).astimezone()
    ids = {}
    for i, (url, text) in enumerate(bodies.items()):
        ids[url] = clusterer.assign(document_id(url), text, "dantri", t0 + timedelta(minutes=i))
    assert len(set(ids.values())) == len(bodies), "13 different stories, 13 clusters"

    original_url = gold[0]["url"]
    copy_id = document_id("https://baodongnai.com.vn/thoi-su/ban-in-lai-123456.html")
    cluster = clusterer.assign(
        copy_id, _syndicated(bodies[original_url]), "baodongnai", t0 + timedelta(hours=3)
    )
    assert cluster == ids[original_url]
    info = clusterer.cluster(cluster)
    assert info is not None and info.size == 2
    assert info.first_source == "dantri" and info.first_document_id == document_id(original_url)

    # Re-crawling a known document does not grow the cluster.
    assert clusterer.assign(copy_id, "anything", "baodongnai", None) == cluster
    assert clusterer.cluster(cluster).size == 2  # type: ignore[union-attr]
    clusterer.close()

    # Persistence: a new process sees the same clusters; an earlier publication becomes the first publisher.
    reopened = StoryClusterer(tmp_path)
    earlier_id = document_id("https://baochinhphu.vn/ban-goc-1.htm")
    assert (
        reopened.assign(earlier_id, _syndicated(bodies[original_url]), "baochinhphu", t0 - timedelta(days=1))
        == cluster
    )
    info = reopened.cluster(cluster)
    assert info is not None and info.size == 3 and info.first_source == "baochinhphu"
    reopened.close()


def test_shingles_are_nfc_lowercase_syllable_ngrams() -> None:
    decomposed = unicodedata.normalize("NFD", "Tỉnh Đồng Nai tổ chức hội nghị")
    assert "tỉnh đồng nai tổ" in shingles(decomposed)
    assert shingles("") == set()
    assert shingles("Đồng Nai") == {"đồng nai"}


def test_empty_bodies_never_cluster_together(tmp_path: Path) -> None:
    clusterer = StoryClusterer(tmp_path)
    assert clusterer.assign("a", "", "x", None) == "a"
    assert clusterer.assign("b", "", "x", None) == "b"
    clusterer.close()
