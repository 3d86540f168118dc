"""A short, bounded atheris run in `make test` (the long runs are `python -m bench.fuzz TARGET`)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import REPO, child_env


def test_atheris_all_targets_for_a_few_seconds(tmp_path: Path) -> None:
    # Linux keeps the peak RSS (ru_maxrss) across fork+exec, so the fuzzer starts out "using" this pytest
    # process's peak (2 GB late in a full run); give it 2 GB on top of that.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fuzz",
            "all",
            "--seconds",
            "4",
            "--out",
            str(tmp_path),
            "--rss-limit-mb",
            str(inherited_mb + 2048),
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done" in result.stderr and "stat::number_of_executed_units" in result.stderr
    assert not list(tmp_path.glob("all-*")), "the fuzzer wrote a crash file"
