"""Backup and restore (sao lưu, khôi phục) of one home: app database, embedded index, models in use.

`create_backup` writes one `.tar.gz` while the service keeps running:

- the SQLite app database through SQLite's online backup API (one read transaction: a consistent
  snapshot; WAL lets writers go on meanwhile), then checked with `PRAGMA integrity_check`;
- the embedded tantivy index as a committed snapshot: we take the index *writer lock* (the same lock
  every crawl and load takes per batch), so no commit or merge runs, hard-link every file of the last
  commit into a staging folder (segment files are immutable and `meta.json` is replaced by rename, so
  the links keep the snapshot), and let go of the lock at once — indexing waits milliseconds, not for
  the whole archive to be written. Where hard links are impossible the files are copied under the lock;
- the models in use (`<home>/models`, or `nlp.models_dir`), when that folder exists (otherwise the
  shipped models, which come with the code, are in use);
- `manifest.json` first: format version, code and library versions, database revision, document
  count, and the size and SHA-256 of every file.

The database is copied before the index, so every document an alert or label row names is in the
index copy too (the index may hold a few documents more, which the next crawl would add anyway).

`restore_backup` refuses an archive whose files do not match the manifest, refuses to run while a
service holds the scheduler lease on the target home (unless forced), unpacks into a temporary folder
next to the home, checks the database and the index there, and only then swaps each part into place
with `os.replace`, moving what was there to `<home>/.pre-restore-<time>/`. Nothing in the home is
touched before every check has passed.

PostgreSQL app databases are backed up with `pg_dump` (see README); this module refuses them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa

from duluan.settings import Settings

FORMAT = "duluan-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_MEMBER = "duluan.db"
INDEX_MEMBER = "index"
MODELS_MEMBER = "models"
#: Lock files of tantivy: never part of a snapshot.
_INDEX_LOCK_FILES = frozenset({".tantivy-writer.lock", ".tantivy-meta.lock"})
#: The lease the scheduler holds while a service runs (see duluan.service.SCHEDULER_LEASE).
SCHEDULER_LEASE = "scheduler"
_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup that cannot be made; the message says what, where and how to fix it."""


class RestoreError(RuntimeError):
    """An archive that cannot be restored; nothing in the home was changed."""


@dataclass
class BackupReport:
    path: Path
    files: int
    bytes: int
    documents: int | None
    db_revision: str | None
    lock_wait_s: float
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class RestoreReport:
    home: Path
    files: int
    documents: int | None
    db_revision: str | None
    previous: Path | None
    created_at: str


# ---------------------------------------------------------------------------------------- helpers


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the app database; a clear error for any other database."""
    url = sa.engine.make_url(settings.db_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"the app database is {url.get_backend_name()} ({url.render_as_string(hide_password=True)}), "
            "not SQLite: back it up with the database's own tool, e.g. "
            '`pg_dump --format=custom --file duluan.pgdump "$DATABASE_URL"` (restore with pg_restore), '
            "and snapshot the index with its engine (see README, 'Backup and restore')."
        )
    if not url.database or url.database == ":memory:":
        raise BackupError("the app database is an in-memory SQLite database: there is nothing to back up")
    return Path(url.database)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for dist in ("duluan", "tantivy", "sqlalchemy", "alembic"):
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[dist] = importlib_metadata.version(dist)
    return versions


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link `src` to `dst` (True), or copy it when the file system cannot (False)."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


def _db_revision(db_file: Path) -> str | None:
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            return None
    return str(row[0]) if row else None


def _integrity(db_file: Path) -> str:
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)


def known_revisions() -> set[str]:
    """Every Alembic revision this code knows (an archive from a newer version is refused)."""
    from alembic.script import ScriptDirectory

    from duluan.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {rev.revision for rev in script.walk_revisions()}


def _index_backend(settings: Settings) -> str:
    return str(getattr(settings.index, "backend", "tantivy"))


# ----------------------------------------------------------------------------------------- backup


def backup_sqlite(db_file: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database (online backup API, one step), in rollback-journal
    mode so the copy is one self-contained file."""
    if not db_file.is_file():
        raise BackupError(
            f"no app database at {db_file}: is --home (or DULUAN_HOME / database_url) pointing at the "
            "service's data directory?"
        )
    source = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dest)
        try:
            # pages=-1: the whole database in one step, inside one read transaction. Stepping in
            # chunks would restart from scratch each time another connection writes.
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()
    verdict = _integrity(dest)
    if verdict != "ok":
        raise BackupError(f"the copy of {db_file} fails SQLite's integrity check: {verdict[:500]}")


