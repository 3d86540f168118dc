"""`duluan`: the command line for admins and analysts.

Only commands that work are registered: a command that has not been built yet is absent, not
pretending. Configuration errors exit with code 2 and name the key and file.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from duluan.cli_config import config_app
from duluan.cli_index import export_command, reindex_command
from duluan.cli_nlp import nlp_app
from duluan.cli_ops import register as register_ops
from duluan.cli_users import users_app
from duluan.settings import ConfigError, Settings, load_settings

app = typer.Typer(
    name="duluan",
    help="Duluan (dư luận): press and social-media monitoring for a provincial operations centre.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Manage the search index.", no_args_is_help=True)
app.add_typer(index_app, name="index")
alerts_app = typer.Typer(help="Alert rules.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
app.add_typer(nlp_app, name="nlp")
app.add_typer(users_app, name="users")
app.add_typer(config_app, name="config")
index_app.command("reindex")(reindex_command)
app.command("export")(export_command)

err = Console(stderr=True)
_overrides: dict[str, Any] = {}


def settings() -> Settings:
    """Settings from duluan.toml + DULUAN_* + global options; exit 2 on invalid configuration."""
    try:
        return load_settings(**_overrides)
    except ConfigError as exc:
        err.print(f"[red]Configuration error[/red]: {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


register_ops(app, settings)  # backup, restore, status, allow-private (duluan/cli_ops.py)


@app.callback()
def _global(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Data directory (overrides DULUAN_HOME).", show_default=False),
    ] = None,
) -> None:
    # Each invocation starts afresh: an earlier in-process call's --home must not outlive it.
    _overrides.clear()
    if home is not None:
        _overrides["home"] = home


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD", param_hint=option) from None


@app.command()
def search(
    query: Annotated[
        str, typer.Argument(help="Query, e.g. '\"Bình Phước\" AND topic:giao-thong -quảng_cáo'.")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (local time).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD, inclusive.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic code, e.g. the-thao.")] = None,
    sentiment: Annotated[str | None, typer.Option(help="negative, neutral or positive.")] = None,
    source: Annotated[str | None, typer.Option(help="Source id, e.g. vnexpress.")] = None,
    sort: Annotated[str, typer.Option(help="relevance or date.")] = "relevance",
    explain: Annotated[bool, typer.Option("--explain", help="Print the parsed query and exit.")] = False,
) -> None:
    """Search collected documents (tìm kiếm)."""
    from index.backend import QueryError, SearchFilters

    if explain:
        from index.query import explain as explain_query

        try:
            typer.echo(explain_query(query))
        except QueryError as exc:
            _query_error(query, exc)
        return
    s = settings()
    if sort not in ("relevance", "date"):
        raise typer.BadParameter("use relevance or date", param_hint="--sort")
    first, last = _parse_day(date_from, "--from"), _parse_day(date_to, "--to")
    filters = SearchFilters(
        topic=topic,
        sentiment=sentiment,
        source=source,
        date_from=datetime.combine(first, time.min, s.tz) if first else None,
        date_to=datetime.combine(last, time.max, s.tz) if last else None,
    )
    from duluan.wiring import open_backend

    backend = open_backend(s)
    try:
        result = backend.search(query, filters, sort=sort, limit=limit)  # type: ignore[arg-type]
    except QueryError as exc:
        _query_error(query, exc)
    finally:
        backend.close()
    if as_json:
        for hit in result.hits:
            d = hit.document
            row = {
                "id": d.id,
                "url": d.url,
                "title": d.title,
                "published_at": d.published_at.isoformat() if d.published_at else None,
                "source": d.source,
                "topic": d.topic,
                "sentiment": d.sentiment,
                "score": round(hit.score, 6),
            }
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    out = Console()
    out.print(f"{result.total} kết quả / results", highlight=False)
    for hit in result.hits:
        d = hit.document
        when = d.published_at.astimezone(s.tz).strftime("%Y-%m-%d %H:%M") if d.published_at else "—"
        out.print(f"[bold]{_plain(d.title)}[/bold]", highlight=False)
        out.print(
            f"  {when} · {d.source} · {d.topic or '—'} · {d.sentiment or '—'} · {d.url}", highlight=False
        )


def _plain(text: str) -> str:
    """Crawled text is hostile: never let it carry rich markup into the terminal."""
    from rich.markup import escape

    return escape(text)


def _query_error(query: str, exc: Exception) -> None:
    position = getattr(exc, "position", None)
    err.print(f"Lỗi truy vấn: {getattr(exc, 'message_vi', exc)}", highlight=False, markup=False)
    err.print(f"Query error: {exc}", highlight=False, markup=False)
    if position is not None:
        err.print(f"  {query}\n  {' ' * position}^", highlight=False, markup=False)
    raise typer.Exit(2)


@index_app.command("stats")
def index_stats() -> None:
    """Documents in the index, by topic, sentiment and source."""
    from duluan.wiring import open_backend

    backend = open_backend(settings())
    try:
        stats = {
            "documents": backend.count(),
            "topics": dict(backend.terms("topic", size=50)),
            "sentiments": dict(backend.terms("sentiment", size=5)),
            "sources": dict(backend.terms("source", size=50)),
        }
    finally:
        backend.close()
    typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))


@index_app.command("load")
def index_load(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL of documents.")],
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Documents per index commit. Larger batches index faster (tantivy: ~4.8k docs/s at "
            "500, 12k+ at 50,000 on 2 idle cores); a crash loses at most the uncommitted batch, "
            "and rerunning the load is idempotent.",
        ),
    ] = 5000,
) -> None:
    """Bulk-load documents (schema fields); missing NLP fields are computed."""
    from duluan.loading import load_jsonl

    s = settings()
    report = load_jsonl(s, path, batch_size=batch_size)
    typer.echo(json.dumps(report, ensure_ascii=False))
    if report["rejected"]:
        raise typer.Exit(1)


@app.command()
def extract(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A saved HTML page.")],
    url: Annotated[
        str | None, typer.Option(help="Where the page came from (site rules, relative links).")
    ] = None,
) -> None:
    """Extract one article page and print one JSON object (title, text, published_at, ...)."""
    from crawlers.extract import extract_to_json

    typer.echo(json.dumps(extract_to_json(path.read_bytes(), url), ensure_ascii=False))


@app.command()
def serve() -> None:
    """Serve the web app and API only (no scheduler)."""
    import uvicorn

    from duluan.db import open_database
    from duluan.web import create_app

    s = settings()
    open_database(s.db_url).dispose()
    uvicorn.run(create_app(s), host=s.web.host, port=s.web.port, log_level="info")


@app.command()
def up() -> None:
    """Start the service: scheduler (crawls, alert rules, daily digest) and the web app."""
    from duluan.logs import setup_logging
    from duluan.service import run_service

    s = settings()
    setup_logging(s)
    run_service(s)


@app.command()
def worker(
    roles: Annotated[
        str | None,
        typer.Option(
            "--roles", help="crawl, alerts or crawl,alerts (default: worker.roles).", show_default=False
        ),
    ] = None,
) -> None:
    """Run one worker of several: crawls sources it claims by lease; alert jobs on one worker at a time."""
    from duluan.logs import setup_logging
    from duluan.worker import WorkerConfigError, check_roles, run_worker

    s = settings()
    try:
        chosen = check_roles(roles.split(",")) if roles is not None else check_roles(s.worker.roles)
    except WorkerConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    setup_logging(s)
    run_worker(s, chosen)


@app.command()
def demo(
    serve: Annotated[bool, typer.Option("--serve", help="Leave the web UI up afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the whole loop offline on the bundled news site and print a summary."""
    from rich.table import Table

    from duluan.demo import run_demo
    from duluan.logs import setup_logging

    s = settings()
    quiet = s.model_copy(update={"log_level": "WARNING"})
    setup_logging(quiet)
    summary = run_demo(quiet)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        table = Table(title="Duluan demo", show_header=False)
        table.add_row("Pages fetched / extracted", f"{summary.crawled} / {summary.extracted}")
        table.add_row("Documents in the index (demo sources)", str(summary.documents_in_index))
        table.add_row("…with topic and sentiment", str(summary.with_topic_and_sentiment))
        table.add_row("Topics", ", ".join(f"{k} {v}" for k, v in sorted(summary.topics.items())))
        table.add_row("Sentiments", ", ".join(f"{k} {v}" for k, v in sorted(summary.sentiments.items())))
        table.add_row("Unreachable sources", ", ".join(summary.unreachable) or "none")
        table.add_row("Alert rules installed now", str(len(summary.rules_installed)))
        table.add_row("Alerts fired", str(summary.alerts_fired))
        table.add_row(f"Digest ({summary.digest_day or 'today'})", str(summary.digest_path))
        Console().print(table)
    if summary.documents_in_index == 0:
        err.print("The demo indexed no documents; see the log lines above for why.")
        raise typer.Exit(1)
    if serve:
        import uvicorn

        from duluan.web import create_app

        Console().print(f"Serving the UI on http://{s.web.host}:{s.web.port}/ (Ctrl+C to stop)")
        uvicorn.run(create_app(s), host=s.web.host, port=s.web.port, log_level="warning")


