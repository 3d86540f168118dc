"""`duluan nlp …`: the analysts' loop — train, evaluate, list versions, promote, roll back, predict, explain.

Trained models are registered as candidate versions in the app database (``nlp.registry``); a
promoted version is what the enrichment stage loads from ``<home>/models/<task>/`` at its next start
(every crawl run starts one). Errors a user can fix (unknown version, wrong task, missing data file,
bad config) print one clear message and exit with code 2.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    import sqlalchemy as sa

    from duluan.settings import Settings
    from nlp.registry import ModelVersion
    from nlp.textmodel import LinearTextModel
    from nlp.train import Metrics, TrainConfig

TASKS = ("topic", "sentiment", "toxicity")
TASK_HELP = "topic, sentiment or toxicity."

nlp_app = typer.Typer(
    help="Vietnamese NLP models: train, evaluate, versions, promote, rollback, predict, explain.",
    no_args_is_help=True,
)
_err = Console(stderr=True)


# --------------------------------------------------------------------------- helpers


def _fail(message: str) -> NoReturn:
    _err.print(f"Error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _settings() -> Settings:
    from duluan.cli import settings

    return settings()


def _engine(s: Settings) -> sa.Engine:
    from duluan.db import open_database

    return open_database(s.db_url)


def _username() -> str:
    """Who did it, for the registry: $DULUAN_USER, else the login name."""
    name = os.environ.get("DULUAN_USER")
    if name:
        return name[:64]
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):
        return "unknown"


def _check_task(task: str) -> None:
    if task not in TASKS:
        _fail(f"unknown task {task!r}; use --task topic, sentiment or toxicity")


def _resolve_data(paths: list[str], option: str) -> list[str]:
    """Each ``PATH[#train|#dev]`` as given if it exists, else under the shared datasets directory."""
    from nlp.train import default_datasets_dir

    datasets = default_datasets_dir()
    out = []
    for raw in paths:
        path_str, _, part = raw.partition("#")
        if part not in ("", "train", "dev"):
            _fail(f"{option} {raw}: the part after '#' must be 'train' or 'dev'")
        path = Path(path_str)
        if not path.is_file() and not path.is_absolute() and (datasets / path).is_file():
            path = datasets / path
        if not path.is_file():
            _fail(
                f"{option} {raw}: file {path_str} not found (looked in the working directory and in"
                f" {datasets}); pass an existing JSONL(.gz) file with 'text' and 'label'"
            )
        out.append(str(path) + (f"#{part}" if part else ""))
    return out


def _load_config(task: str, config: Path | None) -> TrainConfig:
    """The task's default training config, with the keys of the YAML file (if any) replaced."""
    import yaml

    from nlp.train import DEFAULT_CONFIGS, TrainConfig

    base = DEFAULT_CONFIGS[task]
    if config is None:
        return base
    if not config.is_file():
        _fail(f"--config {config}: file not found")
    try:
        raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError("the file must be a YAML mapping of TrainConfig keys, e.g. 'c: 0.5'")
        TrainConfig.from_mapping(raw)  # rejects unknown keys with the list of known ones
        clean: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return dataclasses.replace(base, **clean)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        _fail(f"--config {config}: {exc}")


def _model_for(task: str, version_id: str | None, s: Settings) -> tuple[LinearTextModel, str]:
    """The model to use: a registered version (checked against ``task``), else the one in service."""
    from nlp.registry import RegistryError, get_version, load_artefact

    if version_id is None:
        from nlp.classify import load_classifier

        classifier = load_classifier(task, s.models_dir)
        return classifier.linear, f"in service ({classifier.source})"
    engine = _engine(s)
    try:
        version = get_version(engine, version_id, task)
        return load_artefact(version.artefact(s.models_dir), task), version.id
    except RegistryError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=_err,
        transient=False,
    ) as progress:
        yield progress


@contextmanager
def _step(progress: Progress, description: str) -> Iterator[None]:
    task_id = progress.add_task(description, total=1)
    yield
    progress.update(task_id, completed=1)


def _metrics_summary(name: str, m: dict[str, Any]) -> str:
    return (
        f"{name}: n={m['n']}  macro-F1 {m['macro_f1']:.4f}  weighted-F1 {m['weighted_f1']:.4f}"
        f"  accuracy {m['accuracy']:.4f}  ECE {m['expected_calibration_error']:.3f}"
    )


