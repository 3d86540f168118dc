"""Alert tables in the app database and saving/loading rules (luật cảnh báo).

Everything an alert needs to survive a restart lives here: rules, per-rule-and-key state (last fired,
evidence fingerprint, baselines) and the outbox (alerts + one delivery row per channel and recipient,
each with an idempotency key). The lead's Alembic migration is generated from `metadata`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import Connection, Dialect, Engine

from alerts.channels import CHANNEL_TYPES
from alerts.rules import RULE_TYPES, InvalidRuleParams, RuleScope, check_scope_for, rule_type_for
from alerts.schedule import InvalidSchedule, parse_schedule
from index.backend import QueryError, SearchBackend, SearchFilters
from schema import SENTIMENTS, TOPICS, SourceType


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as naive UTC (SQLite keeps no offset), returned aware in UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = sa.MetaData()

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("rule_type", sa.String(50), nullable=False),
    sa.Column("query", sa.Text, nullable=False, default=""),
    sa.Column("filters", sa.JSON, nullable=False, default=dict),
    sa.Column("params", sa.JSON, nullable=False, default=dict),
    sa.Column("schedule", sa.String(100), nullable=False, default=""),
    sa.Column("channels", sa.JSON, nullable=False, default=list),
    sa.Column("suppression_minutes", sa.Integer, nullable=False, default=60),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

#: Key of the rule-level state row (last run, last error); other keys are story clusters or "scope".
RULE_RUN_KEY = "*"

rule_state = sa.Table(
    "rule_state",
    metadata,
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("last_fired_at", UtcDateTime, nullable=True),
    sa.Column("last_fingerprint", sa.String(64), nullable=True),
    sa.Column("state", sa.JSON, nullable=False, default=dict),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    sa.Column("rule_name", sa.String(200), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("story_key", sa.String(300), nullable=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # The same evidence never alerts twice, even if two engine processes race.
    sa.UniqueConstraint("rule_id", "key", "fingerprint", name="uq_alerts_rule_key_fingerprint"),
    sa.Index("ix_alerts_created_at", "created_at"),
)

#: Delivery statuses (trạng thái gửi). `sending` is written (with `claimed_at`) before the network call:
#: a crash between send and mark leaves `sending`, which is never blindly resent — it becomes
#: `interrupted` (reported) unless the channel's receiver de-duplicates on the idempotency key.
#: `bounced`: the recipient was refused; `failed`: gave up after the maximum number of attempts.
DELIVERY_STATUSES = ("pending", "sending", "transmitting", "sent", "bounced", "failed", "interrupted")

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("recipient", sa.String(300), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("claimed_at", UtcDateTime, nullable=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_alert_deliveries_status_next", "status", "next_attempt_at"),
)


#: The daily digest's own outbox (hàng đợi gửi bản tin): one row per day, recipient group and address,
#: with the same claim-before-send statuses as `alert_deliveries`. `message_path` is the archived e-mail
#: (.eml) that is sent, so a retry sends exactly what was rendered at digest time.
digest_deliveries = sa.Table(
    "digest_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("recipient_group", sa.String(100), nullable=False),
    sa.Column("recipient", sa.String(300), nullable=False),
    sa.Column("idempotency_key", sa.String(300), nullable=False, unique=True),
    sa.Column("message_path", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("claimed_at", UtcDateTime, nullable=True),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_digest_deliveries_status_next", "status", "next_attempt_at"),
)

#: Leases (quyền chạy lịch): one row per name; the holder renews `expires_at` by heartbeat. Only the
#: holder of the "scheduler" lease runs scheduled jobs, however many service processes are started.
service_leases = sa.Table(
    "service_leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("renewed_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)


#: APScheduler's SQLAlchemy job store table, declared (same shape as APScheduler 3 creates it) so the
#: migration creates it before two service processes could race to create it at start.
scheduler_jobs = sa.Table(
    "scheduler_jobs",
    metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)

# --------------------------------------------------------------------------------------------------
# Rule specification and validation
# --------------------------------------------------------------------------------------------------


class RuleValidationError(ValueError):
    """A rule that cannot be saved; the message names the rule and the field and says how to fix it."""


class ScopeFilters(BaseModel):
    """The structured part of a rule's scope, as stored in JSON (bộ lọc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str | None = None
    sentiment: str | None = None
    source: str | None = None
    source_type: SourceType | None = None
    min_province_relevance: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, value: str | None) -> str | None:
        if value is not None and value not in TOPICS:
            raise ValueError(f"unknown topic {value!r}; use one of {', '.join(TOPICS)}")
        return value

    @field_validator("sentiment")
    @classmethod
    def _known_sentiment(cls, value: str | None) -> str | None:
        if value is not None and value not in SENTIMENTS:
            raise ValueError(f"unknown sentiment {value!r}; use one of {', '.join(SENTIMENTS)}")
        return value

    def to_search_filters(self) -> SearchFilters:
        return SearchFilters(
            topic=self.topic,
            sentiment=self.sentiment,
            source=self.source,
            source_type=self.source_type.value if self.source_type else None,
            min_province_relevance=self.min_province_relevance,
        )


