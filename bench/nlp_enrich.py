"""Throughput of the NLP stage (Enricher) on ~600-word news articles.

    .venv/bin/python bench/nlp_enrich.py [--docs 600] [--workers 1 2] [--crf all|lead|off]
        [--strong-models-dir DIR [--strong-weight 0.5] [--strong-for-news]]

Articles are VNTC dev texts of 400–800 words (read from ../shared/datasets, never copied). With
``--workers 2`` each worker process holds its own Enricher (models load once per process), which is
how a 2-core deployment runs the stage. Prints articles/s per setting, the peak RSS per process and
the CPU time per article (wall-clock rates drop when other jobs share the cores; CPU time does not).
``--strong-models-dir`` blends the fine-tuned strong models found there into the classifiers, as the
``nlp.strong_models_dir`` setting does in service (one torch thread per worker process); as there, the
articles (news) keep the linear models unless ``--strong-for-news``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.enrich import Enricher  # noqa: E402
from schema.document import Document  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def load_articles(n: int) -> list[Document]:
    docs: list[Document] = []
    with gzip.open(DATASETS / "vntc" / "dev.jsonl.gz", "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            text = json.loads(line)["text"]
            words = len(text.split())
            if 400 <= words <= 800:
                title, _, body = text.partition("\n")
                docs.append(
                    Document(
                        id=str(i),
                        url=f"https://bench.local/{i}",
                        canonical_url=f"https://bench.local/{i}",
                        source="bench",
                        title=title[:200],
                        text=body or text,
                        fetched_at=datetime.now(UTC),
                    )
                )
            if len(docs) >= n:
                break
    return docs


_worker: Enricher | None = None


#: ``--crf`` choices → Enricher arguments (lead: the Enricher's default, title + text up to 1000 chars).
CRF_MODES = {
    "all": {"use_crf_ner": True, "crf_ner_chars": 0},
    "lead": {"use_crf_ner": True, "crf_ner_chars": 1000},
    "off": {"use_crf_ner": False},
}


def _init(
    crf: str = "all", strong_dir: Path | None = None, strong_weight: float = 0.5, strong_news: bool = False
) -> None:
    global _worker
    if strong_dir is not None:
        import torch

        torch.set_num_threads(1)  # one process per core
    _worker = Enricher(
        **CRF_MODES[crf],  # type: ignore[arg-type]
        strong_models_dir=strong_dir,
        strong_weight=strong_weight,
        strong_for_news=strong_news,
    )
    _worker.enrich_many(load_articles(5))  # warm caches (gazetteer, word list)


def _run(docs: list[Document]) -> tuple[int, int, float]:
    assert _worker is not None
    cpu = time.process_time()
    out = _worker.enrich_many(docs)
    return len(out), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--crf",
        choices=sorted(CRF_MODES),
        default="lead",
        help="underthesea's CRF NER on title + lead (default, as the Enricher), the whole article, or off",
    )
    parser.add_argument("--strong-models-dir", type=Path, help="blend the strong models in DIR/<task>/")
    parser.add_argument("--strong-weight", type=float, default=0.5)
    parser.add_argument("--strong-for-news", action="store_true", help="blend on articles too")
    args = parser.parse_args()
    docs = load_articles(args.docs)
    words = sum(len(d.text.split()) + len(d.title.split()) for d in docs) / len(docs)
    strong = f"; strong models from {args.strong_models_dir}" if args.strong_models_dir else ""
    print(f"{len(docs)} articles, {words:.0f} words on average; CRF NER: {args.crf}{strong}")
    for workers in args.workers:
        chunks = [docs[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(
            max_workers=workers,
            initializer=_init,
            initargs=(args.crf, args.strong_models_dir, args.strong_weight, args.strong_for_news),
        ) as pool:
            list(pool.map(_run, [docs[: workers * 2][i::workers] for i in range(workers)]))  # start + warm up
            started = time.perf_counter()
            results = list(pool.map(_run, chunks))
            elapsed = time.perf_counter() - started
        peak_mb = max(r[1] for r in results) / 1024
        cpu_ms = sum(r[2] for r in results) / len(docs) * 1000
        print(
            f"workers={workers}: {len(docs) / elapsed:.1f} articles/s ({elapsed:.1f} s),"
            f" peak RSS {peak_mb:.0f} MB/process; {cpu_ms:.1f} ms CPU per article"
            f" (= {1000 / cpu_ms * workers:.0f} articles/s on {workers} idle core(s))"
        )


if __name__ == "__main__":
    main()
