"""SIGKILL the alert sender (a real process) at seeded points; check what the SMTP server received.

Extends tests/alerts/test_alert_delivery.py (which simulates the crash in-process with SystemExit):
here the sender is its own process and dies by SIGKILL — right after claiming a row, right before
marking a sent one, in the middle of the SMTP DATA exchange (the server kills it on receipt), or
after a random delay. The sender is restarted after every kill, then once more after the
interrupted-claim timeout, until the outbox is settled. On the aiosmtpd side:

* no idempotency key arrives twice (no duplicate e-mail);
* every alert reached the server: a kill after the claim but before the message left (connect,
  STARTTLS, login) leaves the row `sending`, which is requeued once stale; a kill after that point
  leaves it `transmitting` and it is reported as `interrupted`, never resent (it did arrive).
"""

from __future__ import annotations

import json
import random
import signal
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.engine import run_rules_once
from alerts.store import alert_deliveries, metadata, save_rule
from index.tantivy_backend import TantivyIndex
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, SmtpInbox, _free_port, _self_signed
from tests.alerts.factories import make_doc
from tests.reliability.conftest import child_env, integrity, kill_quietly

SEED = 20261129
NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
RULES = 12
SENDER = Path(__file__).resolve().parent / "alert_sender.py"


class KillingInbox(SmtpInbox):
    """The aiosmtpd handler of tests/alerts, able to SIGKILL the sender on the n-th message received."""

    kill_on_data: int | None = None
    target_pid: int | None = None
    pid_known: threading.Event

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        hit = self.kill_on_data is not None and len(self.messages) == self.kill_on_data
        if hit and self.pid_known.wait(5) and self.target_pid:
            kill_quietly(self.target_pid)  # the message is here; the sender never hears "250"
        return answer


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[KillingInbox]:
    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    box = KillingInbox(host="127.0.0.1", port=_free_port(), ca_file=str(cert))
    box.pid_known = threading.Event()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok)

    controller = Controller(
        box,
        hostname=box.host,
        port=box.port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[str]:
    """An app database whose outbox holds one e-mail alert from each of RULES rules."""
    db_url = f"sqlite:///{tmp_path / 'duluan.db'}"
    engine = sa.create_engine(db_url)
    metadata.create_all(engine)
    index = TantivyIndex(tmp_path / "index")
    try:
        index.upsert(
            [
                make_doc(
                    f"ngap-sau-{n}",
                    source="baodongnai",
                    title=f"Ngập sâu tại phường {n}, Biên Hòa sau mưa lớn",
                    published_at=NOW - timedelta(minutes=10 + n),
                    sentiment="negative",
                    topic="moi-truong",
                    cluster_id="c-ngap-bien-hoa",
                    province_relevance=0.9,
                )
                for n in range(3)
            ]
        )
        for n in range(RULES):
            save_rule(
                engine,
                {
                    "name": f"Ngập lụt Đồng Nai — ca trực {n}",
                    "owner": "ioc",
                    "rule_type": "match",
                    "filters": {"sentiment": "negative", "min_province_relevance": 0.5},
                    "channels": [{"channel": "email", "recipients": [f"truc-ban-{n}@ioc.example.vn"]}],
                },
            )
        assert len(run_rules_once(index, engine, NOW)) == RULES
    finally:
        index.close()
        engine.dispose()
    yield db_url


def _statuses(db_url: str) -> dict[str, str]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(alert_deliveries.c.idempotency_key, alert_deliveries.c.status))
            return {row.idempotency_key: row.status for row in rows}
    finally:
        engine.dispose()


def _key(mail: Any) -> str:
    """The idempotency key header, unfolded (a long value is folded onto several lines)."""
    return "".join(str(mail["X-Duluan-Idempotency-Key"]).split())


def _received_keys(inbox: KillingInbox) -> set[str]:
    return {_key(m) for m in inbox.messages}


def _run_sender(
    tmp_path: Path, db_url: str, inbox: KillingInbox, now: datetime, **kill: int
) -> tuple[int, dict[str, Any] | None]:
    job = {
        "db_url": db_url,
        "now": now.isoformat(),
        "smtp": {
            "host": inbox.host,
            "port": inbox.port,
            "ca_file": inbox.ca_file,
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
        },
        **{k: v for k, v in kill.items() if k != "kill_on_data"},
    }
    job_path = tmp_path / "sender-job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    inbox.kill_on_data = (len(inbox.messages) + kill["kill_on_data"]) if "kill_on_data" in kill else None
    inbox.target_pid = None
    inbox.pid_known.clear()
    proc = subprocess.Popen(
        [sys.executable, str(SENDER), str(job_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    inbox.target_pid = proc.pid
    inbox.pid_known.set()
    out, err = proc.communicate(timeout=60)
    inbox.kill_on_data = None
    if proc.returncode == -signal.SIGKILL:
        return proc.returncode, None
    assert proc.returncode == 0, err[-3000:]
    return 0, json.loads(out.strip().splitlines()[-1])


def test_sender_killed_at_random_points_never_duplicates_or_silently_loses(
    tmp_path: Path, outbox: str, inbox: KillingInbox
) -> None:
    rng = random.Random(SEED)
    killed_unsent: set[str] = set()  # rows claimed by a sender that died before sending them
    landed = 0
    moment = NOW
    for _trial in range(6):
        pending = [k for k, s in _statuses(outbox).items() if s == "pending"]
        if not pending:
            break
        mode = rng.choice(["kill_after_claim", "kill_on_mark", "kill_on_data"])
        point = rng.randint(1, max(1, len(pending) // 3))
        before = _statuses(outbox)
        moment += timedelta(minutes=1)
        code, _ = _run_sender(tmp_path, outbox, inbox, moment, **{mode: point})
        assert code == -signal.SIGKILL, f"{mode}={point} did not kill the sender"
        landed += 1
        after = _statuses(outbox)
        newly_claimed = {
            k for k, s in after.items() if s in ("sending", "transmitting") and before[k] == "pending"
        }
        received = _received_keys(inbox)
        if mode == "kill_after_claim":
            killed_unsent |= newly_claimed - received
        else:  # killed after the server had the message: it is there, and still `sending`
            assert newly_claimed <= received, "a row left `sending` after the hand-over was never received"
        assert integrity(tmp_path / "duluan.db") == "ok"
    assert landed >= 5

    # Restart until settled: soon (claims not yet stale), then after the interrupted-claim timeout.
    for later in (timedelta(minutes=2), timedelta(hours=1), timedelta(hours=2)):
        code, report = _run_sender(tmp_path, outbox, inbox, moment + later)
        assert code == 0 and report is not None

    keys = Counter(_key(m) for m in inbox.messages)
    assert not [k for k, n in keys.items() if n > 1], f"duplicate e-mails reached the server: {keys}"
    final = _statuses(outbox)
    assert len(final) == RULES
    assert set(final.values()) <= {"sent", "interrupted"}, final
    received = set(keys)
    assert received == set(final), f"alerts lost: {set(final) - received}"
    assert killed_unsent, "the seeded trials include a kill between claim and send"
    for key in killed_unsent:
        assert final[key] == "sent", f"{key} was claimed by a killed sender and never requeued"
