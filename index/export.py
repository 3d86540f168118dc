"""Export any result set (xuất kết quả) to CSV or XLSX, streaming from `SearchBackend.scan`.

Rows are written as they arrive, so a million-document export needs constant memory (openpyxl's
write-only mode for XLSX). Every text cell is neutralised against CSV/formula injection: a cell
that would start with `=`, `+`, `-`, `@` (or a tab/CR that some spreadsheet apps strip first) gets
a leading apostrophe, so Excel/LibreOffice show it as text and never evaluate it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Literal, TextIO

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from index.backend import SearchBackend, SearchFilters
from index.query import VIETNAM_TZ
from schema import Document

ExportFormat = Literal["csv", "xlsx"]
Progress = Callable[[int], None]

#: Characters that make spreadsheet apps read a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
#: Longest text an XLSX cell holds.
XLSX_CELL_CHARS = 32_767
#: How often (in rows) the progress callback is called; it is always called once at the end.
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Document, tzinfo], str | float]


def _local(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment else ""


COLUMNS: tuple[Column, ...] = (
    Column("id", lambda d, tz: d.id),
    Column("url", lambda d, tz: d.url),
    Column("title", lambda d, tz: d.title),
    Column("published_at", lambda d, tz: _local(d.published_at or d.fetched_at, tz)),
    Column("source", lambda d, tz: d.source),
    Column("source_type", lambda d, tz: d.source_type.value),
    Column("topic", lambda d, tz: d.topic or ""),
    Column("sentiment", lambda d, tz: d.sentiment or ""),
    Column("toxicity", lambda d, tz: d.toxicity or ""),
    Column("author", lambda d, tz: d.author or ""),
    Column("entities", lambda d, tz: "; ".join(dict.fromkeys(e.canonical for e in d.entities))),
    Column("cluster_id", lambda d, tz: d.cluster_id or ""),
    Column("province_relevance", lambda d, tz: d.province_relevance),
    Column("text", lambda d, tz: d.text),
)


def safe_cell(value: str) -> str:
    """A cell value that a spreadsheet never evaluates as a formula (leading apostrophe if needed)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def document_row(document: Document, tz: tzinfo = VIETNAM_TZ) -> list[str | float]:
    """One export row; text cells are injection-safe, numbers stay numbers."""
    row: list[str | float] = []
    for column in COLUMNS:
        value = column.value(document, tz)
        row.append(safe_cell(value) if isinstance(value, str) else value)
    return row


def _report(progress: Progress | None, written: int) -> None:
    if progress is not None and written % PROGRESS_EVERY == 0:
        progress(written)


def write_csv(
    documents: Iterable[Document], out: TextIO, *, progress: Progress | None = None, tz: tzinfo = VIETNAM_TZ
) -> int:
    """Stream documents to an open text file as CSV (header first); returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow([c.header for c in COLUMNS])
    written = 0
    for document in documents:
        writer.writerow(document_row(document, tz))
        written += 1
        _report(progress, written)
    if progress is not None:
        progress(written)
    return written


def write_xlsx(
    documents: Iterable[Document], path: Path, *, progress: Progress | None = None, tz: tzinfo = VIETNAM_TZ
) -> int:
    """Stream documents to an XLSX file (write-only workbook, constant memory); returns the rows."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Kết quả")
    sheet.append([c.header for c in COLUMNS])
    written = 0
    for document in documents:
        sheet.append(
            [
                ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_CELL_CHARS] if isinstance(value, str) else value
                for value in document_row(document, tz)
            ]
        )
        written += 1
        _report(progress, written)
    workbook.save(path)
    if progress is not None:
        progress(written)
    return written


def export_results(
    backend: SearchBackend,
    path: Path,
    query: str = "",
    filters: SearchFilters | None = None,
    *,
    fmt: ExportFormat | None = None,
    progress: Progress | None = None,
) -> int:
    """Export every document matching `query`/`filters` to `path` (format from `fmt` or the suffix).

    The query is parsed before the file is created, so a typo never leaves an empty file behind.
    CSV is written UTF-8 with a BOM so Excel shows Vietnamese correctly.
    """
    chosen = fmt or path.suffix.lower().lstrip(".")
    if chosen not in ("csv", "xlsx"):
        raise ValueError(f"cannot export to {path.name!r}: choose a .csv or .xlsx file (or fmt='csv'/'xlsx')")
    backend.count(query, filters)  # raises QueryError on bad syntax before anything is written
    documents = backend.scan(query, filters)
    if chosen == "xlsx":
        return write_xlsx(documents, path, progress=progress)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        return write_csv(documents, out, progress=progress)