@contextlib.contextmanager
def index_writer_lock(index_dir: Path, lock_timeout: float) -> Iterator[None]:
    """Hold the tantivy writer lock of `index_dir`: no other writer (any process) commits or merges.

    tantivy takes `.tantivy-writer.lock` with `flock` and retries with a back-off when it is busy, so
    polling for it ourselves would starve behind a busy crawler. Instead a helper thread waits on a
    *blocking* `flock`, which the kernel grants as soon as the current writer lets go.
    """
    path = index_dir / ".tantivy-writer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    acquired, abandoned, guard = threading.Event(), threading.Event(), threading.Lock()

    def wait_for_lock() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with guard:
            if abandoned.is_set():  # we gave up meanwhile: let go at once
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                return
            acquired.set()

    threading.Thread(target=wait_for_lock, name="backup-index-lock", daemon=True).start()
    if not acquired.wait(lock_timeout):
        with guard:
            if not acquired.is_set():
                abandoned.set()
                raise BackupError(
                    f"cannot snapshot the index: another process kept its writer lock ({path}) for more "
                    f"than {lock_timeout:.0f} s; retry the backup later"
                )
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def snapshot_tantivy(index_dir: Path, dest: Path, lock_timeout: float = 60.0) -> tuple[int, float, bool]:
    """Hard-link (or copy) the last committed state of the index into `dest` while holding the writer
    lock; returns (documents in the snapshot, seconds the lock was held, whether links were used)."""
    import time

    from index.tantivy_backend import TantivyIndex

    dest.mkdir(parents=True)
    linked = True
    with index_writer_lock(index_dir, lock_timeout):
        started = time.monotonic()
        for path in sorted(index_dir.iterdir()):
            if path.is_file() and path.name not in _INDEX_LOCK_FILES:
                linked = _link_or_copy(path, dest / path.name) and linked
        held = time.monotonic() - started
    snapshot = TantivyIndex(dest)
    try:
        documents = snapshot.count()
    finally:
        snapshot.close()
    for lock in _INDEX_LOCK_FILES:
        (dest / lock).unlink(missing_ok=True)
    return documents, held, linked


def default_backup_path(settings: Settings, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return settings.home / "backups" / f"duluan-backup-{stamp}.tar.gz"


def create_backup(settings: Settings, out: Path | None = None, *, lock_timeout: float = 60.0) -> BackupReport:
    """Write a consistent backup of the home to `out` (default `<home>/backups/…tar.gz`)."""
    db_file = sqlite_path(settings)
    out = Path(out) if out is not None else default_backup_path(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    created_at = datetime.now(UTC)
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=settings.home))
    try:
        # 1. database first: the index copy taken after it holds every document the database names.
        backup_sqlite(db_file, staging / DB_MEMBER)
        revision = _db_revision(staging / DB_MEMBER)
        # 2. the index: a committed snapshot under the writer lock.
        documents: int | None = None
        held, linked = 0.0, True
        backend = _index_backend(settings)
        index_note = "tantivy snapshot under the writer lock"
        if backend != "tantivy":
            index_note = f"{backend}: not in this archive; use the engine's snapshots (README)"
        elif (settings.index_dir / "meta.json").is_file():
            documents, held, linked = snapshot_tantivy(
                settings.index_dir, staging / INDEX_MEMBER, lock_timeout
            )
        else:
            index_note = "no index yet"
        # 3. models in use.
        models_dir = settings.models_dir
        models: list[str] = []
        if models_dir.is_dir():
            shutil.copytree(models_dir, staging / MODELS_MEMBER, symlinks=False)
            models = sorted(p.name for p in (staging / MODELS_MEMBER).iterdir() if p.is_dir())
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                rel = path.relative_to(staging).as_posix()
                files[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": created_at.isoformat(),
            "host": platform.node(),
            "home": str(settings.home.resolve()),
            "versions": _versions(),
            "database": {"file": DB_MEMBER, "alembic_revision": revision},
            "index": {
                "backend": backend,
                "documents": documents,
                "note": index_note,
                "lock_held_s": round(held, 4),
                "hard_links": linked,
            },
            "models": {"dir": MODELS_MEMBER if models else None, "names": models},
            "files": files,
        }
        _write_archive(out, staging, manifest)
        size = out.stat().st_size
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupReport(out, len(files), size, documents, revision, held, manifest)


