"""Index stage: stores documents and answers searches and aggregations.

- `backend.SearchBackend`: the one interface callers depend on (with `SearchFilters`, `Hit`, `StoryHit`).
- `tantivy_backend.TantivyIndex`: the embedded default, a folder shared safely between processes.
- `es_backend.ElasticsearchIndex` / `open_elasticsearch(url, index_name)`: the same interface on an
  Elasticsearch 7.10+/8.x/9.x or OpenSearch cluster (template, alias + rollover, bulk with backoff).
- `query`: the staff query language (Lark grammar → typed AST; `explain`, `format_error`).
- `es_query`: the same AST compiled to Elasticsearch/OpenSearch DSL, with the explicit mapping.
- `reindex.reindex`: copy documents between backends.
- `export.export_results`: any result set to CSV/XLSX, streaming, formula-injection safe.
- `saved_searches`: the `saved_searches` table (own `metadata`) with save/list/get/delete.
"""
