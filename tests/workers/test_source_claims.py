"""Source leases on SQLite and on PostgreSQL: one holder per source, expiry, takeover, history."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from crawlers.registry import SourceSpec, set_enabled, upsert_sources
from duluan.db import open_database
from duluan.source_claims import (
    add_missing_sources,
    claim_due,
    claims,
    crawl_history,
    finish,
    release_all,
    renew,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    url = (
        f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    engine = open_database(url)
    upsert_sources(
        engine,
        [
            SourceSpec(id=f"s{n}", name=f"Nguồn {n}", type="rss", start_urls=[f"https://s{n}.example/rss"])
            for n in range(8)
        ],
    )
    yield engine
    engine.dispose()


def test_claims_are_exclusive_under_concurrency(engine: sa.Engine) -> None:
    assert add_missing_sources(engine, T0) == 8
    assert add_missing_sources(engine, T0) == 0
    results: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def claimer(holder: str) -> None:
        barrier.wait()
        results[holder] = claim_due(engine, holder, TTL, T0, limit=3)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = Counter(sid for ids in results.values() for sid in ids)
    assert set(taken) == {f"s{n}" for n in range(8)}  # every due source claimed…
    assert max(taken.values()) == 1  # …by exactly one worker
    assert all(len(ids) <= 3 for ids in results.values())
    holders = {c.source_id: c.holder for c in claims(engine)}
    assert all(holders[sid] == holder for holder, ids in results.items() for sid in ids)
    # Nothing is left to claim while the leases are valid.
    assert claim_due(engine, "late", TTL, T0 + TTL - timedelta(seconds=1), limit=8) == []


def test_expired_lease_is_taken_over_and_the_dead_holders_crawl_closed(engine: sa.Engine) -> None:
    add_missing_sources(engine, T0)
    assert claim_due(engine, "dead", TTL, T0, limit=2) == ["s0", "s1"]
    assert renew(engine, "dead", ["s0", "s1"], TTL, T0 + timedelta(seconds=10)) == {"s0", "s1"}
    # The holder dies after that renewal: its leases run until T0 + 40 s.
    before_expiry = claim_due(engine, "next", TTL, T0 + timedelta(seconds=39), limit=8)
    assert sorted(before_expiry) == [f"s{n}" for n in range(2, 8)]  # s0, s1 still leased
    assert sorted(release_all(engine, "next", T0 + timedelta(seconds=39))) == sorted(before_expiry)
    taken = claim_due(engine, "next", TTL, T0 + timedelta(seconds=41), limit=2)
    assert taken == ["s0", "s1"]
    history = [r for r in crawl_history(engine) if r.holder == "dead"]
    assert [(r.outcome, r.finished_at) for r in history] == [("abandoned", T0 + timedelta(seconds=40))] * 2
    # The old holder, back from a pause, cannot renew nor release what is no longer its own.
    assert renew(engine, "dead", ["s0", "s1"], TTL, T0 + timedelta(seconds=42)) == set()
    assert not finish(engine, "dead", "s0", "ok", T0 + timedelta(seconds=42), T0 + timedelta(hours=1))
    assert {c.source_id: c.holder for c in claims(engine)}["s0"] == "next"


def test_finish_sets_the_next_due_time_and_disabled_sources_are_not_claimed(engine: sa.Engine) -> None:
    add_missing_sources(engine, T0)
    set_enabled(engine, "s7", False)
    first = claim_due(engine, "w", TTL, T0, limit=8)
    assert "s7" not in first and len(first) == 7
    due = T0 + timedelta(minutes=30)
    assert all(finish(engine, "w", sid, "ok", T0 + timedelta(seconds=5), due) for sid in first)
    assert claim_due(engine, "w2", TTL, due - timedelta(seconds=1), limit=8) == []
    assert len(claim_due(engine, "w2", TTL, due, limit=8)) == 7
    by_id = {c.source_id: c for c in claims(engine)}
    assert by_id["s0"].last_outcome == "ok" and by_id["s0"].holder == "w2"
    with pytest.raises(ValueError, match="unknown crawl outcome"):
        finish(engine, "w2", "s0", "fine", due, due)
