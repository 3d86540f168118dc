"""Benchmark: latency from a document being indexed to its alert reaching an SMTP server (goal ≤ 60 s).

Runs the real service (`python -m duluan up`, its scheduler and lease) on a fresh home, with the rule
cycle shortened from 5 min to 30 s (`alerts.rule_interval_seconds = 30`) and e-mail going to a real
aiosmtpd server on 127.0.0.1. The service watches the monitored province with one `match` rule
(negative, relevance ≥ 0.5). This script then indexes one matching document at a time at random
intervals — as a crawl would — and records when the e-mail naming it arrives.

    .venv/bin/python -m bench.alerts_latency --documents 12
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from alerts.store import save_rule
from duluan.db import open_database
from index.tantivy_backend import TantivyIndex
from schema import Document

REPO = Path(__file__).resolve().parents[1]
MARK = re.compile(r"tai-lieu-do-tre-(\d+)")


class Inbox:
    """aiosmtpd handler: when each document's mark first arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.messages = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        received = time.time()
        mail = BytesParser(policy=email_policy.default).parsebytes(envelope.original_content)
        assert isinstance(mail, EmailMessage)
        body = mail.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        self.messages += 1
        for mark in MARK.findall(f"{mail['Subject']}\n{text}"):
            self.arrivals.setdefault(int(mark), received)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def matching_document(number: int) -> Document:
    now = datetime.now(UTC)
    url = f"https://bao.example.vn/tai-lieu-do-tre-{number}.html"
    return Document(
        id=hashlib.sha1(url.encode()).hexdigest(),
        url=url,
        canonical_url=url,
        source="baodongnai",
        title=f"Sạt lở bờ sông Đồng Nai, người dân lo lắng (tai-lieu-do-tre-{number})",
        text="Sạt lở nghiêm trọng tại Biên Hòa, Đồng Nai; người dân phải di dời khẩn cấp.",
        published_at=now,
        fetched_at=now,
        topic="moi-truong",
        sentiment="negative",
        cluster_id=f"do-tre-{number}",
        province_relevance=0.9,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=12)
    parser.add_argument("--rule-interval", type=int, default=30, help="Rule cycle in seconds.")
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(10.0, 45.0), help="Random pause between documents."
    )
    parser.add_argument("--wait", type=float, default=180.0, help="Give up on an alert after this long.")
    args = parser.parse_args()

    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    home = Path(tempfile.mkdtemp(prefix="alerts-latency-")) / "home"
    seed = home.parent / "sources.yaml"  # one disabled source: no crawl reaches the network
    seed.write_text(
        "sources:\n  - id: tat\n    name: Nguồn tắt\n    type: rss\n    enabled: false\n"
        "    start_urls: [http://127.0.0.1:9/rss.xml]\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DULUAN_HOME": str(home),
        "DULUAN_WEB__PORT": str(free_port()),
        "DULUAN_CRAWL__SOURCES_SEED": str(seed),
        "DULUAN_ALERTS__RULE_INTERVAL_SECONDS": str(args.rule_interval),
        "DULUAN_ALERTS__SMTP__HOST": "127.0.0.1",
        "DULUAN_ALERTS__SMTP__PORT": str(smtp_port),
        "DULUAN_ALERTS__SMTP__STARTTLS": "false",
        "DULUAN_ALERTS__SMTP__SENDER": "canh-bao@ioc.example.vn",
    }
    engine = open_database(f"sqlite:///{(home / 'duluan.db').resolve()}")
    save_rule(
        engine,
        {
            "name": "Tin tiêu cực về Đồng Nai",
            "owner": "bench",
            "rule_type": "match",
            "filters": {"sentiment": "negative", "min_province_relevance": 0.5},
            "channels": [{"channel": "email", "recipients": ["truc-ban@ioc.example.vn"]}],
        },
    )
    engine.dispose()
    log_path = home.parent / "service.log"
    with log_path.open("w") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "duluan", "up"],
            cwd=home.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    index = TantivyIndex(home / "index")
    indexed: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 120
        while "scheduler lease and runs the scheduled jobs" not in log_path.read_text():
            if time.monotonic() > deadline or service.poll() is not None:
                raise SystemExit(f"the service did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        port = env["DULUAN_WEB__PORT"]
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        print(f"service up (rule cycle {args.rule_interval} s); indexing {args.documents} document(s)")
        rng = random.Random(3)
        for number in range(args.documents):
            time.sleep(rng.uniform(*args.gap))
            index.upsert([matching_document(number)])
            indexed[number] = time.time()
        end = time.monotonic() + args.wait
        while len(inbox.arrivals) < len(indexed) and time.monotonic() < end:
            time.sleep(0.5)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
        index.close()
        controller.stop()
    latencies = [inbox.arrivals[n] - at for n, at in indexed.items() if n in inbox.arrivals]
    missing = sorted(set(indexed) - set(inbox.arrivals))
    print(
        f"{len(latencies)}/{len(indexed)} alerts arrived in {inbox.messages} e-mail(s); "
        f"missing: {missing or 'none'}"
    )
    if latencies:
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(
            f"latency indexed → SMTP: min {ordered[0]:.1f} s, median {statistics.median(ordered):.1f} s, "
            f"p95 {p95:.1f} s, max {ordered[-1]:.1f} s (goal ≤ 60 s)"
        )


if __name__ == "__main__":
    main()
