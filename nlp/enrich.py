"""The NLP stage: fill a ``Document``'s analysis fields (làm giàu dữ liệu).

``Enricher`` loads the three classifiers once and fills ``lang``, ``topic``/``topic_scores``,
``sentiment``/``sentiment_scores``, ``toxicity``/``toxicity_scores``, ``entities``, ``keywords`` and
``province_relevance``. Entities, language and province relevance come from the spaCy pipeline of
``nlp.pipeline`` (underthesea word segmentation, gazetteer PhraseMatcher, CRF NER). It works in
batches (vectorising many texts at once is much faster) and a
failure on one document never stops the others: that document is returned as it came, and the
error is logged.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlp.classify import Prediction, TextClassifier, load_classifier
from nlp.entities import Gazetteer, _Phrase, default_gazetteer, with_watchlist
from nlp.keywords import extract_keywords
from nlp.normalize import normalize_tone_marks
from nlp.pipeline import build_pipeline, doc_entities, doc_province_relevance
from schema.document import Document, SourceType

log = logging.getLogger(__name__)

DEFAULT_PROVINCE_ALIASES = ["Bình Phước", "Đồng Xoài"]
#: Characters of an article treated as its lead (sapo) for province relevance and sentiment.
LEAD_CHARS = 400
#: News sentiment is judged on title + lead: the body mixes quotes and background.
SENTIMENT_CHARS = 700
BATCH_SIZE = 64
#: underthesea's CRF NER runs on the first characters of title + text (title and lead, where the
#: people and bodies a story is about are named); the rest gets the gazetteer and the patterns. On
#: VNTC articles the whole-text CRF finds 13% more entities for +37% CPU (docs/decisions.md).
CRF_NER_CHARS = 1000


def split_lead(text: str, lead_chars: int = LEAD_CHARS) -> tuple[str, str]:
    """(lead, rest): the first paragraph, or the first ``lead_chars`` characters if it is longer."""
    first_break = text.find("\n")
    cut = first_break if 0 < first_break <= lead_chars else min(len(text), lead_chars)
    return text[:cut], text[cut:]


class Enricher:
    """Runs every analysis on documents; one instance per process (models are loaded once)."""

    def __init__(
        self,
        models_dir: Path | None = None,
        province: str = "Đồng Nai",
        province_aliases: Sequence[str] = tuple(DEFAULT_PROVINCE_ALIASES),
        use_crf_ner: bool = True,
        toxicity_for_news: bool = False,
        keywords_per_doc: int = 10,
        gazetteer: Gazetteer | None = None,
        watchlist_path: Path | None = None,
        crf_ner_chars: int = CRF_NER_CHARS,
        strong_models_dir: Path | None = None,
        strong_weight: float = 0.5,
        strong_for_news: bool = False,
    ) -> None:
        """``watchlist_path``: an analysts' YAML of officials/organisations added to the gazetteer.
        ``use_crf_ner``: underthesea's CRF NER for entities the gazetteers miss, on the first
        ``crf_ner_chars`` characters of title + text (0: the whole document).
        ``strong_models_dir``: fine-tuned strong models blended in where present (``nlp.blend``), for
        social and forum posts only unless ``strong_for_news``: they were fine-tuned on comments, and
        on ~600-word articles they cost ~120 ms of CPU each (the linear path ~33 ms)."""
        self.topic: TextClassifier = load_classifier("topic", models_dir, strong_models_dir, strong_weight)
        self.sentiment: TextClassifier = load_classifier(
            "sentiment", models_dir, strong_models_dir, strong_weight
        )
        self.toxicity: TextClassifier = load_classifier(
            "toxicity", models_dir, strong_models_dir, strong_weight
        )
        #: Classifiers for social/forum posts, and for news articles (the linear members unless
        #: strong_for_news).
        self.post_models = {"topic": self.topic, "sentiment": self.sentiment, "toxicity": self.toxicity}
        self.news_models = {
            task: clf if strong_for_news else TextClassifier(model=clf.linear, source=clf.source)
            for task, clf in self.post_models.items()
        }
        gaz = gazetteer or default_gazetteer()
        if watchlist_path is not None:
            gaz = with_watchlist(gaz, watchlist_path)
        self.gazetteer = _with_aliases(gaz, province, province_aliases)
        self.province = self.gazetteer.canonical_province(province) or province
        self.nlp = build_pipeline(self.gazetteer, crf_ner=use_crf_ner, crf_max_chars=crf_ner_chars)
        self.toxicity_for_news = toxicity_for_news
        self.keywords_per_doc = keywords_per_doc

    def enrich(self, doc: Document) -> Document:
        """A copy of ``doc`` with the analysis fields filled (the input is returned on failure)."""
        return self.enrich_many([doc])[0]

    def enrich_many(self, docs: Sequence[Document]) -> list[Document]:
        out: list[Document] = []
        for start in range(0, len(docs), BATCH_SIZE):
            batch = list(docs[start : start + BATCH_SIZE])
            try:
                out.extend(self._enrich_batch(batch))
            except Exception:  # one bad document must not sink the batch: retry one by one
                log.exception("batch enrichment failed; retrying %d documents one by one", len(batch))
                for doc in batch:
                    try:
                        out.extend(self._enrich_batch([doc]))
                    except Exception:
                        log.exception(
                            "enrichment failed for document %s (%s); left unenriched", doc.id, doc.url
                        )
                        out.append(doc)
        return out

    def _enrich_batch(self, docs: list[Document]) -> list[Document]:
        titles = [d.title or "" for d in docs]
        texts = [d.text or "" for d in docs]
        news = [i for i, d in enumerate(docs) if d.source_type == SourceType.news]
        posts = [i for i, d in enumerate(docs) if d.source_type != SourceType.news]
        topics: dict[int, Prediction] = {}
        sentiments: dict[int, Prediction] = {}
        toxic_preds: dict[int, Prediction] = {}
        for idx, models, sentiment_chars, with_toxicity in (
            (news, self.news_models, SENTIMENT_CHARS, self.toxicity_for_news),
            (posts, self.post_models, None, True),
        ):
            if not idx:
                continue
            part_texts, part_titles = [texts[i] for i in idx], [titles[i] for i in idx]
            topics.update(zip(idx, models["topic"].predict(part_texts, part_titles), strict=True))
            cut = [t[:sentiment_chars] for t in part_texts] if sentiment_chars else part_texts
            sentiments.update(zip(idx, models["sentiment"].predict(cut, part_titles), strict=True))
            if with_toxicity:
                toxic_preds.update(zip(idx, models["toxicity"].predict(part_texts, part_titles), strict=True))
        out = []
        for i, doc in enumerate(docs):
            out.append(self._fill(doc, topics[i], sentiments[i], toxic_preds.get(i)))
        return out

    def _fill(
        self, doc: Document, topic: Prediction, sentiment: Prediction, toxicity: Prediction | None
    ) -> Document:
        title, text = normalize_tone_marks(doc.title or ""), normalize_tone_marks(doc.text or "")
        lead, _rest = split_lead(text)
        parsed = self.nlp(f"{title}\n{text}")
        update: dict[str, Any] = {
            "lang": parsed._.lang,
            "topic": topic.label,
            "topic_scores": topic.scores,
            "sentiment": sentiment.label,
            "sentiment_scores": sentiment.scores,
            "entities": doc_entities(parsed),
            "keywords": extract_keywords(title, text, k=self.keywords_per_doc),
            "province_relevance": doc_province_relevance(
                parsed, self.province, title_end=len(title), lead_end=len(title) + 1 + len(lead)
            ),
        }
        if toxicity is not None:
            update["toxicity"] = toxicity.label
            update["toxicity_scores"] = toxicity.scores
        # Validate the filled document (model_copy alone would skip validation).
        return Document.model_validate({**doc.model_dump(), **update})


def _with_aliases(gaz: Gazetteer, province: str, aliases: Sequence[str]) -> Gazetteer:
    """The gazetteer, plus any configured alias it does not know yet, linked to ``province``."""
    canonical = gaz.canonical_province(province) or province
    unknown = [a for a in aliases if gaz.canonical_province(a) is None]
    if gaz.canonical_province(province) is None:
        unknown.append(province)
    if not unknown:
        return gaz
    extended = copy.deepcopy(gaz)
    for alias in unknown:
        extended.add(alias, _Phrase("LOC", canonical, "province"))
        extended.province_lookup[alias] = canonical
    return extended
