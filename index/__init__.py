"""Index stage: stores documents and answers searches and aggregations.

- `backend.SearchBackend`: the one interface callers depend on (with `SearchFilters`, `Hit`, `StoryHit`).
- `tantivy_backend.TantivyIndex`: the embedded default, a folder shared safely between processes.
- `query`: the staff query language (Lark grammar → typed AST; `explain`, `format_error`).
- `es_query`: the same AST compiled to Elasticsearch/OpenSearch DSL, with the explicit mapping.
- `reindex.reindex`: copy documents between backends.
"""
