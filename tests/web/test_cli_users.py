"""`duluan users add/list/passwd/token` in a child process, as an admin would run them."""

from __future__ import annotations

from pathlib import Path

from duluan import accounts
from duluan.db import open_database
from duluan.settings import load_settings
from tests.foundation.conftest import run_duluan


def test_users_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    added = run_duluan(
        "users",
        "add",
        "admin",
        "--role",
        "admin",
        "--name",
        "Quản trị",
        home=home,
        DULUAN_PASSWORD="mat-khau-quan-tri",
    )
    assert added.returncode == 0, added.stderr
    assert "created user admin (admin)" in added.stdout
    again = run_duluan("users", "add", "admin", home=home, DULUAN_PASSWORD="mat-khau-quan-tri")
    assert again.returncode == 2 and "already exists" in again.stderr
    weak = run_duluan("users", "add", "bob", "--role", "boss", home=home, DULUAN_PASSWORD="mat-khau-quan-tri")
    assert weak.returncode == 2 and "unknown role" in weak.stderr
    listed = run_duluan("users", "list", home=home)
    assert "admin" in listed.stdout and "Quản trị" in listed.stdout
    changed = run_duluan("users", "passwd", "admin", home=home, input="mat-khau-moi-123\nmat-khau-moi-123\n")
    assert changed.returncode == 0, changed.stderr
    token = run_duluan("users", "token", "admin", home=home).stdout.strip()
    engine = open_database(load_settings(home=home).db_url)
    try:
        assert accounts.authenticate(engine, "admin", "mat-khau-moi-123") is not None
        assert accounts.authenticate(engine, "admin", "mat-khau-quan-tri") is None
        user = accounts.user_for_api_token(engine, token)
        assert user is not None and user.role == "admin"
    finally:
        engine.dispose()
