"""Export of result sets to CSV and XLSX from a real tantivy index, injection-safe, with progress."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from index_testdata import make_doc
from openpyxl import load_workbook

from index import export
from index.backend import QueryError
from index.export import COLUMNS, export_results, safe_cell
from index.tantivy_backend import TantivyIndex

HOSTILE_TITLES = ['=HYPERLINK("http://evil","x")', "+1+2", "-3+4", "@SUM(A1)", "\tTab", "Bình thường"]


@pytest.fixture
def hostile_index(empty_index: TantivyIndex) -> TantivyIndex:
    docs = [
        make_doc(f"h{i}", title, "đất đai chung", author="=cmd|' /C calc'!A0")
        for i, title in enumerate(HOSTILE_TITLES)
    ]
    docs += [make_doc(f"n{i:04d}", f"bài {i}", "nội dung chung") for i in range(1_203)]
    empty_index.upsert(docs)
    return empty_index


def test_safe_cell() -> None:
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("-5") == "'-5"
    assert safe_cell("Đồng Nai") == "Đồng Nai"
    assert safe_cell("") == ""


def test_csv_export_streams_everything_safely(hostile_index: TantivyIndex, tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    seen: list[int] = []
    assert export_results(hostile_index, path, "chung", progress=seen.append) == 1_209
    assert seen == [500, 1_000, 1_209]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [c.header for c in COLUMNS]
    assert len(rows) == 1_210
    for row in rows[1:]:
        assert not any(cell.startswith(export.FORMULA_PREFIXES) for cell in row), row
    titles = {row[2] for row in rows}
    assert '\'=HYPERLINK("http://evil","x")' in titles and "Bình thường" in titles
    hostile = next(row for row in rows if row[0] == "h0")
    assert hostile[9] == "'=cmd|' /C calc'!A0"


def test_xlsx_export_is_write_only_and_safe(hostile_index: TantivyIndex, tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    assert export_results(hostile_index, path, "đất") == len(HOSTILE_TITLES)
    sheet = load_workbook(path, read_only=True).active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == [c.header for c in COLUMNS]
    assert {r[2] for r in rows[1:]} == {safe_cell(t) for t in HOSTILE_TITLES}
    assert all(isinstance(r[12], int | float) for r in rows[1:])  # numbers stay numbers
    for row in rows[1:]:
        assert not any(isinstance(c, str) and c.startswith(("=", "+", "-", "@")) for c in row)


def test_export_refuses_bad_queries_and_formats_before_writing(
    hostile_index: TantivyIndex, tmp_path: Path
) -> None:
    with pytest.raises(QueryError):
        export_results(hostile_index, tmp_path / "bad.csv", '"unclosed')
    assert not (tmp_path / "bad.csv").exists()
    with pytest.raises(ValueError, match=r"\.csv or \.xlsx"):
        export_results(hostile_index, tmp_path / "out.pdf")


def test_xlsx_strips_control_characters(empty_index: TantivyIndex, tmp_path: Path) -> None:
    empty_index.upsert([make_doc("ctl", "tiêu đề\x07 có ký tự điều khiển", "x\x00y")])
    path = tmp_path / "ctl.xlsx"
    assert export_results(empty_index, path) == 1
    sheet = load_workbook(path, read_only=True).active
    assert sheet is not None
    row = list(list(sheet.iter_rows(values_only=True))[1])
    assert row[2] == "tiêu đề có ký tự điều khiển"
