"""Operations commands: `duluan backup`, `duluan restore`, `duluan status`, `duluan allow-private`.

Mounted on the main Typer app by `register(app, settings)` so `duluan/cli.py` only gains one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from duluan.settings import Settings

err = Console(stderr=True)


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Add the operations commands to `app`; `settings` loads the settings (exit 2 when invalid)."""

    @app.command()
    def backup(
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", help="Archive to write (default: <home>/backups/duluan-backup-<time>.tar.gz)."
            ),
        ] = None,
    ) -> None:
        """Back up database, index and models into one .tar.gz while the service runs (sao lưu)."""
        from duluan.backup import BackupError, create_backup

        try:
            report = create_backup(settings(), out)
        except BackupError as exc:
            err.print(f"Backup failed: {exc}", markup=False, highlight=False)
            raise typer.Exit(1) from None
        typer.echo(
            json.dumps(
                {
                    "archive": str(report.path),
                    "bytes": report.bytes,
                    "files": report.files,
                    "documents": report.documents,
                    "db_revision": report.db_revision,
                    "index_lock_held_s": round(report.lock_wait_s, 4),
                },
                ensure_ascii=False,
            )
        )

    @app.command()
    def restore(
        archive: Annotated[Path, typer.Argument(help="A backup made by `duluan backup`.")],
        force: Annotated[
            bool,
            typer.Option("--force", help="Restore even though a scheduler lease says a service is running."),
        ] = False,
    ) -> None:
        """Restore a backup into the home, verified before anything is replaced (khôi phục).

        Every file's checksum is checked and the database and index are opened in a temporary folder
        first; what the home held is kept in <home>/.pre-restore-<time>/."""
        from duluan.backup import RestoreError, restore_backup

        try:
            report = restore_backup(settings(), archive, force=force)
        except RestoreError as exc:
            err.print(f"Restore refused: {exc}", markup=False, highlight=False)
            err.print("The home was not changed.", markup=False)
            raise typer.Exit(1) from None
        typer.echo(
            json.dumps(
                {
                    "home": str(report.home),
                    "files": report.files,
                    "documents": report.documents,
                    "db_revision": report.db_revision,
                    "backup_created_at": report.created_at,
                    "previous_state": str(report.previous) if report.previous else None,
                },
                ensure_ascii=False,
            )
        )

    @app.command()
    def status(
        as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON object.")] = False,
    ) -> None:
        """Health: database, index, sources, outbox, scheduler, disk; exit 1 if unhealthy (tình trạng)."""
        from duluan.status import collect_status, render_status

        report = collect_status(settings())
        if as_json:
            typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
        else:
            Console().print(render_status(report))
        if not report.healthy:
            raise typer.Exit(1)

    @app.command("allow-private")
    def allow_private(
        source_id: Annotated[str, typer.Argument(help="Source id.")],
        revoke: Annotated[bool, typer.Option("--revoke", help="Forbid private targets again.")] = False,
    ) -> None:
        """Let one source fetch private-network addresses (SSRF guard exception); --revoke undoes it.

        Sources entered in the web UI may not target loopback, private, link-local or cloud-metadata
        addresses; an admin lifts that for one source (an intranet portal) with this command."""
        from crawlers.registry import get_source, upsert_sources
        from duluan.db import open_database

        engine = open_database(settings().db_url)
        try:
            spec = get_source(engine, source_id)
            if spec is None:
                err.print(f"No source {source_id!r}; `duluan sources` lists them.", markup=False)
                raise typer.Exit(2)
            upsert_sources(engine, [spec.model_copy(update={"allow_private": not revoke})])
        finally:
            engine.dispose()
        typer.echo(f"{source_id}: private targets {'forbidden' if revoke else 'allowed'}")