@app.command()
def crawl(
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Source id; repeat for several.")
    ] = None,
) -> None:
    """Crawl sources now (default: every enabled source) and print a per-source report."""
    from duluan.logs import setup_logging
    from duluan.operations import UnknownSourceError, crawl_sources

    s = settings()
    setup_logging(s)
    try:
        report = crawl_sources(s, source or None)
    except UnknownSourceError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    for source_id, r in report.sources.items():
        status = f"unreachable ({r.unreachable})" if r.unreachable else "ok"
        typer.echo(
            f"{source_id}: {status}; fetched {r.fetched}, extracted {r.extracted}, indexed {r.indexed}, "
            f"dropped {r.dropped}, errors {sum(r.errors.values())}"
        )
    typer.echo(json.dumps({"indexed": report.indexed, "unreachable": report.unreachable}, ensure_ascii=False))


@app.command()
def sources(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per source.")] = False,
) -> None:
    """The source registry with each source's health (tình trạng nguồn)."""
    from rich.table import Table

    from crawlers.health import source_health
    from duluan.operations import ensure_sources_seeded

    engine = ensure_sources_seeded(settings())
    try:
        health = source_health(engine)
    finally:
        engine.dispose()
    if as_json:
        for h in health:
            typer.echo(json.dumps(h.to_json(), ensure_ascii=False))
        return
    table = Table("id", "name", "enabled", "status", "last success", "items 24h", "errors 24h")
    for h in health:
        table.add_row(
            h.source_id,
            _plain(h.name),
            "yes" if h.enabled else "no",
            h.status,
            h.last_success_at.strftime("%Y-%m-%d %H:%M") if h.last_success_at else "—",
            str(h.items_24h),
            ", ".join(f"{k} {v}" for k, v in h.errors_24h.items()) or "0",
        )
    Console().print(table)


