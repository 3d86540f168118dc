"""The contract every stage shares: the document model and the label vocabularies.

This package imports nothing of ours, so crawlers, nlp, index and alerts can all depend on it
without depending on each other.
"""

from schema.document import Document, Entity, SourceType
from schema.labels import SENTIMENTS, TOPICS, TOXICITY_LABELS, Sentiment, Toxicity

__all__ = [
    "SENTIMENTS",
    "TOPICS",
    "TOXICITY_LABELS",
    "Document",
    "Entity",
    "Sentiment",
    "SourceType",
    "Toxicity",
]
