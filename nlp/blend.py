"""Blend the shipped linear model with the fine-tuned strong model (mô hình kết hợp).

The two make different mistakes: the linear model reads character and syllable n-grams (spelling,
teencode, rare words), the transformer reads context. Averaging their calibrated probabilities is the
plain "soft voting" ensemble; its dev-set gain over either model alone is measured in
``bench/nlp_transformer.py`` and recorded in ``nlp/models/COMPARISON.md``.

``BlendedModel`` has the interface ``nlp.classify.TextClassifier`` and ``nlp.train.evaluate`` expect of a
model (``task``, ``labels``, ``predict_proba``, ``top_features``), so the rest of the code does not know
which kind it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class ProbabilisticModel(Protocol):
    """What a blend needs of each member."""

    task: str
    labels: list[str]

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class BlendedModel:
    """``(1 - strong_weight) · linear + strong_weight · strong`` over the linear model's labels.

    Labels the strong model was not trained on get probability 0 from it (so the linear model alone
    decides them, at reduced weight). Explanations come from the linear model: its features are
    readable, the transformer's are not.
    """

    linear: ProbabilisticModel
    strong: ProbabilisticModel
    strong_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.linear.task != self.strong.task:
            raise ValueError(
                f"cannot blend a {self.linear.task} model with a {self.strong.task} model;"
                " both must be trained for the same task"
            )
        if not 0.0 <= self.strong_weight <= 1.0:
            raise ValueError(f"strong_weight must be between 0 and 1, got {self.strong_weight}")
        unknown = [lab for lab in self.strong.labels if lab not in self.linear.labels]
        if unknown:
            raise ValueError(
                f"the strong {self.task} model predicts labels {unknown} the linear model does not know;"
                " retrain one of them on the same label set"
            )
        self._columns = [self.linear.labels.index(lab) for lab in self.strong.labels]

    @property
    def task(self) -> str:
        return self.linear.task

    @property
    def labels(self) -> list[str]:
        return list(self.linear.labels)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        linear = self.linear.predict_proba(texts)
        if not texts or self.strong_weight == 0.0:
            return linear
        strong = np.zeros_like(linear)
        strong[:, self._columns] = self.strong.predict_proba(texts)
        return np.asarray((1.0 - self.strong_weight) * linear + self.strong_weight * strong)

    def top_features(self, text: str, label: str, k: int = 10) -> list[tuple[str, float]]:
        top = getattr(self.linear, "top_features", None)
        if top is None:
            raise TypeError(f"the linear {self.task} model cannot explain its predictions")
        result: list[tuple[str, float]] = top(text, label, k)
        return result
