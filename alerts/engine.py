"""One evaluation cycle of every due rule (chu kỳ đánh giá luật).

For each enabled, due rule: read its state, ask the rule type for findings, drop the ones suppressed
or already alerted, then in ONE transaction write the alerts, their delivery rows (the outbox) and the
new state. A crash before commit changes nothing; a re-run over the same data fires nothing new; two
processes racing are stopped by the unique (rule, key, fingerprint) constraint.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from alerts.rules import RULE_TYPES, EvaluationContext, Finding, rule_type_for
from alerts.schedule import parse_schedule
from alerts.store import (
    RULE_RUN_KEY,
    KeyState,
    StoredRule,
    alert_deliveries,
    alerts,
    load_all_rule_states,
    load_rule_state,
    load_rules,
    rule_state,
    upsert_rule_state,
)
from index.backend import SearchBackend

log = logging.getLogger(__name__)

#: How many alerted document ids a key remembers (enough for any story's copies).
MAX_SEEN_IDS = 500
_ALERT_NAMESPACE = uuid.UUID("6f1c2a8e-5d0b-4c55-9a51-3f0d8c1b7e42")


@dataclass(frozen=True)
class FiredAlert:
    """An alert written to the outbox in this cycle, with where it is to be delivered."""

    id: str
    rule_id: int
    rule_name: str
    rule_type: str
    key: str
    story_key: str | None
    title: str
    body: dict[str, Any]
    created_at: datetime
    deliveries: list[tuple[str, str]] = field(default_factory=list)  # (channel, recipient)


def should_fire(finding: Finding, prior: KeyState | None, now: datetime, suppression: timedelta) -> bool:
    """Pure re-alert policy: new evidence, and the key not alerted within the suppression window."""
    if prior is None:
        return True
    if prior.last_fingerprint == finding.fingerprint:
        return False
    if finding.evidence_ids is not None:
        seen = set(prior.state.get("seen_ids", []))
        if finding.evidence_ids <= seen:
            return False
    return not (prior.last_fired_at is not None and now - prior.last_fired_at < suppression)


def alert_id_for(rule_id: int, key: str, fingerprint: str) -> str:
    """Deterministic: the same evidence for the same rule and key is the same alert."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, f"{rule_id}|{key}|{fingerprint}"))


def _state_after_fire(prior: KeyState | None, finding: Finding, now: datetime) -> KeyState:
    state = dict(prior.state) if prior else {}
    state["fired_count"] = int(state.get("fired_count", 0)) + 1
    state["last_counts"] = finding.counts
    if finding.evidence_ids is not None:
        seen = list(state.get("seen_ids", []))
        seen.extend(sorted(finding.evidence_ids - set(seen)))
        state["seen_ids"] = seen[-MAX_SEEN_IDS:]
    return KeyState(finding.key, now, finding.fingerprint, state)


def _state_after_suppress(prior: KeyState, now: datetime) -> KeyState:
    state = dict(prior.state)
    state["suppressed_count"] = int(state.get("suppressed_count", 0)) + 1
    state["last_suppressed_at"] = now.isoformat()
    return KeyState(prior.key, prior.last_fired_at, prior.last_fingerprint, state)


def _body(rule: StoredRule, finding: Finding, now: datetime) -> dict[str, Any]:
    rule_class = RULE_TYPES[rule.spec.rule_type]
    return {
        "rule": rule.spec.name,
        "rule_type": rule.spec.rule_type,
        "rule_description": rule.spec.description or rule_class.description_vi,
        "owner": rule.spec.owner,
        "reason": finding.reason,
        "counts": finding.counts,
        "documents": [d.as_dict() for d in finding.documents],
        "query": rule.spec.query,
        "filters": rule.spec.filters.model_dump(mode="json", exclude_none=True),
        "evaluated_at": now.isoformat(),
    }


def _last_run_at(run_state: KeyState | None) -> datetime | None:
    raw = run_state.state.get("last_run_at") if run_state else None
    return datetime.fromisoformat(raw) if raw else None


def _run_state_after(run_state: KeyState | None, now: datetime, error: str | None, fired: int) -> KeyState:
    state = dict(run_state.state) if run_state else {}
    previous = _last_run_at(run_state)
    if error is None:  # a failed run does not advance the watermark: its window is read again next time
        state["last_run_at"] = max(previous, now).isoformat() if previous else now.isoformat()
    state["last_error"] = error
    state["runs"] = int(state.get("runs", 0)) + 1
    state["last_fired"] = fired
    last_fired_at = run_state.last_fired_at if run_state else None
    if fired:
        last_fired_at = now
    return KeyState(RULE_RUN_KEY, last_fired_at, None, state)


