"""`duluan users add/list/passwd/token`, as an admin would run them (one real child process, the rest
through Typer's runner in process to keep the suite fast)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from duluan import accounts
from duluan.cli import app
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
    runner = CliRunner(
        env={"DULUAN_HOME": str(home), "DULUAN_PASSWORD": "mat-khau-quan-tri", "COLUMNS": "200"}
    )
    again = runner.invoke(app, ["users", "add", "admin"])
    assert again.exit_code == 2 and "already exists" in again.output
    bad_role = runner.invoke(app, ["users", "add", "bob", "--role", "boss"])
    assert bad_role.exit_code == 2 and "unknown role" in bad_role.output
    listed = runner.invoke(app, ["users", "list"])
    assert "admin" in listed.output and "Quản trị" in listed.output
    prompt = CliRunner(env={"DULUAN_HOME": str(home)})
    changed = prompt.invoke(app, ["users", "passwd", "admin"], input="mat-khau-moi-123\nmat-khau-moi-123\n")
    assert changed.exit_code == 0, changed.output
    token = runner.invoke(app, ["users", "token", "admin"]).output.strip()
    engine = open_database(load_settings(home=home).db_url)
    try:
        assert accounts.authenticate(engine, "admin", "mat-khau-moi-123") is not None
        assert accounts.authenticate(engine, "admin", "mat-khau-quan-tri") is None
        user = accounts.user_for_api_token(engine, token)
        assert user is not None and user.role == "admin"
    finally:
        engine.dispose()
