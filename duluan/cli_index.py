"""`duluan index reindex` and `duluan export`: long copies of the index, with progress bars.

Kept apart from `cli.py` so the main module stays a readable list of commands.
"""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from index.backend import QueryError, SearchFilters

BACKENDS = ("tantivy", "elasticsearch")
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def reindex_command(
    to: Annotated[str, typer.Option("--to", help="Target backend: tantivy or elasticsearch.")],
    source_kind: Annotated[
        str | None, typer.Option("--from", help="Source backend (default: the configured index.backend).")
    ] = None,
    query: Annotated[str, typer.Option("--query", help="Copy only documents matching this query.")] = "",
    batch_size: Annotated[int, typer.Option(min=1, max=50_000)] = 1_000,
) -> None:
    """Copy every document from one backend to the other (e.g. the embedded index to Elasticsearch).

    Idempotent (upsert by id): an interrupted run is simply started again.
    """
    from duluan.cli import settings
    from duluan.wiring import open_backend
    from index.reindex import reindex

    s = settings()
    source_kind = source_kind or s.index.backend
    for hint, kind in (("--to", to), ("--from", source_kind)):
        if kind not in BACKENDS:
            raise typer.BadParameter(f"use {' or '.join(BACKENDS)}", param_hint=hint)
    if to == source_kind:
        raise typer.BadParameter(
            f"--from and --to are both {to}; name two different backends", param_hint="--to"
        )
    source = open_backend(s, source_kind)
    try:
        target = open_backend(s, to)
        try:
            total = source.count(query)
            with _progress() as bar:
                task = bar.add_task(f"{source_kind} → {to}", total=total)
                copied = reindex(
                    source,
                    target,
                    query=query,
                    batch_size=batch_size,
                    progress=lambda done: bar.update(task, completed=done),
                )
            in_target = target.count(query)
        finally:
            target.close()
    except QueryError as exc:
        err.print(f"invalid --query: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    finally:
        source.close()
    typer.echo(json.dumps({"from": source_kind, "to": to, "copied": copied, "matching_in_target": in_target}))


def export_command(
    query: Annotated[str, typer.Argument(help="Query in the search language ('' for everything).")],
    out: Annotated[Path, typer.Option("--out", help="File to write: .csv (UTF-8, Excel-ready) or .xlsx.")],
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (local time).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD, inclusive.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic code, e.g. the-thao.")] = None,
    sentiment: Annotated[str | None, typer.Option(help="negative, neutral or positive.")] = None,
    source: Annotated[str | None, typer.Option(help="Source id, e.g. vnexpress.")] = None,
) -> None:
    """Export every matching document to CSV or XLSX (xuất dữ liệu), streaming, with progress."""
    from duluan.cli import _parse_day, _query_error, settings
    from duluan.operations import atomic_destination
    from duluan.wiring import open_backend
    from index.export import export_results

    if out.suffix.lower() not in (".csv", ".xlsx"):
        raise typer.BadParameter(
            f"cannot export to {out.name!r}: end the name in .csv or .xlsx", param_hint="--out"
        )
    s = settings()
    first, last = _parse_day(date_from, "--from"), _parse_day(date_to, "--to")
    filters = SearchFilters(
        topic=topic,
        sentiment=sentiment,
        source=source,
        date_from=datetime.combine(first, time.min, s.tz) if first else None,
        date_to=datetime.combine(last, time.max, s.tz) if last else None,
    )
    backend = open_backend(s)
    try:
        total = backend.count(query, filters)
        out.parent.mkdir(parents=True, exist_ok=True)
        with _progress() as bar, atomic_destination(out) as temp_path:
            task = bar.add_task(f"→ {out.name}", total=total)
            written = export_results(
                backend,
                temp_path,
                query,
                filters,
                fmt="xlsx" if out.suffix.lower() == ".xlsx" else "csv",
                progress=lambda done: bar.update(task, completed=done),
            )
    except QueryError as exc:
        _query_error(query, exc)
    finally:
        backend.close()
    typer.echo(json.dumps({"path": str(out), "documents": written}, ensure_ascii=False))
