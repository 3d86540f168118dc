"""The outbox sender in its own process, for the crash tests: `python alert_sender.py JOB.json`.

JOB has `db_url`, `smtp` (host, port, ca_file, username, password), `now` (ISO time the pass runs at)
and optionally `kill_after_claim` / `kill_on_mark` (SIGKILL this process right after the n-th claim
committed — before anything is sent — or right before the n-th `sent` mark, i.e. after the SMTP
server accepted the message). Prints the `DeliveryReport` as JSON on its last stdout line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import alerts.delivery
from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.delivery import deliver_pending


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    claims = marks = 0
    real_claim, real_mark = alerts.delivery._claim, alerts.delivery._mark

    def claim(engine: sa.Engine, delivery_id: int, now: datetime) -> bool:
        nonlocal claims
        taken = real_claim(engine, delivery_id, now)
        claims += taken
        if taken and claims == job.get("kill_after_claim"):
            os.kill(os.getpid(), signal.SIGKILL)
        return taken

    def mark(engine: sa.Engine, delivery_ids: list[int], **values: Any) -> None:
        nonlocal marks
        if values.get("status") == "sent":
            marks += 1
            if marks == job.get("kill_on_mark"):
                os.kill(os.getpid(), signal.SIGKILL)
        real_mark(engine, delivery_ids, **values)

    alerts.delivery._claim = claim
    alerts.delivery._mark = mark
    smtp = job["smtp"]
    channel = EmailChannel(
        SmtpConfig(
            host=smtp["host"],
            port=smtp["port"],
            sender="canh-bao@ioc.example.vn",
            username=smtp["username"],
            password=smtp["password"],
            starttls=True,
            ca_file=smtp["ca_file"],
            timeout_s=10,
        )
    )
    engine = sa.create_engine(job["db_url"])
    report = deliver_pending(
        engine,
        {"email": channel},
        ui_base_url="http://127.0.0.1:8000",
        now=datetime.fromisoformat(job["now"]),
    )
    engine.dispose()
    data = asdict(report)
    data["unconfigured_channels"] = sorted(report.unconfigured_channels)
    print(json.dumps(data, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
