"""The segmented sub-fields on the real Elasticsearch: a quoted phrase that forms a word ranks by them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from index_testdata import make_doc

from duluan.wiring import segmented_text
from index.es_backend import ElasticsearchIndex

# "học sinh" is a word (pupil) in the long document; in the short one its syllables only touch
# across a word boundary ("đi học sinh_hoạt": go to school activities). Plain BM25 prefers the
# short one (same phrase, shorter field); the segmented field must put the word first.
WORD = make_doc(
    "word",
    "Tin giáo dục",
    "Học sinh trường THPT Đồng Xoài tham gia cuộc thi khoa học kỹ thuật cấp tỉnh năm nay cùng "
    "nhiều trường khác trong tỉnh Bình Phước, ban tổ chức đánh giá cao các đề tài về nông nghiệp.",
)
BOUNDARY = make_doc("boundary", "Tin địa phương", "Các em đi học sinh hoạt ngoại khóa.")
FILLER = [make_doc(f"f{i}", "Tin khác", f"Giá cà phê hôm nay tăng {i} phần trăm.") for i in range(6)]


@pytest.fixture
def two_indices(es_client: Elasticsearch) -> Iterator[tuple[ElasticsearchIndex, ElasticsearchIndex]]:
    name = uuid.uuid4().hex[:10]
    plain = ElasticsearchIndex(es_client, f"test-plain-{name}")
    seg = ElasticsearchIndex(es_client, f"test-seg-{name}", segmenter=segmented_text)
    try:
        for index in (plain, seg):
            index.upsert([WORD, BOUNDARY, *FILLER])
        yield plain, seg
    finally:
        plain.drop()
        seg.drop()


def test_segmented_fields_are_indexed_with_word_tokens(
    two_indices: tuple[ElasticsearchIndex, ElasticsearchIndex], es_client: Elasticsearch
) -> None:
    _, seg = two_indices
    source = es_client.get(index=seg.alias, id="word")["_source"]
    assert source["text_seg"].startswith("Học_sinh trường THPT Đồng_Xoài")
    tokens = es_client.indices.analyze(
        index=seg.backing_indices()[0], field="text_seg", text="Học_sinh Bình_Phước"
    )
    assert [t["token"] for t in tokens["tokens"]] == ["học_sinh", "bình_phước"]
    hits = es_client.search(index=seg.alias, query={"match_phrase": {"text_seg": "học_sinh"}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["word"]  # the boundary document has "học_sinh_hoạt", not "học_sinh"


def test_phrase_on_a_compound_word_ranks_the_word_first_same_hits(
    two_indices: tuple[ElasticsearchIndex, ElasticsearchIndex],
) -> None:
    plain, seg = two_indices
    plain_result = plain.search('"học sinh"')
    seg_result = seg.search('"học sinh"')
    assert [h.document.id for h in plain_result.hits] == ["boundary", "word"]  # BM25 alone: shorter first
    assert [h.document.id for h in seg_result.hits] == ["word", "boundary"]  # the word wins with segments
    assert plain_result.total == seg_result.total == 2  # ranking only: same matches and counts
    assert seg.count('"học sinh"') == 2
    assert seg.search('"học sinh"', sort="date").total == 2
    stories = seg.search_stories('"học sinh"')
    assert [s.hit.document.id for s in stories] == ["word", "boundary"]
