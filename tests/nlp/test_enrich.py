from datetime import UTC, datetime

import pytest
import trafilatura

from nlp.enrich import Enricher, split_lead
from schema.document import Document, SourceType


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher()


def _doc(doc_id: str, title: str, text: str, source_type: SourceType = SourceType.news) -> Document:
    return Document(
        id=doc_id,
        url=f"https://example.vn/{doc_id}",
        canonical_url=f"https://example.vn/{doc_id}",
        source="test",
        source_type=source_type,
        title=title,
        text=text,
        fetched_at=datetime(2026, 11, 28, tzinfo=UTC),
    )


def _page(pages, name: str) -> tuple[str, str]:
    html = (pages / "html" / name).read_text(encoding="utf-8", errors="replace")
    text = trafilatura.extract(html) or ""
    title = trafilatura.extract_metadata(html).title or ""
    assert len(text) > 500
    return title, text


def test_enrich_real_sports_page(enricher: Enricher, pages) -> None:
    title, text = _page(pages, "dantri_16.html")
    doc = enricher.enrich(_doc("p16", title, text))
    assert doc.lang == "vi"
    assert doc.topic == "the-thao"
    assert doc.topic_scores[doc.topic] == max(doc.topic_scores.values())
    assert doc.sentiment in ("negative", "neutral", "positive")
    assert doc.toxicity is None  # news articles skip the comment-toxicity model
    assert doc.keywords and "đội tuyển" in [k.lower() for k in doc.keywords]
    assert doc.province_relevance < 0.1


def test_enrich_real_land_page_and_province_story(enricher: Enricher, pages) -> None:
    title, text = _page(pages, "dantri_4.html")
    land, local = enricher.enrich_many(
        [
            _doc("p4", title, text),
            _doc(
                "dn",
                "Bình Phước đẩy nhanh giải phóng mặt bằng cao tốc",
                "UBND tỉnh Bình Phước yêu cầu các sở ngành tại Đồng Xoài hoàn thành bồi thường"
                " trong tháng 12.\n"
                "Dự án dài 70 km đi qua nhiều huyện.",
            ),
        ]
    )
    assert land.topic == "dat-dai"
    assert local.province_relevance > 0.8
    assert {"Đồng Nai"} <= {e.canonical for e in local.entities}


def test_social_posts_get_toxicity(enricher: Enricher) -> None:
    doc = enricher.enrich(_doc("s1", "", "cảm ơn anh chị đã chia sẻ thông tin hữu ích", SourceType.social))
    assert doc.toxicity == "clean"
    assert set(doc.toxicity_scores) == {"clean", "offensive", "hate"}


def test_news_gets_toxicity_only_when_asked(enricher: Enricher) -> None:
    article = _doc("n1", "Tin tức", "cảm ơn anh chị đã chia sẻ thông tin hữu ích")
    post = _doc("s2", "", "cảm ơn anh chị đã chia sẻ thông tin hữu ích", SourceType.forum)
    plain_news, plain_post = enricher.enrich_many([article, post])
    assert plain_news.toxicity is None and plain_post.toxicity == "clean"
    asked = Enricher(use_crf_ner=False, toxicity_for_news=True).enrich(article)
    assert asked.toxicity == "clean" and set(asked.toxicity_scores) == {"clean", "offensive", "hate"}


def test_one_failing_document_does_not_stop_the_others(enricher: Enricher, monkeypatch) -> None:
    original = enricher._fill

    def fail_on_bad(doc, *args):
        if doc.id == "bad":
            raise RuntimeError("boom")
        return original(doc, *args)

    monkeypatch.setattr(enricher, "_fill", fail_on_bad)
    docs = [_doc("a", "Đồng Nai mưa lớn", "Mưa lớn gây ngập."), _doc("bad", "x", "y"), _doc("b", "", "")]
    out = enricher.enrich_many(docs)
    assert [d.id for d in out] == ["a", "bad", "b"]
    assert out[0].topic is not None and out[2].topic is not None
    assert out[1].topic is None  # returned as it came


def test_blank_document_is_enriched_without_error(enricher: Enricher) -> None:
    doc = enricher.enrich(_doc("blank", "", ""))
    assert doc.lang == "und" and doc.topic is not None and doc.keywords == []


def test_split_lead() -> None:
    assert split_lead("Sapo ngắn.\nThân bài.") == ("Sapo ngắn.", "\nThân bài.")
    lead, rest = split_lead("x" * 1000)
    assert len(lead) == 400 and len(rest) == 600


def test_entities_and_relevance_come_from_the_spacy_pipeline(enricher: Enricher) -> None:
    local, weather = enricher.enrich_many(
        [
            _doc(
                "dx",
                "Đồng Xoài khánh thành cầu mới",
                "Sáng 20/11, Chủ tịch UBND tỉnh Đồng Nai Võ Tấn Đức dự lễ khánh thành.\nCầu dài 120 m.",
            ),
            _doc(
                "wx",
                "Dự báo thời tiết ngày mai",
                "Nam Bộ ngày nắng.\nChiều tối mưa rào ở Tây Ninh, Bình Phước và An Giang, cục bộ mưa to.",
            ),
        ]
    )
    by_text = {e.text: e for e in local.entities}
    assert by_text["Đồng Xoài"].canonical == "Đồng Nai"  # old name kept, linked to the new province
    assert by_text["UBND tỉnh Đồng Nai"].label == "ORG"
    assert by_text["Võ Tấn Đức"].label == "PER"
    assert local.province_relevance > 0.8
    assert "Bình Phước" in {e.text for e in weather.entities}
    assert weather.province_relevance < 0.1  # named in a weather round-up: not coverage


def test_watchlist_path_adds_the_analysts_entries(tmp_path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "watchlist:\n  - name: Công ty Cấp thoát nước Đồng Nai\n    label: ORG\n    aliases: [DNW]\n",
        encoding="utf-8",
    )
    doc = Enricher(watchlist_path=path, use_crf_ner=False).enrich(_doc("w", "DNW tăng giá nước", ""))
    assert ("DNW", "ORG", "Công ty Cấp thoát nước Đồng Nai") in {
        (e.text, e.label, e.canonical) for e in doc.entities
    }
