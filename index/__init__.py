"""Index stage: stores documents and answers searches and aggregations.

`backend.SearchBackend` is the one interface; `tantivy_backend` is the embedded default and
the Elasticsearch backend scales out behind the same interface.
"""