@alerts_app.command("run-once")
def alerts_run_once(
    install_defaults: Annotated[
        bool,
        typer.Option("--install-defaults", help="First add the shipped province rules that are missing."),
    ] = False,
) -> None:
    """Evaluate every enabled alert rule once; fired alerts go to the outbox."""
    from duluan.operations import install_default_rules, run_alert_rules

    s = settings()
    if install_defaults:
        for name in install_default_rules(s):
            typer.echo(f"installed rule: {name}")
    fired = run_alert_rules(s)
    for alert in fired:
        typer.echo(
            json.dumps({"rule": alert.rule_name, "key": alert.key, "title": alert.title}, ensure_ascii=False)
        )
    typer.echo(f"{len(fired)} alert(s) fired")


@app.command()
def digest(
    day: Annotated[str | None, typer.Option("--date", help="Local day, YYYY-MM-DD (default: today).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of the digest archive.")
    ] = None,
) -> None:
    """Render the leaders' daily digest (bản tin): HTML, or PDF for an --out ending in .pdf; without
    --out, both go to the digest archive."""
    from duluan.operations import render_digest

    if out is not None and out.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise typer.BadParameter(
            f"cannot tell the format of {out.name!r}; end the file name in .html or .pdf",
            param_hint="--out",
        )
    path = render_digest(settings(), _parse_day(day, "--date"), out)
    typer.echo(str(path))


def main() -> None:
    """Console-script entry point."""
    from duluan.wiring import BackendUnavailable

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except BackendUnavailable as exc:
        err.print(f"[red]Index unavailable[/red]: {exc}", markup=True, highlight=False)
        sys.exit(2)
    except Exception as exc:  # a full or read-only disk: say what and where, not a traceback
        from duluan.storage_errors import storage_problem

        problem = storage_problem(exc)
        if problem is None:
            raise
        err.print(f"Storage error: {problem}", markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
