"""Default province rules load, install once, and fire on real indexed news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.engine import run_rules_once
from alerts.seed import install_seed_rules, load_seed_rules
from alerts.store import ChannelTarget, RuleValidationError, load_rules, save_rule
from index.tantivy_backend import TantivyIndex
from tests.alerts.factories import make_doc

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def test_seed_rules_cover_the_rule_types() -> None:
    specs = load_seed_rules("Đồng Nai")
    assert {s.rule_type for s in specs} == {"match", "threshold", "spike", "negative_share", "new_story"}
    assert all("Đồng Nai" in s.name and "{province}" not in s.name for s in specs)


def test_install_is_idempotent_and_keeps_staff_edits(db: sa.Engine, index: TantivyIndex) -> None:
    email = [ChannelTarget(channel="email", recipients=["truc-ban@ioc.example.vn"])]
    added = install_seed_rules(db, "Đồng Nai", channels=email, backend=index)
    assert len(added) == 5
    edited = next(r for r in load_rules(db) if r.spec.rule_type == "match")
    save_rule(db, edited.spec.model_copy(update={"suppression_minutes": 15}))
    assert install_seed_rules(db, "Đồng Nai", channels=email) == []
    rules = {r.spec.name: r.spec for r in load_rules(db)}
    assert rules[edited.spec.name].suppression_minutes == 15
    assert all(spec.channels == email for spec in rules.values())


def test_seed_rules_fire_on_province_news(db: sa.Engine, index: TantivyIndex) -> None:
    install_seed_rules(db, "Đồng Nai")
    index.upsert(
        [
            make_doc(
                f"ngap-bien-hoa-{source}",
                source=source,
                title="Mưa lớn gây ngập sâu nhiều tuyến đường ở Biên Hòa, Đồng Nai",
                published_at=NOW - timedelta(minutes=30 + i),
                sentiment="negative",
                topic="moi-truong",
                cluster_id="c-ngap",
                province_relevance=0.9,
            )
            for i, source in enumerate(["vnexpress", "tuoitre", "baodongnai"])
        ]
    )
    fired = run_rules_once(index, db, NOW)
    assert sorted(a.rule_name for a in fired) == ["Tin tiêu cực về Đồng Nai", "Tin về Đồng Nai lan rộng"]
    assert all(a.key == "cluster:c-ngap" for a in fired)


def test_bad_seed_file_names_the_rule(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - name: x\n    rule_type: spike\n    params: {min_count: 1}\n", encoding="utf-8"
    )
    with pytest.raises(RuleValidationError, match=r"rule #1: .*min_count"):
        load_seed_rules("Đồng Nai", path=bad)
