"""Strong model (fine-tuned multilingual-e5-small) vs the shipped linear models, on the dev sets.

    .venv/bin/python bench/nlp_transformer.py --models DIR [--base DIR] [--tasks sentiment toxicity]
        [--limit N] [--threads 2]

``DIR/<task>/`` holds a model made by ``python -m nlp.transformer_model --out DIR/<task>``. Each
(task, model) pair runs in a fresh process so its peak RSS is its own. Scores come from
``nlp.train.evaluate`` on the dev sets that ``nlp/models/COMPARISON.md`` uses (VLSP 2016 hash-dev,
UIT-VSFC dev, ViHSD dev); docs/s is the evaluation pass itself (batch prediction over the whole dev set),
wall clock and CPU time (the cores are shared with other jobs: CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.train import DEFAULT_DEV_DATA  # noqa: E402


def _run(
    kind: str, task: str, model_dir: str | None, base: str | None, limit: int | None, threads: int
) -> dict:
    """In a child process: load one model, evaluate it on every dev set of ``task``, measure."""
    from nlp.train import evaluate

    started, cpu0 = time.perf_counter(), time.process_time()
    model: Any
    if kind == "linear":
        from nlp.classify import load_classifier

        model = load_classifier(task).model
    else:
        from nlp.transformer_model import load_transformer_classifier

        base_dir = Path(base) if base else None
        int8 = kind == "strong-int8"
        model = load_transformer_classifier(Path(model_dir or ""), base_dir, threads=threads, int8=int8)
    load_s = time.perf_counter() - started
    rows = []
    for data in DEFAULT_DEV_DATA[task]:
        w0, c0 = time.perf_counter(), time.process_time()
        m = evaluate(model, data, limit=limit)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rows.append(
            {
                "data": data,
                "n": m.n,
                "macro_f1": round(m.macro_f1, 4),
                "weighted_f1": round(m.weighted_f1, 4),
                "accuracy": round(m.accuracy, 4),
                "ece": round(m.expected_calibration_error, 3),
                "docs_per_s_wall": round(m.n / wall, 1),
                "cpu_ms_per_doc": round(1000 * cpu / m.n, 1),
            }
        )
    return {
        "kind": kind,
        "task": task,
        "load_s": round(load_s, 1),
        "total_cpu_s": round(time.process_time() - cpu0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "dev": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="dir with <task>/strong.json models")
    parser.add_argument("--base", type=Path, help="base e5 dir (default: the path recorded at training)")
    parser.add_argument("--tasks", nargs="*", default=["sentiment", "toxicity"])
    parser.add_argument("--limit", type=int, help="evaluate an evenly spread sample of N rows per dev set")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the strong model")
    parser.add_argument(
        "--int8", action="store_true", help="also run the strong model with int8 Linear layers"
    )
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)

    results = []
    ctx = get_context("spawn")
    for task in args.tasks:
        for kind in ("linear", "strong", *(("strong-int8",) if args.int8 else ())):
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                res = pool.submit(
                    _run,
                    kind,
                    task,
                    str(args.models / task),
                    str(args.base) if args.base else None,
                    args.limit,
                    args.threads,
                ).result()
            results.append(res)
            print(json.dumps(res, ensure_ascii=False), file=sys.stderr, flush=True)

    print("| task | dev set | n | model | macro-F1 | weighted-F1 | docs/s (wall) | CPU ms/doc | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for res in results:
        for row in res["dev"]:
            print(
                f"| {res['task']} | {row['data']} | {row['n']} | {res['kind']} | {row['macro_f1']:.3f} |"
                f" {row['weighted_f1']:.3f} | {row['docs_per_s_wall']} | {row['cpu_ms_per_doc']} |"
                f" {res['peak_rss_mb']} MB |"
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