def _write_archive(out: Path, staging: Path, manifest: dict[str, Any]) -> None:
    """manifest.json first, then every file; written to a temp name and renamed (never half a file)."""
    handle, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(handle)
    try:
        with tarfile.open(temp_name, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
            for rel in manifest["files"]:
                tar.add(staging / rel, arcname=rel, recursive=False)
        os.replace(temp_name, out)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------- restore


def service_running(settings: Settings, now: datetime | None = None) -> str | None:
    """Who holds a valid scheduler lease on this home's database (a running service), or None."""
    try:
        db_file = sqlite_path(settings)
    except BackupError:
        return None
    if not db_file.is_file():
        return None
    from alerts.store import service_leases
    from duluan.db import create_db_engine

    engine = create_db_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(service_leases).where(service_leases.c.name == SCHEDULER_LEASE)
            ).first()
    except sa.exc.SQLAlchemyError:
        return None  # no lease table yet: no service ever ran here
    finally:
        engine.dispose()
    moment = now or datetime.now(UTC)
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    return (
        f"{row.holder} (lease valid until {expires.isoformat(timespec='seconds')})"
        if expires > moment
        else None
    )


def _safe_member_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name != path.as_posix():
        raise RestoreError(f"unsafe path {name!r} in the archive (absolute or with '..'): refusing it")
    return name


def read_manifest(archive: Path) -> dict[str, Any]:
    """The archive's manifest (checks that it is a Duluan backup this code can read)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember(MANIFEST)
            stream = tar.extractfile(member)
            if stream is None:
                raise RestoreError(f"{archive}: {MANIFEST} is not a regular file")
            manifest = json.loads(stream.read())
    except KeyError:
        raise RestoreError(f"{archive} has no {MANIFEST}: not a Duluan backup") from None
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RestoreError(
            f"{archive} is not a readable Duluan backup ({type(exc).__name__}: {exc}); the file is damaged "
            "or truncated — use another backup"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RestoreError(f"{archive}: the manifest is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RestoreError(
            f"{archive}: backup format version {manifest.get('format_version')!r}; this Duluan reads "
            f"version {FORMAT_VERSION} — restore it with the Duluan version that made it"
        )
    if not isinstance(manifest.get("files"), dict):
        raise RestoreError(f"{archive}: the manifest lists no files")
    return manifest


def unpack_verified(archive: Path, dest: Path) -> dict[str, Any]:
    """Unpack `archive` into the empty folder `dest`, checking every file's size and SHA-256 against
    the manifest; refuses links, devices, unsafe paths, unlisted and missing files."""
    manifest = read_manifest(archive)
    expected: dict[str, dict[str, Any]] = manifest["files"]
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _safe_member_name(member.name)
                if name == MANIFEST:
                    continue
                if not member.isfile():
                    raise RestoreError(f"archive member {name!r} is not a regular file: refusing it")
                if name not in expected:
                    raise RestoreError(
                        f"archive member {name!r} is not in the manifest: refusing the archive"
                    )
                if name in seen:
                    raise RestoreError(f"archive member {name!r} appears twice: refusing the archive")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                stream = tar.extractfile(member)
                if stream is None:
                    raise RestoreError(f"archive member {name!r} cannot be read")
                digest, size = hashlib.sha256(), 0
                with target.open("xb") as out:
                    while chunk := stream.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                want = expected[name]
                if size != want.get("bytes") or digest.hexdigest() != want.get("sha256"):
                    raise RestoreError(
                        f"checksum mismatch for {name!r} (got {size} bytes, "
                        f"sha256 {digest.hexdigest()[:16]}…; "
                        f"manifest says {want.get('bytes')} bytes, {str(want.get('sha256'))[:16]}…): "
                        "the archive is corrupted — use another backup"
                    )
                seen.add(name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise RestoreError(
            f"{archive} cannot be read to the end ({type(exc).__name__}: {exc}); the file is damaged or "
            "truncated — use another backup"
        ) from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise RestoreError(
            f"the archive lacks {len(missing)} file(s) its manifest lists, e.g. {missing[0]!r}"
        )
    return manifest


def _check_unpacked(staging: Path, manifest: dict[str, Any]) -> int | None:
    """The unpacked database passes the integrity check and has a known schema; the index opens and
    holds the documents the manifest says."""
    db_file = staging / DB_MEMBER
    if not db_file.is_file():
        raise RestoreError("the archive holds no app database")
    verdict = _integrity(db_file)
    if verdict != "ok":
        raise RestoreError(f"the archived database fails SQLite's integrity check: {verdict[:300]}")
    revision = _db_revision(db_file)
    if revision is not None and revision not in known_revisions():
        raise RestoreError(
            f"the archived database is at schema revision {revision!r}, unknown to this Duluan: it was made "
            "by a newer version — upgrade Duluan first"
        )
    documents: int | None = None
    if (staging / INDEX_MEMBER / "meta.json").is_file():
        from index.tantivy_backend import TantivyIndex

        index = TantivyIndex(staging / INDEX_MEMBER)
        try:
            documents = index.count()
        finally:
            index.close()
        for lock in _INDEX_LOCK_FILES:
            (staging / INDEX_MEMBER / lock).unlink(missing_ok=True)
        want = manifest.get("index", {}).get("documents")
        if want is not None and documents != want:
            raise RestoreError(f"the archived index holds {documents} documents, the manifest says {want}")
    return documents


def _release_leases(db_file: Path) -> None:
    """No process of the restored world holds a lease: expire them so a new service starts at once."""
    from alerts.store import service_leases
    from duluan.db import create_db_engine

    engine = create_db_engine(f"sqlite:///{db_file}")
    try:
        with engine.begin() as conn:
            conn.execute(service_leases.update().values(expires_at=datetime.now(UTC)))
    except sa.exc.SQLAlchemyError:
        pass  # an old schema without leases
    finally:
        engine.dispose()
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")


def _move(src: Path, target: Path) -> None:
    """Put `src` at `target` with a rename; across file systems, copy next to `target` first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, target)
    except OSError:
        temp = target.with_name(f".{target.name}.restore-tmp")
        if src.is_dir():
            shutil.copytree(src, temp)
        else:
            shutil.copy2(src, temp)
        os.replace(temp, target)


