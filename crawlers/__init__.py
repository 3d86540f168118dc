"""Collection stage: source registry, Scrapy spiders and pipelines, article extraction, URL identity.

Imports flow one way: this package depends on `schema` only; NLP enrichment and indexing are
injected as plain callables by the composition root.
"""
