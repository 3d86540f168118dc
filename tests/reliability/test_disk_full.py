"""A full disk and a read-only data directory: a clear error, then nothing corrupted.

The home lives on a small tmpfs mounted by the test (we run as root in CI). Where mounting is not
possible the child's file size is capped with RLIMIT_FSIZE instead (a write past the cap fails like a
full disk) and the read-only case drops the child to an unprivileged user on a non-writable home.
After each failure: `PRAGMA integrity_check` is ok, the index opens and searches, and a rerun
completes without duplicates.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from crawlers.extract import extract_article
from duluan.accounts import create_user, list_users
from duluan.db import open_database
from duluan.demo_site import demo_articles
from duluan.loading import load_jsonl
from duluan.settings import load_settings
from index.tantivy_backend import TantivyIndex
from tests.reliability.conftest import child_env, integrity

Preexec = Callable[[], None] | None


class SmallDisk:
    """A tmpfs of `size_mb` at `path` (or, without mount rights, a per-child file-size cap)."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path, self.size_mb = path, size_mb
        path.mkdir(parents=True)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0777", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        )
        self.mounted = mounted.returncode == 0
        self.full_cap: int | None = None if self.mounted else size_mb * 1_000_000
        self.read_only = False

    def _remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)

    def grow(self) -> None:
        """Give the disk room again (the operator freed space)."""
        if self.mounted:
            self._remount("size=256m")
        self.full_cap = None

    def set_read_only(self, read_only: bool) -> None:
        self.read_only = read_only
        if self.mounted:
            self._remount("ro" if read_only else "rw")

    def preexec(self) -> Preexec:
        cap, unprivileged = self.full_cap, self.read_only and not self.mounted

        def limit() -> None:
            if cap is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
            if unprivileged:
                os.setgid(65534)
                os.setuid(65534)

        return limit if cap is not None or unprivileged else None

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(tmp_path / "disk", 4)
    yield small
    small.close()


def duluan(home: Path, disk: SmallDisk, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duluan", *args],
        cwd=home.parent.parent,
        env=child_env(home, DULUAN_PASSWORD="mat-khau-dai-12345"),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=disk.preexec(),
        check=False,
    )


def write_documents(path: Path, count: int) -> None:
    """`count` distinct documents built from the bundled real pages (about 6 kB of text each)."""
    articles = [
        extract_article(a.file.read_bytes(), a.original_url, min_body_chars=0) for a in demo_articles()
    ]
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            extracted = articles[n % len(articles)]
            assert extracted is not None
            url = f"https://baomau.example.vn/tin-{n}.htm"
            doc = {
                "url": url,
                "source": "baomau",
                "title": f"{extracted.title} ({n})",
                "text": f"{extracted.text}\nBài số {n}.",
                "fetched_at": "2026-11-01T00:00:00+00:00",
                "topic": "xa-hoi",
                "sentiment": "neutral",
            }
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")


def index_answers(home: Path) -> int:
    """Open the index in this process, search it, and return how many documents it holds."""
    index = TantivyIndex(home / "index")
    try:
        total = index.count("")
        assert index.search("source:baomau", limit=3).total == total
        return total
    finally:
        index.close()


def assert_clear_storage_error(result: subprocess.CompletedProcess[str], where: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Storage error" in result.stderr, result.stderr[-3000:]
    assert where in result.stderr.replace("\n", ""), result.stderr[-3000:]


def test_index_load_on_a_full_disk(disk: SmallDisk, tmp_path: Path) -> None:
    home = disk.path / "home"
    docs = tmp_path / "docs.jsonl"
    write_documents(docs, 1500)  # ~10 MB of text: more than the 4 MB disk holds once indexed
    open_database(load_settings(home=home).db_url).dispose()  # the app database, migrated

    failed = duluan(home, disk, "index", "load", str(docs), "--batch-size", "100")
    assert_clear_storage_error(failed, "index")

    disk.grow()
    assert integrity(home / "duluan.db") == "ok"
    kept = index_answers(home)  # the index opens and searches; only whole batches were committed
    assert kept % 100 == 0
    assert load_jsonl(load_settings(home=home), docs, batch_size=500)["loaded"] == 1500
    assert index_answers(home) == 1500  # re-loaded documents replaced, none duplicated


def test_app_database_on_a_full_disk_then_read_only(disk: SmallDisk, tmp_path: Path) -> None:
    home = disk.path / "home"
    docs = tmp_path / "docs.jsonl"
    write_documents(docs, 40)
    settings = load_settings(home=home)
    assert load_jsonl(settings, docs)["loaded"] == 40
    engine = open_database(settings.db_url)
    create_user(engine, "truc.ban", "mat-khau-dai-12345", "staff")
    engine.dispose()

    # Fill the disk to the last byte, then ask for a database write.
    filler = disk.path / "filler.bin"
    if disk.mounted:
        # Unbuffered, and the close inside suppress: a buffered file would raise ENOSPC again on close.
        with suppress(OSError), filler.open("wb", buffering=0) as out:
            while True:
                out.write(b"\0" * 65536)
    else:
        disk.full_cap = (home / "duluan.db").stat().st_size  # the database file may not grow
    for n in range(3):  # a few users: the first may still fit in a free page
        result = duluan(home, disk, "users", "add", f"can.bo.{n}", "--role", "staff")
        if result.returncode != 0:
            break
    assert_clear_storage_error(result, "database")
    with suppress(FileNotFoundError):
        filler.unlink()
    disk.full_cap = None
    assert integrity(home / "duluan.db") == "ok"
    engine = open_database(settings.db_url)
    assert "truc.ban" in {u.username for u in list_users(engine)}
    engine.dispose()

    # A read-only data directory: the commands that need the store say so clearly.
    disk.set_read_only(True)
    try:
        assert_clear_storage_error(duluan(home, disk, "search", "baomau"), "index")
        assert_clear_storage_error(duluan(home, disk, "users", "add", "nguoi.moi"), "database")
    finally:
        disk.set_read_only(False)
    assert integrity(home / "duluan.db") == "ok"
    assert index_answers(home) == 40
    engine = open_database(settings.db_url)
    create_user(engine, "nguoi.moi", "mat-khau-dai-12345", "staff")  # writable again
    engine.dispose()
