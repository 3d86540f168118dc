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
from duluan.demo_site import demo_articles
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


def count_documents(home: Path, disk: SmallDisk) -> int:
    stats = duluan(home, disk, "index", "stats")
    assert stats.returncode == 0, stats.stderr[-2000:]
    return int(json.loads(stats.stdout)["documents"])


def assert_clear_storage_error(result: subprocess.CompletedProcess[str], where: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Storage error" in result.stderr, result.stderr[-3000:]
    assert where in result.stderr.replace("\n", ""), result.stderr[-3000:]


def test_index_load_on_a_full_disk(disk: SmallDisk, tmp_path: Path) -> None:
    home = disk.path / "home"
    docs = tmp_path / "docs.jsonl"
    write_documents(docs, 1500)  # ~10 MB of text: more than the 4 MB disk holds once indexed
    assert duluan(home, disk, "sources").returncode == 0  # creates and seeds the app database

    failed = duluan(home, disk, "index", "load", str(docs), "--batch-size", "100")
    assert_clear_storage_error(failed, "index")

    disk.grow()
    assert integrity(home / "duluan.db") == "ok"
    kept = count_documents(home, disk)  # the index opens; whole batches only
    assert kept % 100 == 0
    search = duluan(home, disk, "search", "baomau", "--json", "--limit", "3")
    assert search.returncode == 0, search.stderr[-2000:]

    rerun = duluan(home, disk, "index", "load", str(docs), "--batch-size", "500")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["loaded"] == 1500
    assert count_documents(home, disk) == 1500  # re-loaded documents replaced, none duplicated


def test_app_database_on_a_full_disk_then_read_only(disk: SmallDisk, tmp_path: Path) -> None:
    home = disk.path / "home"
    docs = tmp_path / "docs.jsonl"
    write_documents(docs, 40)
    assert duluan(home, disk, "index", "load", str(docs)).returncode == 0
    assert duluan(home, disk, "users", "add", "truc.ban", "--role", "staff").returncode == 0

    # Fill the disk to the last byte, then ask for a database write.
    filler = disk.path / "filler.bin"
    if disk.mounted:
        with filler.open("wb") as out, suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
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
    listed = duluan(home, disk, "users", "list")
    assert listed.returncode == 0 and "truc.ban" in listed.stdout

    # A read-only data directory: every command that needs the store says so clearly.
    disk.set_read_only(True)
    try:
        assert_clear_storage_error(duluan(home, disk, "search", "baomau"), "index")
        assert_clear_storage_error(duluan(home, disk, "index", "load", str(docs)), "index")
        assert_clear_storage_error(duluan(home, disk, "users", "add", "nguoi.moi"), "database")
    finally:
        disk.set_read_only(False)
    assert integrity(home / "duluan.db") == "ok"
    assert count_documents(home, disk) == 40
    again = duluan(home, disk, "users", "add", "nguoi.moi", "--role", "staff")
    assert again.returncode == 0, again.stderr[-2000:]
