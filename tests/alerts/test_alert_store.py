"""Saving and loading rules with validation at save time, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from alerts.store import (
    RULE_RUN_KEY,
    KeyState,
    RuleValidationError,
    delete_rule,
    get_rule,
    load_rule_state,
    load_rules,
    metadata,
    prune_rule_state,
    save_rule,
    set_rule_enabled,
    upsert_rule_state,
)

NAME = "Tin tiêu cực về tỉnh"
RULE = {
    "name": NAME,
    "owner": "trung-tam-ioc",
    "rule_type": "match",
    "query": '"sạt lở" OR ngập',
    "filters": {"sentiment": "negative", "min_province_relevance": 0.6},
    "params": {"max_age_hours": 24},
    "schedule": "every 5m",
    "channels": [{"channel": "email", "recipients": ["truc-ban@ioc.example.vn"]}],
    "suppression_minutes": 120,
}


def test_round_trip_and_update_by_name(db: sa.Engine) -> None:
    rule_id = save_rule(db, RULE)
    stored = load_rules(db)
    assert [r.id for r in stored] == [rule_id]
    spec = stored[0].spec
    assert spec.filters.min_province_relevance == 0.6
    assert spec.scope.filters.sentiment == "negative"
    assert spec.channels[0].recipients == ["truc-ban@ioc.example.vn"]
    assert stored[0].created_at.tzinfo is not None

    again = save_rule(db, {**RULE, "suppression_minutes": 30})
    assert again == rule_id
    updated = get_rule(db, NAME)
    assert updated is not None and updated.spec.suppression_minutes == 30

    set_rule_enabled(db, NAME, False)
    assert load_rules(db, enabled_only=True) == []
    delete_rule(db, NAME)
    assert load_rules(db) == []
    with pytest.raises(KeyError):
        delete_rule(db, NAME)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query": "(sạt lở AND"}, "invalid query at character"),
        ({"rule_type": "silence"}, "unknown rule type 'silence'"),
        ({"params": {"max_age_hour": 3}}, "max_age_hour"),
        ({"filters": {"topic": "bong-da"}}, "unknown topic 'bong-da'"),
        ({"schedule": "hourly"}, "schedule 'hourly' not understood"),
        ({"rule_type": "negative_share", "params": {"min_share": 0.4}}, "sets sentiment itself"),
        ({"channels": [{"channel": "email", "recipients": []}]}, "channels.0.recipients"),
        ({"owner": ""}, "owner"),
        ({"channels": [{"channel": "sms", "recipients": ["0912345678"]}]}, "unknown channel 'sms'"),
        (
            {"channels": [{"channel": "email", "recipients": ["truc-ban"]}]},
            "'truc-ban' is not an e-mail address",
        ),
        ({"channels": [{"channel": "webhook", "recipients": ["ftp://x.vn/a"]}]}, "is not an http\\(s\\) URL"),
        ({"channels": [{"channel": "telegram", "recipients": ["nhom chat"]}]}, "not a Telegram chat id"),
    ],
)
def test_invalid_rules_rejected_at_save(db: sa.Engine, change: dict[str, object], message: str) -> None:
    with pytest.raises(RuleValidationError, match=message):
        save_rule(db, {**RULE, **change})
    assert load_rules(db) == []


def test_state_survives_reopening_the_database(db_url: str) -> None:
    first = sa.create_engine(db_url)
    metadata.create_all(first)
    rule_id = save_rule(first, RULE)
    fired = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    with first.begin() as conn:
        upsert_rule_state(conn, rule_id, KeyState("cluster:c1", fired, "abc", {"seen_ids": ["d1"]}), fired)
        upsert_rule_state(
            conn, rule_id, KeyState("cluster:c1", fired, "def", {"seen_ids": ["d1", "d2"]}), fired
        )
    first.dispose()

    second = sa.create_engine(db_url)
    with second.connect() as conn:
        state = load_rule_state(conn, rule_id)
    second.dispose()
    assert state["cluster:c1"] == KeyState("cluster:c1", fired, "def", {"seen_ids": ["d1", "d2"]})


def test_prune_rule_state_keeps_recent_and_rule_level_rows(db: sa.Engine) -> None:
    rule_id = save_rule(db, RULE)
    old, recent = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)
    with db.begin() as conn:
        upsert_rule_state(conn, rule_id, KeyState("cluster:old", old, "a", {}), old)
        upsert_rule_state(conn, rule_id, KeyState("cluster:new", recent, "b", {}), recent)
        upsert_rule_state(conn, rule_id, KeyState(RULE_RUN_KEY, old, None, {"runs": 1}), old)
    assert prune_rule_state(db, datetime(2026, 11, 1, tzinfo=UTC)) == 1
    with db.connect() as conn:
        assert set(load_rule_state(conn, rule_id)) == {"cluster:new", RULE_RUN_KEY}