class ChannelTarget(BaseModel):
    """Where a rule's alerts go: a channel name (email, webhook, …) and its recipients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    recipients: list[str] = Field(min_length=1)
    #: Hold this rule's alerts for up to this many minutes and send them as ONE grouped message with
    #: per-key counts (gộp cảnh báo). 0: send each alert as soon as the sender runs.
    aggregate_minutes: int = Field(default=0, ge=0, le=24 * 60)

    @field_validator("channel")
    @classmethod
    def _channel_name(cls, value: str) -> str:
        if value not in CHANNEL_TYPES:
            raise ValueError(f"unknown channel {value!r}; use one of {', '.join(sorted(CHANNEL_TYPES))}")
        return value

    @model_validator(mode="after")
    def _recipients_fit_channel(self) -> ChannelTarget:
        problems = [p for r in self.recipients if (p := CHANNEL_TYPES[self.channel].recipient_problem(r))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RuleSpec(BaseModel):
    """A rule as the UI, YAML import and the database see it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    owner: str = Field(min_length=1, max_length=200)
    rule_type: str
    query: str = ""
    filters: ScopeFilters = ScopeFilters()
    params: dict[str, Any] = Field(default_factory=dict)
    schedule: str = ""
    channels: list[ChannelTarget] = Field(default_factory=list)
    suppression_minutes: int = Field(60, ge=0, le=31 * 24 * 60)
    enabled: bool = True

    @property
    def scope(self) -> RuleScope:
        return RuleScope(self.query, self.filters.to_search_filters())


def _query_parser() -> Any | None:
    """The index's query parser, if that module is installed (it lets us validate without an index)."""
    try:
        module = importlib.import_module("index.query")
    except ImportError:
        return None
    return getattr(module, "parse_query", None) or getattr(module, "parse", None)


def validate_query(query: str, backend: SearchBackend | None = None) -> None:
    """Raise `QueryError` if `query` is not valid staff query language.

    Uses `index.query`'s parser when present; otherwise asks the backend (a count on a bad query
    raises `QueryError`).
    """
    if not query.strip():
        return
    parser = _query_parser()
    if parser is not None:
        parser(query)
    elif backend is not None:
        backend.count(query)


def validate_rule(raw: RuleSpec | dict[str, Any], backend: SearchBackend | None = None) -> RuleSpec:
    """Check everything a rule needs before it is saved; raises `RuleValidationError`."""
    name = raw.name if isinstance(raw, RuleSpec) else str(raw.get("name", "?"))
    try:
        spec = raw if isinstance(raw, RuleSpec) else RuleSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise RuleValidationError(f"rule {name!r} is invalid: {problems}") from None
    try:
        rule_class = RULE_TYPES.get(spec.rule_type)
        rule_type_for(spec.rule_type, spec.params)
        if rule_class is not None:
            check_scope_for(rule_class, spec.scope.filters)
        parse_schedule(spec.schedule)
    except (InvalidRuleParams, InvalidSchedule) as exc:
        raise RuleValidationError(f"rule {spec.name!r} is invalid: {exc}") from None
    try:
        validate_query(spec.query, backend)
    except QueryError as exc:
        where = f" at character {exc.position}" if exc.position is not None else ""
        raise RuleValidationError(
            f"rule {spec.name!r} has an invalid query{where}: {exc} (query: {spec.query!r})"
        ) from None
    return spec


