"""Strong model (fine-tuned multilingual-e5-small) vs the shipped linear models, on the dev sets.

    .venv/bin/python bench/nlp_transformer.py --models DIR [--base DIR] [--tasks sentiment toxicity]
        [--limit N] [--threads 2] [--blend-weights 0.3 0.5 0.7]

``DIR/<task>/`` holds a model made by ``python -m nlp.transformer_model --out DIR/<task>``. Each
(task, model) pair runs in a fresh process so its peak RSS is its own. Scores come from
``nlp.train.evaluate`` on the dev sets that ``nlp/models/COMPARISON.md`` uses (VLSP 2016 hash-dev,
UIT-VSFC dev, ViHSD dev). ``--blend-weights`` also scores ``nlp.blend.BlendedModel`` (linear and
strong probabilities averaged with that weight on the strong one; each member predicts once per dev set,
so a blend's docs/s counts only the first weight's pass). docs/s is the evaluation pass itself (batch
prediction over the whole dev set), wall clock and CPU time (CPU time is the steadier figure).
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


class _Memo:
    """A member whose ``predict_proba`` runs once per distinct input list (blends share it)."""

    def __init__(self, model: Any) -> None:
        self.model, self.task, self.labels = model, model.task, list(model.labels)
        self._last: tuple[list[str], Any] | None = None

    def predict_proba(self, texts: list[str]) -> Any:
        if self._last is None or self._last[0] != texts:
            self._last = (list(texts), self.model.predict_proba(texts))
        return self._last[1]


def _run(
    kind: str,
    task: str,
    model_dir: str | None,
    base: str | None,
    limit: int | None,
    threads: int,
    blend_weights: tuple[float, ...] = (),
) -> dict:
    """In a child process: load one model, evaluate it on every dev set of ``task``, measure."""
    from nlp.classify import load_classifier
    from nlp.train import evaluate
    from nlp.transformer_model import load_transformer_classifier

    started, cpu0 = time.perf_counter(), time.process_time()
    models: dict[str, Any] = {}
    if kind == "linear":
        models["linear"] = load_classifier(task).model
    elif kind == "blend":
        from nlp.blend import BlendedModel

        linear = _Memo(load_classifier(task).model)
        strong = _Memo(
            load_transformer_classifier(Path(model_dir or ""), Path(base) if base else None, threads)
        )
        for w in blend_weights:
            models[f"blend {w:g}"] = BlendedModel(linear, strong, strong_weight=w)
    else:
        base_dir = Path(base) if base else None
        int8 = kind == "strong-int8"
        models[kind] = load_transformer_classifier(
            Path(model_dir or ""), base_dir, threads=threads, int8=int8
        )
    load_s = time.perf_counter() - started
    rows = []
    for data in DEFAULT_DEV_DATA[task]:
        for name, model in models.items():
            w0, c0 = time.perf_counter(), time.process_time()
            m = evaluate(model, data, limit=limit)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            rows.append(
                {
                    "model": name,
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
    parser.add_argument(
        "--blend-weights",
        type=float,
        nargs="*",
        default=[],
        help="also score linear+strong blends with these weights on the strong model (e.g. 0.3 0.5 0.7)",
    )
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)

    results = []
    ctx = get_context("spawn")
    for task in args.tasks:
        kinds = [
            "linear",
            "strong",
            *(["strong-int8"] if args.int8 else []),
            *(["blend"] if args.blend_weights else []),
        ]
        for kind in kinds:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                res = pool.submit(
                    _run,
                    kind,
                    task,
                    str(args.models / task),
                    str(args.base) if args.base else None,
                    args.limit,
                    args.threads,
                    tuple(args.blend_weights),
                ).result()
            results.append(res)
            print(json.dumps(res, ensure_ascii=False), file=sys.stderr, flush=True)

    print("| task | dev set | n | model | macro-F1 | weighted-F1 | docs/s (wall) | CPU ms/doc | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for res in results:
        for row in res["dev"]:
            print(
                f"| {res['task']} | {row['data']} | {row['n']} | {row['model']} | {row['macro_f1']:.3f} |"
                f" {row['weighted_f1']:.3f} | {row['docs_per_s_wall']} | {row['cpu_ms_per_doc']} |"
                f" {res['peak_rss_mb']} MB |"
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