def _metrics_table(m: dict[str, Any]) -> Table:
    table = Table("label", "precision", "recall", "F1", "support")
    for label, row in m["per_class"].items():
        table.add_row(
            label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
        )
    return table


def _confusion_table(m: dict[str, Any]) -> Table:
    labels = m["labels"]
    table = Table("gold \\ predicted", *labels, title="confusion matrix", title_justify="left")
    for label, row in zip(labels, m["confusion"], strict=True):
        table.add_row(label, *(str(v) for v in row))
    return table


def _print_metrics(results: dict[str, dict[str, Any]]) -> None:
    out = Console()
    for name, m in results.items():
        out.print(_metrics_summary(name, m), markup=False, highlight=False, soft_wrap=True)
        out.print(_metrics_table(m))
        out.print(_confusion_table(m))


# --------------------------------------------------------------------------- analysts' labels


def labelled_rows(engine: sa.Engine, backend: Any, task: str) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Training rows from the analysts' corrections of ``task`` (newest label per document) with the
    document's title and text from the index; plus counts of what was used and skipped."""
    import sqlalchemy as sa

    from duluan.accounts import labels
    from nlp.train import TASKS as LABELS

    newest = (
        sa.select(labels.c.doc_id, sa.func.max(labels.c.id).label("id"))
        .where(labels.c.field == task)
        .group_by(labels.c.doc_id)
        .subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(labels.c.doc_id, labels.c.value).join(newest, labels.c.id == newest.c.id)
        ).all()
    out: list[dict[str, str]] = []
    counts = {"labels": len(rows), "used": 0, "missing_document": 0, "invalid_label": 0, "empty_text": 0}
    for doc_id, value in rows:
        if value not in LABELS[task]:
            counts["invalid_label"] += 1
            continue
        doc = backend.get(doc_id)
        if doc is None:
            counts["missing_document"] += 1
            continue
        text = f"{doc.title or ''}\n{doc.text or ''}".strip()
        if not text:
            counts["empty_text"] += 1
            continue
        out.append({"id": doc_id, "text": text, "label": value})
        counts["used"] += 1
    return out, counts


def _write_label_file(s: Settings, task: str, directory: Path) -> tuple[Path | None, dict[str, int]]:
    from duluan.wiring import open_backend

    engine = _engine(s)
    backend = open_backend(s)
    try:
        rows, counts = labelled_rows(engine, backend, task)
    finally:
        backend.close()
        engine.dispose()
    if not rows:
        return None, counts
    # The folder name is the dataset name nlp.train sees; analysts' labels already use our codes.
    folder = directory / "analyst_labels"
    folder.mkdir()
    path = folder / f"{task}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path, counts


# --------------------------------------------------------------------------- commands


