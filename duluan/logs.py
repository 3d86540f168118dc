"""Logging set-up: readable lines by default, one JSON object per line with `log_json = true`."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from duluan.settings import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any `extra=` ids (document, source, rule) kept as fields."""

    _standard = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The handler filters too: Scrapy resets its own loggers to DEBUG when a crawl starts.
    handler.setLevel(settings.log_level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Scrapy and APScheduler are chatty at INFO; their warnings still come through.
    for noisy in (
        "scrapy",
        "apscheduler.scheduler",
        "apscheduler.executors",
        "filelock",
        "httpx",
        "alembic",
        "matplotlib",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
