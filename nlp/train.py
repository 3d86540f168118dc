"""Train and evaluate the linear text classifiers (huấn luyện / đánh giá mô hình).

Data are gzipped (or plain) JSONL files with ``text`` and ``label``. A path may end with ``#train`` or
``#dev`` to take a deterministic 90/10 split made by hashing each row's ``id`` (or its text) — for
corpora shipped without a dev split (tc201805_baomoi, vlsp2016_sa). Dataset labels are mapped onto
our label codes through the explicit tables below; rows whose label maps to ``None`` are skipped.

    python -m nlp.train --task topic --out DIR [--data PATH ...] [--dev PATH ...] [--config FILE]
    python -m nlp.train --task topic --eval DIR --dev PATH ...
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import itertools
import json
import re
import sys
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import yaml
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.svm import LinearSVC

from nlp.normalize import normalize_tone_marks
from nlp.textmodel import (
    FeatureConfig,
    HashedTfidf,
    LinearTextModel,
    RoutedTextModel,
    fit_temperature,
    tune_biases,
)
from schema.labels import SENTIMENTS, TOPICS, TOXICITY_LABELS

TASKS: dict[str, list[str]] = {
    "topic": list(TOPICS),
    "sentiment": list(SENTIMENTS),
    "toxicity": list(TOXICITY_LABELS),
}

#: The one table that maps each dataset's own labels onto our topic codes (bảng ánh xạ nhãn).
#: ``None`` = too mixed to map (the row is not used for training).
TOPIC_LABEL_MAP: dict[str, dict[str, str | None]] = {
    "vntc": {
        "Chinh tri Xa hoi": "chinh-tri",
        "Doi song": "doi-song",
        "Khoa hoc": "cong-nghe",
        "Kinh doanh": "kinh-te",
        "Phap luat": "phap-luat",
        "Suc khoe": "y-te",
        "The gioi": "the-gioi",
        "The thao": "the-thao",
        "Van hoa": "van-hoa",
        "Vi tinh": "cong-nghe",
    },
    "tc201805_baomoi": {
        "am thuc": "doi-song",
        "bat dong san": "dat-dai",
        "chinh tri va phap luat": None,  # politics and crime mixed in one class
        "con nguoi va xa hoi": "doi-song",
        "con nguoi va xa hoi - gia dinh va cac moi quan he - hon nhan": "doi-song",
        "con nguoi va xa hoi - khoa hoc xa hoi - van hoa": "van-hoa",
        "du lich": "van-hoa",
        "giao duc va viec lam - giao duc": "giao-duc",
        "giao duc va viec lam - viec lam": "kinh-te",
        "khoa hoc": "cong-nghe",
        "khoa hoc - sinh thai va moi truong": "moi-truong",
        "kinh doanh va cong nghiep": "kinh-te",
        "lam dep va the hinh - suc khoe": "y-te",
        "lam dep và the hinh": "doi-song",
        "mang may tinh va vien thong": "cong-nghe",
        "may vi tinh va do dien tu": "cong-nghe",
        "may vi tinh va do dien tu - mang may tinh va vien thong": "cong-nghe",
        "mua sam": None,  # product ads, no news topic
        "mua sam - trang phuc": None,
        "nha vuon": "doi-song",
        "sach va van hoc": "van-hoa",
        "so thich": "doi-song",
        "suc khoe": "y-te",
        "tai chinh": "kinh-te",
        "tai chinh - dau tu - co phieu va trai phieu": "kinh-te",
        "the thao - the thao doi khang": "the-thao",
        "the thao - the thao dong doi - bong da": "the-thao",
        "thu cung va dong vat": "doi-song",
        "tro choi": "van-hoa",  # games as entertainment
    },
}

#: Sentiment and toxicity datasets use our codes up to case (``CLEAN`` → ``clean``).
CASE_ONLY_TASKS = ("sentiment", "toxicity")

DEFAULT_TRAIN_DATA: dict[str, list[str]] = {
    "topic": ["vntc/train.jsonl.gz", "tc201805_baomoi/corpus.jsonl.gz#train"],
    # uit_visfd (phone reviews) lowered dev macro-F1 on both sets: left out. In a single model aivivn did too.
    # Under the per-domain default, aivivn2019_sa (binary product reviews) joins the VLSP expert at
    # weight 0.3 (VLSP hash-dev 0.683 → 0.705 in the comparison; see nlp/models/COMPARISON.md).
    "sentiment": [
        "vlsp2016_sa/train.jsonl.gz#train",
        "uit_vsfc/train.jsonl.gz",
        "aivivn2019_sa/train.jsonl.gz",
    ],
    "toxicity": ["vihsd/train.jsonl.gz"],
}
DEFAULT_DEV_DATA: dict[str, list[str]] = {
    "topic": ["vntc/dev.jsonl.gz", "tc201805_baomoi/corpus.jsonl.gz#dev"],
    "sentiment": ["vlsp2016_sa/train.jsonl.gz#dev", "uit_vsfc/dev.jsonl.gz"],
    "toxicity": ["vihsd/dev.jsonl.gz"],
}

#: Licence notes for model cards (from each dataset's SOURCE.md).
DATASET_LICENCES: dict[str, str] = {
    "vntc": "corpus MIT (© 2019 Vu Cong Duy Hoang); article texts © their publishers (~2006)",
    "tc201805_baomoi": "no licence stated; baomoi/Facebook texts © publishers — research/internal use only",
    "vlsp2016_sa": "VLSP user agreement — research only, no redistribution",
    "uit_vsfc": "UIT NLP Group — research only",
    "aivivn2019_sa": "AIVIVN 2019 contest data — research only",
    "vihsd": "research purposes only (per its README)",
}

#: What ``train`` returns (the model class itself: picklable, self-describing via ``info``).
TrainedModel = LinearTextModel

SEED_RULES_PATH = Path(__file__).with_name("topic_seed_rules.yaml")
SHIPPED_MODELS_DIR = Path(__file__).with_name("models")
MODEL_FILENAME = "model.joblib"


def default_datasets_dir() -> Path:
    """``../shared/datasets`` relative to the repository root (datasets are never copied in)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one training run; a YAML ``--config`` file may set any of them."""

    word_ngrams: tuple[int, int] = (1, 2)
    word_features: int = 2**18
    char_ngrams: tuple[int, int] | None = (2, 4)
    char_features: int = 2**17
    max_chars: int = 4000
    social: bool = False
    unaccented_words: bool = False
    #: Shift class scores to maximise macro-F1 on the held-out calibration slice (helps rare classes).
    tune_bias: bool = False
    c: float = 0.5
    class_weight: str | None = None
    calibration_fraction: float = 0.1
    max_rows_per_source: int | None = None
    use_seed_rules: bool = True
    seed: int = 13
    #: Keep only the k hashed columns with the highest chi² score against the labels (weights of the
    #: others are 0, which the compressed model file stores almost for free). ``None``: keep all.
    select_features: int | None = None
    #: > 1: fit the temperature (and biases) on out-of-fold scores of this many folds, then train the
    #: weights on all rows (no calibration slice is held out; ``calibration_fraction`` is unused).
    calibration_folds: int = 0
    #: One model per domain behind the task: ``None`` (one model), ``"dataset"`` (one expert per
    #: training dataset, chosen by a small domain classifier trained on the same rows) or ``"length"``
    #: (a ``short`` and a ``long`` expert, chosen by text length; see ``route_length``).
    route: str | None = None
    #: ``route="length"``: texts shorter than this many characters go to the short expert. The long
    #: expert trains on the datasets whose median row is at least this long, the long rows of the other
    #: datasets and their rows of labels the long datasets lack; the short expert trains on every row
    #: cut to ``short_max_chars``.
    route_length: int = 600
    short_max_chars: int = 600
    #: ``route="length"``: other ``TrainConfig`` keys for the short expert only (e.g. its own
    #: ``word_features`` / ``select_features``).
    short_overrides: dict[str, Any] = field(default_factory=dict)
    #: ``route="dataset"``: hashed features of the domain classifier (syllable 1–2-grams, and character
    #: n-grams: with char 1–4 it routes 99.9 % of UIT-VSFC dev to its expert, 97.4 % with syllables only).
    router_features: int = 2**16
    router_char_ngrams: tuple[int, int] | None = (1, 4)
    #: ``route="dataset"``: dataset name → expert name, to pool datasets into one expert (a dataset not
    #: listed gets its own expert).
    expert_of: dict[str, str] = field(default_factory=dict)
    #: ``route="dataset"``: a dataset (after pooling) needs this many rows and two labels to get an
    #: expert; rows of smaller ones (analysts' corrections) go to the expert the router picks for them.
    min_expert_rows: int = 300
    #: Dataset name → sample weight of its rows (default 1): helper data that should count less.
    dataset_weights: dict[str, float] = field(default_factory=dict)

    def features(self) -> FeatureConfig:
        return FeatureConfig(
            word_ngrams=self.word_ngrams,
            word_features=self.word_features,
            char_ngrams=self.char_ngrams,
            char_features=self.char_features,
            max_chars=self.max_chars,
            social=self.social,
            unaccented_words=self.unaccented_words,
        )

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {list(ROUTES)}, not {self.route!r}")
        unknown = set(self.short_overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"short_overrides has unknown keys {sorted(unknown)}; use TrainConfig keys")

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}; known keys: {sorted(known)}")
        clean: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**clean)


ROUTES = (None, "dataset", "length")


#: Per-task defaults chosen by dev macro-F1 (see nlp/models/<task>/metrics.json).
DEFAULT_CONFIGS: dict[str, TrainConfig] = {
    "topic": TrainConfig(
        char_ngrams=None,
        # 2^19 and 2^20 hashed columns scored the same for the long expert (0.886 / 0.886 on VNTC with
        # chi² 150k); 2^19 halves its memory.
        word_features=2**19,
        select_features=150_000,
        c=0.5,
        max_chars=8000,
        calibration_folds=3,
        route="length",
        route_length=600,
        short_max_chars=600,
        # chi² selection cost the short expert 0.27 macro-F1 on baomoi dev (0.871 → 0.598): none there.
        short_overrides={"word_features": 2**19, "select_features": None},
    ),
    "sentiment": TrainConfig(
        social=True,
        word_ngrams=(1, 3),
        char_ngrams=(1, 5),
        char_features=2**18,
        unaccented_words=True,
        c=0.5,
        class_weight="balanced",
        max_chars=1500,
        route="dataset",
        calibration_folds=3,
        expert_of={"aivivn2019_sa": "vlsp2016_sa"},
        dataset_weights={"aivivn2019_sa": 0.3},
    ),
    "toxicity": TrainConfig(
        social=True,
        char_ngrams=(1, 5),
        char_features=2**18,
        unaccented_words=True,
        tune_bias=True,
        calibration_fraction=0.15,
        c=0.5,
        max_chars=1000,
    ),
}


@dataclass
class Metrics:
    """Evaluation of a model on one labelled set."""

    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, dict[str, float]]
    labels: list[str]
    confusion: list[list[int]]
    expected_calibration_error: float
    data: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- data


def _split_of(row: dict[str, Any], dev_fraction: float = 0.1) -> str:
    key = str(row.get("id") or row.get("orig_id") or row.get("text", ""))
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "dev" if bucket < dev_fraction else "train"


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{path}:{line_no}: not valid JSON ({exc.msg}); fix or remove the line"
                    ) from exc


def map_label(task: str, dataset: str, label: str) -> str | None:
    """Our label code for a dataset label, ``None`` when it is deliberately unused.

    Raises ``ValueError`` for an unknown label so a new dataset cannot silently train garbage.
    """
    if task == "topic":
        if label in TOPICS:
            return label  # analysts' own data already uses our codes
        table = TOPIC_LABEL_MAP.get(dataset)
        if table is None or label not in table:
            raise ValueError(
                f"topic label {label!r} of dataset {dataset!r} is not in TOPIC_LABEL_MAP (nlp/train.py); "
                f"add it there or relabel the data with codes from {list(TOPICS)}"
            )
        return table[label]
    code = label.lower()
    if code not in TASKS[task]:
        raise ValueError(f"{task} label {label!r} of dataset {dataset!r} is not one of {TASKS[task]}")
    return code


def load_examples(
    task: str, source: str | Path, limit: int | None = None, seed: int = 13
) -> tuple[list[str], list[str]]:
    """Texts and mapped labels from one data path (``path[#train|#dev]``).

    ``limit`` takes an evenly spread sample (every k-th row), so small slices still cover all labels.
    """
    raw = str(source)
    path_str, _, part = raw.partition("#")
    path = Path(path_str)
    if not path.exists():
        raise FileNotFoundError(
            f"training data {path} not found; pass --data with an existing JSONL(.gz) file"
        )
    if part not in ("", "train", "dev"):
        raise ValueError(f"{raw}: the part after '#' must be 'train' or 'dev'")
    dataset = path.parent.name
    texts: list[str] = []
    labels: list[str] = []
    for row in _read_jsonl(path):
        if part and _split_of(row) != part:
            continue
        text = str(row.get("text") or "")
        if not text.strip() or row.get("label") is None:
            continue
        label = map_label(task, dataset, str(row["label"]))
        if label is None:
            continue
        texts.append(unicodedata.normalize("NFC", text))
        labels.append(label)
    if limit is not None and len(texts) > limit:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(texts), size=limit, replace=False))
        texts = [texts[i] for i in keep]
        labels = [labels[i] for i in keep]
    return texts, labels


# --------------------------------------------------------------------------- weak supervision


@dataclass(frozen=True)
class SeedRule:
    """One analyst-editable weak-supervision rule (see topic_seed_rules.yaml)."""

    label: str
    strong: tuple[str, ...]
    keywords: tuple[str, ...]
    min_hits: int = 2
    window: int = 400

    def matches(self, text: str) -> bool:
        grams = _ngrams(text[: self.window])
        if any(p in grams for p in self.strong):
            return True
        return sum(1 for k in self.keywords if k in grams) >= self.min_hits


_WORD_RE = re.compile(r"\w+", re.UNICODE)


def _ngrams(text: str, max_n: int = 6) -> set[str]:
    """All 1..max_n syllable n-grams of ``text``, lower-cased and space-joined (phrase lookup by set)."""
    toks = _WORD_RE.findall(normalize_tone_marks(text).lower())
    return {" ".join(toks[i : i + n]) for n in range(1, max_n + 1) for i in range(len(toks) - n + 1)}


def load_seed_rules(path: Path = SEED_RULES_PATH) -> list[SeedRule]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rules = []
    for label, spec in raw.items():
        if label not in TOPICS:
            raise ValueError(f"{path}: seed rule for unknown topic {label!r}; use one of {list(TOPICS)}")
        rules.append(
            SeedRule(
                label=label,
                strong=tuple(
                    " ".join(_WORD_RE.findall(normalize_tone_marks(s).lower()))
                    for s in spec.get("strong", [])
                ),
                keywords=tuple(
                    " ".join(_WORD_RE.findall(normalize_tone_marks(s).lower()))
                    for s in spec.get("keywords", [])
                ),
                min_hits=int(spec.get("min_hits", 2)),
                window=int(spec.get("window", 400)),
            )
        )
    return rules


def apply_seed_rules(texts: Sequence[str], labels: Sequence[str], rules: Sequence[SeedRule]) -> list[str]:
    """Relabel the examples a rule matches (first matching rule wins); others keep their label."""
    out = []
    for text, label in zip(texts, labels, strict=True):
        new = next((r.label for r in rules if r.matches(text)), label)
        out.append(new)
    return out


# --------------------------------------------------------------------------- train / evaluate


def _resolve(paths: Sequence[str | Path], datasets_dir: Path) -> list[str]:
    out = []
    for p in paths:
        s = str(p)
        path_part = s.partition("#")[0]
        out.append(s if Path(path_part).is_absolute() or Path(path_part).exists() else str(datasets_dir / s))
    return out


def _data_fingerprint(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        path = Path(p.partition("#")[0])
        stat = path.stat()
        h.update(f"{p}|{stat.st_size}|{int(stat.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _fit_linear(
    task: str,
    texts: Sequence[str],
    labels: Sequence[str],
    label_order: Sequence[str],
    cfg: TrainConfig,
    weights: np.ndarray | None = None,
) -> LinearTextModel:
    """One hashed TF-IDF + LinearSVC model; a slice is held out to fit the temperature (and biases)."""
    present = [lab for lab in label_order if lab in set(labels)]
    if len(present) < 2:
        raise ValueError(f"need at least two labels to train {task}; found {present}")
    y_idx = np.array([present.index(lab) for lab in labels])
    if cfg.calibration_folds > 1 and len(texts) >= 50 * cfg.calibration_folds:
        return _fit_linear_cv(task, texts, y_idx, present, cfg, weights)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(texts))
    n_cal = int(len(texts) * cfg.calibration_fraction) if len(texts) >= 50 else 0
    cal_idx, fit_idx = order[:n_cal], order[n_cal:]

    features = HashedTfidf(cfg.features())
    x_fit = features.fit_transform([texts[i] for i in fit_idx])
    columns = _select_columns(x_fit, y_idx[fit_idx], cfg.select_features)
    fit_weights = None if weights is None else weights[fit_idx]
    coef, intercept = _fit_svc(x_fit, y_idx[fit_idx], cfg, columns, fit_weights)
    model = LinearTextModel(task=task, labels=present, features=features, coef=coef, intercept=intercept)
    if n_cal:
        cal_scores = model.decision_function([texts[i] for i in cal_idx])
        if cfg.tune_bias and len(present) > 2:
            bias = tune_biases(cal_scores, y_idx[cal_idx])
            model.intercept = (model.intercept + bias).astype(np.float32)
            cal_scores = cal_scores + bias
        model.temperature = fit_temperature(cal_scores, y_idx[cal_idx])
    model.info = {
        "rows": len(texts),
        "label_counts": {lab: int((y_idx == i).sum()) for i, lab in enumerate(present)},
        "classifier": "LinearSVC + temperature-scaled softmax",
    }
    return model


def _fit_svc(
    x: Any,
    y: np.ndarray,
    cfg: TrainConfig,
    columns: np.ndarray | None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """LinearSVC weights over all hashed columns (zero outside ``columns``) and intercepts."""
    clf = LinearSVC(C=cfg.c, class_weight=cfg.class_weight, random_state=cfg.seed)
    clf.fit(x if columns is None else x[:, columns], y, sample_weight=weights)
    coef = clf.coef_.astype(np.float32)
    if columns is not None:
        full = np.zeros((coef.shape[0], x.shape[1]), dtype=np.float32)
        full[:, columns] = coef
        coef = full
    return coef, clf.intercept_.astype(np.float32)


def _select_columns(x: Any, y: np.ndarray, k: int | None) -> np.ndarray | None:
    """The ``k`` columns with the highest chi² statistic (``None`` when no selection is asked for)."""
    if k is None or k >= x.shape[1]:
        return None
    from sklearn.feature_selection import chi2

    stat, _p = chi2(x, y)
    stat = np.nan_to_num(stat, nan=0.0)
    return np.sort(np.argsort(stat)[::-1][:k])


def _linear_scores(coef: np.ndarray, intercept: np.ndarray, x: Any) -> np.ndarray:
    scores = np.asarray(x @ coef.T, dtype=np.float32) + intercept
    if scores.shape[1] == 1:
        scores = np.hstack([-scores, scores])
    return scores


def _fit_linear_cv(
    task: str,
    texts: Sequence[str],
    y_idx: np.ndarray,
    present: list[str],
    cfg: TrainConfig,
    weights: np.ndarray | None = None,
) -> LinearTextModel:
    """Temperature and biases from out-of-fold scores (k folds), weights from all rows."""
    from sklearn.model_selection import StratifiedKFold

    features = HashedTfidf(cfg.features())
    x_all = features.fit_transform(list(texts))
    columns = _select_columns(x_all, y_idx, cfg.select_features)
    oof = np.zeros((len(texts), len(present)), dtype=np.float32)
    folds = StratifiedKFold(n_splits=cfg.calibration_folds, shuffle=True, random_state=cfg.seed)
    for fit_idx, held_idx in folds.split(np.zeros(len(texts)), y_idx):
        fold_weights = None if weights is None else weights[fit_idx]
        fold_classes = np.unique(y_idx[fit_idx])
        if len(fold_classes) < 2:
            continue
        # A fold can miss a rare label (LinearSVC then has fewer rows): it scores below all others.
        fold_y = np.searchsorted(fold_classes, y_idx[fit_idx])
        fold_coef, fold_intercept = _fit_svc(x_all[fit_idx], fold_y, cfg, columns, fold_weights)
        scores = _linear_scores(fold_coef, fold_intercept, x_all[held_idx])
        block = np.full((len(held_idx), len(present)), float(scores.min()) - 1.0, dtype=np.float32)
        block[:, fold_classes] = scores
        oof[held_idx] = block
    coef, intercept = _fit_svc(x_all, y_idx, cfg, columns, weights)
    if cfg.tune_bias and len(present) > 2:
        bias = tune_biases(oof, y_idx)
        intercept = (intercept + bias).astype(np.float32)
        oof = oof + bias
    model = LinearTextModel(
        task=task,
        labels=present,
        features=features,
        coef=coef,
        intercept=intercept,
        temperature=fit_temperature(oof, y_idx),
    )
    model.info = {
        "rows": len(texts),
        "label_counts": {lab: int((y_idx == i).sum()) for i, lab in enumerate(present)},
        "classifier": "LinearSVC + temperature-scaled softmax",
        "calibration": f"{cfg.calibration_folds}-fold out-of-fold scores",
    }
    return model


def _long_domains(texts: Sequence[str], domains: Sequence[str], threshold: int) -> tuple[set[str], set[str]]:
    """Datasets whose median row is at least ``threshold`` characters long, and all datasets."""
    lengths: dict[str, list[int]] = {}
    for text, domain in zip(texts, domains, strict=True):
        lengths.setdefault(domain, []).append(len(text))
    return {d for d, v in lengths.items() if np.median(v) >= threshold}, set(lengths)


def _expert_domains(cfg: TrainConfig, domains: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Expert names (datasets pooled by ``expert_of``) with enough rows and labels to be an expert."""
    rows: dict[str, int] = {}
    kinds: dict[str, set[str]] = {}
    for domain, label in zip(domains, labels, strict=True):
        name = cfg.expert_of.get(domain, domain)
        rows[name] = rows.get(name, 0) + 1
        kinds.setdefault(name, set()).add(label)
    return sorted(n for n in rows if rows[n] >= cfg.min_expert_rows and len(kinds[n]) >= 2)


def _route_problem(
    cfg: TrainConfig, texts: Sequence[str], domains: Sequence[str], labels: Sequence[str]
) -> str | None:
    """Why ``cfg.route`` cannot apply to this data (then one plain model is trained), or ``None``."""
    if cfg.route == "dataset":
        experts = _expert_domains(cfg, domains, labels)
        if len(experts) < 2:
            return (
                f"route=dataset needs data of at least two experts (datasets with ≥ {cfg.min_expert_rows}"
                f" rows and two labels); got {sorted(experts)}"
            )
    if cfg.route == "length":
        long_domains, all_domains = _long_domains(texts, domains, cfg.route_length)
        if not long_domains or long_domains == all_domains:
            return (
                f"route=length needs long and short datasets (median length vs {cfg.route_length} chars);"
                f" long: {sorted(long_domains)}, all: {sorted(all_domains)}"
            )
    return None


def _routed(
    task: str,
    texts: list[str],
    labels: list[str],
    domains: list[str],
    cfg: TrainConfig,
    dataset_labels: list[str] | None = None,
    weights: np.ndarray | None = None,
) -> RoutedTextModel:
    """Experts per domain (``route="dataset"``) or per length (``route="length"``) behind one task."""
    order = TASKS[task]
    expert_cfg = dataclasses.replace(cfg, route=None)
    experts: dict[str, LinearTextModel] = {}
    router: LinearTextModel | None = None
    threshold: int | None = None
    if cfg.route == "dataset":
        pooled = [cfg.expert_of.get(d, d) for d in domains]
        names = _expert_domains(cfg, domains, labels)
        router_cfg = dataclasses.replace(
            expert_cfg,
            char_ngrams=cfg.router_char_ngrams,
            char_features=cfg.router_features,
            unaccented_words=False,
            word_features=cfg.router_features,
            tune_bias=False,
            class_weight="balanced",
            c=0.5,
        )
        big = [i for i, d in enumerate(pooled) if d in names]
        router = _fit_linear("router", [texts[i] for i in big], [pooled[i] for i in big], names, router_cfg)
        # Rows of small datasets (e.g. analysts' corrections) join the expert that will answer such texts.
        small = [i for i, d in enumerate(pooled) if d not in names]
        if small:
            for i, name in zip(small, router.predict([texts[i] for i in small]), strict=True):
                pooled[i] = name
        for name in names:
            rows = [i for i, d in enumerate(pooled) if d == name]
            experts[name] = _fit_linear(
                task,
                [texts[i] for i in rows],
                [labels[i] for i in rows],
                order,
                expert_cfg,
                None if weights is None else weights[rows],
            )
    else:
        threshold = cfg.route_length
        long_domains, _all = _long_domains(texts, domains, threshold)
        # Labels the long datasets have themselves (seed-rule relabelling does not count: a handful of
        # VNTC articles relabelled dat-dai must not keep baomoi's dat-dai rows out of the long expert).
        own = dataset_labels or labels
        long_labels = {lab for lab, d in zip(own, domains, strict=True) if d in long_domains}
        rows = [
            i
            for i, d in enumerate(domains)
            if d in long_domains or labels[i] not in long_labels or len(texts[i]) >= threshold
        ]
        experts["long"] = _fit_linear(
            task,
            [texts[i] for i in rows],
            [labels[i] for i in rows],
            order,
            expert_cfg,
            None if weights is None else weights[rows],
        )
        short_cfg = dataclasses.replace(expert_cfg, max_chars=cfg.short_max_chars)
        if cfg.short_overrides:
            short_cfg = TrainConfig.from_mapping({**asdict(short_cfg), **cfg.short_overrides})
        experts["short"] = _fit_linear(task, texts, labels, order, short_cfg, weights)
    union = [lab for lab in order if any(lab in e.labels for e in experts.values())]
    first = next(iter(experts.values()))
    return RoutedTextModel(
        task=task,
        labels=union,
        features=router.features if router else first.features,
        coef=np.zeros((len(union), 0), dtype=np.float32),
        intercept=np.zeros(len(union), dtype=np.float32),
        experts=experts,
        router=router,
        length_threshold=threshold,
    )


def train(task: str, data_paths: Sequence[str | Path], config: TrainConfig | None = None) -> TrainedModel:
    """Fit a model for ``task`` on the given data; a slice is held out to fit the probability temperature.

    With ``config.route`` set the result is a ``RoutedTextModel`` (a ``LinearTextModel`` subclass) holding
    one expert per dataset or per text length.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    cfg = config or DEFAULT_CONFIGS[task]
    paths = _resolve(data_paths, default_datasets_dir())
    texts: list[str] = []
    labels: list[str] = []
    domains: list[str] = []
    per_source: dict[str, int] = {}
    for given, p in zip(data_paths, paths, strict=True):
        t, y = load_examples(task, p, limit=cfg.max_rows_per_source, seed=cfg.seed)
        texts += t
        labels += y
        domains += [Path(p.partition("#")[0]).parent.name] * len(t)
        per_source[str(given)] = len(t)
    if not texts:
        raise ValueError(f"no labelled rows found in {paths}")
    relabelled = 0
    dataset_labels = list(labels)  # before the seed rules: what each dataset itself covers
    if task == "topic" and cfg.use_seed_rules:
        new_labels = apply_seed_rules(texts, labels, load_seed_rules())
        relabelled = sum(a != b for a, b in zip(labels, new_labels, strict=True))
        labels = new_labels
    # Weights of datasets absent from this run are ignored (analysts train the default recipe on own files).
    weights = (
        np.array([cfg.dataset_weights.get(d, 1.0) for d in domains], dtype=np.float64)
        if cfg.dataset_weights
        else None
    )
    model: LinearTextModel
    route_skipped = _route_problem(cfg, texts, domains, labels)
    if route_skipped is not None:
        cfg = dataclasses.replace(cfg, route=None)
    if cfg.route is None:
        model = _fit_linear(task, texts, labels, TASKS[task], cfg, weights)
    else:
        model = _routed(task, texts, labels, domains, cfg, dataset_labels, weights)
    label_counts = {lab: labels.count(lab) for lab in model.labels}
    model.info = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": per_source,
        "data_fingerprint": _data_fingerprint(paths),
        "rows": len(texts),
        "relabelled_by_seed_rules": relabelled,
        "label_counts": label_counts,
        "config": asdict(cfg),
        "classifier": "LinearSVC + temperature-scaled softmax",
    }
    if route_skipped is not None:
        model.info["route_skipped"] = route_skipped
    if isinstance(model, RoutedTextModel):
        model.info["classifier"] = "experts (LinearSVC + temperature-scaled softmax each) chosen by " + (
            "a domain classifier" if model.router else f"length (< {model.length_threshold} chars: short)"
        )
        model.info["experts"] = {name: e.info for name, e in model.experts.items()}
    return model


def _ece(probs: np.ndarray, gold: np.ndarray, bins: int = 10) -> float:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def evaluate(
    model: LinearTextModel,
    data_path: str | Path,
    restrict_to_gold_labels: bool = False,
    limit: int | None = None,
) -> Metrics:
    """Per-class precision/recall/F1, macro-/weighted-F1, confusion matrix and calibration error.

    ``restrict_to_gold_labels`` predicts only among labels the data can contain (e.g. the 9 VNTC
    classes), for comparing with published numbers on that label set.
    """
    (path,) = _resolve([data_path], default_datasets_dir())
    texts, gold_labels = load_examples(model.task, path, limit=limit)
    if not texts:
        raise ValueError(f"no labelled rows in {path}")
    probs = model.predict_proba(texts)
    if restrict_to_gold_labels:
        allowed = np.array([lab in set(gold_labels) for lab in model.labels])
        probs = np.where(allowed, probs, 0.0)
        probs = probs / probs.sum(axis=1, keepdims=True)
    labels = [
        lab
        for lab in model.labels
        if lab in set(gold_labels) or (probs.argmax(axis=1) == model.labels.index(lab)).any()
    ]
    pred = [model.labels[i] for i in probs.argmax(axis=1)]
    p, r, f, s = precision_recall_fscore_support(gold_labels, pred, labels=labels, zero_division=0)
    gold_set = set(gold_labels)
    in_gold = [i for i, lab in enumerate(labels) if lab in gold_set]
    weights = np.array([s[i] for i in in_gold], dtype=float)
    gold_idx = np.array([model.labels.index(g) if g in model.labels else -1 for g in gold_labels])
    return Metrics(
        n=len(texts),
        accuracy=float(np.mean([a == b for a, b in zip(pred, gold_labels, strict=True)])),
        macro_f1=float(np.mean([f[i] for i in in_gold])),
        weighted_f1=float(np.average([f[i] for i in in_gold], weights=weights)),
        per_class={
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        labels=labels,
        confusion=confusion_matrix(gold_labels, pred, labels=labels).tolist(),
        expected_calibration_error=_ece(probs, gold_idx),
        data=str(data_path),
    )


def _compact(model: LinearTextModel) -> LinearTextModel:
    """A copy with float16 weights (experts and router of a routed model too)."""
    compact = dataclasses.replace(model, coef=model.coef.astype(np.float16))
    if isinstance(compact, RoutedTextModel):
        compact.experts = {name: _compact(e) for name, e in compact.experts.items()}
        compact.router = _compact(compact.router) if compact.router else None
    return compact


def save_model(model: LinearTextModel, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / MODEL_FILENAME
    # float16 weights: half the size, and predictions differ from float32 by < 1e-3 in probability.
    joblib.dump(_compact(model), target, compress=3)
    return target


def load_model(path: Path) -> LinearTextModel:
    model = joblib.load(path)
    if not isinstance(model, LinearTextModel):
        raise TypeError(f"{path} does not hold a LinearTextModel; retrain it with `python -m nlp.train`")
    return model


def _weights_nbytes(model: LinearTextModel) -> int:
    """In-memory float32 size of the weights (all experts and the router of a routed model)."""
    own = sum(np.asarray(a, dtype=np.float32).nbytes for a in (model.coef, model.intercept))
    if isinstance(model, RoutedTextModel):
        parts = [*model.experts.values(), *([model.router] if model.router else [])]
        own += sum(_weights_nbytes(m) for m in parts)
    return own


def _selection_note(model: LinearTextModel) -> str:
    """ ", chi²-selected 150,000 of 1,048,576 columns" when most weight columns are zero."""
    used = int((np.asarray(model.coef) != 0).any(axis=0).sum())
    total = int(np.asarray(model.coef).shape[1])
    return f", chi²-selected {used:,} of {total:,} hashed columns" if used < 0.9 * total else ""


def model_card(model: LinearTextModel, results: dict[str, dict[str, Any]]) -> str:
    """Markdown card: what the model is, what it was trained on (and their licences), how it scores."""
    info = model.info
    size_mb = _weights_nbytes(model) / 1e6
    lines = [
        f"# {model.task} model (shipped default)",
        "",
        f"- Kind: {info.get('classifier')}; features: hashed syllable n-grams"
        + (" + character n-grams" if model.features.config.char_ngrams else "")
        + f" (TF-IDF, sublinear); labels: {', '.join(model.labels)}.",
        f"- Trained: {info.get('trained_at')} in {info.get('train_seconds', '?')} s"
        f" on {info.get('rows')} rows;"
        f" weights {size_mb:.1f} MB in memory (stored as float16); probability temperature"
        + (" per expert (below)." if isinstance(model, RoutedTextModel) else f" {model.temperature:.3f}."),
        f"- Config: `{json.dumps(info.get('config'), ensure_ascii=False)}`",
        f"- Label counts: `{json.dumps(info.get('label_counts'), ensure_ascii=False)}`",
        "- Retrain: `python -m nlp.train --task "
        + model.task
        + " --out DIR` (data read from ../shared/datasets).",
        "",
    ]
    if isinstance(model, RoutedTextModel):
        lines += ["## Experts", ""]
        if model.router is not None:
            lines.append(
                "A domain classifier (hashed syllable 1–2-grams + character n-grams, labels"
                f" {', '.join(model.router.labels)}) trained on the same rows sends each text to the"
                " expert of the dataset it resembles."
            )
        else:
            lines.append(
                f"Texts (title + body) shorter than {model.length_threshold} characters go to `short`, the"
                " others to `long`. `long` trains on the long-text datasets, the long rows of the others"
                " and their rows of labels the long datasets lack; `short` trains on every row cut to its"
                " first characters."
            )
        lines.append("")
        for name, expert in model.experts.items():
            fc = expert.features.config
            lines.append(
                f"- `{name}`: {expert.info.get('rows')} rows, labels {', '.join(expert.labels)};"
                f" syllable {fc.word_ngrams[0]}–{fc.word_ngrams[1]}-grams"
                + (f" + char {fc.char_ngrams[0]}–{fc.char_ngrams[1]}-grams" if fc.char_ngrams else "")
                + (" + unaccented syllables" if fc.unaccented_words else "")
                + _selection_note(expert)
                + f", first {fc.max_chars} chars; temperature {expert.temperature:.3f};"
                f" label counts `{json.dumps(expert.info.get('label_counts'), ensure_ascii=False)}`"
            )
        lines.append("")
    lines += [
        "## Training data and licences",
        "",
        "The datasets are NOT in the repository; only these derived weights are. Most are research-only.",
        "",
    ]
    for source, rows in (info.get("data") or {}).items():
        dataset = Path(source.partition("#")[0]).parent.name
        lines.append(
            f"- `{dataset}/{Path(source).name}`: {rows} rows"
            f" — {DATASET_LICENCES.get(dataset, 'see SOURCE.md')}"
        )
    if model.task == "topic":
        lines += [
            "",
            "## Label mapping and weak supervision",
            "",
            "Dataset labels map onto the taxonomy through `TOPIC_LABEL_MAP` in `nlp/train.py` (tested).",
            "`giao-thong` has no labelled data. The analyst-editable seed rules in"
            " `nlp/topic_seed_rules.yaml`"
            " (traffic, land/planning and environment phrases in the title + lead) re-labelled"
            f" {info.get('relabelled_by_seed_rules')} training examples, giving"
            f" {(info.get('label_counts') or {}).get('giao-thong', 0)} `giao-thong` examples; the model then"
            " learns these topics from the full texts. Quality on real traffic news is not measured (no gold"
            " data): check predictions and add corrected labels.",
        ]
    lines += [
        "",
        "## Dev-set results",
        "",
        "| data | n | macro-F1 | weighted-F1 | accuracy | ECE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | {m['n']} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} | {m['accuracy']:.4f} |"
            f" {m['expected_calibration_error']:.3f} |"
        )
    lines += ["", "Per-class precision/recall/F1 and confusion matrices: `metrics.json`.", ""]
    comparison = info.get("comparison")
    if comparison:
        lines += ["## Model comparison (dev macro-F1)", "", str(comparison), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlp.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=list(TASKS))
    parser.add_argument("--out", type=Path, help="directory to write model.joblib and metrics.json to")
    parser.add_argument("--eval", type=Path, help="evaluate the model in this directory instead of training")
    parser.add_argument("--data", nargs="*", help="training data paths (default: the shipped recipe)")
    parser.add_argument("--dev", nargs="*", help="evaluation data paths (default: the shipped recipe)")
    parser.add_argument("--config", type=Path, help="YAML file with TrainConfig keys")
    args = parser.parse_args(argv)

    dev = args.dev if args.dev is not None else DEFAULT_DEV_DATA[args.task]
    if args.eval:
        model = load_model(args.eval / MODEL_FILENAME)
    else:
        if not args.out:
            parser.error("--out is required when training")
        config = DEFAULT_CONFIGS[args.task]
        if args.config:
            config = TrainConfig.from_mapping(yaml.safe_load(args.config.read_text(encoding="utf-8")) or {})
        started = time.perf_counter()
        model = train(args.task, args.data or DEFAULT_TRAIN_DATA[args.task], config)
        model.info["train_seconds"] = round(time.perf_counter() - started, 1)
        save_model(model, args.out)
    results = {}
    for d in dev:
        results[d] = evaluate(model, d).to_dict()
        print(
            f"{d}: macro-F1 {results[d]['macro_f1']:.4f} weighted-F1 {results[d]['weighted_f1']:.4f}",
            file=sys.stderr,
        )
        if args.task == "topic":
            restricted = evaluate(model, d, restrict_to_gold_labels=True).to_dict()
            results[d + " (restricted to gold labels)"] = restricted
            print(f"{d} restricted: macro-F1 {restricted['macro_f1']:.4f}", file=sys.stderr)
    report = {"task": args.task, "model": model.info, "dev": results}
    if args.out and not args.eval:
        (args.out / "metrics.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        (args.out / "model_card.md").write_text(model_card(model, results), encoding="utf-8")
    print(json.dumps({k: round(v["macro_f1"], 4) for k, v in results.items()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
