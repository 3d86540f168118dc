"""The index folder is shared by the service and crawl subprocesses: writes interleave, reads stay fresh."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from index_testdata import make_doc

from index.tantivy_backend import IndexLockedError, TantivyIndex

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent

CHILD_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path[:0] = [{repo!r}, {tests!r}]
    from index_testdata import make_doc
    from index.tantivy_backend import TantivyIndex

    backend = TantivyIndex(Path({path!r}), writer_heap_bytes=20_000_000, writer_threads=1)
    for batch in range({batches}):
        docs = [make_doc(f"child-{{batch}}-{{i}}", "tin từ tiến trình con", "crawl") for i in range({size})]
        backend.upsert(docs)
    print("done", flush=True)
    """
)

CHILD_LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{repo!r}]
    from index.tantivy_backend import TantivyIndex

    backend = TantivyIndex(Path({path!r}))
    writer = backend._index.writer(20_000_000, 1)
    print("locked", flush=True)
    time.sleep({seconds})
    writer.wait_merging_threads()
    """
)


def _spawn(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )


def test_subprocess_writes_while_parent_writes_and_searches(index_dir: Path) -> None:
    parent = TantivyIndex(index_dir, writer_heap_bytes=20_000_000, writer_threads=1)
    batches, size = 15, 10
    child = _spawn(
        CHILD_WRITER.format(repo=str(REPO), tests=str(TESTS), path=str(index_dir), batches=batches, size=size)
    )
    try:
        seen: list[int] = []
        for batch in range(batches):
            parent.upsert(
                [make_doc(f"parent-{batch}-{i}", "tin từ tiến trình cha", "service") for i in range(size)]
            )
            seen.append(parent.count("tiến trình con"))
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "done" in out
    assert seen == sorted(seen)  # counts never go backwards
    # a fresh search sees every commit of the other process without reopening
    assert parent.count("tiến trình con") == batches * size
    assert parent.count("crawl OR service") == 2 * batches * size
    assert parent.count() == 2 * batches * size


def test_writer_lock_held_elsewhere_is_retried_then_reported(index_dir: Path) -> None:
    TantivyIndex(index_dir)  # create the folder before the other process opens it
    holder = _spawn(CHILD_LOCK_HOLDER.format(repo=str(REPO), path=str(index_dir), seconds=3))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        impatient = TantivyIndex(index_dir, lock_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match="locked by another writer"):
            impatient.upsert([make_doc("x", "một")])
        assert 0.4 < time.monotonic() - started < 2.5
        patient = TantivyIndex(index_dir, lock_timeout=20)
        assert patient.upsert([make_doc("y", "hai")]) == 1  # waits for the holder to let go
        assert patient.count() == 1
    finally:
        holder.wait(timeout=30)
