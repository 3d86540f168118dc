"""SIGKILL `duluan index reindex --to elasticsearch` mid-copy: both sides stay usable, a rerun completes.

(Part of issue 8's crash-safety suite; it lives here to share the session's Elasticsearch.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from elasticsearch import Elasticsearch, NotFoundError
from index_testdata import make_doc

from index.es_backend import ElasticsearchIndex
from index.tantivy_backend import TantivyIndex
from tests.foundation.conftest import duluan_env, run_duluan

SEED = 20261131
TOTAL = 1500


def _es_count(client: Elasticsearch, alias: str) -> int:
    try:
        client.indices.refresh(index=alias)
        return int(client.count(index=alias)["count"])
    except NotFoundError:
        return 0


def test_reindex_killed_mid_copy_then_rerun(
    tmp_path: Path, elasticsearch_url: str, es_client: Elasticsearch
) -> None:
    rng = random.Random(SEED)
    home = tmp_path / "home"
    source = TantivyIndex(home / "index")
    try:
        source.upsert(
            make_doc(
                f"doc-{n}",
                f"Tin số {n}: Đồng Nai họp bàn về giao thông",
                f"Nội dung bài {n} về dự án đường cao tốc ở Biên Hòa và Đồng Xoài.",
                topic="giao-thong",
                sentiment="neutral",
            )
            for n in range(TOTAL)
        )
    finally:
        source.close()
    alias = f"test-killed-{uuid.uuid4().hex[:10]}"
    es_env = {
        "DULUAN_INDEX__ELASTICSEARCH_URL": elasticsearch_url,
        "DULUAN_INDEX__ELASTICSEARCH_INDEX": alias,
    }
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "duluan",
                "index",
                "reindex",
                "--to",
                "elasticsearch",
                "--batch-size",
                "50",
            ],
            cwd=tmp_path,
            env=duluan_env(home, **es_env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while _es_count(es_client, alias) == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.2))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the reindex finished before the kill"
        partial = _es_count(es_client, alias)
        assert 0 < partial < TOTAL

        # The embedded index (the previous state) is untouched and searchable ...
        embedded = TantivyIndex(home / "index")
        try:
            assert embedded.count("") == TOTAL
            assert embedded.search("giao thông", limit=5).total == TOTAL
        finally:
            embedded.close()
        # ... the half-filled target answers queries too ...
        target = ElasticsearchIndex(es_client, alias)
        assert target.count("giao thông") == partial

        # ... and a rerun completes it without duplicates.
        rerun = run_duluan("index", "reindex", "--to", "elasticsearch", home=home, **es_env)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        report = json.loads(rerun.stdout.strip().splitlines()[-1])
        assert report["copied"] == report["matching_in_target"] == TOTAL
        assert _es_count(es_client, alias) == TOTAL
    finally:
        ElasticsearchIndex(es_client, alias).drop()