@nlp_app.command("train")
def nlp_train(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            help="Training JSONL(.gz) with 'text' and 'label'; PATH#train / PATH#dev take a fixed 90/10"
            " split. Repeat for several files. Relative paths are also looked up in ../shared/datasets.",
        ),
    ],
    dev: Annotated[
        list[str] | None,
        typer.Option("--dev", help="Evaluation data (repeatable; default: the task's standard dev sets)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file of TrainConfig keys (over the task defaults).")
    ] = None,
    with_labels: Annotated[
        bool,
        typer.Option("--with-labels", help="Add the analysts' corrections (labels table) as training rows."),
    ] = False,
    eval_limit: Annotated[
        int | None, typer.Option("--eval-limit", min=1, help="Evaluate on at most N rows per dev set.")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Free text stored with the version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the registered version as JSON.")] = False,
) -> None:
    """Train a model, evaluate it and register it as a candidate version (not yet in service)."""
    from nlp.registry import data_hash, register
    from nlp.train import DEFAULT_DEV_DATA, evaluate, model_card, train

    _check_task(task)
    if not data:
        _fail("--data is required: the training JSONL file(s)")
    paths = _resolve_data(data, "--data")
    dev_paths = _resolve_data(dev if dev else DEFAULT_DEV_DATA[task], "--dev")
    cfg = _load_config(task, config)
    s = _settings()
    user = _username()
    with tempfile.TemporaryDirectory(prefix="duluan-labels-") as tmp, _progress() as progress:
        label_counts: dict[str, int] | None = None
        if with_labels:
            with _step(progress, "reading analysts' labels"):
                label_file, label_counts = _write_label_file(s, task, Path(tmp))
            if label_file is not None:
                paths.append(str(label_file))
            _err.print(f"analysts' {task} labels: {json.dumps(label_counts)}", markup=False, highlight=False)
        started = time.perf_counter()
        try:
            with _step(progress, f"training {task} on {len(paths)} file(s)"):
                model = train(task, paths, cfg)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        model.info["train_seconds"] = round(time.perf_counter() - started, 1)
        if label_counts is not None:
            model.info["analyst_labels"] = label_counts
        results: dict[str, dict[str, Any]] = {}
        for d in dev_paths:
            with _step(progress, f"evaluating on {Path(d.partition('#')[0]).name}"):
                try:
                    results[d] = evaluate(model, d, limit=eval_limit).to_dict()
                except (ValueError, FileNotFoundError) as exc:
                    _fail(f"--dev {d}: {exc}")
        with _step(progress, "registering the version"):
            digest = data_hash(paths)
            card = model_card(model, results).replace(
                f"# {task} model (shipped default)",
                f"# {task} model (trained by {user} with duluan nlp train)",
            )
            recorded = [p for p in paths if not p.startswith(tmp)]
            if len(recorded) < len(paths):  # the temporary file of analysts' labels: name it by origin
                per_source = model.info.setdefault("data", {})
                per_source["db:labels"] = per_source.pop(paths[-1], 0)
                recorded.append("db:labels")
            engine = _engine(s)
            try:
                version = register(
                    engine,
                    s.models_dir,
                    model,
                    metrics=results,
                    data_sources=recorded,
                    data_hash_value=digest,
                    created_by=user,
                    note=note,
                    model_card=card,
                )
            finally:
                engine.dispose()
    if as_json:
        typer.echo(json.dumps(version.to_json(), ensure_ascii=False))
        return
    _print_metrics(results)
    typer.echo(
        f"registered {version.id} (candidate; {model.info['rows']} rows, {model.info['train_seconds']} s);"
        f" put it in service with: duluan nlp promote {version.id}"
    )


@nlp_app.command("eval")
def nlp_eval(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    data: Annotated[list[str], typer.Option("--data", help="Labelled JSONL(.gz); repeatable.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Registered version (default: the model in service).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N rows per file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per data file.")] = False,
) -> None:
    """Per-class precision/recall/F1, macro-F1, confusion matrix and calibration (ECE) of a model."""
    from nlp.train import evaluate

    _check_task(task)
    if not data:
        _fail("--data is required: the labelled JSONL file(s) to evaluate on")
    paths = _resolve_data(data, "--data")
    s = _settings()
    loaded, which = _model_for(task, model, s)
    results: dict[str, dict[str, Any]] = {}
    with _progress() as progress:
        for d in paths:
            with _step(progress, f"evaluating {which} on {Path(d.partition('#')[0]).name}"):
                try:
                    metrics: Metrics = evaluate(loaded, d, limit=limit)
                except (ValueError, FileNotFoundError) as exc:
                    _fail(f"--data {d}: {exc}")
            results[d] = metrics.to_dict()
    if as_json:
        for d, m in results.items():
            typer.echo(json.dumps({"model": which, **m, "data": d}, ensure_ascii=False))
        return
    Console().print(f"model: {escape(which)}", highlight=False)
    _print_metrics(results)


@nlp_app.command("versions")
def nlp_versions(
    task: Annotated[str | None, typer.Option(help="Only this task's versions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per version.")] = False,
) -> None:
    """Registered model versions, newest first, with status, mean dev macro-F1, data hash and who/when."""
    from nlp.registry import list_versions, reconcile_status

    if task is not None:
        _check_task(task)
    s = _settings()
    engine = _engine(s)
    try:
        versions = list_versions(engine, task)
        warnings = [
            w for t in ([task] if task else TASKS) if (w := reconcile_status(engine, s.models_dir, t))
        ]
    finally:
        engine.dispose()
    for w in warnings:
        _err.print(f"Warning: {w}", markup=False, highlight=False)
    if as_json:
        for v in versions:
            typer.echo(json.dumps(v.to_json(), ensure_ascii=False))
        return
    if not versions:
        typer.echo("no registered versions; train one with: duluan nlp train --task T --data PATH")
        return
    table = Table("task", "status", "created", "by", "macro-F1", "data hash", "promoted")
    table.add_column("version", no_wrap=True)
    for v in versions:
        table.add_row(
            v.task,
            v.status,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(v.created_by),
            f"{v.macro_f1:.4f}" if v.macro_f1 is not None else "—",
            v.data_hash[:12] or "—",
            f"{v.promoted_at:%Y-%m-%d %H:%M} {escape(v.promoted_by or '')}" if v.promoted_at else "—",
            v.id,
        )
    Console().print(table)


