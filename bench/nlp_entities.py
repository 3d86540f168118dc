"""Entity quality: the spaCy pipeline (nlp/pipeline.py) vs the gazetteer-only extractor it replaced.

    .venv/bin/python bench/nlp_entities.py [--gold bench/entities_gold.jsonl] [--append]

Gold: sentences written for this benchmark in the style of Vietnamese news (not copied from any
dataset), each with its PER/ORG/LOC entities and, for places in Vietnam, the canonical (new,
2025-07-01) province. ``bench/entities_gold.jsonl`` is the development set: the pipeline's rules were
written while reading its errors, so its figures are optimistic. ``bench/entities_heldout.jsonl``
was written after the rules were frozen and scored once: that is the honest estimate.
Conventions: a person without title; an organisation with its head word and place; a place without
a lower-case administrative cue ("xã", "tỉnh", "đường", "sân bay") but with its feature word
("sông Tiền", "châu Phi", "Cầu Rạch Miễu 2", "Khu công nghiệp Đồng Xoài"). Scoring is exact
match of (surface, label) per sentence; nested entities are not scored. Linking accuracy: share of
gold places with a canonical province whose surface the system found with that canonical. Prints
the tables; ``--append`` adds them to bench/RESULTS.md under "NLP entities (issue 4)".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.entities import EntityExtractor  # noqa: E402
from nlp.pipeline import build_pipeline, crf_ner_tags, doc_entities  # noqa: E402

GOLD = ROOT / "bench" / "entities_gold.jsonl"
HELDOUT = ROOT / "bench" / "entities_heldout.jsonl"
LABELS = ("PER", "ORG", "LOC")
#: (surface, label, canonical) triples found in one sentence.
Found = list[tuple[str, str, str]]


def load_gold(path: Path = GOLD) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if "text" not in row or "entities" not in row:
                raise ValueError(f"{path}:{n}: each line needs 'text' and 'entities'")
            rows.append(row)
    return rows


def gazetteer_only() -> Callable[[str], Found]:
    """The previous approach: syllable-dict gazetteer + family-name pattern (no CRF)."""
    extractor = EntityExtractor()
    return lambda text: [(e.text, e.label, e.canonical) for e in extractor.extract("", text)]


def gazetteer_crf_people() -> Callable[[str], Found]:
    """The previous approach with its optional CRF people (``use_crf_ner=True``)."""
    extractor = EntityExtractor(use_crf_ner=True, lead_chars=10_000)
    return lambda text: [(e.text, e.label, e.canonical) for e in extractor.extract("", text)]


def crf_only() -> Callable[[str], Found]:
    """underthesea's CRF NER alone (the same tags as ``underthesea.ner``) on the pipeline's tokens."""
    nlp = build_pipeline(crf_ner=False, person_pattern=False)

    def run(text: str) -> Found:
        words = [t.text for t in nlp.make_doc(text) if not t.is_space]
        tags = crf_ner_tags(words)
        out: Found = []
        current: list[str] = []
        label = ""
        for word, _pos, _chunk, tag in [*tags, ("", "", "", "O")]:
            prefix, _, kind = tag.partition("-")
            if current and (prefix != "I" or kind != label):
                if label in LABELS:
                    out.append((" ".join(current), label, " ".join(current)))
                current = []
            if prefix == "B" or (prefix == "I" and not current):
                current, label = [word], kind
            elif prefix == "I":
                current.append(word)
        return out

    return run


def pipeline(crf_ner: bool = True) -> Callable[[str], Found]:
    nlp = build_pipeline(crf_ner=crf_ner)
    return lambda text: [(e.text, e.label, e.canonical) for e in doc_entities(nlp(text))]


SYSTEMS: dict[str, Callable[[], Callable[[str], Found]]] = {
    "gazetteer only (before)": gazetteer_only,
    "gazetteer + CRF people (before, --crf-ner)": gazetteer_crf_people,
    "underthesea CRF NER only": crf_only,
    "pipeline without CRF": lambda: pipeline(crf_ner=False),
    "pipeline (gazetteer + CRF + pattern)": pipeline,
}


def score(system: Callable[[str], Found], gold: Sequence[dict]) -> dict[str, float]:
    """Per-label and micro precision/recall/F1, linking accuracy, CPU ms per sentence."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    linked = links = 0
    cpu = 0.0
    for row in gold:
        start = time.process_time()
        found = system(row["text"])
        cpu += time.process_time() - start
        predicted = Counter((text, label) for text, label, _ in found)
        expected = Counter((e[0], e[1]) for e in row["entities"])
        for key, n in (predicted & expected).items():
            tp[key[1]] += n
        for key, n in (predicted - expected).items():
            fp[key[1]] += n
        for key, n in (expected - predicted).items():
            fn[key[1]] += n
        canon = {text: c for text, _label, c in found}
        for ent in row["entities"]:
            if len(ent) > 2:
                links += 1
                linked += canon.get(ent[0]) == ent[2]
    out: dict[str, float] = {}
    for label in (*LABELS, "micro"):
        t = sum(tp.values()) if label == "micro" else tp[label]
        p_den = t + (sum(fp.values()) if label == "micro" else fp[label])
        r_den = t + (sum(fn.values()) if label == "micro" else fn[label])
        p = t / p_den if p_den else 0.0
        r = t / r_den if r_den else 0.0
        out[f"{label}_p"], out[f"{label}_r"] = p, r
        out[f"{label}_f1"] = 2 * p * r / (p + r) if p + r else 0.0
    out["linking"] = linked / links if links else 0.0
    out["ms_per_sentence"] = cpu / len(gold) * 1000
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    head = "| system | PER P/R/F1 | ORG P/R/F1 | LOC P/R/F1 | micro P/R/F1 | linking | CPU ms/sent |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cells = [
            f"{r[f'{lab}_p']:.2f} / {r[f'{lab}_r']:.2f} / **{r[f'{lab}_f1']:.2f}**"
            for lab in (*LABELS, "micro")
        ]
        lines.append(f"| {name} | {' | '.join(cells)} | {r['linking']:.2f} | {r['ms_per_sentence']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gold", type=Path, nargs="*", default=[GOLD, HELDOUT])
    parser.add_argument("--append", action="store_true", help="append the tables to bench/RESULTS.md")
    args = parser.parse_args()
    systems = {}
    for name, make in SYSTEMS.items():
        systems[name] = make()
        systems[name]("Khởi động mô hình tại Hà Nội.")  # load models before timing
    report = []
    for path in args.gold:
        gold = load_gold(path)
        n_ents = Counter(e[1] for row in gold for e in row["entities"])
        results = {name: score(system, gold) for name, system in systems.items()}
        summary = (
            f"`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`: {len(gold)} sentences,"
            f" {sum(n_ents.values())} entities ({', '.join(f'{k} {v}' for k, v in sorted(n_ents.items()))})"
        )
        report.append(f"{summary}\n\n{table(results)}\n")
    text = "\n".join(report)
    print(text)
    if args.append:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as handle:
            handle.write(
                f"\n### entities, {stamp}\n\n`.venv/bin/python bench/nlp_entities.py --append`\n\n{text}"
            )


if __name__ == "__main__":
    main()
