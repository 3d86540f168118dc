"""Model registry (sổ đăng ký mô hình): versions, metrics, data hash, who/when; promote and roll back.

Every trained model becomes a *version* with an immutable artefact directory
``<models_dir>/registry/<task>/<version>/`` (``model.joblib``, ``metrics.json``, ``model_card.md``) and
one row in the ``model_versions`` table of the app database. Status: ``candidate`` (registered, not in
use), ``active`` (the one ``nlp.classify`` loads) or ``retired`` (was active once).

Promoting copies the version's files into ``<models_dir>/<task>/`` — the place ``nlp.classify`` looks
first — each through a temporary file and ``os.replace`` (atomic on POSIX), with ``model.joblib``
last, while the status change is held in one open database transaction that commits only after the
switch. A crash at any point leaves a complete, loadable model in place (the old one or the new one),
never a half-written file; ``served_version`` tells which one by its SHA-256.

``model_promotions`` keeps the history of what was put in service, so ``rollback`` returns to the
version active before the current one (and again to the one before that). The model that was in
service before the first promotion — the shipped one, or a file an admin put in ``models_dir`` — is
registered automatically (``created_by`` ``shipped``/``imported``) so a rollback can return to it.

Functions for the web app: :func:`list_versions`, :func:`get_version`, :func:`served_version`,
:func:`promote`, :func:`rollback`. They raise :class:`RegistryError` subclasses with messages fit
to show to an analyst.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from nlp.textmodel import LinearTextModel

TASK_NAMES = ("topic", "sentiment", "toxicity")
Status = Literal["candidate", "active", "retired"]
STATUSES: tuple[str, ...] = ("candidate", "active", "retired")
MODEL_FILENAME = "model.joblib"
METRICS_FILENAME = "metrics.json"
CARD_FILENAME = "model_card.md"
#: Copied into ``<models_dir>/<task>/`` on promotion; the model last, because it is the switch.
_SERVED_FILES = (METRICS_FILENAME, CARD_FILENAME, MODEL_FILENAME)
REGISTRY_DIRNAME = "registry"

metadata = sa.MetaData()

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("task", sa.String(32), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("data_hash", sa.String(64), nullable=False),
    sa.Column("data_sources", sa.JSON, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("artefact_path", sa.Text, nullable=False),
    sa.Column("artefact_sha256", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("promoted_by", sa.String(64), nullable=True),
)

model_promotions = sa.Table(
    "model_promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task", sa.String(32), nullable=False, index=True),
    sa.Column("version_id", sa.String(80), sa.ForeignKey("model_versions.id"), nullable=False),
    #: promote | rollback | baseline (the model found in service before a promotion)
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("previous_version_id", sa.String(80), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
)


class RegistryError(ValueError):
    """A registry request that cannot be honoured; the message says what to do instead."""


class UnknownVersionError(RegistryError):
    """No version with that id."""


class WrongTaskError(RegistryError):
    """The version is for another task."""


class NoEarlierVersionError(RegistryError):
    """Nothing to roll back to."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (a row of ``model_versions``)."""

    id: str
    task: str
    status: str
    created_at: datetime
    created_by: str
    data_hash: str
    data_sources: list[dict[str, Any]]
    config: dict[str, Any]
    #: Evaluation name (data path) → ``nlp.train.Metrics.to_dict()`` (macro-F1, per-class, confusion, ECE).
    metrics: dict[str, dict[str, Any]]
    artefact_path: str
    artefact_sha256: str
    note: str | None = None
    promoted_at: datetime | None = None
    promoted_by: str | None = None

    @property
    def macro_f1(self) -> float | None:
        """Mean macro-F1 over the evaluation sets (``None`` without evaluations)."""
        values = [m["macro_f1"] for m in self.metrics.values() if isinstance(m, dict) and "macro_f1" in m]
        return float(sum(values) / len(values)) if values else None

    def artefact(self, models_dir: Path) -> Path:
        """Absolute path of the version's ``model.joblib``."""
        return models_dir / self.artefact_path

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["promoted_at"] = self.promoted_at.isoformat() if self.promoted_at else None
        out["macro_f1"] = self.macro_f1
        return out


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _row_to_version(row: Any) -> ModelVersion:
    created = _utc(row.created_at)
    assert created is not None
    return ModelVersion(
        id=row.id,
        task=row.task,
        status=row.status,
        created_at=created,
        created_by=row.created_by,
        data_hash=row.data_hash,
        data_sources=list(row.data_sources or []),
        config=dict(row.config or {}),
        metrics=dict(row.metrics or {}),
        artefact_path=row.artefact_path,
        artefact_sha256=row.artefact_sha256,
        note=row.note,
        promoted_at=_utc(row.promoted_at),
        promoted_by=row.promoted_by,
    )