def _record_run(
    conn: Connection, rule_id: int, run_state: KeyState | None, now: datetime, error: str | None, fired: int
) -> None:
    upsert_rule_state(conn, rule_id, _run_state_after(run_state, now, error, fired), now)


_RUN_STATE_UPDATE = (
    rule_state.update()
    .where(rule_state.c.rule_id == sa.bindparam("b_rule_id"), rule_state.c.key == sa.bindparam("b_key"))
    .values(
        last_fired_at=sa.bindparam("b_last_fired_at", type_=rule_state.c.last_fired_at.type),
        state=sa.bindparam("b_state", type_=rule_state.c.state.type),
        updated_at=sa.bindparam("b_updated_at", type_=rule_state.c.updated_at.type),
    )
)


def _record_quiet_runs(conn: Connection, outcomes: list[RuleOutcome], now: datetime) -> None:
    """Record the runs of rules that wrote nothing else: one batched UPDATE (and INSERT for rules run
    for the first time) instead of a round trip per rule — a cycle of hundreds of rules stays cheap."""
    updates, inserts = [], []
    for outcome in outcomes:
        after = _run_state_after(outcome.run_state, now, outcome.error, 0)
        if outcome.run_state is None:
            inserts.append(
                {
                    "rule_id": outcome.rule.id,
                    "key": RULE_RUN_KEY,
                    "last_fired_at": after.last_fired_at,
                    "last_fingerprint": None,
                    "state": after.state,
                    "updated_at": now,
                }
            )
        else:
            updates.append(
                {
                    "b_rule_id": outcome.rule.id,
                    "b_key": RULE_RUN_KEY,
                    "b_last_fired_at": after.last_fired_at,
                    "b_state": after.state,
                    "b_updated_at": now,
                }
            )
    if updates:
        result = conn.execute(_RUN_STATE_UPDATE, updates)
        if result.rowcount != len(updates):  # a row vanished (e.g. the rule was deleted meanwhile)
            log.info("%d of %d rule run rows were not updated", len(updates) - result.rowcount, len(updates))
    if inserts:
        conn.execute(rule_state.insert(), inserts)


def _send_at(
    conn: Connection, rule_id: int, channel: str, recipient: str, now: datetime, aggregate_minutes: int
) -> datetime:
    """When to send: now, or — when aggregating — with the rule's open batch for this recipient."""
    if aggregate_minutes <= 0:
        return now
    open_batch = conn.execute(
        sa.select(sa.func.max(alert_deliveries.c.next_attempt_at))
        .select_from(alert_deliveries.join(alerts, alerts.c.id == alert_deliveries.c.alert_id))
        .where(alerts.c.rule_id == rule_id)
        .where(alert_deliveries.c.channel == channel, alert_deliveries.c.recipient == recipient)
        .where(alert_deliveries.c.status == "pending", alert_deliveries.c.next_attempt_at > now)
    ).scalar()
    return open_batch or now + timedelta(minutes=aggregate_minutes)


def _write_alert(conn: Connection, rule: StoredRule, finding: Finding, now: datetime) -> FiredAlert:
    alert_id = alert_id_for(rule.id, finding.key, finding.fingerprint)
    body = _body(rule, finding, now)
    conn.execute(
        alerts.insert().values(
            id=alert_id,
            rule_id=rule.id,
            rule_name=rule.spec.name,
            key=finding.key,
            story_key=finding.story_key,
            fingerprint=finding.fingerprint,
            title=finding.title,
            body=body,
            created_at=now,
        )
    )
    deliveries = []
    for target in rule.spec.channels:
        for recipient in dict.fromkeys(target.recipients):
            send_at = _send_at(conn, rule.id, target.channel, recipient, now, target.aggregate_minutes)
            deliveries.append((target.channel, recipient, send_at))
    for channel, recipient, send_at in deliveries:
        conn.execute(
            alert_deliveries.insert().values(
                alert_id=alert_id,
                channel=channel,
                recipient=recipient,
                idempotency_key=f"{alert_id}:{channel}:{recipient}",
                status="pending",
                attempts=0,
                next_attempt_at=send_at,
                created_at=now,
            )
        )
    return FiredAlert(
        id=alert_id,
        rule_id=rule.id,
        rule_name=rule.spec.name,
        rule_type=rule.spec.rule_type,
        key=finding.key,
        story_key=finding.story_key,
        title=finding.title,
        body=body,
        created_at=now,
        deliveries=[(channel, recipient) for channel, recipient, _ in deliveries],
    )


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule's evaluation decided, before anything is written."""

    rule: StoredRule
    run_state: KeyState | None
    to_fire: list[tuple[Finding, KeyState | None]]
    suppressed: list[KeyState]
    error: str | None


