"""Why a linear model predicted a label (giải thích dự đoán): the features of the text that pushed most.

A ``LinearTextModel`` scores label ``l`` as ``sum_j x_j * w_lj + b_l`` over the hashed TF-IDF features
``x`` of the text. Each term ``x_j * w_lj`` is that feature's contribution; the contributions plus the
intercept add up exactly to the score, so the explanation is faithful, not an approximation.

Hashed features have no vocabulary: the n-grams of *this* text (syllable n-grams, character n-grams,
syllables without diacritics) are re-hashed with the same function the vectoriser uses to name each
column. Columns shared by several n-grams of the text (hash collisions) list them all.
"""

from __future__ import annotations

import string
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from nlp.normalize import remove_diacritics
from nlp.textmodel import LinearTextModel, RoutedTextModel, preprocess

_INT32_MIN = -(2**31)
#: Stripped from words that name character n-grams ("chó," → "chó").
_PUNCT = string.punctuation + "…“”‘’«»"


@dataclass(frozen=True)
class Contribution:
    """One feature column of the text and how much it adds to the label's score."""

    feature: str
    #: ``word`` (syllable n-gram), ``char`` (character n-gram) or ``unaccented`` (syllables without marks)
    kind: str
    value: float
    weight: float
    contribution: float


@dataclass(frozen=True)
class Explanation:
    label: str
    probability: float
    scores: dict[str, float]
    #: The label's decision score = intercept + sum of all contributions.
    score: float
    intercept: float
    supporting: list[Contribution]
    opposing: list[Contribution]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _column(feature: str, n_features: int) -> int:
    """The column ``HashingVectorizer`` (``alternate_sign=False``) puts ``feature`` in."""
    h = int(murmurhash3_32(feature, seed=0))
    if h == _INT32_MIN:  # as sklearn's _hashing_fast: abs() would overflow
        return (2**31 - 1 - (n_features - 1)) % n_features
    return abs(h) % n_features


def _label_weights(model: LinearTextModel) -> tuple[np.ndarray, np.ndarray]:
    """One weight row and intercept per label (a binary LinearSVC stores one row for the second label)."""
    coef = np.asarray(model.coef, dtype=np.float32)
    intercept = np.asarray(model.intercept, dtype=np.float32).reshape(-1)
    if len(model.labels) == 2 and coef.shape[0] == 1:
        return np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


def _columns(model: LinearTextModel, text: str) -> dict[int, tuple[str, dict[str, int]]]:
    """Column → (kind, n-gram → count) for every n-gram of ``text`` in every feature block.

    For character n-grams the "n-gram" recorded is the word it was cut from (``char_wb`` n-grams never
    cross a space), so their weight can be credited to readable words.
    """
    config = model.features.config
    clean = preprocess(text, config)
    blocks: list[tuple[str, HashingVectorizer | None, str]] = [
        ("word", getattr(model.features, "_word", None), clean),
        ("char", getattr(model.features, "_char", None), clean),
        ("unaccented", getattr(model.features, "_plain", None), remove_diacritics(clean)),
    ]
    out: dict[int, tuple[str, dict[str, int]]] = {}
    offset = 0
    for kind, vectorizer, doc in blocks:
        if vectorizer is None:
            continue
        n_features = int(vectorizer.n_features)
        analyzer = vectorizer.build_analyzer()
        pieces = doc.split() if kind == "char" else [doc]
        for piece in pieces:
            for gram in analyzer(piece):
                column = offset + _column(gram, n_features)
                source = (piece.strip(_PUNCT) or piece) if kind == "char" else gram
                counts = out.setdefault(column, (kind, defaultdict(int)))[1]
                counts[source] += 1
        offset += n_features
    return out


def feature_names(model: LinearTextModel, text: str) -> dict[int, tuple[str, str]]:
    """Column → (n-grams of ``text`` hashed there, joined by `` | ``; kind). Character n-grams are named
    by the words they come from."""
    if isinstance(model, RoutedTextModel):
        model = model.expert_for(text)
    return {col: (" | ".join(sorted(grams)), kind) for col, (kind, grams) in _columns(model, text).items()}


def explain(model: LinearTextModel, text: str, label: str | None = None, k: int = 10) -> Explanation:
    """The ``k`` features that most support and most oppose ``label`` (default: the predicted label).

    Syllable n-grams (and syllables without diacritics) are listed as they are; the many character
    n-grams are credited to the word they come from (a column shared by several words is split in
    proportion), so "ngu" appears once with the sum of its character n-grams.
    """
    if isinstance(model, RoutedTextModel):  # several experts: explain the one that answers this text
        model = model.expert_for(text)
    if label is not None and label not in model.labels:
        raise ValueError(f"{label!r} is not a label of the {model.task} model; use one of {model.labels}")
    x = model.features.transform([text]).tocsr()
    weights, intercepts = _label_weights(model)
    scores = np.asarray(x @ weights.T).reshape(-1) + intercepts
    probs = model.predict_proba([text])[0]
    target = label or model.labels[int(np.argmax(probs))]
    row = model.labels.index(target)
    columns = _columns(model, text)
    totals: dict[tuple[str, str], list[float]] = {}  # (feature, kind) → [value, weight, contribution]
    for column, value in zip(x.indices, x.data, strict=True):
        weight = float(weights[row, column])
        kind, grams = columns.get(int(column), ("unknown", {f"#{column}": 1}))
        if kind == "char":
            n = sum(grams.values())
            parts = [(gram, count / n) for gram, count in grams.items()]
        else:
            parts = [(" | ".join(sorted(grams)), 1.0)]
        for feature, share in parts:
            acc = totals.setdefault((feature, kind), [0.0, 0.0, 0.0])
            acc[0] += float(value) * share
            acc[1] = weight if kind != "char" else acc[1] + weight * share
            acc[2] += float(value) * weight * share
    contributions = [
        Contribution(feature=f, kind=kind, value=round(v, 6), weight=round(w, 6), contribution=c)
        for (f, kind), (v, w, c) in totals.items()
    ]
    contributions.sort(key=lambda c: c.contribution, reverse=True)
    return Explanation(
        label=target,
        probability=round(float(probs[row]), 4),
        scores={lab: round(float(p), 4) for lab, p in zip(model.labels, probs, strict=True)},
        score=float(scores[row]),
        intercept=float(intercepts[row]),
        supporting=[c for c in contributions[:k] if c.contribution > 0],
        opposing=[c for c in reversed(contributions[-k:]) if c.contribution < 0],
    )
