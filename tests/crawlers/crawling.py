"""Runs one crawl in a child process (Twisted's reactor starts once per process) for the tests."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "crawl_child.py"
FAST = {
    "download_delay_s": 0,
    "timeout_s": 3,
    "retry_times": 0,
    "log_level": "WARNING",
    "flush_interval_s": 1,
}


def crawl(
    tmp: Path, sources: list[dict[str, Any]], state_dir: Path | None = None, **extra: Any
) -> tuple[dict, list]:
    """Run one crawl in a child process; returns (report JSON, documents the sink received)."""
    out = tmp / f"docs-{len(list(tmp.glob('docs-*')))}.jsonl"
    job = {
        "sources": sources,
        "config": {**FAST, **extra.pop("config", {})},
        "state_dir": str(state_dir or tmp / "state"),
        "out": str(out),
        **extra,
    }
    job_path = tmp / "job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-W", "default", str(CHILD), str(job_path)],
        capture_output=True, text=True, timeout=90, cwd=REPO_ROOT, env=env, check=False,
    )  # fmt: skip
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    if extra.get("kill_on_batch") and proc.returncode == -9:
        return {"killed": True}, docs
    assert proc.returncode == 0, proc.stderr[-3000:]
    deprecations = [line for line in proc.stderr.splitlines() if "DeprecationWarning" in line]
    assert not deprecations, f"a crawl must print no deprecation warnings: {deprecations}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), docs