def restore_backup(settings: Settings, archive: Path, *, force: bool = False) -> RestoreReport:
    """Restore `archive` into the configured home (see the module docstring for the guarantees)."""
    archive = Path(archive)
    if not archive.is_file():
        raise RestoreError(f"no backup file at {archive}")
    db_file = sqlite_path_for_restore(settings)
    holder = service_running(settings)
    if holder and not force:
        raise RestoreError(
            f"a Duluan service is running on {settings.home} (scheduler lease held by {holder}); stop it "
            "first (restoring under a running service loses its writes), or pass --force if that "
            "process is known to be dead"
        )
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    try:
        manifest = unpack_verified(archive, staging)
        documents = _check_unpacked(staging, manifest)
        _release_leases(staging / DB_MEMBER)
        # Every check passed: swap the parts in, keeping what was there.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        previous = home / f".pre-restore-{stamp}"
        parts: list[tuple[Path, Path]] = [(staging / DB_MEMBER, db_file)]
        if (staging / INDEX_MEMBER).is_dir():
            parts.append((staging / INDEX_MEMBER, settings.index_dir))
        if (staging / MODELS_MEMBER).is_dir():
            parts.append((staging / MODELS_MEMBER, settings.models_dir))
        moved_aside: list[tuple[Path, Path]] = []
        placed: list[Path] = []
        try:
            for new, target in parts:
                olds = [target]
                if target == db_file:  # an old WAL must never be replayed onto the restored database
                    olds += [db_file.with_name(db_file.name + s) for s in ("-wal", "-shm", "-journal")]
                for old in olds:
                    if old.exists():
                        previous.mkdir(exist_ok=True)
                        aside = previous / old.name
                        _move(old, aside)
                        moved_aside.append((aside, old))
                _move(new, target)
                placed.append(target)
        except BaseException:
            for target in placed:  # roll back: the home as it was
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
            for aside, old in reversed(moved_aside):
                _move(aside, old)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        home=home,
        files=len(manifest["files"]),
        documents=documents,
        db_revision=manifest.get("database", {}).get("alembic_revision"),
        previous=previous if moved_aside else None,
        created_at=str(manifest.get("created_at")),
    )


def sqlite_path_for_restore(settings: Settings) -> Path:
    try:
        return sqlite_path(settings)
    except BackupError as exc:
        raise RestoreError(str(exc).replace("back it up", "restore it")) from None
