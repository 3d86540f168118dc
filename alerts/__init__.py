"""Alerts stage (cảnh báo) and the leaders' daily digest (bản tin tổng hợp).

Reads the index only through `index.backend.SearchBackend`:
- `rules`: one class per rule type behind the `RULE_TYPES` registry; each decision is a pure function.
- `store`: SQLAlchemy tables (rules, per-key rule state, outbox) and rule save/load with validation.
- `engine`: `run_rules_once` evaluates due rules, suppresses re-alerts and writes the outbox atomically.
- `digest`: builds, renders (HTML with charts) and writes the daily digest.
- `seed`: default rules for the monitored province, loaded from `seed_rules.yaml`.
"""
