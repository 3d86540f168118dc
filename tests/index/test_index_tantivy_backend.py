"""The embedded tantivy backend against a real index in a temporary folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from index_testdata import VN, corpus, ids, make_doc

from index import tantivy_backend
from index.backend import QueryError, SearchBackend, SearchFilters
from index.query import VIETNAM_TZ
from index.tantivy_backend import MAX_RESULT_WINDOW, TantivyIndex, render_snippet, site_suffixes


def test_satisfies_the_backend_protocol(empty_index: TantivyIndex) -> None:
    backend: SearchBackend = empty_index
    assert backend.count() == 0
    assert backend.search("").total == 0


def test_upsert_is_idempotent_by_id(empty_index: TantivyIndex) -> None:
    docs = corpus()
    assert empty_index.upsert(docs) == len(docs)
    assert empty_index.upsert(docs) == len(docs)
    assert empty_index.upsert([docs[0], docs[0]]) == 2  # a duplicate inside one batch too
    assert empty_index.count() == len(docs)
    changed = docs[0].model_copy(update={"title": "Tiêu đề mới hoàn toàn"})
    empty_index.upsert([changed])
    assert empty_index.count() == len(docs)
    assert empty_index.count("hoàn toàn") == 1
    assert empty_index.count('"Bình Phước mưa lớn"') == 0
    assert empty_index.upsert([]) == 0


def test_fresh_batches_and_mixed_batches_keep_one_document_per_id(empty_index: TantivyIndex) -> None:
    """A batch of new ids skips the per-id deletes; repeats inside it and mixed batches still replace."""
    first, second, third = corpus()[:3]
    renamed = first.model_copy(update={"title": "Bản cuối cùng"})
    assert empty_index.upsert([first, renamed]) == 2  # fresh index, the same id twice: the last wins
    assert empty_index.count() == 1
    assert empty_index.count('"Bản cuối cùng"') == 1
    assert empty_index.upsert([second, first]) == 2  # one new id, one stored: the stored one is replaced
    assert empty_index.count() == 2
    assert empty_index.count('"Bản cuối cùng"') == 0
    assert {d.id for d in empty_index.scan()} == {first.id, second.id}
    assert empty_index.upsert([third]) == 1  # fresh again, after other commits
    assert sorted(d.id for d in empty_index.scan()) == sorted([first.id, second.id, third.id])


def test_get_rebuilds_the_whole_document(loaded_index: TantivyIndex) -> None:
    original = next(d for d in corpus() if d.id == "bp-rain")
    assert loaded_index.get("bp-rain") == original
    assert loaded_index.get("missing") is None


def test_reopening_the_folder_keeps_documents(loaded_index: TantivyIndex, index_dir: Path) -> None:
    again = TantivyIndex(index_dir)
    assert again.count() == len(corpus())
    assert ids(again.search("binh phuoc")) >= {"bp-rain", "bp-ascii"}


def test_folded_search_ignores_diacritics_both_ways(loaded_index: TantivyIndex) -> None:
    assert ids(loaded_index.search("binh phuoc")) == {"bp-rain", "bp-ascii", "rice"}
    assert ids(loaded_index.search("Bình Phước")) == {"bp-rain", "bp-ascii", "rice"}
    assert ids(loaded_index.search("dong xoai")) == {"bp-rain"}  # đ → d
    assert ids(loaded_index.search("DONG NAI")) == {"land", "fraud", "football"}


def test_quoted_phrase_with_diacritics_is_exact(loaded_index: TantivyIndex) -> None:
    assert ids(loaded_index.search('"Bình Phước"')) == {"bp-rain", "rice"}
    assert ids(loaded_index.search('"binh phuoc"')) == {"bp-rain", "bp-ascii", "rice"}
    assert ids(loaded_index.search('"phước bình"')) == set()  # word order matters in a phrase
    assert ids(loaded_index.search('"Đồng lúa"')) == {"rice"}  # "đồng lúa" ≠ "Đồng Nai"/"Đồng Xoài"


def test_relevance_prefers_title_matches(loaded_index: TantivyIndex) -> None:
    hits = loaded_index.search("lừa đảo").hits
    assert hits[0].document.id == "fraud"
    assert hits[0].score > 0


def test_field_filters(loaded_index: TantivyIndex) -> None:
    assert ids(loaded_index.search("topic:the-thao")) == {"bp-ascii", "football"}
    assert ids(loaded_index.search("source:tuoitre")) == {"bp-ascii", "fraud"}
    assert ids(loaded_index.search("source:TuoiTre")) == {"bp-ascii", "fraud"}
    assert ids(loaded_index.search("site:tuoitre.vn")) == {"bp-ascii", "fraud"}  # subdomain e.tuoitre.vn
    assert ids(loaded_index.search("site:e.tuoitre.vn")) == {"bp-ascii"}
    assert ids(loaded_index.search("sentiment:negative")) == {"bp-rain", "fraud"}
    assert ids(loaded_index.search("entity:binh-phuoc")) == {"bp-rain", "rice"}
    assert ids(loaded_index.search('entity:"Đồng Nai"')) == {"land", "fraud"}
    assert ids(loaded_index.search("author:nguyen")) == {"bp-rain"}
    assert ids(loaded_index.search("title:đất")) == {"land", "fraud"}
    assert ids(loaded_index.search("text:đất")) == {"bp-rain", "land", "fraud"}
    assert ids(loaded_index.search("type:forum")) == {"hostile"}
    assert ids(loaded_index.search("topic:(the-thao OR kinh-te) -bóng")) == {"bp-ascii", "no-date", "rice"}


def test_structured_filters_combine_with_the_query(loaded_index: TantivyIndex) -> None:
    filters = SearchFilters(topic="the-thao", source="thanhnien")
    assert ids(loaded_index.search("", filters)) == {"football"}
    assert ids(loaded_index.search("đồng nai", SearchFilters(sentiment="negative"))) == {"fraud"}
    assert loaded_index.count("", SearchFilters(source_type="forum")) == 1


def test_boolean_semantics_and_negation_scope(loaded_index: TantivyIndex) -> None:
    everything = {d.id for d in corpus()}
    # a -b c : NOT binds to b only
    assert ids(loaded_index.search("đồng -bóng nai")) == {"land", "fraud"}
    assert ids(loaded_index.search("đồng nai KHÔNG bóng")) == {"land", "fraud"}
    # a OR b c  ==  a OR (b AND c)
    assert ids(loaded_index.search("xăng OR đất lừa")) == {"no-date", "fraud"}
    assert ids(loaded_index.search("(xăng OR đất) lừa")) == {"fraud"}
    # pure negation is "everything except"
    assert ids(loaded_index.search("-đất")) == everything - {"bp-rain", "land", "fraud"}
    assert ids(loaded_index.search("NOT (đất OR lúa)")) == everything - {"bp-rain", "land", "fraud", "rice"}
    # OR with a negated branch
    # ("giá" folds to "gia", which "khán giả" in football also contains)
    assert ids(loaded_index.search("xăng OR -giá")) == everything - {"rice", "land", "football"}
    assert ids(loaded_index.search("xăng HOẶC lúa")) == {"no-date", "rice", "fraud"}  # lúa ~ lừa when folded
    assert ids(loaded_index.search('xăng HOẶC "lúa"')) == {"no-date", "rice"}  # exact phrase keeps the accent


def test_prefix_and_near(loaded_index: TantivyIndex) -> None:
    assert ids(loaded_index.search("phấn*")) == {"rice"}
    assert ids(loaded_index.search("nông*")) == {"rice", "hostile"}  # "nóng" folds to "nong" too
    # folded prefix "dau": đấu, dau, đầu (tư), (xăng) dầu
    assert ids(loaded_index.search("đấu*")) == {"land", "bp-ascii", "football", "no-date"}
    # "Mưa lớn kéo dài ở Đồng Xoài": five words between mưa and xoài
    assert ids(loaded_index.search("mưa NEAR/4 xoài")) == set()
    assert ids(loaded_index.search("mưa NEAR/5 xoài")) == {"bp-rain"}
    assert ids(loaded_index.search("xoài NEAR/5 mưa")) == {"bp-rain"}
    assert ids(loaded_index.search('"đồng xoài" NEAR/4 mưa')) == {"bp-rain"}


def test_date_ranges_use_vietnam_days(loaded_index: TantivyIndex) -> None:
    # bp-rain: 2026-11-01 23:30 +07 (16:30 UTC); bp-ascii: 2026-11-02 00:30 +07 (still 11-01 in UTC)
    assert ids(loaded_index.search("date:2026-11-01")) == {"bp-rain"}
    assert ids(loaded_index.search("date:2026-11-02")) == {"bp-ascii"}
    assert ids(loaded_index.search("date:2026-11-01..2026-11-02")) == {"bp-rain", "bp-ascii"}
    # no published date: the fetch date (2026-11-20) counts
    assert ids(loaded_index.search("date:2026-11-20..")) == {"no-date"}
    assert ids(loaded_index.search("date:..2026-10")) == {"rice"}
    filters = SearchFilters(
        date_from=datetime(2026, 11, 2, tzinfo=VIETNAM_TZ), date_to=datetime(2026, 11, 11, tzinfo=VIETNAM_TZ)
    )
    assert ids(loaded_index.search("", filters)) == {"bp-ascii", "land"}


def test_fetched_since_and_province_relevance_filters(empty_index: TantivyIndex) -> None:
    empty_index.upsert(
        [
            make_doc("old", "a", fetched_at=datetime(2026, 11, 1, tzinfo=VN), province_relevance=0.9),
            make_doc("new", "a", fetched_at=datetime(2026, 11, 5, tzinfo=VN), province_relevance=0.2),
        ]
    )
    assert ids(empty_index.search("", SearchFilters(fetched_since=datetime(2026, 11, 3, tzinfo=VN)))) == {
        "new"
    }
    assert ids(empty_index.search("", SearchFilters(min_province_relevance=0.5))) == {"old"}


def test_sort_by_date_and_paging(loaded_index: TantivyIndex) -> None:
    newest_first = [h.document.id for h in loaded_index.search("", sort="date", limit=20).hits]
    assert newest_first == ["no-date", "hostile", "football", "fraud", "land", "bp-ascii", "bp-rain", "rice"]
    page = loaded_index.search("", sort="date", limit=3, offset=3)
    assert [h.document.id for h in page.hits] == newest_first[3:6]
    assert page.total == len(newest_first)
    assert loaded_index.search("", limit=0).hits == []
    assert loaded_index.search("", limit=0).total == len(newest_first)
    with pytest.raises(QueryError, match="cannot be paged"):
        loaded_index.search("", offset=MAX_RESULT_WINDOW)


def test_terms_aggregation_counts(loaded_index: TantivyIndex) -> None:
    assert loaded_index.terms("topic", size=3) == [("kinh-te", 2), ("the-thao", 2), ("dat-dai", 1)]
    assert dict(loaded_index.terms("sentiment")) == {"positive": 4, "negative": 2, "neutral": 2}
    assert dict(loaded_index.terms("source", "đồng nai")) == {"vnexpress": 1, "tuoitre": 1, "thanhnien": 1}
    assert dict(loaded_index.terms("entity")) == {"Bình Phước": 2, "Đồng Nai": 2}
    assert dict(loaded_index.terms("site", size=2)) == {"vnexpress.net": 4, "e.tuoitre.vn": 1}
    with pytest.raises(ValueError, match="cannot aggregate"):
        loaded_index.terms("title")


def test_facets_in_one_pass_agree_with_terms(loaded_index: TantivyIndex) -> None:
    facets = loaded_index.facets(["topic", "sentiment", "source"], "đồng nai OR binh phuoc", size=5)
    for field in ("topic", "sentiment", "source"):
        assert facets[field] == loaded_index.terms(field, "đồng nai OR binh phuoc", size=5)
    assert dict(facets["sentiment"]) == {"negative": 2, "positive": 3, "neutral": 1}


def test_date_histogram_in_vietnam_time(loaded_index: TantivyIndex) -> None:
    days = dict(loaded_index.date_histogram("day", "binh phuoc"))
    assert days[datetime(2026, 11, 1, tzinfo=VIETNAM_TZ)] == 1
    assert days[datetime(2026, 11, 2, tzinfo=VIETNAM_TZ)] == 1
    assert sum(days.values()) == 3
    weeks = dict(loaded_index.date_histogram("week"))
    assert weeks[datetime(2026, 10, 26, tzinfo=VIETNAM_TZ)] == 2  # Mon 26/10–Sun 1/11: rice, bp-rain
    assert weeks[datetime(2026, 11, 2, tzinfo=VIETNAM_TZ)] == 1  # bp-ascii, Monday 00:30 local
    assert sum(weeks.values()) == len(corpus())
    months = loaded_index.date_histogram("month")
    assert months == [
        (datetime(2026, 10, 1, tzinfo=VIETNAM_TZ), 1),
        (datetime(2026, 11, 1, tzinfo=VIETNAM_TZ), 7),
    ]
    hours = dict(loaded_index.date_histogram("hour", "topic:the-thao"))
    assert hours[datetime(2026, 11, 2, 0, tzinfo=VIETNAM_TZ)] == 1


def test_date_histogram_covers_the_filtered_range(loaded_index: TantivyIndex) -> None:
    filters = SearchFilters(
        date_from=datetime(2026, 10, 30, tzinfo=VIETNAM_TZ), date_to=datetime(2026, 11, 4, tzinfo=VIETNAM_TZ)
    )
    days = loaded_index.date_histogram("day", "", filters)
    assert [d.day for d, _ in days] == [30, 31, 1, 2, 3]
    assert [c for _, c in days] == [0, 0, 1, 1, 0]


def test_date_histogram_refuses_too_many_buckets(empty_index: TantivyIndex) -> None:
    empty_index.upsert(
        [
            make_doc("old", "x", published_at=datetime(2015, 1, 1, tzinfo=VN)),
            make_doc("new", "x", published_at=datetime(2026, 1, 1, tzinfo=VN)),
        ]
    )
    assert len(empty_index.date_histogram("month")) == 133
    with pytest.raises(ValueError, match="coarser interval"):
        empty_index.date_histogram("hour")


def test_highlights_are_escaped_html_with_marks(loaded_index: TantivyIndex) -> None:
    hit = loaded_index.search("tin nóng").hits[0]
    assert hit.document.id == "hostile"
    title = hit.highlights["title"]
    assert "<script>" not in title and "&lt;script&gt;" in title
    assert "<mark>Tin</mark> <mark>nóng</mark>" in title
    text = hit.highlights["text"]
    assert "<img" not in text and "<b>" not in text and "&lt;b&gt;" in text
    folded = loaded_index.search("binh phuoc").hits
    rain = next(h for h in folded if h.document.id == "bp-rain")
    assert "<mark>Bình</mark> <mark>Phước</mark>" in rain.highlights["title"]
    assert "<mark>Bình</mark> <mark>Phước</mark>" in rain.highlights["text"]
    excluded = loaded_index.search("đồng -bóng nai").hits
    assert all("bóng</mark>" not in h.highlights["title"] for h in excluded)


def test_highlight_without_matches_is_escaped_leading_text(loaded_index: TantivyIndex) -> None:
    hit = loaded_index.search("type:forum").hits[0]
    assert hit.highlights["title"].startswith("&lt;script&gt;")
    assert "<mark>" not in hit.highlights["text"]


def test_render_snippet_uses_byte_ranges() -> None:
    assert render_snippet("Đồng <Nai>", [(0, 7)]) == "<mark>Đồng</mark> &lt;Nai&gt;"


def test_site_suffixes() -> None:
    assert site_suffixes("e.vnexpress.net") == ["e.vnexpress.net", "vnexpress.net"]
    assert site_suffixes("voz.vn") == ["voz.vn"]


def test_scan_walks_more_than_one_page(empty_index: TantivyIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tantivy_backend, "SCAN_PAGE_SIZE", 7)
    docs = [make_doc(f"d{i:03d}", f"bài số {i}", "nội dung chung") for i in range(40)]
    empty_index.upsert(docs)
    scanned = [d.id for d in empty_index.scan("chung")]
    assert sorted(scanned) == [d.id for d in docs]
    assert len(scanned) == len(set(scanned))
    assert {d.id for d in empty_index.scan("số 3")} == {"d003"}


def test_scan_survives_scan_key_collisions(
    empty_index: TantivyIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tantivy_backend, "SCAN_PAGE_SIZE", 4)
    monkeypatch.setattr(tantivy_backend, "scan_key", lambda doc_id: int(doc_id[1:]) % 3)
    docs = [make_doc(f"d{i:03d}", "x") for i in range(20)]
    empty_index.upsert(docs)
    assert sorted(d.id for d in empty_index.scan()) == [d.id for d in docs]


def test_delete(loaded_index: TantivyIndex) -> None:
    assert loaded_index.delete(["fraud", "not-there"]) == 1
    assert loaded_index.get("fraud") is None
    assert loaded_index.count() == len(corpus()) - 1
    assert loaded_index.delete([]) == 0


def test_bad_queries_raise_query_error_not_crash(loaded_index: TantivyIndex) -> None:
    for query in ['"mở ngoặc', "((a)", "a AND", "mưa~", "x:y"]:
        with pytest.raises(QueryError):
            loaded_index.search(query)
    big = " OR ".join(f"từ{i}" for i in range(1500)) + " OR xăng"
    assert ids(loaded_index.search(big)) == {"no-date"}
    # Lucene/regex syntax inside quotes is literal text, never injected
    assert loaded_index.search('"title:(* OR .*) AND \\\\ /.*/"').total == 0
    assert ids(loaded_index.search("lừa/đảo")) == {"fraud"}


def test_search_stories_collapses_clusters(empty_index: TantivyIndex) -> None:
    story = [
        make_doc("s1", "Cháy chợ Đồng Xoài", "cháy lớn", source="vnexpress", cluster_id="c1"),
        make_doc("s2", "Cháy chợ ở Đồng Xoài", "cháy", source="tuoitre", cluster_id="c1"),
        make_doc("s3", "Đồng Xoài: cháy chợ", "cháy", source="tuoitre", cluster_id="c1"),
        make_doc("s4", "Cháy rừng", "cháy rừng", source="thanhnien", cluster_id="c2"),
        make_doc("s5", "Cháy nhà", "cháy", source="voz"),  # no cluster: a story of its own
        make_doc("s6", "Bão số 3", "bão", source="voz", cluster_id="c1"),  # in c1 but not matching
    ]
    empty_index.upsert(story)
    stories = empty_index.search_stories("cháy", limit=10)
    by_cluster = {s.hit.document.cluster_id: s for s in stories}
    assert len(stories) == 3
    assert (by_cluster["c1"].documents, by_cluster["c1"].outlets) == (3, 2)
    assert (by_cluster["c2"].documents, by_cluster["c2"].outlets) == (1, 1)
    assert (by_cluster[None].documents, by_cluster[None].outlets) == (1, 1)
    assert "<mark>" in by_cluster["c1"].hit.highlights["title"]
    assert len(empty_index.search_stories("cháy", limit=2)) == 2


def test_reindex_copies_everything_between_backends(loaded_index: TantivyIndex, tmp_path: Path) -> None:
    from index.reindex import reindex

    target = TantivyIndex(tmp_path / "copy")
    progress: list[int] = []
    assert reindex(loaded_index, target, batch_size=3, progress=progress.append) == len(corpus())
    assert progress == [3, 6, 8]
    assert target.count() == len(corpus())
    assert target.get("bp-rain") == loaded_index.get("bp-rain")
    assert reindex(loaded_index, target, query="topic:the-thao") == 2
    assert target.count() == len(corpus())


def test_failed_batch_is_rolled_back_and_releases_the_lock(
    loaded_index: TantivyIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tantivy_backend.index_document

    def explode_on_second(doc):
        if doc.id == "boom":
            raise RuntimeError("bad document")
        return real(doc)

    monkeypatch.setattr(tantivy_backend, "index_document", explode_on_second)
    with pytest.raises(RuntimeError, match="bad document"):
        loaded_index.upsert([make_doc("ok-1", "một"), make_doc("boom", "hai")])
    assert loaded_index.get("ok-1") is None
    assert loaded_index.count() == len(corpus())
    assert loaded_index.upsert([make_doc("ok-2", "ba")]) == 1  # the writer lock was released


def test_random_hostile_queries_never_crash(loaded_index: TantivyIndex) -> None:
    """Seeded fuzzing: any string either runs or raises QueryError, never anything else."""
    import random

    pieces = [
        "a", "đất", "Bình", "OR", "AND", "NOT", "VÀ", "HOẶC", "KHÔNG", "NEAR/2", "NEAR", "(", ")", '"', "-",
        "!", "+", "*", "?", "~", "^", ":", "title:", "topic:", "date:", "2026-11-01..", "..", "\\", "/", "&&",
        "||", "{", "}", "[", "]", " ", " ", "\t", "\n", "\x00", "é", "đ", "<script>", "site:", "entity:",
    ]  # fmt: skip
    rng = random.Random(20261128)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        query = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12)))
        try:
            loaded_index.search(query, limit=3)
            outcomes["ok"] += 1
        except QueryError as error:
            assert error.position is None or 0 <= error.position <= len(query)
            assert error.message_vi
            outcomes["error"] += 1
    assert outcomes["ok"] > 50 and outcomes["error"] > 50


def test_small_commits_use_one_writer_thread_with_the_same_results(tmp_path: Path) -> None:
    """Automatic threads: a batch below SINGLE_THREAD_BELOW makes one segment per commit, and the
    index answers as one written by two threads (same hits and scores, counts, facets)."""
    automatic = TantivyIndex(tmp_path / "auto")
    two = TantivyIndex(tmp_path / "two", writer_threads=2)
    assert automatic._threads_for(1) == 1
    assert automatic._threads_for(tantivy_backend.SINGLE_THREAD_BELOW - 1) == 1
    assert automatic._threads_for(tantivy_backend.SINGLE_THREAD_BELOW) == 0  # tantivy picks
    assert two._threads_for(1) == 2  # a configured count is always kept
    docs = corpus() + [
        make_doc(f"n-{i}", f"Tin số {i} Bình Phước", "Đồng Xoài mưa lớn " * (i + 1), topic=f"t{i % 3}")
        for i in range(40)
    ]
    assert automatic.upsert(docs[:12]) == 12
    assert automatic._searcher().num_segments == 1  # one thread, one segment
    assert two.upsert(docs[:12]) == 12
    for backend in (automatic, two):
        for start in range(12, len(docs), 12):
            assert backend.upsert(docs[start : start + 12]) == len(docs[start : start + 12])
    for query in ("binh phuoc", '"Bình Phước"', "mưa lớn", "", "dong xoai NOT football", "tin*"):
        first, second = automatic.search(query, limit=100), two.search(query, limit=100)
        assert first.total == second.total == automatic.count(query) == two.count(query)
        assert {h.document.id: round(h.score, 4) for h in first.hits} == {
            h.document.id: round(h.score, 4) for h in second.hits
        }
        assert automatic.facets(["topic", "source"], query) == two.facets(["topic", "source"], query)
    automatic.upsert(docs[:5])  # replacing stays idempotent
    assert automatic.count() == two.count() == len(docs)
