"""The index folder is shared by the service and crawl subprocesses: writes interleave, reads stay fresh."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
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
    import sys
    from pathlib import Path
    sys.path[:0] = [{repo!r}]
    from index.tantivy_backend import TantivyIndex

    backend = TantivyIndex(Path({path!r}))
    writer = backend._index.writer(20_000_000, 1)
    print("locked", flush=True)
    sys.stdin.readline()  # hold the writer lock until the parent says so
    writer.wait_merging_threads()
    print("released", flush=True)
    """
)


def _spawn(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
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
    holder = _spawn(CHILD_LOCK_HOLDER.format(repo=str(REPO), path=str(index_dir)))
    try:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        impatient = TantivyIndex(index_dir, lock_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match="locked by another writer"):
            impatient.upsert([make_doc("x", "một")])
        assert time.monotonic() - started >= 0.5

        patient = TantivyIndex(index_dir, lock_timeout=30)
        outcome: list[int] = []
        waiter = threading.Thread(target=lambda: outcome.append(patient.upsert([make_doc("y", "hai")])))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not outcome  # still waiting for the lock
        holder.stdin.write("release\n")
        holder.stdin.flush()
        waiter.join(timeout=30)
        assert outcome == [1]
        assert patient.count() == 1
        assert holder.stdout.readline().strip() == "released"
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def test_a_writer_killed_mid_batch_does_not_wedge_the_index(index_dir: Path) -> None:
    TantivyIndex(index_dir)
    holder = _spawn(CHILD_LOCK_HOLDER.format(repo=str(REPO), path=str(index_dir)))
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()  # SIGKILL: no cleanup runs, the lock file stays on disk
    holder.wait(timeout=30)
    assert (index_dir / ".tantivy-writer.lock").exists()
    assert TantivyIndex(index_dir, lock_timeout=5).upsert([make_doc("after-crash", "vẫn ghi được")]) == 1
