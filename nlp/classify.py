"""Load a trained classifier and predict labels with probabilities (phân loại văn bản).

Models are looked up in the analysts' ``models_dir`` first (retrained / promoted models), then in the
models shipped with the code (``nlp/models/<task>/model.joblib``). Where a fine-tuned strong model is
installed (``<strong_dir>/<task>/strong.json``), it is blended with the linear one (``nlp.blend``).
Prediction never raises on odd input: blank or non-Vietnamese text still gets a label, with damped
confidence and a ``flag``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import joblib
import numpy as np

from nlp.blend import BlendedModel
from nlp.langid import detect_language
from nlp.textmodel import LinearTextModel

SHIPPED_MODELS_DIR = Path(__file__).with_name("models")
MODEL_FILENAME = "model.joblib"
#: Metadata file of a fine-tuned strong model (``nlp.transformer_model.META_FILENAME``).
STRONG_META_FILENAME = "strong.json"

#: Characters checked for the language flag (the start of a text is enough).
LANGID_CHARS = 500
#: Flags on a prediction that should not be trusted.
FLAG_BLANK = "blank"
FLAG_NOT_VIETNAMESE = "not-vietnamese"


@dataclass(frozen=True)
class Prediction:
    """A label, its probability per label, and a flag when the input was unfit (blank/foreign)."""

    label: str
    scores: dict[str, float]
    flag: str | None = None

    @property
    def confidence(self) -> float:
        return self.scores[self.label]


def find_model_file(task: str, models_dir: Path | None = None) -> Path:
    """``<models_dir>/<task>/model.joblib`` if present, else the shipped one."""
    candidates = [models_dir / task / MODEL_FILENAME] if models_dir else []
    candidates.append(SHIPPED_MODELS_DIR / task / MODEL_FILENAME)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"no {task} model found (tried {tried}); train one with `python -m nlp.train --task {task}`"
    )


@dataclass
class TextClassifier:
    """One task's classifier: wraps a ``LinearTextModel`` (or a blend) with input checks and flags."""

    model: LinearTextModel | BlendedModel
    source: Path | None = None
    #: Weight of the uniform distribution mixed into scores of flagged inputs (lowers confidence).
    flagged_damping: float = 0.5
    _uniform: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._uniform = np.full(len(self.model.labels), 1.0 / len(self.model.labels))

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def labels(self) -> list[str]:
        return list(self.model.labels)

    @property
    def linear(self) -> LinearTextModel:
        """The linear model (the blend's linear member when a strong model is blended in)."""
        return cast(
            LinearTextModel, self.model.linear if isinstance(self.model, BlendedModel) else self.model
        )

    def predict(self, texts: list[str], titles: list[str] | None = None) -> list[Prediction]:
        """One prediction per text; ``titles`` (same length) are prepended, as in training data."""
        if titles is not None and len(titles) != len(texts):
            raise ValueError(
                f"got {len(titles)} titles for {len(texts)} texts; pass one title per text or none"
            )
        joined = [f"{(titles[i] if titles else '') or ''}\n{t or ''}".strip() for i, t in enumerate(texts)]
        if not joined:
            return []
        probs = self.model.predict_proba(joined)
        out = []
        for text, row in zip(joined, probs, strict=True):
            flag = None
            if not any(ch.isalpha() for ch in text):
                flag = FLAG_BLANK
            elif detect_language(text[:LANGID_CHARS])[0] != "vi":
                flag = FLAG_NOT_VIETNAMESE
            if flag:
                row = (1 - self.flagged_damping) * row + self.flagged_damping * self._uniform
            scores = {lab: round(float(p), 4) for lab, p in zip(self.model.labels, row, strict=True)}
            out.append(Prediction(label=self.model.labels[int(np.argmax(row))], scores=scores, flag=flag))
        return out

    def explain(self, text: str, label: str | None = None, k: int = 10) -> list[tuple[str, float]]:
        """Top syllable n-grams of ``text`` behind ``label`` (default: the predicted one)."""
        target = label or self.predict([text])[0].label
        return self.model.top_features(text, target, k)


def load_classifier(
    task: str,
    models_dir: Path | None = None,
    strong_dir: Path | None = None,
    strong_weight: float = 0.5,
) -> TextClassifier:
    """The classifier for ``task`` (topic | sentiment | toxicity): ``models_dir`` first, then shipped.

    With ``strong_dir`` holding ``<task>/strong.json`` (``python -m nlp.transformer_model --out
    <strong_dir>/<task>``), the linear model is blended with that strong model at ``strong_weight``;
    tasks without one stay linear. The strong model costs ~1 GB of RAM and tens of ms of CPU per text.
    """
    path = find_model_file(task, models_dir)
    model = joblib.load(path)
    if not isinstance(model, LinearTextModel) or model.task != task:
        raise TypeError(
            f"{path} does not hold a {task} LinearTextModel; retrain it with `python -m nlp.train`"
        )
    if strong_dir is not None and (strong_dir / task / STRONG_META_FILENAME).is_file():
        from nlp.transformer_model import load_transformer_classifier  # imports torch: only when asked

        strong = load_transformer_classifier(strong_dir / task)
        return TextClassifier(model=BlendedModel(model, strong, strong_weight), source=path)
    return TextClassifier(model=model, source=path)
