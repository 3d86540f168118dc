"""Accounts (tài khoản), roles, sessions, API tokens, the audit log and analysts' label corrections.

Tables live on this module's `metadata`; the Alembic migration 0003 creates them. Secrets are never
stored in clear: passwords are argon2id hashes, session and API tokens are stored as SHA-256 digests
(they are long random strings, so a fast hash is enough and lookups stay indexed).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from alerts.store import UtcDateTime

Role = Literal["admin", "analyst", "staff", "leader"]
#: Role code → Vietnamese display name (vai trò).
ROLES: dict[str, str] = {
    "admin": "Quản trị",
    "analyst": "Phân tích viên",
    "staff": "Cán bộ truyền thông",
    "leader": "Lãnh đạo",
}

#: What each capability needs. A route checks a capability, never a role name, so roles stay one table.
PERMISSIONS: dict[str, frozenset[str]] = {
    "overview": frozenset({"admin", "analyst", "staff", "leader"}),
    "digests": frozenset({"admin", "analyst", "staff", "leader"}),
    "search": frozenset({"admin", "analyst", "staff", "leader"}),
    "label": frozenset({"admin", "analyst", "staff"}),
    "rules": frozenset({"admin", "analyst", "staff"}),  # staff: only rules they own
    "rules_all": frozenset({"admin", "analyst"}),
    "sources_view": frozenset({"admin", "analyst", "staff", "leader"}),
    "sources_edit": frozenset({"admin"}),
    "digests_render": frozenset({"admin", "analyst"}),
    "models": frozenset({"admin", "analyst"}),
    "users": frozenset({"admin"}),
    "audit": frozenset({"admin"}),
}

#: Fields an analyst may correct on a document (nhãn hiệu chỉnh).
LABEL_FIELDS = ("topic", "sentiment", "relevance")

MIN_PASSWORD_CHARS = 10
SESSION_TTL = timedelta(hours=12)
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False, default=""),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(300), nullable=False),
    sa.Column("details", sa.JSON, nullable=False, default=dict),
    sa.Index("ix_audit_log_at", "at"),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("doc_id", sa.String(128), nullable=False, index=True),
    sa.Column("field", sa.String(32), nullable=False),
    sa.Column("value", sa.String(64), nullable=False),
    sa.Column("previous", sa.String(64), nullable=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so a wrong username costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("duluan-dummy-password")


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; the message says what to change."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    active: bool
    created_at: datetime

    def can(self, capability: str) -> bool:
        return self.active and self.role in PERMISSIONS.get(capability, frozenset())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password too short: use at least {MIN_PASSWORD_CHARS} characters")
    if password.strip() != password or not password.strip():
        raise AccountError("password must not start or end with spaces")


def _user(row: sa.Row[Any]) -> User:
    return User(row.id, row.username, row.display_name, row.role, bool(row.active), row.created_at)


def create_user(engine: sa.Engine, username: str, password: str, role: str, display_name: str = "") -> User:
    """Add a user; the username is lower-case letters, digits, '.', '_' or '-'."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise AccountError(
            f"username {username!r} is invalid: use 2-64 lower-case letters, digits, '.', '_' or '-'"
        )
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    check_password_policy(password)
    now = _now()
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
            raise AccountError(f"user {username!r} already exists; use `duluan users passwd` to reset it")
        conn.execute(
            users.insert().values(
                username=username,
                display_name=display_name or username,
                role=role,
                password_hash=_hasher.hash(password),
                active=True,
                created_at=now,
                updated_at=now,
            )
        )
    user = get_user(engine, username)
    assert user is not None
    return user


def get_user(engine: sa.Engine, username: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username.strip().lower())).first()
    return _user(row) if row else None


def list_users(engine: sa.Engine) -> list[User]:
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def count_users(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


def set_password(engine: sa.Engine, username: str, password: str) -> None:
    """Change a password and end that user's sessions (a reset must lock out whoever had it)."""
    check_password_policy(password)
    user = get_user(engine, username)
    if user is None:
        raise AccountError(f"no user {username!r}; `duluan users list` shows who exists")
    with engine.begin() as conn:
        conn.execute(
            users.update()
            .where(users.c.id == user.id)
            .values(password_hash=_hasher.hash(password), updated_at=_now())
        )
        conn.execute(sessions.delete().where(sessions.c.user_id == user.id))


def update_user(
    engine: sa.Engine, username: str, *, role: str | None = None, active: bool | None = None
) -> User:
    user = get_user(engine, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    values: dict[str, Any] = {"updated_at": _now()}
    if role is not None:
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        values["role"] = role
    if active is not None:
        values["active"] = active
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == user.id).values(**values))
        if active is False:
            conn.execute(sessions.delete().where(sessions.c.user_id == user.id))
    updated = get_user(engine, username)
    assert updated is not None
    return updated


def authenticate(engine: sa.Engine, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (same cost either way)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username.strip().lower())).first()
    stored = row.password_hash if row else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.active:
        return None
    if _hasher.check_needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(
                users.update().where(users.c.id == row.id).values(password_hash=_hasher.hash(password))
            )
    return _user(row)