def _report_switch(action: str, version: ModelVersion) -> None:
    typer.echo(
        f"{action} {version.id}: the {version.task} model in service now (new crawls and loads use it;"
        " restart `duluan up` for documents enriched by a running service)"
    )


@nlp_app.command("promote")
def nlp_promote(
    version: Annotated[str, typer.Argument(help="Version id from `duluan nlp versions`.")],
) -> None:
    """Put a registered version in service for its task (the previous one stays registered)."""
    from nlp.registry import RegistryError, promote

    s = _settings()
    engine = _engine(s)
    try:
        promoted = promote(engine, s.models_dir, version, _username())
    except RegistryError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    _report_switch("promoted", promoted)


@nlp_app.command("rollback")
def nlp_rollback(task: Annotated[str, typer.Option(help=TASK_HELP)]) -> None:
    """Put back the version that was in service before the current one."""
    from nlp.registry import RegistryError, rollback

    _check_task(task)
    s = _settings()
    engine = _engine(s)
    try:
        restored = rollback(engine, s.models_dir, task, _username())
    except RegistryError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    _report_switch("rolled back to", restored)


@nlp_app.command("predict")
def nlp_predict(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    model: Annotated[
        str | None, typer.Option("--model", help="Registered version (default: the model in service).")
    ] = None,
) -> None:
    """Read JSONL (`text`, optional `title`) on stdin; write it back with `label` and `scores`."""
    from nlp.classify import TextClassifier, load_classifier

    if task not in TASKS:
        raise typer.BadParameter("use topic, sentiment or toxicity", param_hint="--task")
    s = _settings()
    if model is None:
        classifier = load_classifier(task, s.models_dir, s.nlp.strong_models_dir, s.nlp.strong_weight)
    else:
        loaded, _ = _model_for(task, model, s)
        classifier = TextClassifier(model=loaded)
    for line_no, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("text", ""), str):
                raise ValueError("each line must be an object with a string 'text'")
        except ValueError as exc:
            _err.print(f"stdin line {line_no}: {exc}; skipped", markup=False)
            continue
        prediction = classifier.predict([row.get("text") or ""], [row.get("title") or ""])[0]
        row.update(label=prediction.label, scores=prediction.scores)
        if prediction.flag:
            row["flag"] = prediction.flag
        typer.echo(json.dumps(row, ensure_ascii=False))


@nlp_app.command("explain")
def nlp_explain(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    model: Annotated[
        str | None, typer.Option("--model", help="Registered version (default: the model in service).")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Explain this label (default: the predicted one).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="Features to show each way.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON.")] = False,
) -> None:
    """Read one text on stdin; print the label and the words/n-grams that pushed for and against it."""
    from nlp.explain import explain

    _check_task(task)
    text = sys.stdin.read()
    if not text.strip():
        _fail("no text on stdin; e.g. echo 'Tai nạn giao thông' | duluan nlp explain --task topic")
    loaded, which = _model_for(task, model, _settings())
    try:
        result = explain(loaded, text, label=label, k=top)
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"model": which, **result.to_json()}, ensure_ascii=False))
        return
    out = Console()
    out.print(
        f"{task}: [bold]{result.label}[/bold] (p={result.probability:.3f}; score {result.score:.3f} ="
        f" intercept {result.intercept:.3f} + features)  model: {escape(which)}",
        highlight=False,
    )
    out.print("scores: " + ", ".join(f"{k} {v:.3f}" for k, v in result.scores.items()), highlight=False)
    for title, rows in (("for", result.supporting), ("against", result.opposing)):
        table = Table("feature", "kind", "tf-idf", "contribution", title=f"{title} {result.label}")
        for c in rows:
            table.add_row(escape(c.feature), c.kind, f"{c.value:.3f}", f"{c.contribution:+.4f}")
        out.print(table)
