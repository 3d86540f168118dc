"""Pure decision functions of each rule type, the schedule and the re-alert policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.engine import should_fire
from alerts.rules import (
    RULE_TYPES,
    Finding,
    InvalidRuleParams,
    group_by_story,
    negative_share_exceeded,
    rule_type_for,
    silence_is_unusual,
    spike_verdict,
    stories_reaching_outlets,
    threshold_reached,
)
from alerts.schedule import InvalidSchedule, parse_schedule
from alerts.store import KeyState
from tests.alerts.factories import make_doc

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def test_registry_holds_every_rule_type() -> None:
    assert {"match", "threshold", "negative_share", "spike", "new_story", "silent_source"} <= set(RULE_TYPES)


def test_threshold_boundary() -> None:
    assert threshold_reached(5, 5)
    assert not threshold_reached(4, 5)


def test_negative_share_needs_min_documents() -> None:
    assert not negative_share_exceeded(3, 4, min_share=0.4, min_documents=10)
    assert negative_share_exceeded(3, 4, min_share=0.4, min_documents=4)
    assert not negative_share_exceeded(4, 10, min_share=0.4, min_documents=10)  # exactly 40 %: not above
    assert negative_share_exceeded(5, 10, min_share=0.4, min_documents=10)


def test_spike_zero_vs_one_never_fires() -> None:
    # Flat-zero baseline, one document now: σ floor and min_count both keep quiet.
    assert not spike_verdict(1, [0] * 14, k=3.0, min_count=2).fired
    assert not spike_verdict(1, [0] * 14, k=1.0, min_count=2).fired


def test_spike_fires_above_mean_plus_k_sigma() -> None:
    baseline = [4, 5, 6, 5, 4, 6, 5, 5, 4, 6, 5, 5, 4, 6]
    verdict = spike_verdict(20, baseline, k=3.0, min_count=5)
    assert verdict.fired
    assert verdict.mean == pytest.approx(5.0)
    assert verdict.threshold == pytest.approx(5.0 + 3.0 * max(verdict.stdev, 5.0**0.5))  # Poisson σ floor
    assert not spike_verdict(11, baseline, k=3.0, min_count=5).fired  # within Poisson noise of mean 5


def test_spike_respects_min_count_even_on_zero_baseline() -> None:
    assert not spike_verdict(4, [0] * 14, k=3.0, min_count=5).fired
    assert spike_verdict(5, [0] * 14, k=3.0, min_count=5).fired


def test_spike_without_baseline_never_fires() -> None:
    assert not spike_verdict(100, [], k=3.0, min_count=5).fired


def test_group_by_story_collapses_copies() -> None:
    docs = [
        make_doc("a1", source="vnexpress", published_at=T0, cluster_id="c1"),
        make_doc("a2", source="tuoitre", published_at=T0 + timedelta(minutes=5), cluster_id="c1"),
        make_doc("b1", source="dantri", published_at=T0, cluster_id=None),
    ]
    groups = group_by_story(docs)
    assert len(groups) == 2 and groups[0].story_key == "cluster:c1"
    assert groups[0].outlets == {"vnexpress", "tuoitre"}
    assert groups[0].documents[0].source == "tuoitre"  # newest first
    assert groups[1].story_key.startswith("doc:")


def test_new_story_counts_outlets_within_hours() -> None:
    docs = [
        make_doc("s1", source="vnexpress", published_at=T0, cluster_id="c1"),
        make_doc("s2", source="tuoitre", published_at=T0 + timedelta(hours=1), cluster_id="c1"),
        make_doc("s3", source="thanhnien", published_at=T0 + timedelta(hours=7), cluster_id="c1"),
        make_doc("s4", source="vnexpress", published_at=T0 + timedelta(hours=2), cluster_id="c1"),
    ]
    assert stories_reaching_outlets(docs, min_outlets=3, within_hours=6) == []  # 3rd outlet came too late
    reached = stories_reaching_outlets(docs, min_outlets=3, within_hours=8)
    assert len(reached) == 1 and reached[0].outlets == {"vnexpress", "tuoitre", "thanhnien"}


def test_rule_params_are_validated() -> None:
    with pytest.raises(InvalidRuleParams, match="min_count"):
        rule_type_for("spike", {"min_count": 1})
    with pytest.raises(InvalidRuleParams, match="unknown rule type 'silence'"):
        rule_type_for("silence", {})
    with pytest.raises(InvalidRuleParams, match="min_share"):
        rule_type_for("negative_share", {"min_share": 40})
    with pytest.raises(InvalidRuleParams, match="windw_minutes: Extra inputs"):
        rule_type_for("threshold", {"min_count": 3, "windw_minutes": 5})


def test_schedules() -> None:
    assert parse_schedule("").is_due(T0, T0)
    every = parse_schedule("every 15m")
    assert every.is_due(None, T0)
    assert not every.is_due(T0, T0 + timedelta(minutes=14))
    assert every.is_due(T0, T0 + timedelta(minutes=15))
    cron = parse_schedule("0 7 * * *")  # 07:00 Asia/Ho_Chi_Minh = 00:00 UTC
    assert cron.is_due(datetime(2026, 11, 27, 23, 0, tzinfo=UTC), datetime(2026, 11, 28, 0, 1, tzinfo=UTC))
    assert not cron.is_due(datetime(2026, 11, 28, 0, 1, tzinfo=UTC), datetime(2026, 11, 28, 5, 0, tzinfo=UTC))
    for bad in ("every 0m", "hourly", "61 * * * *"):
        with pytest.raises(InvalidSchedule):
            parse_schedule(bad)


def _finding(fingerprint: str, ids: frozenset[str] | None = None) -> Finding:
    return Finding("k", "t", "r", {}, [], fingerprint, evidence_ids=ids)


def test_should_fire_suppression_and_same_evidence() -> None:
    window = timedelta(minutes=60)
    assert should_fire(_finding("f1"), None, T0, window)
    prior = KeyState("k", T0, "f1", {})
    assert not should_fire(_finding("f1"), prior, T0 + timedelta(days=3), window)  # same evidence: never
    assert not should_fire(_finding("f2"), prior, T0 + timedelta(minutes=59), window)  # suppressed
    assert should_fire(_finding("f2"), prior, T0 + timedelta(minutes=60), window)
    seen = KeyState("k", T0, "f1", {"seen_ids": ["a", "b"]})
    assert not should_fire(_finding("f3", frozenset({"b"})), seen, T0 + timedelta(days=1), window)
    assert should_fire(_finding("f4", frozenset({"b", "c"})), seen, T0 + timedelta(days=1), window)


def test_silence_is_unusual() -> None:
    hours = timedelta(hours=1)
    assert silence_is_unusual(5 * hours, 3 * hours, active_days=13, history_days=14, min_active_share=0.8)
    assert not silence_is_unusual(2 * hours, 3 * hours, active_days=14, history_days=14, min_active_share=0.8)
    # quiet at night every day: normal
    assert not silence_is_unusual(8 * hours, 3 * hours, active_days=2, history_days=14, min_active_share=0.8)


def test_same_window_counts_from_hourly_buckets() -> None:
    from alerts.rules import same_window_counts

    hour = timedelta(hours=1)
    base = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    # 10 documents in every hour of the previous days, except 40 at 09:00 two days back.
    hourly = {base + i * hour: 10 for i in range(24 * 8)}
    end = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    hourly[end - 2 * timedelta(days=1) - hour] = 40
    # Aligned one-hour window: exact counts, newest day first.
    assert same_window_counts(hourly, end - hour, end, 3) == [10, 40, 10]
    # A 90-minute window from 08:30: half of 08:00 + all of 09:00, the edge hour pro-rated.
    start = end - timedelta(minutes=90)
    assert same_window_counts(hourly, start, end, 2) == pytest.approx([15.0, 45.0])
    # Days before the data starts count as zero volume, not as missing.
    assert same_window_counts({}, end - hour, end, 2) == [0.0, 0.0]