# -- sessions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    token: str  # the cookie value; only its digest is stored
    csrf_token: str
    user: User
    expires_at: datetime


def create_session(engine: sa.Engine, user: User, ttl: timedelta = SESSION_TTL) -> Session:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.expires_at < now))  # housekeeping
        conn.execute(
            sessions.insert().values(
                token_hash=digest_token(token),
                user_id=user.id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + ttl,
            )
        )
    return Session(token, csrf, user, now + ttl)


def session_for(engine: sa.Engine, token: str) -> Session | None:
    """The live session behind a cookie value, with its (active) user."""
    if not token:
        return None
    query = (
        sa.select(sessions.c.csrf_token, sessions.c.expires_at, users)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == digest_token(token))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.expires_at <= _now() or not row.active:
        return None
    return Session(token, row.csrf_token, _user(row), row.expires_at)


def end_session(engine: sa.Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(sessions.delete().where(sessions.c.token_hash == digest_token(token)))


# -- API tokens ----------------------------------------------------------------------------------------


def create_api_token(engine: sa.Engine, username: str, name: str) -> str:
    """A new bearer token for scripts; returned once, stored only as a digest."""
    user = get_user(engine, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    token = "dl_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            api_tokens.insert().values(
                user_id=user.id, name=name or "token", token_hash=digest_token(token), created_at=_now()
            )
        )
    return token


def user_for_api_token(engine: sa.Engine, token: str) -> User | None:
    query = (
        sa.select(api_tokens.c.id.label("token_id"), users)
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == digest_token(token), api_tokens.c.revoked.is_(False))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or not row.active:
        return None
    return _user(row)


def list_api_tokens(engine: sa.Engine, username: str) -> list[dict[str, Any]]:
    query = (
        sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.created_at, api_tokens.c.revoked)
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(users.c.username == username)
        .order_by(api_tokens.c.id)
    )
    with engine.connect() as conn:
        return [
            {"id": r.id, "name": r.name, "created_at": r.created_at.isoformat(), "revoked": r.revoked}
            for r in conn.execute(query)
        ]


def revoke_api_token(engine: sa.Engine, token_id: int, username: str | None = None) -> bool:
    query = api_tokens.update().where(api_tokens.c.id == token_id)
    if username is not None:
        owner = sa.select(users.c.id).where(users.c.username == username).scalar_subquery()
        query = query.where(api_tokens.c.user_id == owner)
    with engine.begin() as conn:
        return bool(conn.execute(query.values(revoked=True)).rowcount)


# -- audit log and labels ------------------------------------------------------------------------------


def record_audit(
    engine: sa.Engine,
    username: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Who changed what (nhật ký thao tác): rules, sources, labels, users."""
    with engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                at=_now(),
                username=username,
                action=action,
                object_type=object_type,
                object_id=object_id,
                details=details or {},
            )
        )


def list_audit(engine: sa.Engine, limit: int = 200, object_type: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if object_type:
        query = query.where(audit_log.c.object_type == object_type)
    with engine.connect() as conn:
        return [
            {
                "at": r.at.isoformat(),
                "username": r.username,
                "action": r.action,
                "object_type": r.object_type,
                "object_id": r.object_id,
                "details": r.details,
            }
            for r in conn.execute(query)
        ]


def add_label(
    engine: sa.Engine, doc_id: str, field_name: str, value: str, previous: str | None, username: str
) -> int:
    """Store an analyst's correction; NLP training reads the newest label per (doc_id, field)."""
    if field_name not in LABEL_FIELDS:
        raise AccountError(f"cannot label field {field_name!r}; use one of {', '.join(LABEL_FIELDS)}")
    with engine.begin() as conn:
        result = conn.execute(
            labels.insert().values(
                doc_id=doc_id,
                field=field_name,
                value=value,
                previous=previous,
                username=username,
                created_at=_now(),
            )
        )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def list_labels(engine: sa.Engine, doc_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    query = sa.select(labels).order_by(labels.c.id.desc()).limit(limit)
    if doc_id is not None:
        query = query.where(labels.c.doc_id == doc_id)
    with engine.connect() as conn:
        return [
            {
                "id": r.id,
                "doc_id": r.doc_id,
                "field": r.field,
                "value": r.value,
                "previous": r.previous,
                "username": r.username,
                "created_at": r.created_at.isoformat(),
            }
            for r in conn.execute(query)
        ]


# -- login rate limiting -------------------------------------------------------------------------------


@dataclass
class LoginThrottle:
    """At most `max_failures` failed logins per key (username, client address) within `window`.

    In memory: one web process is the supported set-up; a restart forgets, which only helps a user.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def retry_after(self, keys: list[str], now: datetime) -> int:
        """Seconds until a login may be tried again for any of `keys`; 0 when allowed now."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, (times[0] + self.window - now).total_seconds())
        return int(wait) + (1 if wait else 0)

    def failed(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            self._recent(key, now).append(now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
