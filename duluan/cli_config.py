"""`duluan config`: what the service is configured with, and the reference of every key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

config_app = typer.Typer(help="Configuration: effective values and the key reference.", no_args_is_help=True)


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@config_app.command("show")
def show() -> None:
    """Print the effective settings as JSON (file + environment + defaults); secrets are masked."""
    from duluan.cli import settings

    s = settings()
    values = {name: _masked(getattr(s, name)) for name in type(s).model_fields}
    for name, value in list(values.items()):
        if hasattr(value, "model_fields"):
            values[name] = {k: _masked(getattr(value, k)) for k in type(value).model_fields}
            for key, inner in list(values[name].items()):
                if hasattr(inner, "model_fields"):
                    values[name][key] = {k: _masked(getattr(inner, k)) for k in type(inner).model_fields}
    values["database_url"] = _without_password(s.db_url)
    typer.echo(json.dumps(values, ensure_ascii=False, indent=2, default=str))


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@config_app.command("reference")
def reference(
    update_readme: Annotated[
        Path | None, typer.Option("--update-readme", help="Rewrite the generated table in this README.")
    ] = None,
) -> None:
    """Print the Markdown table of every setting (key, environment variable, default, meaning)."""
    from duluan.settings_reference import reference_table
    from duluan.settings_reference import update_readme as rewrite

    if update_readme is None:
        typer.echo(reference_table())
        return
    try:
        changed = rewrite(update_readme)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--update-readme") from None
    typer.echo(f"{update_readme}: {'updated' if changed else 'already up to date'}")
