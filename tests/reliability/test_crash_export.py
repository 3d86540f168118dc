"""SIGKILL `duluan export` while it writes: the previous export file stays whole, a rerun completes."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from crawlers.extract import extract_article
from duluan.demo_site import demo_articles
from index.export import export_results
from index.tantivy_backend import TantivyIndex
from schema.document import Document
from tests.reliability.conftest import child_env, wait_for

SEED = 20261130


def _documents(start: int, count: int) -> list[Document]:
    pages = [extract_article(a.file.read_bytes(), a.original_url, min_body_chars=0) for a in demo_articles()]
    docs = []
    for n in range(start, start + count):
        page = pages[n % len(pages)]
        assert page is not None
        url = f"https://baomau.example.vn/tin-{n}.htm"
        docs.append(
            Document(
                id=hashlib.sha1(url.encode()).hexdigest()[:16],
                url=url,
                canonical_url=url,
                source="baomau",
                title=f"{page.title} ({n})",
                text=page.text,
                fetched_at=page.published_at or "2026-11-01T00:00:00+00:00",
                published_at=page.published_at,
                topic="xa-hoi",
                sentiment="neutral",
            )
        )
    return docs


def _export(home: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "duluan", "export", "", "--out", str(out)],
        cwd=home.parent,
        env=child_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return sum(1 for _ in csv.reader(stream)) - 1


def test_export_killed_mid_write_keeps_the_previous_file(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    home = tmp_path / "home"
    index = TantivyIndex(home / "index")
    try:
        index.upsert(_documents(0, 400))
        out = tmp_path / "exports" / "tat-ca.csv"
        out.parent.mkdir()
        assert export_results(index, out, "") == 400  # yesterday's export, the state to keep
        previous = out.read_bytes()
        assert _rows(out) == 400
        index.upsert(_documents(400, 1600))
    finally:
        index.close()

    for _trial in range(1):
        proc = _export(home, out)
        try:
            wait_for(
                lambda: any(p.stat().st_size > 0 for p in out.parent.glob(".tat-ca.csv.*.tmp")), 60, "temp"
            )
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the export finished before the kill"
        assert out.read_bytes() == previous, "a killed export touched the previous file"
        assert _rows(out) == 400

    done = _export(home, out)
    assert done.wait(timeout=120) == 0
    assert _rows(out) == 2000  # the rerun writes the whole, current result
