"""Analysts promote and roll back registered model versions from the UI/API (issue 7, Mô hình)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from duluan import accounts
from duluan.db import open_database
from duluan.settings import Settings
from duluan.web import create_app
from nlp.classify import load_classifier
from nlp.registry import register, served_version
from nlp.train import TrainConfig, evaluate, train
from tests.web.conftest import PASSWORD, build_home

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
SMALL = TrainConfig(word_features=2**14, char_ngrams=(2, 4), char_features=2**13, c=0.5, max_chars=500)


def _slice(src: Path, dst: Path, rows: int) -> Path:
    with gzip.open(src, "rt", encoding="utf-8") as handle, dst.open("w", encoding="utf-8") as out:
        for _, line in zip(range(rows), handle, strict=False):
            out.write(line)
    return dst


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[str]]:
    """A web home with two registered toxicity candidates trained on a slice of ViHSD."""
    root = tmp_path_factory.mktemp("models-web")
    settings = build_home(root / "home")
    train_file = _slice(DATASETS / "vihsd" / "train.jsonl.gz", root / "train.jsonl", 1200)
    dev_file = _slice(DATASETS / "vihsd" / "dev.jsonl.gz", root / "dev.jsonl", 300)
    engine = open_database(settings.db_url)
    ids = []
    for c in (0.5, 0.05):
        model = train("toxicity", [str(train_file)], TrainConfig(**{**SMALL.__dict__, "c": c}))
        version = register(
            engine,
            settings.models_dir,
            model,
            metrics={"vihsd-dev-slice": evaluate(model, dev_file).to_dict()},
            data_sources=[str(train_file)],
            created_by="analyst1",
        )
        ids.append(version.id)
    engine.dispose()
    return settings, ids


def _client(settings: Settings, username: str) -> TestClient:
    engine = open_database(settings.db_url)
    token = accounts.create_api_token(engine, username, "test")
    engine.dispose()
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})


def _served(settings: Settings) -> str | None:
    engine = open_database(settings.db_url)
    try:
        version = served_version(engine, settings.models_dir, "toxicity")
    finally:
        engine.dispose()
    return version.id if version else None


def test_promote_and_rollback_through_the_api(home: tuple[Settings, list[str]]) -> None:
    settings, (first, second) = home
    analyst = _client(settings, "analyst1")
    listed = analyst.get("/api/v1/models/versions", params={"task": "toxicity"}).json()
    assert {v["id"] for v in listed} == {first, second}
    assert all(v["status"] == "candidate" and 0 < v["macro_f1"] <= 1 for v in listed)

    assert _client(settings, "staff1").post(f"/api/v1/models/versions/{first}/promote").status_code == 403
    assert analyst.post("/api/v1/models/versions/toxicity-nope/promote").status_code == 404

    promoted = analyst.post(f"/api/v1/models/versions/{first}/promote")
    assert promoted.status_code == 200 and promoted.json()["status"] == "active"
    assert _served(settings) == first, "nlp.classify now loads the promoted version"
    assert load_classifier("toxicity", settings.models_dir).predict(["bài viết hay"])[0].label
    assert analyst.post(f"/api/v1/models/versions/{second}/promote").json()["status"] == "active"

    back = analyst.post("/api/v1/models/toxicity/rollback")
    assert back.status_code == 200 and back.json()["id"] == first
    statuses = {v["id"]: v["status"] for v in analyst.get("/api/v1/models/versions").json()}
    assert statuses[first] == "active" and statuses[second] != "active" and _served(settings) == first

    engine = open_database(settings.db_url)
    actions = [(e["action"], e["object_id"]) for e in accounts.list_audit(engine, limit=20)]
    engine.dispose()
    assert ("promote", second) in actions and ("rollback", first) in actions


def test_models_page_lists_versions_and_promotes_with_csrf(home: tuple[Settings, list[str]]) -> None:
    settings, (first, second) = home
    client = TestClient(create_app(settings))
    page = client.get("/login").text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login", data={"username": "analyst1", "password": PASSWORD, "csrf_token": csrf, "next": "/"}
    )
    models_page = client.get("/models").text
    assert first in models_page and second in models_page and "Đưa vào sử dụng" in models_page
    session_csrf = models_page.split('name="csrf_token" value="')[1].split('"')[0]

    refused = client.post(f"/models/versions/{second}/promote", data={}, follow_redirects=False)
    assert refused.status_code == 403, "a form without the session's CSRF token is refused"
    done = client.post(
        f"/models/versions/{second}/promote", data={"csrf_token": session_csrf}, follow_redirects=False
    )
    assert done.status_code == 303 and second in done.headers["location"]
    after = client.get(done.headers["location"]).text
    assert "Đã đưa phiên bản" in after and 'class="version-active"' in after
