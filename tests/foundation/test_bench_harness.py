"""`python -m bench`: lists every benchmark script, appends a dated section per run (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_list_names_every_benchmark_script() -> None:
    result = _bench("--list")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    scripts = {p.stem for p in (REPO / "bench").glob("*.py") if not p.stem.startswith("_")}
    assert scripts <= listed
    assert "index_compare" in listed and "crawl_extraction" in listed


def test_unknown_name_is_a_clear_error() -> None:
    result = _bench("no_such_bench")
    assert result.returncode == 2
    assert "no benchmark named no_such_bench" in result.stderr and "index_compare" in result.stderr


def test_quick_run_appends_a_section_with_machine_info_and_figures(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nearlier text\n", encoding="utf-8")
    result = _bench("crawl_extraction", "nlp_transformer", "--quick", "--results", str(results))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nearlier text\n")  # appended, nothing rewritten
    section = text.split("## Harness run ", 1)[1]
    assert "quick" in section.splitlines()[0]
    assert ".venv/bin/python -m bench crawl_extraction nlp_transformer --quick" in section
    for needle in ("CPU: ", "cores", "RAM: ", "load average at start", "Python 3.", "tantivy "):
        assert needle in section, needle
    assert "| crawl_extraction | ok |" in section
    assert "| nlp_transformer | skipped: needs trained models" in section
    # the benchmark's own figures, with the peer measured in the same run (trafilatura alone)
    assert "### crawl_extraction" in section and "trafilatura" in section.split("### crawl_extraction")[1]
