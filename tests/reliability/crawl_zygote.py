"""A pre-forked crawl worker for the crash tests: loads the heavy modules and the NLP models once,
then forks one real crawl process per job so that each SIGKILL trial costs the crawl, not the imports.

Usage: python crawl_zygote.py — reads one JSON job per stdin line:
  {"home": DIR, "sources": [ids], "batch_size": N, "flush_interval_s": S}
For each job it forks a child that runs the service's own `duluan.operations.crawl_sources` (registry
from the app database → Scrapy crawl → the shipped Enricher → the tantivy index → source health),
prints `{"pid": PID}` as soon as the child exists and `{"pid": PID, "status": WAITSTATUS}` once it
ended (killed or not). Only the crawl knobs that make a 13-page site interesting to kill are changed:
small index batches and a short flush timer, no download delay.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

import duluan.wiring
from duluan.operations import crawl_sources
from duluan.settings import load_settings
from nlp.enrich import Enricher


def _run_child(job: dict[str, Any], enricher: Enricher) -> None:
    settings = load_settings(home=job["home"], log_level="WARNING")
    real_config = duluan.wiring.crawl_config

    def small_batches(s: Any) -> Any:
        return dataclasses.replace(
            real_config(s),
            batch_size=int(job["batch_size"]),
            flush_interval_s=float(job["flush_interval_s"]),
            download_delay_s=0.0,
            retry_times=0,
            timeout_s=5.0,
        )

    duluan.wiring.crawl_config = small_batches  # type: ignore[assignment]
    duluan.wiring.make_enricher = lambda s: enricher  # type: ignore[assignment]
    report = crawl_sources(settings, list(job["sources"]))
    with open(job["report"], "w", encoding="utf-8") as handle:
        json.dump(report.to_json(), handle, default=str)


def main() -> None:
    settings = load_settings(home=sys.argv[1] if len(sys.argv) > 1 else "/tmp/duluan-zygote")
    enricher = duluan.wiring.make_enricher(settings)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_child(job, enricher)
            except BaseException as exc:
                print(f"crawl child failed: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "status": status}), flush=True)


if __name__ == "__main__":
    main()
