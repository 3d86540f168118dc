"""Helpers for tests that run the real `duluan` command in child processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def duluan_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child `duluan` with its own home and no inherited DULUAN_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DULUAN_")}
    env.update({"DULUAN_HOME": str(home), "PYTHONUNBUFFERED": "1", "COLUMNS": "400", **extra})
    return env


def run_duluan(
    *args: str,
    home: Path,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float = 300,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duluan", *args],
        cwd=cwd or home.parent,
        env=duluan_env(home, **env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    path.mkdir()
    yield path
