"""Runs `run_crawl` in a fresh process (Twisted's reactor starts once per process).

Usage: python crawl_child.py JOB.json — JOB has `sources`, `config`, `state_dir`, `out` (JSONL the sink
writes, one document per line) and optionally `enrich_fail_on` (a title word that makes the enrich
callable raise, to check that an NLP failure neither stops the crawl nor loses the document) and
`kill_on_batch` (SIGKILL this process when the sink receives that batch, before writing it).
Prints the `CrawlReport` as JSON on the last stdout line.
"""

import json
import os
import signal
import sys
from pathlib import Path

from crawlers.registry import SourceSpec
from crawlers.run import CrawlConfig, run_crawl
from schema.document import Document


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    out = Path(job["out"])
    fail_word = job.get("enrich_fail_on")
    kill_on_batch = job.get("kill_on_batch")
    batches = 0

    def enrich(document: Document) -> Document:
        if fail_word and fail_word in document.title:
            raise RuntimeError(f"simulated NLP failure on {document.url}")
        return document.model_copy(update={"keywords": ["đã làm giàu"]})

    def sink(batch: list[Document]) -> None:
        nonlocal batches
        batches += 1
        if batches == kill_on_batch:
            os.kill(os.getpid(), signal.SIGKILL)
        with out.open("a", encoding="utf-8") as handle:
            for document in batch:
                handle.write(document.model_dump_json() + "\n")

    report = run_crawl(
        [SourceSpec.model_validate(s) for s in job["sources"]],
        config=CrawlConfig(**job["config"]),
        enrich=enrich,
        sink=sink,
        state_dir=Path(job["state_dir"]),
    )
    print(json.dumps(report.to_json(), ensure_ascii=False, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
