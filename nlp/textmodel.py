"""The shipped linear text model: hashed syllable/char n-grams → linear classifier → calibrated softmax.

Hashing keeps the model small and stateless (no vocabulary to store), so a model file is the IDF
vector plus one weight row per class. Probabilities come from a softmax over the decision scores
with one temperature fitted on held-out data (cheaper than ``CalibratedClassifierCV``, which would
store three classifiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.utils import murmurhash3_32

from nlp.normalize import normalize_social, normalize_tone_marks, remove_diacritics

_SYLLABLE_RE = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class FeatureConfig:
    """How text becomes features. Part of a saved model: predicting must use the training settings."""

    word_ngrams: tuple[int, int] = (1, 2)
    word_features: int = 2**18
    char_ngrams: tuple[int, int] | None = (2, 4)
    char_features: int = 2**17
    max_chars: int = 4000
    social: bool = False
    #: Also hash syllables with diacritics stripped: comments are often typed without them.
    unaccented_words: bool = False


def preprocess(text: str, config: FeatureConfig) -> str:
    """Normalise and lower-case; comments also get teencode and stretched letters fixed."""
    text = text[: config.max_chars]
    text = normalize_social(text) if config.social else normalize_tone_marks(text)
    return text.lower()


def syllables(text: str) -> list[str]:
    """Split into syllables (âm tiết): fast, and 1–2-grams of syllables cover most words."""
    return _SYLLABLE_RE.findall(text)


class HashedTfidf:
    """Stateless hashing + fitted IDF for syllable n-grams and (optionally) character n-grams."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._word = HashingVectorizer(
            analyzer="word",
            tokenizer=syllables,
            token_pattern=None,
            lowercase=False,
            ngram_range=config.word_ngrams,
            n_features=config.word_features,
            alternate_sign=False,
            norm=None,
            dtype=np.float32,
        )
        self._char = (
            HashingVectorizer(
                analyzer="char_wb",
                lowercase=False,
                ngram_range=config.char_ngrams,
                n_features=config.char_features,
                alternate_sign=False,
                norm=None,
                dtype=np.float32,
            )
            if config.char_ngrams
            else None
        )
        self._plain = (
            HashingVectorizer(
                analyzer="word",
                tokenizer=syllables,
                token_pattern=None,
                lowercase=False,
                ngram_range=config.word_ngrams,
                n_features=config.word_features,
                alternate_sign=False,
                norm=None,
                dtype=np.float32,
            )
            if config.unaccented_words
            else None
        )
        self._idf = TfidfTransformer(sublinear_tf=True)

    def _counts(self, texts: list[str]) -> sp.csr_matrix:
        clean = [preprocess(t, self.config) for t in texts]
        blocks = [self._word.transform(clean)]
        if self._char is not None:
            blocks.append(self._char.transform(clean))
        plain = getattr(self, "_plain", None)
        if plain is not None:
            blocks.append(plain.transform([remove_diacritics(t) for t in clean]))
        return sp.hstack(blocks, format="csr")

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        return self._idf.fit_transform(self._counts(texts)).astype(np.float32)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        return self._idf.transform(self._counts(texts)).astype(np.float32)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / max(temperature, 1e-6)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def fit_temperature(scores: np.ndarray, gold: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood on held-out scores (temperature scaling)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.geomspace(0.02, 5.0, 60):
        p = softmax(scores, float(t))
        nll = -float(np.mean(np.log(p[np.arange(len(gold)), gold] + 1e-12)))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def tune_biases(scores: np.ndarray, gold: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class offsets added to the scores that maximise macro-F1 on held-out data.

    With rare classes (offensive, hate) the plain argmax under-predicts them; shifting their scores
    trades a little precision for recall. Coordinate search, class 0 fixed at 0.
    """
    from sklearn.metrics import f1_score

    bias = np.zeros(scores.shape[1], dtype=np.float32)
    best = f1_score(gold, scores.argmax(axis=1), average="macro")
    for _ in range(rounds):
        for k in range(1, scores.shape[1]):
            for value in np.linspace(-1.5, 1.5, 61):
                trial = bias.copy()
                trial[k] = value
                score = f1_score(gold, (scores + trial).argmax(axis=1), average="macro")
                if score > best + 1e-9:
                    best, bias = score, trial
    return bias


@dataclass
class LinearTextModel:
    """A trained model for one task: features, linear weights, labels, temperature and provenance."""

    task: str
    labels: list[str]
    features: HashedTfidf
    coef: np.ndarray  # (n_labels, n_features) float32
    intercept: np.ndarray  # (n_labels,)
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Weights are stored as float16 to halve the file (see nlp.train.save_model); compute in float32.
        self.__dict__.update(state)
        self.coef = np.asarray(self.coef, dtype=np.float32)

    def decision_function(self, texts: list[str]) -> np.ndarray:
        x = self.features.transform(texts)
        scores = np.asarray(x @ self.coef.T) + self.intercept
        if len(self.labels) == 2 and scores.shape[1] == 1:
            scores = np.hstack([-scores, scores])
        return scores

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return softmax(self.decision_function(texts), self.temperature)

    def predict(self, texts: list[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def top_features(self, text: str, label: str, k: int = 10) -> list[tuple[str, float]]:
        """Syllable n-grams of ``text`` that push most towards ``label`` (why this prediction)."""
        row = self.coef[self.labels.index(label)]
        grams: set[str] = set()
        toks = syllables(preprocess(text, self.features.config))
        lo, hi = self.features.config.word_ngrams
        for n in range(lo, hi + 1):
            grams.update(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
        if not grams:
            return []
        n_word = self.features.config.word_features
        contributions = []
        for gram in sorted(grams):
            # Same index HashingVectorizer uses: |murmurhash3_32(feature)| mod n_features.
            idx = abs(int(murmurhash3_32(gram, seed=0))) % n_word
            contributions.append((gram, float(row[idx])))
        contributions.sort(key=lambda kv: kv[1], reverse=True)
        return [kv for kv in contributions[:k] if kv[1] > 0]


#: Score given to a label an expert cannot predict (its probability becomes 0 after the softmax).
_MISSING_SCORE = -1e4


@dataclass
class RoutedTextModel(LinearTextModel):
    """Several ``LinearTextModel`` experts behind one task; each text is answered by one of them.

    The expert is chosen by ``router`` (a small linear model whose labels are expert names, e.g. a
    domain classifier "comments vs student feedback") or, without a router, by length: texts shorter
    than ``length_threshold`` characters go to the ``"short"`` expert, the others to ``"long"``
    (headlines vs full articles). ``labels`` is the union of the experts' labels; a label an expert
    does not know gets probability 0 from it. The inherited ``features``/``coef`` are unused
    (``coef`` has zero columns).
    """

    experts: dict[str, LinearTextModel] = field(default_factory=dict)
    router: LinearTextModel | None = None
    length_threshold: int | None = None

    def route(self, texts: list[str]) -> list[str]:
        """The expert name for each text."""
        if self.router is not None:
            return self.router.predict(texts)
        if self.length_threshold is None:
            raise ValueError("a RoutedTextModel needs a router or a length_threshold")
        return ["short" if len(t) < self.length_threshold else "long" for t in texts]

    def _per_expert(self, texts: list[str], proba: bool) -> np.ndarray:
        fill = 0.0 if proba else _MISSING_SCORE
        out = np.full((len(texts), len(self.labels)), fill, dtype=np.float64)
        names = self.route(texts)
        for name, expert in self.experts.items():
            rows = [i for i, n in enumerate(names) if n == name]
            if not rows:
                continue
            subset = [texts[i] for i in rows]
            values = expert.predict_proba(subset) if proba else expert.decision_function(subset)
            cols = [self.labels.index(lab) for lab in expert.labels]
            out[np.ix_(rows, cols)] = values
        return out

    def decision_function(self, texts: list[str]) -> np.ndarray:
        return self._per_expert(texts, proba=False)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        # Each expert applies its own temperature; the routed model adds none.
        return self._per_expert(texts, proba=True)

    def expert_for(self, text: str) -> LinearTextModel:
        return self.experts[self.route([text])[0]]

    def top_features(self, text: str, label: str, k: int = 10) -> list[tuple[str, float]]:
        expert = self.expert_for(text)
        if label not in expert.labels:
            return []
        return expert.top_features(text, label, k)
