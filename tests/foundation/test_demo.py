"""`duluan demo`: the whole loop offline — crawl, enrich, index, alert, digest — and idempotent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.foundation.conftest import run_duluan


def test_demo_runs_the_whole_loop_and_is_idempotent(home: Path) -> None:
    first = run_duluan("demo", "--json", home=home)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["unreachable"] == []
    assert summary["documents_in_index"] >= 10
    assert summary["with_topic_and_sentiment"] >= 10
    assert sum(summary["topics"].values()) == summary["documents_in_index"]
    assert set(summary["sentiments"]) <= {"negative", "neutral", "positive"}
    digest = Path(summary["digest_path"])
    assert digest.is_file() and digest.is_relative_to(home)
    html = digest.read_text(encoding="utf-8")
    assert "<html" in html and "data:image/png;base64," in html
    archived_pdf = digest.with_suffix(".pdf")
    assert archived_pdf.read_bytes().startswith(b"%PDF-"), "the archive keeps a PDF beside the HTML"
    assert summary["rules_installed"], "the default province rules are installed on the first run"
    assert summary["alerts_fired"] >= 1, "the demo rule fires on the negative stories of the demo site"

    second = run_duluan("demo", "--json", home=home)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert again["documents_in_index"] == summary["documents_in_index"]
    assert again["rules_installed"] == []
    assert again["alerts_fired"] == 0, "the same stories never alert twice"
    stats = json.loads(run_duluan("index", "stats", home=home).stdout)
    assert stats["documents"] == summary["documents_in_index"]

    # What was indexed is searchable with field filters, and every hit carries the analysis.
    topic = max(summary["topics"], key=summary["topics"].get)
    hits = [
        json.loads(x) for x in run_duluan("search", f"topic:{topic}", "--json", home=home).stdout.splitlines()
    ]
    assert len(hits) == min(20, summary["topics"][topic])
    assert all(h["topic"] == topic and h["sentiment"] and h["url"].startswith("http") for h in hits)


def test_digest_command_writes_html_or_pdf_by_file_name(home: Path, tmp_path: Path) -> None:
    demo = run_duluan("demo", "--json", home=home)
    assert demo.returncode == 0, demo.stderr[-2000:]
    day = json.loads(demo.stdout.strip().splitlines()[-1])["digest_day"]
    pdf = tmp_path / "out" / "ban-tin.pdf"
    result = run_duluan("digest", "--date", day, "--out", str(pdf), home=home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Bản tin" in text or "BẢN TIN" in text.upper()

    html = tmp_path / "ban-tin.html"
    assert run_duluan("digest", "--date", day, "--out", str(html), home=home).returncode == 0
    assert "<html" in html.read_text(encoding="utf-8")

    wrong = run_duluan("digest", "--out", str(tmp_path / "ban-tin.docx"), home=home)
    assert wrong.returncode == 2 and ".pdf" in wrong.stderr
    assert not (tmp_path / "ban-tin.docx").exists()