# --------------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRule:
    """A rule row: its database id plus the validated spec."""

    id: int
    spec: RuleSpec
    created_at: datetime
    updated_at: datetime


def _spec_values(spec: RuleSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "owner": spec.owner,
        "rule_type": spec.rule_type,
        "query": spec.query,
        "filters": spec.filters.model_dump(mode="json", exclude_none=True),
        "params": spec.params,
        "schedule": spec.schedule,
        "channels": [c.model_dump(mode="json") for c in spec.channels],
        "suppression_minutes": spec.suppression_minutes,
        "enabled": spec.enabled,
    }


def save_rule(
    engine: Engine,
    raw: RuleSpec | dict[str, Any],
    *,
    backend: SearchBackend | None = None,
    now: datetime | None = None,
) -> int:
    """Validate and insert a rule, or replace the rule of the same name; returns its id."""
    spec = validate_rule(raw, backend)
    stamp = now or datetime.now(UTC)
    values = _spec_values(spec)
    with engine.begin() as conn:
        existing = conn.execute(sa.select(alert_rules.c.id).where(alert_rules.c.name == spec.name)).scalar()
        if existing is not None:
            conn.execute(
                alert_rules.update().where(alert_rules.c.id == existing).values(**values, updated_at=stamp)
            )
            return int(existing)
        result = conn.execute(alert_rules.insert().values(**values, created_at=stamp, updated_at=stamp))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def _row_to_rule(row: sa.Row[Any]) -> StoredRule:
    spec = RuleSpec.model_validate(
        {
            "name": row.name,
            "description": row.description,
            "owner": row.owner,
            "rule_type": row.rule_type,
            "query": row.query,
            "filters": row.filters or {},
            "params": row.params or {},
            "schedule": row.schedule or "",
            "channels": row.channels or [],
            "suppression_minutes": row.suppression_minutes,
            "enabled": row.enabled,
        }
    )
    return StoredRule(id=row.id, spec=spec, created_at=row.created_at, updated_at=row.updated_at)


def load_rules(engine_or_conn: Engine | Connection, *, enabled_only: bool = False) -> list[StoredRule]:
    """All rules ordered by id (optionally only enabled ones)."""
    query = sa.select(alert_rules).order_by(alert_rules.c.id)
    if enabled_only:
        query = query.where(alert_rules.c.enabled.is_(True))
    if isinstance(engine_or_conn, Connection):
        return [_row_to_rule(r) for r in engine_or_conn.execute(query)]
    with engine_or_conn.connect() as conn:
        return [_row_to_rule(r) for r in conn.execute(query)]


def get_rule(engine: Engine, name: str) -> StoredRule | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(alert_rules).where(alert_rules.c.name == name)).first()
    return _row_to_rule(row) if row is not None else None


def set_rule_enabled(engine: Engine, name: str, enabled: bool, *, now: datetime | None = None) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            alert_rules.update()
            .where(alert_rules.c.name == name)
            .values(enabled=enabled, updated_at=now or datetime.now(UTC))
        )
    if result.rowcount == 0:
        raise KeyError(f"no alert rule named {name!r}")


def delete_rule(engine: Engine, name: str) -> None:
    """Delete a rule with its state and alerts (SQLite needs foreign keys on to cascade, so do it here)."""
    with engine.begin() as conn:
        rule_id = conn.execute(sa.select(alert_rules.c.id).where(alert_rules.c.name == name)).scalar()
        if rule_id is None:
            raise KeyError(f"no alert rule named {name!r}")
        alert_ids = sa.select(alerts.c.id).where(alerts.c.rule_id == rule_id)
        conn.execute(alert_deliveries.delete().where(alert_deliveries.c.alert_id.in_(alert_ids)))
        conn.execute(alerts.delete().where(alerts.c.rule_id == rule_id))
        conn.execute(rule_state.delete().where(rule_state.c.rule_id == rule_id))
        conn.execute(alert_rules.delete().where(alert_rules.c.id == rule_id))


@dataclass(frozen=True)
class KeyState:
    """Persisted state of one rule and key (trạng thái luật)."""

    key: str
    last_fired_at: datetime | None
    last_fingerprint: str | None
    state: dict[str, Any]


