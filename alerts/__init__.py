"""Alerts stage (cảnh báo) and the leaders' daily digest (bản tin tổng hợp).

Reads the index only through `index.backend.SearchBackend`:
- `rules`: one class per rule type behind the `RULE_TYPES` registry; each decision is a pure function.
- `store`: SQLAlchemy tables (rules, per-key rule state, outbox) and rule save/load with validation.
- `engine`: `run_rules_once` evaluates due rules, suppresses re-alerts and writes the outbox atomically.
- `delivery` + `channels` + `messages`: the outbox sender (claim before send: exactly once) and the
  e-mail, webhook, Telegram and Zalo channels with their Vietnamese templates.
- `digest`: builds and renders the digest (HTML with charts, PDF via WeasyPrint with embedded Vietnamese
  fonts, an e-mail with inline charts and the PDF attached) and archives it (`archive_digest`).
- `digest_delivery`: the digest's own e-mail outbox per recipient group, exactly once like alerts.
- `lease`: a lease row in the app database so only one of several service processes runs the scheduler.
- `seed`: default rules for the monitored province, loaded from `seed_rules.yaml`.
"""