def registry_dir(models_dir: Path) -> Path:
    return models_dir / REGISTRY_DIRNAME


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_hash(paths: Sequence[str | Path]) -> str:
    """SHA-256 over the content of the data files (and the ``#train``/``#dev`` part of each path).

    Content, not names or dates: the same data under another path hashes the same; an edited file
    does not.
    """
    h = hashlib.sha256()
    for raw in sorted(str(p) for p in paths):
        path_str, _, part = raw.partition("#")
        path = Path(path_str)
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} not found; pass an existing JSONL(.gz) file")
        h.update(file_sha256(path).encode())
        h.update(f"#{part}\n".encode())
    return h.hexdigest()


def _check_task(task: str) -> None:
    if task not in TASK_NAMES:
        raise RegistryError(f"unknown task {task!r}; use one of {', '.join(TASK_NAMES)}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_durable(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with dst.open("rb") as handle:
        os.fsync(handle.fileno())


def _write_durable(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _task_lock(models_dir: Path, task: str) -> Iterator[None]:
    """One promotion/rollback per task at a time, across processes (CLI and web workers)."""
    lock_dir = registry_dir(models_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f".{task}.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def load_artefact(path: Path, task: str) -> LinearTextModel:
    """Load a model file and check that it is a ``task`` model (raises ``RegistryError`` otherwise)."""
    import joblib

    try:
        model = joblib.load(path)
    except Exception as exc:  # a truncated or foreign file: say which, never promote it
        raise RegistryError(f"cannot load model file {path}: {exc}") from exc
    if not isinstance(model, LinearTextModel) or model.task != task:
        raise RegistryError(f"{path} does not hold a {task} model; it cannot serve {task}")
    return model


# --------------------------------------------------------------------------- queries


def list_versions(engine: sa.Engine, task: str | None = None) -> list[ModelVersion]:
    """Versions, newest first; only ``task``'s when given."""
    query = sa.select(model_versions).order_by(model_versions.c.created_at.desc(), model_versions.c.id.desc())
    if task is not None:
        _check_task(task)
        query = query.where(model_versions.c.task == task)
    with engine.connect() as conn:
        return [_row_to_version(r) for r in conn.execute(query)]


def get_version(engine: sa.Engine, version_id: str, task: str | None = None) -> ModelVersion:
    """The version ``version_id``; ``WrongTaskError`` if ``task`` is given and differs."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(model_versions).where(model_versions.c.id == version_id)).first()
    if row is None:
        raise UnknownVersionError(
            f"no model version {version_id!r}; `duluan nlp versions` lists the registered ones"
        )
    version = _row_to_version(row)
    if task is not None and version.task != task:
        raise WrongTaskError(f"version {version_id} is a {version.task} model, not a {task} model")
    return version


def active_version(engine: sa.Engine, task: str) -> ModelVersion | None:
    """The version the registry has in service for ``task`` (``None`` before the first promotion)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(model_versions).where(
                model_versions.c.task == task, model_versions.c.status == "active"
            )
        ).first()
    return _row_to_version(row) if row else None


def served_file(models_dir: Path, task: str) -> Path:
    return models_dir / task / MODEL_FILENAME


def served_version(engine: sa.Engine, models_dir: Path, task: str) -> ModelVersion | None:
    """The registered version whose artefact is byte-identical to the model file in service, if any."""
    path = served_file(models_dir, task)
    if not path.is_file():
        return None
    sha = file_sha256(path)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(model_versions)
            .where(model_versions.c.task == task, model_versions.c.artefact_sha256 == sha)
            .order_by(model_versions.c.created_at.desc())
        ).first()
    return _row_to_version(row) if row else None


def promotion_history(engine: sa.Engine, task: str) -> list[dict[str, Any]]:
    """What was put in service for ``task``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(model_promotions).where(model_promotions.c.task == task).order_by(model_promotions.c.id)
        ).all()
    return [
        {
            "version_id": r.version_id,
            "action": r.action,
            "previous_version_id": r.previous_version_id,
            "at": (_utc(r.at) or r.at).isoformat(),
            "username": r.username,
        }
        for r in rows
    ]


def _service_stack(conn: sa.Connection, task: str) -> list[str]:
    """Versions put in service, as a stack: a rollback pops the top."""
    stack: list[str] = []
    rows = conn.execute(
        sa.select(model_promotions.c.action, model_promotions.c.version_id)
        .where(model_promotions.c.task == task)
        .order_by(model_promotions.c.id)
    )
    for action, version_id in rows:
        if action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != version_id:
                stack.append(version_id)
        else:
            stack.append(version_id)
    return stack


# --------------------------------------------------------------------------- register


def _new_version_id(task: str, when: datetime) -> str:
    return f"{task}-{when.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _metrics_document(
    task: str, version_id: str, info: dict[str, Any], metrics: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``metrics.json`` in the layout ``python -m nlp.train`` writes (the web's Models page reads it)."""
    return {"task": task, "model": info, "dev": metrics, "registry": {"version": version_id}}


def _install_version_dir(
    models_dir: Path,
    task: str,
    version_id: str,
    write: Any,
) -> Path:
    """Create ``registry/<task>/<version_id>/`` atomically: files are written by ``write(tmp_dir)`` into a
    hidden temporary directory that is then renamed (a crash leaves no half-registered version)."""
    task_dir = registry_dir(models_dir) / task
    task_dir.mkdir(parents=True, exist_ok=True)
    final = task_dir / version_id
    if final.exists():
        raise RegistryError(f"artefact directory {final} already exists; register again for a new id")
    tmp = task_dir / f".tmp-{version_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        for f in tmp.iterdir():
            with f.open("rb") as handle:
                os.fsync(handle.fileno())
        os.rename(tmp, final)
        _fsync_dir(task_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _insert_version(
    engine: sa.Engine,
    *,
    version_id: str,
    task: str,
    status: str,
    created_at: datetime,
    created_by: str,
    data_hash_value: str,
    data_sources: list[dict[str, Any]],
    config: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    artefact_path: str,
    artefact_sha256: str,
    note: str | None,
    conn: sa.Connection | None = None,
) -> None:
    values = {
        "id": version_id,
        "task": task,
        "status": status,
        "created_at": created_at,
        "created_by": created_by,
        "data_hash": data_hash_value,
        "data_sources": data_sources,
        "config": config,
        "metrics": metrics,
        "artefact_path": artefact_path,
        "artefact_sha256": artefact_sha256,
        "note": note,
    }
    if conn is not None:
        conn.execute(model_versions.insert().values(**values))
        return
    with engine.begin() as own:
        own.execute(model_versions.insert().values(**values))


def register(
    engine: sa.Engine,
    models_dir: Path,
    model: LinearTextModel,
    *,
    metrics: dict[str, dict[str, Any]],
    data_sources: Sequence[str | Path],
    created_by: str,
    data_hash_value: str | None = None,
    note: str | None = None,
    model_card: str | None = None,
) -> ModelVersion:
    """Register a freshly trained model as a ``candidate`` version (copied into the registry first).

    ``metrics``: evaluation name → ``Metrics.to_dict()``; ``data_sources``: the training data paths
    (hashed by content unless ``data_hash_value`` is given).
    """
    from nlp.train import save_model

    _check_task(model.task)
    created_at = _now()
    version_id = _new_version_id(model.task, created_at)
    digest = data_hash_value or data_hash(data_sources)
    info = dict(model.info)
    rows_per_source = info.get("data") or {}
    sources = [{"path": str(p), "rows": rows_per_source.get(str(p))} for p in data_sources]
    doc = _metrics_document(model.task, version_id, info, metrics)

    def write(tmp: Path) -> None:
        save_model(model, tmp)
        (tmp / METRICS_FILENAME).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        (tmp / CARD_FILENAME).write_text(
            model_card or f"# {model.task} model {version_id}\n\nRegistered by {created_by}.\n",
            encoding="utf-8",
        )

    final = _install_version_dir(models_dir, model.task, version_id, write)
    artefact = final / MODEL_FILENAME
    try:
        _insert_version(
            engine,
            version_id=version_id,
            task=model.task,
            status="candidate",
            created_at=created_at,
            created_by=created_by,
            data_hash_value=digest,
            data_sources=sources,
            config=dict(info.get("config") or {}),
            metrics=metrics,
            artefact_path=str(artefact.relative_to(models_dir)),
            artefact_sha256=file_sha256(artefact),
            note=note,
        )
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return get_version(engine, version_id)


def _register_existing_file(
    conn: sa.Connection, models_dir: Path, task: str, path: Path, sha: str, created_by: str
) -> str:
    """Register a model file that is in service but unknown to the registry; returns its version id."""
    model = load_artefact(path, task)
    metrics: dict[str, dict[str, Any]] = {}
    metrics_file = path.parent / METRICS_FILENAME
    if metrics_file.is_file():
        with contextlib.suppress(OSError, ValueError):
            dev = json.loads(metrics_file.read_text(encoding="utf-8")).get("dev") or {}
            metrics = {k: v for k, v in dev.items() if isinstance(v, dict)}
    created_at = _now()
    version_id = f"{task}-{created_by}-{sha[:10]}"
    taken = conn.execute(sa.select(model_versions.c.id).where(model_versions.c.id == version_id)).first()
    if taken:
        version_id = _new_version_id(task, created_at)

    def write(tmp: Path) -> None:
        for name in _SERVED_FILES:
            src = path.parent / name if name != MODEL_FILENAME else path
            if src.is_file():
                shutil.copyfile(src, tmp / name)
        if not (tmp / METRICS_FILENAME).is_file():
            doc = _metrics_document(task, version_id, dict(model.info), metrics)
            (tmp / METRICS_FILENAME).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    final = registry_dir(models_dir) / task / version_id
    orphan = final / MODEL_FILENAME  # left by a transaction that was rolled back: same bytes, reuse
    if not (orphan.is_file() and file_sha256(orphan) == sha):
        if final.exists():
            shutil.rmtree(final)
        final = _install_version_dir(models_dir, task, version_id, write)
    info = dict(model.info)
    _insert_version(
        conn.engine,
        conn=conn,
        version_id=version_id,
        task=task,
        status="retired",
        created_at=created_at,
        created_by=created_by,
        data_hash_value=str(info.get("data_fingerprint") or ""),
        data_sources=[{"path": str(k), "rows": v} for k, v in (info.get("data") or {}).items()],
        config=dict(info.get("config") or {}),
        metrics=metrics,
        artefact_path=str((final / MODEL_FILENAME).relative_to(models_dir)),
        artefact_sha256=sha,
        note=f"in service before a promotion (from {path})",
    )
    return version_id


# --------------------------------------------------------------------------- promote / rollback


def _switch_served_files(version_dir: Path, target_dir: Path) -> None:
    """Replace the served files by the version's, each through temp file + ``os.replace``; model last."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for stale in target_dir.glob(".*.tmp-*"):  # left by a crash mid-switch
        stale.unlink(missing_ok=True)
    for name in _SERVED_FILES:
        src = version_dir / name
        if not src.is_file():
            continue
        tmp = target_dir / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            _copy_durable(src, tmp)
            os.replace(tmp, target_dir / name)
        finally:
            tmp.unlink(missing_ok=True)
    _fsync_dir(target_dir)


def _verified_artefact(models_dir: Path, version: ModelVersion) -> Path:
    artefact = version.artefact(models_dir)
    if not artefact.is_file():
        raise RegistryError(
            f"the artefact of {version.id} is missing ({artefact}); it cannot be put in service"
        )
    if file_sha256(artefact) != version.artefact_sha256:
        raise RegistryError(
            f"the artefact of {version.id} ({artefact}) changed since it was registered (SHA-256 differs);"
            " register a new version instead"
        )
    load_artefact(artefact, version.task)
    return artefact


def _reconcile_in_service(conn: sa.Connection, models_dir: Path, task: str) -> str | None:
    """Make sure the model really in service can be returned to; returns its version id.

    That is the shipped model, a file an admin put in ``models_dir``, or — after a crash between the
    file switch and the commit — the version being promoted. Unknown files are registered
    (``imported``/``shipped``), and the history gets a ``baseline`` entry when its top differs.
    """
    from nlp.classify import SHIPPED_MODELS_DIR

    served = served_file(models_dir, task)
    in_service = served if served.is_file() else SHIPPED_MODELS_DIR / task / MODEL_FILENAME
    if not in_service.is_file():
        return None
    sha = file_sha256(in_service)
    known = conn.execute(
        sa.select(model_versions.c.id)
        .where(model_versions.c.task == task, model_versions.c.artefact_sha256 == sha)
        .order_by(model_versions.c.created_at.desc())
    ).scalar()
    if known is None:
        origin = "imported" if in_service == served else "shipped"
        known = _register_existing_file(conn, models_dir, task, in_service, sha, origin)
    stack = _service_stack(conn, task)
    if not stack or stack[-1] != known:
        conn.execute(
            model_promotions.insert().values(
                task=task,
                version_id=known,
                action="baseline",
                previous_version_id=stack[-1] if stack else None,
                at=_now(),
                username="system",
            )
        )
    return str(known)


def _put_in_service(
    conn: sa.Connection,
    models_dir: Path,
    version: ModelVersion,
    username: str,
    action: str,
    in_service: str | None,
) -> None:
    """Within the caller's transaction and task lock: statuses, history, then the file switch."""
    artefact = _verified_artefact(models_dir, version)
    task = version.task
    now = _now()
    conn.execute(
        model_versions.update()
        .where(
            model_versions.c.task == task,
            model_versions.c.status == "active",
            model_versions.c.id != version.id,
        )
        .values(status="retired")
    )
    if in_service is not None and in_service != version.id:
        conn.execute(
            model_versions.update().where(model_versions.c.id == in_service).values(status="retired")
        )
    conn.execute(
        model_versions.update()
        .where(model_versions.c.id == version.id)
        .values(status="active", promoted_at=now, promoted_by=username)
    )
    if in_service != version.id:
        conn.execute(
            model_promotions.insert().values(
                task=task,
                version_id=version.id,
                action=action,
                previous_version_id=in_service,
                at=now,
                username=username,
            )
        )
    # The switch happens inside the transaction: if it fails, nothing is recorded; the commit follows
    # it immediately.
    _switch_served_files(artefact.parent, models_dir / task)


def promote(engine: sa.Engine, models_dir: Path, version_id: str, username: str) -> ModelVersion:
    """Put ``version_id`` in service for its task (the model ``nlp.classify`` loads from ``models_dir``).

    Raises ``UnknownVersionError``, or ``RegistryError`` when the artefact is missing, changed or not
    loadable. Promoting the version in service again re-installs its files (repairs a damaged copy).
    """
    version = get_version(engine, version_id)
    with _task_lock(models_dir, version.task), engine.begin() as conn:
        in_service = _reconcile_in_service(conn, models_dir, version.task)
        _put_in_service(conn, models_dir, version, username, "promote", in_service)
    return get_version(engine, version.id)


def rollback(engine: sa.Engine, models_dir: Path, task: str, username: str) -> ModelVersion:
    """Put back the version that was in service before the current one; returns it.

    Raises ``NoEarlierVersionError`` when there is nothing earlier (no promotion yet, or already back
    at the first model in service).
    """
    _check_task(task)
    with _task_lock(models_dir, task), engine.begin() as conn:
        if not _service_stack(conn, task):
            raise NoEarlierVersionError(f"no earlier {task} model to roll back to (nothing was promoted yet)")
        in_service = _reconcile_in_service(conn, models_dir, task)
        stack = _service_stack(conn, task)
        if len(stack) < 2:
            raise NoEarlierVersionError(
                f"no earlier {task} model to roll back to ({stack[-1]} was the first one in service)"
            )
        row = conn.execute(sa.select(model_versions).where(model_versions.c.id == stack[-2])).first()
        assert row is not None  # history rows reference model_versions
        target = _row_to_version(row)
        _put_in_service(conn, models_dir, target, username, "rollback", in_service)
    return get_version(engine, target.id)


def reconcile_status(engine: sa.Engine, models_dir: Path, task: str) -> str | None:
    """A warning when the file in service is not the version the registry calls active, else ``None``."""
    active = active_version(engine, task)
    if active is None:
        return None
    served = served_version(engine, models_dir, task)
    if served is not None and served.id == active.id:
        return None
    what = served.id if served else "a model file the registry does not know"
    return (
        f"{task}: the registry says {active.id} is active but {served_file(models_dir, task)} is {what};"
        f" run `duluan nlp promote {active.id}` to reinstall it"
    )