def load_rule_state(conn: Connection, rule_id: int) -> dict[str, KeyState]:
    rows = conn.execute(sa.select(rule_state).where(rule_state.c.rule_id == rule_id))
    return {r.key: KeyState(r.key, r.last_fired_at, r.last_fingerprint, dict(r.state or {})) for r in rows}


def load_all_rule_states(conn: Connection) -> dict[int, dict[str, KeyState]]:
    """Every rule's state in one query (one engine cycle reads it once)."""
    out: dict[int, dict[str, KeyState]] = {}
    for r in conn.execute(sa.select(rule_state)):
        out.setdefault(r.rule_id, {})[r.key] = KeyState(
            r.key, r.last_fired_at, r.last_fingerprint, dict(r.state or {})
        )
    return out


def upsert_rule_state(conn: Connection, rule_id: int, item: KeyState, now: datetime) -> None:
    """Insert or update one state row (portable: no dialect-specific upsert)."""
    values = {
        "last_fired_at": item.last_fired_at,
        "last_fingerprint": item.last_fingerprint,
        "state": item.state,
        "updated_at": now,
    }
    updated = conn.execute(
        rule_state.update()
        .where(rule_state.c.rule_id == rule_id, rule_state.c.key == item.key)
        .values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(rule_state.insert().values(rule_id=rule_id, key=item.key, **values))


def prune_rule_state(engine: Engine, older_than: datetime) -> int:
    """Housekeeping: forget per-key state (story clusters, sources) untouched since `older_than`.

    Keep it longer than any rule's look-back (new_story looks back 2×T ≤ 6 days), so a forgotten key
    cannot re-alert on the same evidence. Rule-level rows (last run, last error) are kept.
    """
    with engine.begin() as conn:
        result = conn.execute(
            rule_state.delete()
            .where(rule_state.c.key != RULE_RUN_KEY)
            .where(rule_state.c.updated_at < older_than)
            .where(sa.or_(rule_state.c.last_fired_at.is_(None), rule_state.c.last_fired_at < older_than))
        )
    return int(result.rowcount)


@dataclass(frozen=True)
class AlertRecord:
    """An alert as the UI lists it, with the state of each of its deliveries."""

    id: str
    rule_id: int
    rule_name: str
    key: str
    story_key: str | None
    title: str
    body: dict[str, Any]
    created_at: datetime
    deliveries: list[dict[str, Any]]


def _alert_records(conn: Connection, rows: list[Any]) -> list[AlertRecord]:
    ids = [r.id for r in rows]
    deliveries: dict[str, list[dict[str, Any]]] = {}
    if ids:
        query = (
            sa.select(alert_deliveries)
            .where(alert_deliveries.c.alert_id.in_(ids))
            .order_by(alert_deliveries.c.id)
        )
        for d in conn.execute(query):
            item = dict(d._mapping)
            deliveries.setdefault(item.pop("alert_id"), []).append(item)
    return [
        AlertRecord(
            id=r.id,
            rule_id=r.rule_id,
            rule_name=r.rule_name,
            key=r.key,
            story_key=r.story_key,
            title=r.title,
            body=dict(r.body or {}),
            created_at=r.created_at,
            deliveries=deliveries.get(r.id, []),
        )
        for r in rows
    ]


def list_alerts(
    engine: Engine, *, rule_name: str | None = None, since: datetime | None = None, limit: int = 50
) -> list[AlertRecord]:
    """Newest alerts first, optionally of one rule and/or since a moment."""
    query = sa.select(alerts).order_by(alerts.c.created_at.desc(), alerts.c.id).limit(limit)
    if rule_name is not None:
        query = query.where(alerts.c.rule_name == rule_name)
    if since is not None:
        query = query.where(alerts.c.created_at >= since)
    with engine.connect() as conn:
        return _alert_records(conn, list(conn.execute(query)))


def get_alert(engine: Engine, alert_id: str) -> AlertRecord | None:
    """One alert with its deliveries (the page an alert message links to)."""
    with engine.connect() as conn:
        records = _alert_records(conn, list(conn.execute(sa.select(alerts).where(alerts.c.id == alert_id))))
    return records[0] if records else None
