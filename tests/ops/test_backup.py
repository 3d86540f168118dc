"""Backup while the service writes, restore into a fresh home, refuse damaged archives."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import sqlite3
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.lease import try_acquire
from crawlers.health import crawl_runs_table
from duluan.backup import BackupError, RestoreError, create_backup, read_manifest, restore_backup
from duluan.db import create_db_engine
from index.tantivy_backend import TantivyIndex
from nlp.classify import load_classifier
from tests.foundation.conftest import run_duluan
from tests.ops.conftest import build_home, make_document, settings_for

BATCH = 25
QUERIES = ('"Đồng Xoài"', "ngap", "topic:giao-thong", 'cháy AND "Bình Phước"', "")


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its SHA-256 (to prove a refused restore touched nothing)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _search(index_dir: Path) -> dict[str, list[str]]:
    index = TantivyIndex(index_dir)
    try:
        return {q: [h.document.id for h in index.search(q, sort="date", limit=50).hits] for q in QUERIES}
    finally:
        index.close()


class Writer(threading.Thread):
    """Keeps indexing batches (ids in order) and, after each commit, records a crawl run row."""

    def __init__(self, settings, start_at: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.next_id, self.stop, self.batches = settings, start_at, threading.Event(), 0
        self.error: BaseException | None = None

    def run(self) -> None:
        index = TantivyIndex(self.settings.index_dir)
        engine = create_db_engine(self.settings.db_url)
        try:
            while not self.stop.is_set():
                docs = [make_document(i) for i in range(self.next_id, self.next_id + BATCH)]
                index.upsert(docs)
                self.next_id += BATCH
                now = datetime.now(UTC)
                with engine.begin() as conn:
                    conn.execute(
                        sa.insert(crawl_runs_table).values(
                            source_id="baodongnai",
                            started_at=now,
                            finished_at=now,
                            fetched=BATCH,
                            extracted=BATCH,
                            indexed=BATCH,
                            dropped=0,
                            errors={},
                            unreachable=None,
                        )
                    )
                self.batches += 1
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            index.close()
            engine.dispose()


def test_backup_during_writes_restores_a_consistent_snapshot(tmp_path: Path) -> None:
    settings = build_home(tmp_path / "home", documents=300)
    writer = Writer(settings, start_at=300)
    writer.start()
    try:
        while writer.batches < 3 and writer.error is None:  # really writing when the backup starts
            threading.Event().wait(0.02)
        live = create_backup(settings, tmp_path / "live.tar.gz")
        during = writer.batches
        while writer.batches <= during + 1 and writer.error is None and writer.is_alive():
            threading.Event().wait(0.02)  # …and keeps writing after it
    finally:
        writer.stop.set()
        writer.join(timeout=60)
    assert writer.error is None, writer.error
    assert writer.batches > during + 1

    fresh = settings_for(tmp_path / "fresh")
    report = restore_backup(fresh, live.path)
    assert report.documents == live.documents
    db = fresh.home / "duluan.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = conn.execute("SELECT count(*) FROM crawl_runs").fetchone()[0]
    # Every batch is whole (one commit each): the snapshot holds the seed plus complete batches only…
    restored = TantivyIndex(fresh.index_dir)
    try:
        count = restored.count()
        ids = {d.id for d in restored.scan()}
    finally:
        restored.close()
    assert count == live.documents and (count - 300) % BATCH == 0
    assert ids == {f"doc-{i:06d}" for i in range(count)}
    # …and the database was copied first, so it never names more indexed batches than the index has.
    assert runs <= (count - 300) // BATCH

    # Quiet now: a second backup restores to exactly the same search results.
    final = create_backup(settings, tmp_path / "final.tar.gz")
    again = settings_for(tmp_path / "again")
    restore_backup(again, final.path)
    assert final.documents == 300 + writer.batches * BATCH
    assert _search(again.index_dir) == _search(settings.index_dir)
    assert _tree_digest(again.models_dir) == _tree_digest(settings.models_dir)
    assert load_classifier("sentiment", again.models_dir).predict(["Giao thông ùn tắc nghiêm trọng"], [""])
    manifest = read_manifest(final.path)
    assert manifest["database"]["alembic_revision"] and manifest["versions"]["tantivy"]
    assert manifest["index"]["hard_links"] is True


def _corrupt_middle(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))


def _tamper_member(src: Path, dst: Path) -> None:
    """A well-formed archive whose index file no longer matches the manifest (a bit-flip before gzip)."""
    with tarfile.open(src, "r:gz") as tar, tarfile.open(dst, "w:gz") as out:
        for member in tar:
            payload = tar.extractfile(member).read() if member.isfile() else b""
            if member.name.startswith("index/") and member.name.endswith(".store"):
                payload = payload[:-1] + bytes([payload[-1] ^ 1])
            out.addfile(member, io.BytesIO(payload))


def _unsafe_member(src: Path, dst: Path) -> None:
    with tarfile.open(src, "r:gz") as tar, tarfile.open(dst, "w:gz") as out:
        for member in tar:
            out.addfile(member, tar.extractfile(member) if member.isfile() else None)
        evil = tarfile.TarInfo("../escaped.txt")
        evil.size = 3
        out.addfile(evil, io.BytesIO(b"bad"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_middle, "corrupted|damaged"),
        (lambda s, d: d.write_bytes(s.read_bytes()[: s.stat().st_size // 3]), "damaged or truncated"),
        (_tamper_member, "checksum mismatch"),
        (_unsafe_member, "unsafe path"),
        (lambda s, d: d.write_bytes(gzip.compress(b"not a tar")), "not a readable Duluan backup"),
    ],
    ids=["bit-flips", "truncated", "tampered-member", "path-traversal", "not-a-tar"],
)
def test_damaged_archive_is_refused_and_home_untouched(tmp_path: Path, damage, message: str) -> None:
    source = build_home(tmp_path / "source", documents=60)
    good = create_backup(source, tmp_path / "good.tar.gz").path
    target = build_home(tmp_path / "target", documents=10)
    before = _tree_digest(target.home)
    bad = tmp_path / "bad.tar.gz"
    damage(good, bad)
    with pytest.raises(RestoreError, match=message):
        restore_backup(target, bad)
    assert _tree_digest(target.home) == before
    assert not (tmp_path / "escaped.txt").exists()


def test_restore_refuses_a_running_service_unless_forced(tmp_path: Path) -> None:
    source = build_home(tmp_path / "source", documents=20)
    archive = create_backup(source, tmp_path / "b.tar.gz").path
    target = build_home(tmp_path / "target", documents=5)
    engine = create_db_engine(target.db_url)
    now = datetime.now(UTC)
    assert try_acquire(engine, "scheduler", "ioc-host:4242:abcd", timedelta(minutes=5), now)
    engine.dispose()
    before = _tree_digest(target.home)
    with pytest.raises(RestoreError, match=r"service is running .*ioc-host:4242"):
        restore_backup(target, archive)
    assert _tree_digest(target.home) == before
    report = restore_backup(target, archive, force=True)
    assert report.documents == 20 and report.previous is not None
    assert (report.previous / "duluan.db").is_file() and (report.previous / "index").is_dir()
    # The restored database hands the lease to whichever service starts next.
    engine = create_db_engine(target.db_url)
    try:
        assert try_acquire(engine, "scheduler", "new-host:1:beef", timedelta(minutes=1), datetime.now(UTC))
    finally:
        engine.dispose()


def test_postgresql_is_refused_with_pg_dump_advice(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home", database_url="postgresql://duluan:secret@db.example/duluan")
    with pytest.raises(BackupError, match="pg_dump") as info:
        create_backup(settings, tmp_path / "x.tar.gz")
    assert "secret" not in str(info.value)


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    settings = build_home(tmp_path / "home", documents=40)
    out = tmp_path / "cli.tar.gz"
    done = run_duluan("backup", "--out", str(out), home=settings.home, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["documents"] == 40
    bad = tmp_path / "bad.tar.gz"
    _corrupt_middle(out, bad)
    fresh = tmp_path / "fresh"
    refused = run_duluan("restore", str(bad), home=fresh, timeout=120)
    assert refused.returncode == 1
    assert "Restore refused" in refused.stderr and "not changed" in refused.stderr
    assert not (fresh / "duluan.db").exists()
    restored = run_duluan("restore", str(out), home=fresh, timeout=120)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["documents"] == 40
