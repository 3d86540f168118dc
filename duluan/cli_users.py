"""`duluan users …`: accounts from the command line (the first admin is created here at setup)."""

from __future__ import annotations

import os
from typing import Annotated, NoReturn

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

from duluan.accounts import ROLES, AccountError, create_api_token, create_user, list_users, set_password

users_app = typer.Typer(help="User accounts (tài khoản) and roles.", no_args_is_help=True)
_err = Console(stderr=True)


def _engine() -> sa.Engine:
    from duluan.cli import settings
    from duluan.db import open_database

    return open_database(settings().db_url)


def _read_password(confirm: bool = True) -> str:
    """From $DULUAN_PASSWORD (for scripts) or an interactive prompt that does not echo."""
    from_env = os.environ.get("DULUAN_PASSWORD")
    if from_env:
        return from_env
    return str(typer.prompt("Mật khẩu / password", hide_input=True, confirmation_prompt=confirm))


def _fail(exc: Exception) -> NoReturn:
    _err.print(f"Error: {exc}", markup=False, highlight=False)
    raise typer.Exit(2)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. nguyen.van.a")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "staff",
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 'Nguyễn Văn A'.")] = "",
) -> None:
    """Add a user; the password is read from a prompt (or $DULUAN_PASSWORD)."""
    if role not in ROLES:  # before asking for a password
        _fail(AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}"))
    engine = _engine()
    try:
        user = create_user(engine, username, _read_password(), role, name)
    except AccountError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    typer.echo(f"created user {user.username} ({user.role})")


@users_app.command("list")
def users_list() -> None:
    """Users with their roles."""
    from rich.table import Table

    engine = _engine()
    try:
        people = list_users(engine)
    finally:
        engine.dispose()
    table = Table("username", "name", "role", "active", "created")
    for u in people:
        table.add_row(
            u.username,
            escape(u.display_name),
            u.role,
            "yes" if u.active else "no",
            u.created_at.strftime("%Y-%m-%d"),
        )
    Console().print(table)


@users_app.command("passwd")
def users_passwd(username: Annotated[str, typer.Argument(help="Whose password to set.")]) -> None:
    """Set a new password (ends that user's sessions)."""
    engine = _engine()
    try:
        set_password(engine, username, _read_password())
    except AccountError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    typer.echo(f"password changed for {username}")


@users_app.command("token")
def users_token(
    username: Annotated[str, typer.Argument(help="Whose scripts will use the token.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "script",
) -> None:
    """Create an API bearer token (printed once: store it safely)."""
    engine = _engine()
    try:
        token = create_api_token(engine, username, name)
    except AccountError as exc:
        _fail(exc)
    finally:
        engine.dispose()
    typer.echo(token)
