"""Extraction quality on the gold pages: ours (trafilatura + Vietnamese site rules) vs trafilatura alone.

    .venv/bin/python bench/crawl_extraction.py [--pages DIR] [--show-misses]

Both extractors run on the same pages in the same run. Per extractor: recall of the gold `with`
sentences, leak rate of the `without` boilerplate (related-article boxes, captions, menus), exact
title matches, F1 (recall vs 1 − leak rate) and CPU milliseconds per page (after a warm-up pass);
also per site (Dân trí, VnExpress).
Default pages: the copies bundled with the demo site; `--pages ../shared/pages/vi-news` reads the
shared originals.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawlers.evaluate import ExtractionScore, compare  # noqa: E402

DEFAULT_PAGES = ROOT / "duluan" / "demo_site" / "pages"


def _site_subsets(pages_dir: Path, workdir: Path) -> dict[str, Path]:
    """One gold file per outlet, in folders that link to the same page files."""
    by_site: dict[str, list[str]] = {}
    for line in (pages_dir / "gold.jsonl").read_text(encoding="utf-8").splitlines():
        host = json.loads(line)["url"].split("/")[2].removeprefix("www.")
        by_site.setdefault(host, []).append(line)
    subsets: dict[str, Path] = {}
    for host, lines in sorted(by_site.items()):
        folder = workdir / host
        folder.mkdir()
        for entry in lines:
            name = json.loads(entry)["file"]
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to((pages_dir / name).resolve())
        (folder / "gold.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        subsets[host] = folder
    return subsets


def _row(label: str, s: ExtractionScore) -> str:
    return (
        f"| {label} | {s.pages} | {s.with_found}/{s.with_total} ({s.recall:.1%}) "
        f"| {s.without_leaked}/{s.without_total} ({s.leak_rate:.1%}) | {s.titles_exact}/{s.pages} "
        f"| {s.f1:.4f} | {s.seconds / max(1, s.pages) * 1000:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=Path, default=DEFAULT_PAGES, help="folder with gold.jsonl and pages")
    parser.add_argument("--show-misses", action="store_true", help="list missed and leaked sentences")
    args = parser.parse_args()

    rows = ["| extractor | pages | `with` recall | `without` leaked | titles exact | F1 | CPU ms/page |"]
    rows.append("|---|---|---|---|---|---|---|")
    compare(args.pages)  # warm-up: lazy imports and regex compilation are not per-page costs
    overall = compare(args.pages)
    for name, result in overall.items():
        rows.append(_row(f"**{name}** (all)", result))
    with tempfile.TemporaryDirectory() as tmp:
        for host, folder in _site_subsets(args.pages, Path(tmp)).items():
            for name, result in compare(folder).items():
                rows.append(_row(f"{name} ({host})", result))
    print("\n".join(rows))
    if args.show_misses:
        for name, result in overall.items():
            for line in result.misses:
                print(f"{name} missed: {line}")
            for line in result.leaks:
                print(f"{name} leaked: {line}")
    ours, baseline = overall["duluan"], overall["trafilatura"]
    verdict = "meets" if ours.f1 >= baseline.f1 else "is BELOW"
    print(
        f"\nF1 ours {ours.f1:.4f} {verdict} trafilatura's {baseline.f1:.4f}; leaks ours {ours.without_leaked}"
    )


if __name__ == "__main__":
    main()
