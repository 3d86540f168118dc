"""`run_rules_once` against a real tantivy index and a real SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from alerts.engine import run_rules_once
from alerts.store import (
    RULE_RUN_KEY,
    alert_deliveries,
    alert_rules,
    alerts,
    get_alert,
    list_alerts,
    load_rule_state,
    metadata,
    save_rule,
)
from index.tantivy_backend import TantivyIndex
from schema import Document
from tests.alerts.factories import make_doc

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 09:00 in Đồng Nai
TZ = ZoneInfo("Asia/Ho_Chi_Minh")

PROVINCE_NEGATIVE = {
    "name": "Tin tiêu cực về Đồng Nai",
    "owner": "ioc",
    "rule_type": "match",
    "filters": {"sentiment": "negative", "min_province_relevance": 0.5},
    "channels": [
        {"channel": "email", "recipients": ["truc-ban@ioc.example.vn", "lanh-dao@ioc.example.vn"]},
        {"channel": "webhook", "recipients": ["http://127.0.0.1:9/hook"]},
    ],
    "suppression_minutes": 60,
}


def _seed_province_news(index: TantivyIndex) -> None:
    minutes = timedelta(minutes=1)
    index.upsert(
        [
            make_doc(
                "sat-lo-dat-bien-hoa",
                source="vnexpress",
                title="Sạt lở bờ sông Đồng Nai, nhiều hộ dân phải di dời khẩn cấp",
                published_at=NOW - 40 * minutes,
                sentiment="negative",
                topic="moi-truong",
                cluster_id="c-satlo",
                province_relevance=0.92,
            ),
            make_doc(
                "bien-hoa-sat-lo-bo-song",
                source="tuoitre",
                title="Biên Hòa: sạt lở bờ sông, người dân hoảng loạn trong đêm",
                published_at=NOW - 30 * minutes,
                sentiment="negative",
                topic="moi-truong",
                cluster_id="c-satlo",
                province_relevance=0.88,
            ),
            make_doc(
                "ket-xe-cao-toc",
                source="baodongnai",
                title="Kẹt xe kéo dài trên cao tốc TP.HCM – Long Thành – Dầu Giây",
                published_at=NOW - 20 * minutes,
                sentiment="negative",
                topic="giao-thong",
                province_relevance=0.7,
            ),
            make_doc(
                "khanh-thanh-cau",
                source="baodongnai",
                title="Khánh thành cầu mới nối Đồng Xoài với Bình Dương",
                published_at=NOW - 25 * minutes,
                sentiment="positive",
                topic="giao-thong",
                province_relevance=0.9,
            ),
            make_doc(
                "chay-rung-o-noi-khac",
                source="dantri",
                title="Cháy rừng ở Hà Tĩnh",
                published_at=NOW - 15 * minutes,
                sentiment="negative",
                topic="moi-truong",
                province_relevance=0.05,
            ),
        ]
    )


def test_match_rule_one_alert_per_story_and_idempotent(index: TantivyIndex, db: sa.Engine) -> None:
    _seed_province_news(index)
    save_rule(db, PROVINCE_NEGATIVE, backend=index)

    fired = run_rules_once(index, db, NOW)
    assert sorted(a.key for a in fired)[0] == "cluster:c-satlo"
    assert len(fired) == 2  # the two copies of the landslide story are one alert; the traffic jam another
    landslide = next(a for a in fired if a.key == "cluster:c-satlo")
    assert landslide.body["counts"] == {"documents": 2, "outlets": 2}
    assert {d["source"] for d in landslide.body["documents"]} == {"vnexpress", "tuoitre"}
    assert len(landslide.deliveries) == 3

    with db.connect() as conn:
        deliveries = conn.execute(sa.select(alert_deliveries)).all()
    assert len(deliveries) == 6
    assert all(d.status == "pending" for d in deliveries)
    assert len({d.idempotency_key for d in deliveries}) == 6

    assert run_rules_once(index, db, NOW) == []  # same data, same moment
    assert run_rules_once(index, db, NOW + timedelta(minutes=5)) == []  # overlap re-reads, no new evidence
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 2


def test_suppression_then_realert_after_window(index: TantivyIndex, db: sa.Engine) -> None:
    _seed_province_news(index)
    rule_id = save_rule(db, PROVINCE_NEGATIVE)
    assert len(run_rules_once(index, db, NOW)) == 2

    later = NOW + timedelta(minutes=10)
    index.upsert(
        [
            make_doc(
                "sat-lo-them-mot-bai",
                source="thanhnien",
                title="Sạt lở ở Biên Hòa: tỉnh Đồng Nai chỉ đạo khẩn",
                published_at=later - timedelta(minutes=2),
                sentiment="negative",
                cluster_id="c-satlo",
                province_relevance=0.95,
            )
        ]
    )
    assert run_rules_once(index, db, later) == []  # same story inside the 60-minute suppression
    with db.connect() as conn:
        state = load_rule_state(conn, rule_id)
    assert state["cluster:c-satlo"].state["suppressed_count"] == 1

    much_later = NOW + timedelta(hours=2)
    index.upsert(
        [
            make_doc(
                "sat-lo-ngay-hom-sau",
                source="dantri",
                title="Đồng Nai: tiếp tục sạt lở bờ sông, thêm 20 hộ phải di dời",
                published_at=much_later - timedelta(minutes=3),
                sentiment="negative",
                cluster_id="c-satlo",
                province_relevance=0.9,
            )
        ]
    )
    refired = run_rules_once(index, db, much_later)
    assert [a.key for a in refired] == ["cluster:c-satlo"]
    # New copies since the last run (with its overlap): the one held back by suppression, and the new one.
    assert {d["source"] for d in refired[0].body["documents"]} == {"thanhnien", "dantri"}


def test_late_indexed_document_is_still_seen(index: TantivyIndex, db: sa.Engine) -> None:
    save_rule(db, PROVINCE_NEGATIVE)
    assert run_rules_once(index, db, NOW) == []
    # Fetched before the last run, indexed only after it (NLP lag): the overlap picks it up.
    index.upsert(
        [
            make_doc(
                "ngo-doc-truong-hoc",
                source="baodongnai",
                title="Hơn 40 học sinh ở Long Khánh nhập viện nghi ngộ độc thực phẩm",
                published_at=NOW - timedelta(minutes=12),
                fetched_at=NOW - timedelta(minutes=2),
                sentiment="negative",
                topic="y-te",
                province_relevance=0.85,
            )
        ]
    )
    fired = run_rules_once(index, db, NOW + timedelta(minutes=5))
    assert len(fired) == 1 and "ngộ độc" in fired[0].title


def test_state_survives_restart(index: TantivyIndex, db_url: str) -> None:
    _seed_province_news(index)
    first = sa.create_engine(db_url)
    metadata.create_all(first)
    save_rule(first, PROVINCE_NEGATIVE)
    assert len(run_rules_once(index, first, NOW)) == 2
    first.dispose()

    reopened = sa.create_engine(db_url)
    assert run_rules_once(index, reopened, NOW + timedelta(minutes=5)) == []
    reopened.dispose()


def _hourly_volume(index: TantivyIndex, now: datetime, baseline: list[int], current: int) -> None:
    docs = []
    for day, count in enumerate(baseline, start=1):
        for i in range(count):
            docs.append(
                make_doc(
                    f"giao-thong-ngay-{day}-{i}",
                    source="baodongnai",
                    title=f"Tai nạn giao thông trên quốc lộ 1A, ngày {day}",
                    published_at=now - timedelta(days=day, minutes=10 + i),
                    topic="giao-thong",
                    sentiment="negative" if i % 2 else "neutral",
                    province_relevance=0.8,
                )
            )
    for i in range(current):
        docs.append(
            make_doc(
                f"tai-nan-lien-hoan-{i}",
                source=["vnexpress", "tuoitre", "thanhnien", "dantri"][i % 4],
                title="Tai nạn liên hoàn trên cao tốc Dầu Giây – Phan Thiết",
                published_at=now - timedelta(minutes=5 + i),
                topic="giao-thong",
                sentiment="negative",
                province_relevance=0.8,
            )
        )
    index.upsert(docs)


def test_spike_threshold_and_negative_share_rules(index: TantivyIndex, db: sa.Engine) -> None:
    baseline = [2, 1, 3, 2, 2, 1, 3, 2, 2, 1, 3, 2, 2, 1]
    _hourly_volume(index, NOW, baseline, current=12)
    common = {"owner": "ioc", "filters": {"topic": "giao-thong"}, "suppression_minutes": 60}
    save_rule(
        db,
        {**common, "name": "Đột biến giao thông", "rule_type": "spike", "params": {"k": 3, "min_count": 5}},
    )
    save_rule(
        db, {**common, "name": "Ngưỡng giao thông", "rule_type": "threshold", "params": {"min_count": 13}}
    )
    save_rule(
        db,
        {
            **common,
            "name": "Tỷ lệ tiêu cực giao thông",
            "rule_type": "negative_share",
            "params": {"min_share": 0.6, "min_documents": 10, "window_minutes": 60},
        },
    )
    fired = {a.rule_name: a for a in run_rules_once(index, db, NOW)}
    assert set(fired) == {"Đột biến giao thông", "Tỷ lệ tiêu cực giao thông"}  # 12 < threshold 13
    spike = fired["Đột biến giao thông"].body["counts"]
    assert spike["current"] == 12
    assert spike["baseline_mean"] == round(sum(baseline) / len(baseline), 3)
    assert fired["Tỷ lệ tiêu cực giao thông"].body["counts"] == {"negative": 12, "total": 12, "share": 1.0}
    assert run_rules_once(index, db, NOW) == []


def test_spike_one_document_on_quiet_scope_does_not_fire(index: TantivyIndex, db: sa.Engine) -> None:
    _hourly_volume(index, NOW, [0] * 14, current=1)
    save_rule(
        db,
        {
            "name": "Đột biến",
            "owner": "ioc",
            "rule_type": "spike",
            "filters": {"topic": "giao-thong"},
            "params": {"k": 1, "min_count": 2},
        },
    )
    assert run_rules_once(index, db, NOW) == []


def test_new_story_fires_once_per_story(index: TantivyIndex, db: sa.Engine) -> None:
    def copy(slug: str, source: str, minutes_ago: int) -> Document:
        return make_doc(
            slug,
            source=source,
            title="Đồng Nai công bố quy hoạch sân bay Long Thành giai đoạn 2",
            published_at=NOW - timedelta(minutes=minutes_ago),
            topic="dat-dai",
            cluster_id="c-longthanh",
            province_relevance=0.9,
        )

    index.upsert(
        [copy("lt-1", "baodongnai", 200), copy("lt-2", "vnexpress", 120), copy("lt-3", "tuoitre", 30)]
    )
    save_rule(
        db,
        {
            "name": "Tin mới lan rộng",
            "owner": "ioc",
            "rule_type": "new_story",
            "params": {"min_outlets": 3, "within_hours": 6},
            "suppression_minutes": 0,
        },
    )
    fired = run_rules_once(index, db, NOW)
    assert [a.key for a in fired] == ["cluster:c-longthanh"]
    assert fired[0].body["counts"]["outlets"] == 3
    index.upsert([copy("lt-4", "thanhnien", 5)])
    assert run_rules_once(index, db, NOW + timedelta(minutes=10)) == []


def test_new_story_with_a_query_reads_only_candidate_clusters(index: TantivyIndex, db: sa.Engine) -> None:
    def copy(slug: str, source: str, cluster: str, title: str) -> Document:
        return make_doc(
            slug, source=source, title=title, published_at=NOW - timedelta(minutes=60), cluster_id=cluster
        )

    airport, flood = "Quy hoạch sân bay Long Thành", "Ngập lụt ở Biên Hòa"
    index.upsert(
        [copy(f"sb-{s}", s, "c-sanbay", airport) for s in ("baodongnai", "vnexpress", "tuoitre")]
        + [copy(f"nl-{s}", s, "c-ngaplut", flood) for s in ("baodongnai", "vnexpress", "tuoitre")]
        + [copy(f"sb2-{s}", s, "c-sanbay-2", airport) for s in ("baodongnai", "vnexpress")]  # 2 outlets
    )
    save_rule(
        db,
        {
            "name": "Sân bay lan rộng",
            "owner": "ioc",
            "rule_type": "new_story",
            "query": "sân bay",
            "params": {"min_outlets": 3, "within_hours": 6},
        },
    )
    fired = run_rules_once(index, db, NOW)
    assert [a.key for a in fired] == ["cluster:c-sanbay"]
    assert sorted(d["source"] for d in fired[0].body["documents"]) == ["baodongnai", "tuoitre", "vnexpress"]


def test_broken_rule_is_recorded_and_others_still_run(index: TantivyIndex, db: sa.Engine) -> None:
    _seed_province_news(index)
    save_rule(db, PROVINCE_NEGATIVE)
    broken_id = save_rule(db, {**PROVINCE_NEGATIVE, "name": "Luật hỏng"})
    with db.begin() as conn:  # a query that slipped past validation (e.g. an older grammar)
        conn.execute(alert_rules.update().where(alert_rules.c.id == broken_id).values(query="(sạt lở AND"))
    fired = run_rules_once(index, db, NOW)
    assert {a.rule_name for a in fired} == {"Tin tiêu cực về Đồng Nai"}
    with db.connect() as conn:
        run_state = load_rule_state(conn, broken_id)[RULE_RUN_KEY].state
    assert "QueryError" in run_state["last_error"]
    assert "last_run_at" not in run_state  # the failed window will be read again


def test_silent_source_alerts_once_per_silence(index: TantivyIndex, db: sa.Engine) -> None:
    local_now = datetime(2026, 11, 28, 11, 0, tzinfo=TZ)
    docs = []
    for day in range(1, 15):
        base = local_now.replace(hour=0) - timedelta(days=day)
        docs += [
            make_doc(f"bdn-{day}-{h}", source="baodongnai", published_at=base.replace(hour=h))
            for h in range(6, 23)
        ]
        docs += [
            make_doc(f"dt-{day}-{h}", source="dantri", published_at=base.replace(hour=h))
            for h in range(18, 23)
        ]
    docs.append(make_doc("bdn-today-6", source="baodongnai", published_at=local_now.replace(hour=6)))
    index.upsert(docs)
    save_rule(
        db, {"name": "Nguồn im lặng", "owner": "ioc", "rule_type": "silent_source", "suppression_minutes": 0}
    )

    fired = run_rules_once(index, db, local_now)
    assert [a.key for a in fired] == ["source:baodongnai"]  # dantri is always quiet in the morning
    assert fired[0].body["counts"] == {"silence_hours": 5.0, "active_days": 14, "history_days": 14}
    assert run_rules_once(index, db, local_now + timedelta(hours=1)) == []  # same silence, no repeat


def test_alerts_are_listed_with_their_deliveries(index: TantivyIndex, db: sa.Engine) -> None:
    _seed_province_news(index)
    save_rule(db, PROVINCE_NEGATIVE)
    fired = run_rules_once(index, db, NOW)
    listed = list_alerts(db, rule_name="Tin tiêu cực về Đồng Nai")
    assert {a.id for a in listed} == {a.id for a in fired}
    one = get_alert(db, fired[0].id)
    assert one is not None and one.title == fired[0].title
    assert [(d["channel"], d["status"]) for d in one.deliveries] == [
        ("email", "pending"),
        ("email", "pending"),
        ("webhook", "pending"),
    ]
    assert get_alert(db, "khong-co") is None


def test_alert_written_by_a_concurrent_run_is_skipped_and_the_rest_committed(
    index: TantivyIndex, db: sa.Engine
) -> None:
    from alerts.engine import commit_outcome, decide_rule
    from alerts.store import get_rule

    _seed_province_news(index)
    save_rule(db, PROVINCE_NEGATIVE)
    save_rule(db, {**PROVINCE_NEGATIVE, "name": "Bản sao luật", "channels": []})
    # Another engine process decided and committed the first rule's alerts a moment earlier.
    first = get_rule(db, "Tin tiêu cực về Đồng Nai")
    assert first is not None
    outcome = decide_rule(index, first, {}, NOW)
    assert outcome is not None and outcome.to_fire
    concurrent = commit_outcome(db, outcome, NOW)
    with db.begin() as conn:  # ... but its run record is not visible to our cycle's decisions yet
        conn.execute(sa.delete(metadata.tables["rule_state"]).where(sa.column("rule_id") == first.id))
    fired = run_rules_once(index, db, NOW)
    assert {a.rule_name for a in fired} == {"Bản sao luật"}  # no exception, no duplicate
    assert len(list_alerts(db, rule_name="Tin tiêu cực về Đồng Nai")) == len(concurrent)
    assert len(list_alerts(db, rule_name="Bản sao luật")) == len(concurrent)
