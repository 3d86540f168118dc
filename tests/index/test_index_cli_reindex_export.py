"""`duluan index reindex` moves the embedded index to a real Elasticsearch; `duluan export` writes files.

Both run as the real command in a child process, configured only through DULUAN_* variables.
"""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import openpyxl
from elasticsearch import Elasticsearch
from index_testdata import corpus

from index.es_backend import ElasticsearchIndex
from index.tantivy_backend import TantivyIndex
from tests.foundation.conftest import free_port, run_duluan


def _home_with_corpus(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    backend = TantivyIndex(home / "index")
    try:
        backend.upsert(corpus())
    finally:
        backend.close()
    return home


def _ids(stdout: str) -> list[str]:
    return [json.loads(line)["id"] for line in stdout.splitlines() if line.strip()]


def test_reindex_to_elasticsearch_gives_the_same_answers(
    tmp_path: Path, elasticsearch_url: str, es_client: Elasticsearch
) -> None:
    home = _home_with_corpus(tmp_path)
    alias = f"test-cli-{uuid.uuid4().hex[:10]}"
    es_env = {
        "DULUAN_INDEX__ELASTICSEARCH_URL": elasticsearch_url,
        "DULUAN_INDEX__ELASTICSEARCH_INDEX": alias,
    }
    try:
        first = run_duluan(
            "index", "reindex", "--to", "elasticsearch", "--batch-size", "3", home=home, **es_env
        )
        assert first.returncode == 0, first.stderr[-2000:]
        report = json.loads(first.stdout.strip().splitlines()[-1])
        assert report == {
            "from": "tantivy",
            "to": "elasticsearch",
            "copied": len(corpus()),
            "matching_in_target": len(corpus()),
        }
        again = json.loads(
            run_duluan("index", "reindex", "--to", "elasticsearch", home=home, **es_env).stdout.splitlines()[
                -1
            ]
        )
        assert again["matching_in_target"] == len(corpus()), "a second run upserts, never duplicates"

        for query in ('"bình phước"', "binh phuoc AND NOT bóng", "topic:the-thao"):
            embedded = run_duluan("search", query, "--json", "--sort", "date", home=home)
            on_es = run_duluan(
                "search",
                query,
                "--json",
                "--sort",
                "date",
                home=home,
                DULUAN_INDEX__BACKEND="elasticsearch",
                **es_env,
            )
            assert embedded.returncode == on_es.returncode == 0, on_es.stderr[-2000:]
            assert _ids(embedded.stdout) and _ids(embedded.stdout) == _ids(on_es.stdout), query
    finally:
        ElasticsearchIndex(es_client, alias).drop()


def test_reindex_refuses_unclear_or_unreachable_targets(tmp_path: Path) -> None:
    home = _home_with_corpus(tmp_path)
    same = run_duluan("index", "reindex", "--to", "tantivy", home=home)
    assert same.returncode == 2 and "two different backends" in same.stderr
    unknown = run_duluan("index", "reindex", "--to", "solr", home=home)
    assert unknown.returncode == 2 and "tantivy or elasticsearch" in unknown.stderr

    url = f"http://admin:s3cret-pw@127.0.0.1:{free_port()}"
    down = run_duluan(
        "index", "reindex", "--to", "elasticsearch", home=home, DULUAN_INDEX__ELASTICSEARCH_URL=url
    )
    assert down.returncode == 2
    assert "cannot open Elasticsearch" in down.stderr and "elasticsearch_url" in down.stderr
    assert "s3cret-pw" not in down.stderr + down.stdout, "credentials never reach the terminal"


def test_export_writes_csv_and_xlsx_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    home = _home_with_corpus(tmp_path)
    out_csv = tmp_path / "out" / "binh-phuoc.csv"
    result = run_duluan("export", "binh phuoc", "--out", str(out_csv), home=home)
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads(result.stdout.strip().splitlines()[-1])["documents"]
    with out_csv.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    expected = len(_ids(run_duluan("search", "binh phuoc", "--json", "--limit", "100", home=home).stdout))
    assert written == expected == len(rows) - 1 and written > 0
    assert any("Bình Phước" in cell for row in rows[1:] for cell in row)

    out_xlsx = tmp_path / "all.xlsx"
    assert run_duluan("export", "", "--out", str(out_xlsx), "--topic", "the-thao", home=home).returncode == 0
    sheet = openpyxl.load_workbook(out_xlsx, read_only=True).active
    assert sheet is not None
    assert len(list(sheet.iter_rows(values_only=True))) - 1 == sum(
        1 for d in corpus() if d.topic == "the-thao"
    )

    broken = run_duluan("export", '"unclosed', "--out", str(tmp_path / "broken.csv"), home=home)
    assert broken.returncode == 2 and not (tmp_path / "broken.csv").exists()
    assert not list(tmp_path.glob(".broken.csv.*")), "no temp file is left behind"
    wrong = run_duluan("export", "", "--out", str(tmp_path / "x.docx"), home=home)
    assert wrong.returncode == 2 and ".xlsx" in wrong.stderr
