"""Accounts: password hashing, sessions, API tokens, login throttling, audit log and labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from duluan import accounts
from duluan.accounts import AccountError, LoginThrottle
from duluan.db import open_database


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'app.db'}")
    yield engine
    engine.dispose()


def test_passwords_are_argon2_and_checked(engine: sa.Engine) -> None:
    user = accounts.create_user(engine, "Nguyen.Van.A", "mot-mat-khau-dai", "analyst", "Nguyễn Văn A")
    assert user.username == "nguyen.van.a" and user.can("rules_all") and not user.can("users")
    with engine.connect() as conn:
        stored = conn.execute(sa.select(accounts.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "mot-mat-khau-dai" not in stored
    assert accounts.authenticate(engine, "nguyen.van.a", "mot-mat-khau-dai") == user
    assert accounts.authenticate(engine, "nguyen.van.a", "sai-mat-khau-roi") is None
    assert accounts.authenticate(engine, "khong-ton-tai", "mot-mat-khau-dai") is None
    accounts.update_user(engine, "nguyen.van.a", active=False)
    assert accounts.authenticate(engine, "nguyen.van.a", "mot-mat-khau-dai") is None


def test_account_rules_explain_the_fix(engine: sa.Engine) -> None:
    with pytest.raises(AccountError, match="at least 10"):
        accounts.create_user(engine, "a1", "short", "staff")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.create_user(engine, "a1", "mot-mat-khau-dai", "boss")
    with pytest.raises(AccountError, match="username"):
        accounts.create_user(engine, "<b>", "mot-mat-khau-dai", "staff")
    accounts.create_user(engine, "a1", "mot-mat-khau-dai", "staff")
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_user(engine, "A1", "mot-mat-khau-dai", "staff")


def test_sessions_end_on_logout_and_password_change(engine: sa.Engine) -> None:
    user = accounts.create_user(engine, "staff1", "mot-mat-khau-dai", "staff")
    session = accounts.create_session(engine, user)
    assert accounts.session_for(engine, session.token) is not None
    assert accounts.session_for(engine, session.token + "x") is None
    with engine.connect() as conn:  # only a digest of the cookie is stored
        assert conn.execute(sa.select(accounts.sessions.c.token_hash)).scalar_one() != session.token
    accounts.set_password(engine, "staff1", "mat-khau-moi-hon")
    assert accounts.session_for(engine, session.token) is None
    expired = accounts.create_session(engine, user, ttl=timedelta(seconds=-1))
    assert accounts.session_for(engine, expired.token) is None
    live = accounts.create_session(engine, user)
    accounts.end_session(engine, live.token)
    assert accounts.session_for(engine, live.token) is None


def test_api_tokens_can_be_revoked(engine: sa.Engine) -> None:
    accounts.create_user(engine, "bot", "mot-mat-khau-dai", "staff")
    token = accounts.create_api_token(engine, "bot", "export script")
    user = accounts.user_for_api_token(engine, token)
    assert user is not None and user.username == "bot"
    [listed] = accounts.list_api_tokens(engine, "bot")
    assert listed["name"] == "export script" and token not in str(listed)
    assert accounts.revoke_api_token(engine, listed["id"], "bot")
    assert accounts.user_for_api_token(engine, token) is None


def test_login_throttle_blocks_then_forgets() -> None:
    throttle = LoginThrottle(max_failures=3, window=timedelta(minutes=10))
    t0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    keys = ["user:a"]
    for i in range(3):
        assert throttle.retry_after(keys, t0 + timedelta(seconds=i)) == 0
        throttle.failed(keys, t0 + timedelta(seconds=i))
    wait = throttle.retry_after(keys, t0 + timedelta(seconds=5))
    assert 590 <= wait <= 600
    assert throttle.retry_after(["user:b"], t0) == 0
    assert throttle.retry_after(keys, t0 + timedelta(minutes=11)) == 0
    throttle.failed(keys, t0)
    throttle.succeeded(keys)
    assert throttle.retry_after(keys, t0) == 0


def test_audit_log_and_labels(engine: sa.Engine) -> None:
    accounts.record_audit(engine, "analyst1", "update", "alert_rule", "Ngập", {"query": "ngập"})
    [entry] = accounts.list_audit(engine)
    assert entry["username"] == "analyst1" and entry["details"] == {"query": "ngập"}
    accounts.add_label(engine, "d1", "sentiment", "neutral", "negative", "analyst1")
    accounts.add_label(engine, "d1", "sentiment", "positive", "neutral", "analyst2")
    newest = accounts.list_labels(engine, "d1")
    assert [label["value"] for label in newest] == ["positive", "neutral"]
    with pytest.raises(AccountError, match="cannot label"):
        accounts.add_label(engine, "d1", "title", "x", None, "analyst1")
