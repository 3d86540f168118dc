"""Accuracy of the shipped (default) text classifiers on every dev set, as one table.

    .venv/bin/python bench/nlp_eval.py [--models-dir DIR] [--no-append]

Evaluates ``nlp/models/<task>/model.joblib`` (or ``DIR/<task>/model.joblib``) on the dev sets in
``../shared/datasets`` (never copied into the repository): VNTC dev mapped to the taxonomy (all 13
labels allowed, and restricted to the 9 gold labels), the baomoi hash-dev (title + sapo) and its titles
alone (first line: a stand-in for short headlines), VLSP 2016 hash-dev, UIT-VSFC dev and ViHSD dev.
Prints macro-/weighted-F1 against the issue's targets, the model file sizes and the prediction rate
(CPU time), and appends a dated section "NLP accuracy (issue 4)" to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.classify import find_model_file  # noqa: E402
from nlp.textmodel import LinearTextModel, RoutedTextModel  # noqa: E402
from nlp.train import default_datasets_dir, load_examples, load_model  # noqa: E402


@dataclass(frozen=True)
class DevSet:
    name: str
    task: str
    path: str
    target: str
    #: Predict only among the labels present in the gold data (VNTC's 9 classes).
    restrict: bool = False
    transform: Callable[[str], str] | None = None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


DEV_SETS = [
    DevSet("topic VNTC dev, 13 labels allowed", "topic", "vntc/dev.jsonl.gz", "macro ≥ 0.93"),
    DevSet("topic VNTC dev, 9 gold labels", "topic", "vntc/dev.jsonl.gz", "macro ≥ 0.93", restrict=True),
    DevSet("topic baomoi hash-dev (title + sapo)", "topic", "tc201805_baomoi/corpus.jsonl.gz#dev", "–"),
    DevSet(
        "topic baomoi hash-dev, titles only",
        "topic",
        "tc201805_baomoi/corpus.jsonl.gz#dev",
        "macro ≥ 0.75 (headlines)",
        transform=_first_line,
    ),
    DevSet("sentiment VLSP 2016 hash-dev", "sentiment", "vlsp2016_sa/train.jsonl.gz#dev", "macro ≥ 0.80"),
    DevSet("sentiment UIT-VSFC dev", "sentiment", "uit_vsfc/dev.jsonl.gz", "macro ≥ 0.80, weighted ≥ 0.93"),
    DevSet("toxicity ViHSD dev", "toxicity", "vihsd/dev.jsonl.gz", "macro ≥ 0.70"),
]


@dataclass
class Row:
    dev: DevSet
    n: int
    macro: float
    weighted: float
    accuracy: float
    docs_per_cpu_s: float
    #: Routed models: share of the texts sent to each expert.
    routes: dict[str, float]


def evaluate_set(model: LinearTextModel, dev: DevSet, datasets: Path) -> Row:
    texts, gold = load_examples(dev.task, str(datasets / dev.path))
    if dev.transform is not None:
        texts = [dev.transform(t) for t in texts]
    cpu = time.process_time()
    probs = model.predict_proba(texts)
    cpu = time.process_time() - cpu
    if dev.restrict:
        allowed = np.array([lab in set(gold) for lab in model.labels])
        probs = np.where(allowed, probs, -1.0)
    pred = [model.labels[i] for i in probs.argmax(axis=1)]
    labels = sorted(set(gold))
    routes: dict[str, float] = {}
    if isinstance(model, RoutedTextModel):
        names = model.route(texts)
        routes = {name: names.count(name) / len(names) for name in sorted(set(names))}
    return Row(
        dev=dev,
        n=len(texts),
        macro=float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        weighted=float(f1_score(gold, pred, labels=labels, average="weighted", zero_division=0)),
        accuracy=float(np.mean([a == b for a, b in zip(pred, gold, strict=True)])),
        docs_per_cpu_s=len(texts) / max(cpu, 1e-9),
        routes=routes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=None, help="look here before nlp/models")
    parser.add_argument("--datasets", type=Path, default=default_datasets_dir())
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)

    models: dict[str, LinearTextModel] = {}
    files: dict[str, Path] = {}
    for task in ("topic", "sentiment", "toxicity"):
        files[task] = find_model_file(task, args.models_dir)
        models[task] = load_model(files[task])
    rows = [evaluate_set(models[d.task], d, args.datasets) for d in DEV_SETS]

    lines = [
        "| dev set | n | macro-F1 | weighted-F1 | accuracy | target | predictions / CPU-s | expert used |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.dev.name} | {r.n} | {r.macro:.3f} | {r.weighted:.3f} | {r.accuracy:.3f} |"
            f" {r.dev.target} | {r.docs_per_cpu_s:,.0f} |"
            f" {', '.join(f'{k} {v:.0%}' for k, v in r.routes.items()) or '–'} |"
        )
    lines += ["", "| task | model | file | kind |", "| --- | --- | --- | --- |"]
    for task, path in files.items():
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        lines.append(
            f"| {task} | `{rel}` | {path.stat().st_size / 1e6:.1f} MB |"
            f" {models[task].info.get('classifier', type(models[task]).__name__)} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        section = [
            "",
            f"## NLP accuracy (issue 4), {datetime.now(UTC).date().isoformat()}",
            "",
            "Command: `.venv/bin/python bench/nlp_eval.py` — shipped default models on the dev sets"
            " (datasets read from ../shared/datasets). Targets from the issue; 'predictions / CPU-s' is"
            " the classifier alone (features + linear scores), on one core.",
            "",
            table,
            "",
        ]
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as handle:
            handle.write("\n".join(section))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