def decide_rule(
    backend: SearchBackend, rule: StoredRule, states: dict[str, KeyState], now: datetime
) -> RuleOutcome | None:
    """Evaluate one rule against its stored state; None when it is not due. Writes nothing."""
    run_state = states.get(RULE_RUN_KEY)
    last_run_at = _last_run_at(run_state)
    if not parse_schedule(rule.spec.schedule).is_due(last_run_at, now):
        return None
    error: str | None = None
    findings: list[Finding] = []
    try:
        rule_type = rule_type_for(rule.spec.rule_type, rule.spec.params)
        findings = rule_type.evaluate(backend, rule.spec.scope, EvaluationContext(now, last_run_at))
    except Exception as exc:  # a broken rule is logged and recorded; it never stops the other rules
        log.exception("alert rule %r failed to evaluate", rule.spec.name)
        error = f"{type(exc).__name__}: {exc}"
    suppression = timedelta(minutes=rule.spec.suppression_minutes)
    to_fire, suppressed = [], []
    for finding in findings:
        prior = states.get(finding.key)
        if should_fire(finding, prior, now, suppression):
            to_fire.append((finding, prior))
        elif prior is not None and prior.last_fingerprint != finding.fingerprint:
            suppressed.append(_state_after_suppress(prior, now))
    return RuleOutcome(rule, run_state, to_fire, suppressed, error)


def _write_outcome(conn: Connection, outcome: RuleOutcome, now: datetime) -> list[FiredAlert]:
    rule = outcome.rule
    fired = []
    for finding, prior in outcome.to_fire:
        fired.append(_write_alert(conn, rule, finding, now))
        upsert_rule_state(conn, rule.id, _state_after_fire(prior, finding, now), now)
    for state in outcome.suppressed:
        upsert_rule_state(conn, rule.id, state, now)
    _record_run(conn, rule.id, outcome.run_state, now, outcome.error, len(fired))
    return fired


def commit_outcome(engine: Engine, outcome: RuleOutcome, now: datetime) -> list[FiredAlert]:
    """Write a rule's alerts, outbox rows and state in ONE transaction; returns what fired."""
    try:
        with engine.begin() as conn:
            return _write_outcome(conn, outcome, now)
    except IntegrityError:
        # Another process committed the same alert first: its transaction already holds our work.
        log.warning(
            "alert rule %r: alert already written by a concurrent run; skipped", outcome.rule.spec.name
        )
        return []


def evaluate_rule(
    backend: SearchBackend, engine: Engine, rule: StoredRule, now: datetime
) -> list[FiredAlert]:
    """Evaluate one rule if due and commit its alerts and state together (e.g. a "test now" button)."""
    with engine.connect() as conn:
        states = load_rule_state(conn, rule.id)
    outcome = decide_rule(backend, rule, states, now)
    return commit_outcome(engine, outcome, now) if outcome is not None else []


def run_rules_once(backend: SearchBackend, engine: Engine, now: datetime | None = None) -> list[FiredAlert]:
    """Evaluate every enabled, due rule once; returns the alerts written to the outbox.

    Every rule is decided first (reads only), then everything is written in ONE transaction (one disk
    sync instead of hundreds): a crash before the commit changes nothing, and those rules re-read the
    same window next time. If a concurrent run already wrote some alert (unique constraint), the
    cycle is committed rule by rule instead, each rule's alerts and state together.
    """
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("run_rules_once needs an aware `now` (e.g. datetime.now(UTC))")
    rules = load_rules(engine, enabled_only=True)
    with engine.connect() as conn:
        all_states = load_all_rule_states(conn)
    outcomes = [
        outcome
        for rule in rules
        if (outcome := decide_rule(backend, rule, all_states.get(rule.id, {}), moment)) is not None
    ]
    firing = [o for o in outcomes if o.to_fire or o.suppressed]
    quiet = [o for o in outcomes if not (o.to_fire or o.suppressed)]
    if not outcomes:
        return []
    try:
        # The whole cycle in one transaction: one disk sync, however many rules fired.
        with engine.begin() as conn:
            fired = [alert for outcome in firing for alert in _write_outcome(conn, outcome, moment)]
            _record_quiet_runs(conn, quiet, moment)
        return fired
    except IntegrityError:
        log.info("a concurrent engine run wrote some of these alerts; committing rule by rule")
    fired = [alert for outcome in firing for alert in commit_outcome(engine, outcome, moment)]
    if quiet:
        with engine.begin() as conn:
            _record_quiet_runs(conn, quiet, moment)
    return fired
