"""One conformance suite for every `SearchBackend`: tantivy (tmp folder) and a real Elasticsearch.

Each test runs once per backend against the same documents and asserts the same answers, so the
two backends agree on hits, counts, facets, date histograms and story collapsing. The last tests
load a few hundred real Vietnamese news texts into BOTH backends and compare them query by query.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from index_testdata import VN, corpus, ids, make_doc

from index.backend import QueryError, SearchBackend, SearchFilters
from index.es_backend import ElasticsearchIndex
from index.query import VIETNAM_TZ
from index.reindex import reindex
from index.tantivy_backend import MAX_RESULT_WINDOW, TantivyIndex
from schema import Document, Entity

BACKENDS = ["tantivy", "elasticsearch"]
EVERYTHING = {d.id for d in corpus()}
DATASET = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "tc201805_baomoi" / "corpus.jsonl.gz"
)


def _open_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SearchBackend]:
    if kind == "tantivy":
        backend: SearchBackend = TantivyIndex(tmp_path / f"tantivy-{random.getrandbits(32)}")
        yield backend
        backend.close()
    else:
        backend = request.getfixturevalue("es_index")
        yield backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchBackend]:
    """An empty index of each kind (a fresh ES alias/index per test)."""
    yield from _open_backend(request.param, tmp_path, request)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SearchBackend]:
    """The eight-document corpus in each backend; read-only tests share it (one load per module)."""
    if request.param == "tantivy":
        backend: SearchBackend = TantivyIndex(tmp_path_factory.mktemp("conformance") / "index")
    else:
        client: Elasticsearch = request.getfixturevalue("es_client")
        backend = ElasticsearchIndex(client, f"conformance-{random.getrandbits(40):x}")
    assert backend.upsert(corpus()) == len(corpus())
    yield backend
    if isinstance(backend, ElasticsearchIndex):
        backend.drop()
    backend.close()


# ---------------------------------------------------------------- query language

QUERY_CASES: list[tuple[str, set[str]]] = [
    # folded (diacritic-insensitive) words, đ → d
    ("binh phuoc", {"bp-rain", "bp-ascii", "rice"}),
    ("Bình Phước", {"bp-rain", "bp-ascii", "rice"}),
    ("dong xoai", {"bp-rain"}),
    ("DONG NAI", {"land", "fraud", "football"}),
    # quoted phrases: with diacritics exact, without folded, word order matters
    ('"Bình Phước"', {"bp-rain", "rice"}),
    ('"binh phuoc"', {"bp-rain", "bp-ascii", "rice"}),
    ('"phước bình"', set()),
    ('"Đồng lúa"', {"rice"}),
    # field filters
    ("topic:the-thao", {"bp-ascii", "football"}),
    ("source:TuoiTre", {"bp-ascii", "fraud"}),
    ("site:tuoitre.vn", {"bp-ascii", "fraud"}),
    ("site:e.tuoitre.vn", {"bp-ascii"}),
    ("sentiment:negative", {"bp-rain", "fraud"}),
    ("entity:binh-phuoc", {"bp-rain", "rice"}),
    ('entity:"Đồng Nai"', {"land", "fraud"}),
    ("author:nguyen", {"bp-rain"}),
    ("title:đất", {"land", "fraud"}),
    ("text:đất", {"bp-rain", "land", "fraud"}),
    ("type:forum", {"hostile"}),
    ("topic:(the-thao OR kinh-te) -bóng", {"bp-ascii", "no-date", "rice"}),
    # boolean semantics and the scope of NOT
    ("đồng -bóng nai", {"land", "fraud"}),
    ("đồng nai KHÔNG bóng", {"land", "fraud"}),
    ("xăng OR đất lừa", {"no-date", "fraud"}),
    ("(xăng OR đất) lừa", {"fraud"}),
    ("-đất", EVERYTHING - {"bp-rain", "land", "fraud"}),
    ("NOT (đất OR lúa)", EVERYTHING - {"bp-rain", "land", "fraud", "rice"}),
    ("xăng OR -giá", EVERYTHING - {"rice", "land", "football"}),
    ("xăng HOẶC lúa", {"no-date", "rice", "fraud"}),
    ('xăng HOẶC "lúa"', {"no-date", "rice"}),
    # prefix and proximity
    ("phấn*", {"rice"}),
    ("nông*", {"rice", "hostile"}),
    ("đấu*", {"land", "bp-ascii", "football", "no-date"}),
    ("mưa NEAR/4 xoài", set()),
    ("mưa NEAR/5 xoài", {"bp-rain"}),
    ("xoài NEAR/5 mưa", {"bp-rain"}),
    ('"đồng xoài" NEAR/4 mưa', {"bp-rain"}),
    # dates are whole local (Asia/Ho_Chi_Minh) days; no published date → the fetch date
    ("date:2026-11-01", {"bp-rain"}),
    ("date:2026-11-02", {"bp-ascii"}),
    ("date:2026-11-01..2026-11-02", {"bp-rain", "bp-ascii"}),
    ("date:2026-11-20..", {"no-date"}),
    ("date:..2026-10", {"rice"}),
    # hostile input is literal text
    ('"title:(* OR .*) AND \\\\ /.*/"', set()),
    ("lừa/đảo", {"fraud"}),
    ("", EVERYTHING),
    ("*", EVERYTHING),
]


@pytest.mark.parametrize(("query", "expected"), QUERY_CASES, ids=[q or "<empty>" for q, _ in QUERY_CASES])
def test_query_language(loaded: SearchBackend, query: str, expected: set[str]) -> None:
    result = loaded.search(query, limit=50)
    assert ids(result) == expected
    assert result.total == len(expected) == loaded.count(query)


def test_structured_filters(loaded: SearchBackend) -> None:
    assert ids(loaded.search("", SearchFilters(topic="the-thao", source="thanhnien"))) == {"football"}
    assert ids(loaded.search("đồng nai", SearchFilters(sentiment="negative"))) == {"fraud"}
    assert loaded.count("", SearchFilters(source_type="forum")) == 1
    days = SearchFilters(
        date_from=datetime(2026, 11, 2, tzinfo=VIETNAM_TZ), date_to=datetime(2026, 11, 11, tzinfo=VIETNAM_TZ)
    )
    assert ids(loaded.search("", days)) == {"bp-ascii", "land"}


def test_bad_queries_raise_query_error(loaded: SearchBackend) -> None:
    for query in ['"mở ngoặc', "((a)", "a AND", "mưa~", "x:y"]:
        with pytest.raises(QueryError):
            loaded.search(query)
    big = " OR ".join(f"từ{i}" for i in range(1500)) + " OR xăng"
    assert ids(loaded.search(big)) == {"no-date"}
    with pytest.raises(QueryError, match="cannot be paged"):
        loaded.search("", offset=MAX_RESULT_WINDOW)


def test_relevance_and_date_sort(loaded: SearchBackend) -> None:
    hits = loaded.search("lừa đảo").hits
    assert hits[0].document.id == "fraud" and hits[0].score > 0
    newest_first = [h.document.id for h in loaded.search("", sort="date", limit=20).hits]
    assert newest_first == ["no-date", "hostile", "football", "fraud", "land", "bp-ascii", "bp-rain", "rice"]
    page = loaded.search("", sort="date", limit=3, offset=3)
    assert [h.document.id for h in page.hits] == newest_first[3:6]
    assert page.total == 8
    assert loaded.search("", limit=0).hits == [] and loaded.search("", limit=0).total == 8


def test_get_rebuilds_the_whole_document(loaded: SearchBackend) -> None:
    for original in corpus():
        assert loaded.get(original.id) == original
    assert loaded.get("missing") is None


# ---------------------------------------------------------------- aggregations


def test_terms_and_facets(loaded: SearchBackend) -> None:
    assert loaded.terms("topic", size=3) == [("kinh-te", 2), ("the-thao", 2), ("dat-dai", 1)]
    assert dict(loaded.terms("sentiment")) == {"positive": 4, "negative": 2, "neutral": 2}
    assert dict(loaded.terms("source", "đồng nai")) == {"vnexpress": 1, "tuoitre": 1, "thanhnien": 1}
    assert dict(loaded.terms("entity")) == {"Bình Phước": 2, "Đồng Nai": 2}
    assert dict(loaded.terms("site", size=2)) == {"vnexpress.net": 4, "e.tuoitre.vn": 1}
    facets = loaded.facets(["topic", "sentiment", "source"], "đồng nai OR binh phuoc", size=5)
    for field in ("topic", "sentiment", "source"):
        assert facets[field] == loaded.terms(field, "đồng nai OR binh phuoc", size=5)
    assert dict(facets["sentiment"]) == {"negative": 2, "positive": 3, "neutral": 1}
    with pytest.raises(ValueError, match="cannot aggregate"):
        loaded.terms("title")


def test_date_histograms_in_vietnam_time(loaded: SearchBackend) -> None:
    days = dict(loaded.date_histogram("day", "binh phuoc"))
    assert days[datetime(2026, 11, 1, tzinfo=VIETNAM_TZ)] == 1
    assert days[datetime(2026, 11, 2, tzinfo=VIETNAM_TZ)] == 1
    assert sum(days.values()) == 3
    weeks = dict(loaded.date_histogram("week"))
    assert weeks[datetime(2026, 10, 26, tzinfo=VIETNAM_TZ)] == 2
    assert weeks[datetime(2026, 11, 2, tzinfo=VIETNAM_TZ)] == 1
    assert sum(weeks.values()) == 8
    assert loaded.date_histogram("month") == [
        (datetime(2026, 10, 1, tzinfo=VIETNAM_TZ), 1),
        (datetime(2026, 11, 1, tzinfo=VIETNAM_TZ), 7),
    ]
    hours = dict(loaded.date_histogram("hour", "topic:the-thao"))
    assert hours[datetime(2026, 11, 2, 0, tzinfo=VIETNAM_TZ)] == 1
    window = SearchFilters(
        date_from=datetime(2026, 10, 30, tzinfo=VIETNAM_TZ), date_to=datetime(2026, 11, 4, tzinfo=VIETNAM_TZ)
    )
    ranged = loaded.date_histogram("day", "", window)
    assert [(d.day, c) for d, c in ranged] == [(30, 0), (31, 0), (1, 1), (2, 1), (3, 0)]


def test_highlights_are_escaped_html_with_marks(loaded: SearchBackend) -> None:
    hit = loaded.search("tin nóng").hits[0]
    assert hit.document.id == "hostile"
    assert "<script>" not in hit.highlights["title"] and "&lt;script&gt;" in hit.highlights["title"]
    assert "<mark>Tin</mark> <mark>nóng</mark>" in hit.highlights["title"]
    assert "<img" not in hit.highlights["text"] and "&lt;b&gt;" in hit.highlights["text"]
    rain = next(h for h in loaded.search("binh phuoc").hits if h.document.id == "bp-rain")
    assert "<mark>Bình</mark> <mark>Phước</mark>" in rain.highlights["title"]
    assert "<mark>Bình</mark> <mark>Phước</mark>" in rain.highlights["text"]
    plain = loaded.search("type:forum").hits[0]
    assert plain.highlights["title"].startswith("&lt;script&gt;") and "<mark>" not in plain.highlights["text"]


# ---------------------------------------------------------------- writing


def test_upsert_is_idempotent_and_delete(backend: SearchBackend) -> None:
    docs = corpus()
    assert backend.upsert(docs) == len(docs)
    assert backend.upsert(docs) == len(docs)
    assert backend.upsert([docs[0], docs[0]]) == 2
    assert backend.count() == len(docs)
    backend.upsert([docs[0].model_copy(update={"title": "Tiêu đề mới hoàn toàn"})])
    assert backend.count() == len(docs)
    assert backend.count("hoàn toàn") == 1
    assert backend.count('"Bình Phước mưa lớn"') == 0
    assert backend.upsert([]) == 0
    assert backend.delete(["fraud", "not-there"]) == 1
    assert backend.get("fraud") is None
    assert backend.count() == len(docs) - 1
    assert backend.delete([]) == 0


def test_fetched_since_and_province_relevance(backend: SearchBackend) -> None:
    backend.upsert(
        [
            make_doc("old", "a", fetched_at=datetime(2026, 11, 1, tzinfo=VN), province_relevance=0.9),
            make_doc("new", "a", fetched_at=datetime(2026, 11, 5, tzinfo=VN), province_relevance=0.2),
        ]
    )
    assert ids(backend.search("", SearchFilters(fetched_since=datetime(2026, 11, 3, tzinfo=VN)))) == {"new"}
    assert ids(backend.search("", SearchFilters(min_province_relevance=0.5))) == {"old"}


def test_search_stories_collapses_clusters(backend: SearchBackend) -> None:
    backend.upsert(
        [
            make_doc("s1", "Cháy chợ Đồng Xoài", "cháy lớn", source="vnexpress", cluster_id="c1"),
            make_doc("s2", "Cháy chợ ở Đồng Xoài", "cháy", source="tuoitre", cluster_id="c1"),
            make_doc("s3", "Đồng Xoài: cháy chợ", "cháy", source="tuoitre", cluster_id="c1"),
            make_doc("s4", "Cháy rừng", "cháy rừng", source="thanhnien", cluster_id="c2"),
            make_doc("s5", "Cháy nhà", "cháy", source="voz"),
            make_doc("s6", "Bão số 3", "bão", source="voz", cluster_id="c1"),
        ]
    )
    stories = backend.search_stories("cháy", limit=10)
    by_cluster = {s.hit.document.cluster_id: s for s in stories}
    assert len(stories) == 3
    assert (by_cluster["c1"].documents, by_cluster["c1"].outlets) == (3, 2)
    assert (by_cluster["c2"].documents, by_cluster["c2"].outlets) == (1, 1)
    assert (by_cluster[None].documents, by_cluster[None].outlets) == (1, 1)
    assert "<mark>" in by_cluster["c1"].hit.highlights["title"]
    assert len(backend.search_stories("cháy", limit=2)) == 2
    dated = backend.search_stories("", sort="date", limit=10)
    assert len(dated) == 3  # c1 (s6 too now), c2 and s5
    assert {(s.hit.document.cluster_id, s.documents, s.outlets) for s in dated} == {
        ("c1", 4, 3),
        ("c2", 1, 1),
        (None, 1, 1),
    }


def test_scan_walks_everything(backend: SearchBackend) -> None:
    docs = [make_doc(f"d{i:04d}", f"bài số {i}", "nội dung chung") for i in range(2_500)]
    backend.upsert(docs)
    scanned = [d.id for d in backend.scan("chung")]
    assert sorted(scanned) == [d.id for d in docs]
    assert {d.id for d in backend.scan("số 3")} == {"d0003"}


def test_date_histogram_refuses_too_many_buckets(backend: SearchBackend) -> None:
    backend.upsert(
        [
            make_doc("old", "x", published_at=datetime(2015, 1, 1, tzinfo=VN)),
            make_doc("new", "x", published_at=datetime(2026, 1, 1, tzinfo=VN)),
        ]
    )
    assert len(backend.date_histogram("month")) == 133
    with pytest.raises(ValueError, match="coarser interval"):
        backend.date_histogram("hour")


# ---------------------------------------------------------------- both backends side by side

SIDE_BY_SIDE_QUERIES = [
    "",
    "việt nam",
    "viet nam",
    '"Việt Nam"',
    "bóng đá OR thể thao",
    "giá -vàng",
    "công an VÀ (lừa đảo HOẶC ma túy)",
    "tai nạn NOT (xe máy)",
    "học*",
    "thủ tướng NEAR/3 phủ",
    "title:bão",
    "topic:kinh-te",
    "sentiment:negative dong nai",
    "source:src-003",
    "site:src-007.example.vn",
    'entity:"Hà Nội"',
    "date:2025-03",
    "date:2025-01-01..2025-06-30 bệnh viện",
    "KHÔNG giá",
    '"thành phố Hồ Chí Minh"',
]


def realistic_documents(count: int) -> list[Document]:
    """Real news texts from the shared baomoi corpus with seeded metadata (dates, sources, labels)."""
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=VN)
    places = ["Hà Nội", "Đồng Nai", "Bình Phước"]
    topics = ["kinh-te", "the-thao", "xa-hoi", "phap-luat"]
    out = []
    with gzip.open(DATASET, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(itertools.islice(handle, count)):
            text = unicodedata.normalize("NFC", json.loads(line)["text"])
            title, _, body = text.partition(". ")
            source = f"src-{rng.randrange(10):03d}"
            out.append(
                make_doc(
                    f"r{i:04d}",
                    title[:200],
                    body or text,
                    source=source,
                    url=f"https://{source}.example.vn/{i}.html",
                    published_at=start + timedelta(minutes=rng.randrange(365 * 24 * 60)),
                    topic=rng.choice(topics),
                    sentiment=rng.choice(["positive", "negative", "neutral"]),
                    cluster_id=f"c{rng.randrange(60)}" if rng.random() < 0.5 else None,
                    entities=[Entity(text=p, label="LOC", canonical=p) for p in rng.sample(places, 1)],
                )
            )
    return out


@pytest.fixture(scope="module")
def both(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[TantivyIndex, ElasticsearchIndex]]:
    tantivy = TantivyIndex(tmp_path_factory.mktemp("side-by-side") / "index")
    tantivy.upsert(realistic_documents(600))
    client: Elasticsearch = request.getfixturevalue("es_client")
    elastic = ElasticsearchIndex(client, f"side-{random.getrandbits(40):x}")
    assert reindex(tantivy, elastic, batch_size=250) == 600  # reindex between backends, too
    yield tantivy, elastic
    elastic.drop()


@pytest.mark.parametrize("query", SIDE_BY_SIDE_QUERIES, ids=[q or "<empty>" for q in SIDE_BY_SIDE_QUERIES])
def test_backends_agree_on_real_news(both: tuple[TantivyIndex, ElasticsearchIndex], query: str) -> None:
    tantivy, elastic = both
    expected_total = tantivy.count(query)
    assert elastic.count(query) == expected_total
    assert {d.id for d in elastic.scan(query)} == {d.id for d in tantivy.scan(query)}
    by_date = [h.document.id for h in tantivy.search(query, sort="date", limit=30).hits]
    assert [h.document.id for h in elastic.search(query, sort="date", limit=30).hits] == by_date
    fields = ["topic", "sentiment", "source"]
    assert elastic.facets(fields, query, size=5) == tantivy.facets(fields, query, size=5)
    for interval in ("week", "month"):
        assert elastic.date_histogram(interval, query) == tantivy.date_histogram(interval, query)
    stories = [
        (s.hit.document.cluster_id, s.documents, s.outlets)
        for s in tantivy.search_stories(query, sort="date")
    ]
    assert [
        (s.hit.document.cluster_id, s.documents, s.outlets)
        for s in elastic.search_stories(query, sort="date")
    ] == stories
