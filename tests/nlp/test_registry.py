"""Model registry: register, promote (atomic, crash-safe), rollback, and the explanation of predictions."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from nlp import registry
from nlp.classify import SHIPPED_MODELS_DIR, load_classifier
from nlp.explain import explain, feature_names
from nlp.registry import (
    NoEarlierVersionError,
    RegistryError,
    UnknownVersionError,
    WrongTaskError,
    active_version,
    file_sha256,
    get_version,
    list_versions,
    promote,
    promotion_history,
    reconcile_status,
    register,
    rollback,
    served_file,
    served_version,
)
from nlp.textmodel import LinearTextModel
from nlp.train import TrainConfig, evaluate, train

REPO = Path(__file__).resolve().parents[2]
SMALL = TrainConfig(word_features=2**14, char_ngrams=(2, 4), char_features=2**13, c=0.5, max_chars=500)
TOXIC_TEXTS = ["thằng này ngu như bò, đồ chó", "bài viết rất hay, cảm ơn tác giả"]


def _slice(src: Path, dst: Path, n: int, every: int) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    with gzip.open(src, "rt", encoding="utf-8") as handle, dst.open("w", encoding="utf-8") as out:
        for i, line in enumerate(handle):
            if i % every == 0:
                out.write(line)
                kept += 1
                if kept >= n:
                    break
    return dst


@pytest.fixture(scope="module")
def slices(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """≤ 1,500 rows of ViHSD train and 400 of dev (read from the shared datasets, written to tmp)."""
    root = tmp_path_factory.mktemp("vihsd")
    return {
        "train": _slice(datasets / "vihsd" / "train.jsonl.gz", root / "vihsd" / "train.jsonl", 1500, 7),
        "dev": _slice(datasets / "vihsd" / "dev.jsonl.gz", root / "vihsd" / "dev.jsonl", 400, 3),
    }


@pytest.fixture(scope="module")
def models(slices: dict[str, Path]) -> dict[str, LinearTextModel]:
    """Two different toxicity models (regularisation differs) trained on the slice."""
    return {
        name: train("toxicity", [str(slices["train"])], dataclasses.replace(SMALL, c=c))
        for name, c in (("a", 0.5), ("b", 0.05))
    }


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    registry.metadata.create_all(eng)
    return eng


def _register(
    engine: sa.Engine,
    models_dir: Path,
    models: dict[str, LinearTextModel],
    name: str,
    slices: dict[str, Path],
) -> str:
    model = models[name]
    version = register(
        engine,
        models_dir,
        model,
        metrics={str(slices["dev"]): evaluate(model, slices["dev"]).to_dict()},
        data_sources=[str(slices["train"])],
        created_by="analyst1",
    )
    return version.id


def _active_id(engine: sa.Engine) -> str | None:
    version = active_version(engine, "toxicity")
    return version.id if version else None


def _served_id(engine: sa.Engine, models_dir: Path) -> str | None:
    version = served_version(engine, models_dir, "toxicity")
    return version.id if version else None


def _probs(models_dir: Path) -> np.ndarray:
    return load_classifier("toxicity", models_dir).model.predict_proba(TOXIC_TEXTS)


def test_register_records_metrics_hash_and_immutable_artefact(engine, tmp_path, models, slices) -> None:
    models_dir = tmp_path / "models"
    vid = _register(engine, models_dir, models, "a", slices)
    v = get_version(engine, vid)
    assert v.status == "candidate" and v.task == "toxicity" and v.created_by == "analyst1"
    assert v.id.startswith("toxicity-")
    assert v.artefact(models_dir) == models_dir / "registry" / "toxicity" / vid / "model.joblib"
    assert file_sha256(v.artefact(models_dir)) == v.artefact_sha256
    (dev_metrics,) = v.metrics.values()
    assert set(dev_metrics["per_class"]) == {"clean", "offensive", "hate"}
    assert len(dev_metrics["confusion"]) == 3 and 0 < dev_metrics["macro_f1"] < 1
    assert v.macro_f1 == pytest.approx(dev_metrics["macro_f1"])
    assert v.config["c"] == 0.5 and v.data_sources[0]["rows"] == 1500
    # The data hash is over content: the same bytes elsewhere hash the same, one changed byte does not.
    copy = tmp_path / "elsewhere" / "x.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(slices["train"].read_bytes())
    assert registry.data_hash([copy]) == v.data_hash
    copy.write_bytes(slices["train"].read_bytes() + b"\n")
    assert registry.data_hash([copy]) != v.data_hash
    # Metrics beside the artefact in the layout the web's Models page reads.
    doc = json.loads((v.artefact(models_dir).parent / "metrics.json").read_text(encoding="utf-8"))
    assert doc["registry"]["version"] == vid and doc["dev"] == v.metrics
    # Registering does not change what is in service.
    assert not served_file(models_dir, "toxicity").exists()
    assert active_version(engine, "toxicity") is None
    assert [x.id for x in list_versions(engine, "toxicity")] == [vid]


def test_promote_rollback_and_history(engine, tmp_path, models, slices) -> None:
    models_dir = tmp_path / "models"
    shipped = _probs(models_dir)  # nothing in models_dir yet: the shipped model
    a = _register(engine, models_dir, models, "a", slices)
    b = _register(engine, models_dir, models, "b", slices)

    promote(engine, models_dir, a, "lead")
    assert np.allclose(_probs(models_dir), models["a"].predict_proba(TOXIC_TEXTS), atol=2e-3)
    assert _active_id(engine) == a
    # The shipped model that was in service is registered so that it can be returned to.
    baseline = [v for v in list_versions(engine, "toxicity") if v.created_by == "shipped"]
    assert len(baseline) == 1 and baseline[0].status == "retired"
    assert baseline[0].artefact_sha256 == file_sha256(SHIPPED_MODELS_DIR / "toxicity" / "model.joblib")

    promote(engine, models_dir, b, "lead")
    assert _served_id(engine, models_dir) == b
    assert {v.id: v.status for v in list_versions(engine, "toxicity")}[a] == "retired"
    assert json.loads((models_dir / "toxicity" / "metrics.json").read_text())["registry"]["version"] == b

    assert rollback(engine, models_dir, "toxicity", "lead").id == a
    assert np.allclose(_probs(models_dir), models["a"].predict_proba(TOXIC_TEXTS), atol=2e-3)
    assert rollback(engine, models_dir, "toxicity", "lead").id == baseline[0].id
    assert np.allclose(_probs(models_dir), shipped, atol=1e-6)
    with pytest.raises(NoEarlierVersionError, match="no earlier toxicity model"):
        rollback(engine, models_dir, "toxicity", "lead")
    assert [h["action"] for h in promotion_history(engine, "toxicity")] == [
        "baseline",
        "promote",
        "promote",
        "rollback",
        "rollback",
    ]
    statuses = [v.status for v in list_versions(engine, "toxicity")]
    assert statuses.count("active") == 1
    assert reconcile_status(engine, models_dir, "toxicity") is None


def test_bad_requests_are_refused_with_clear_errors(engine, tmp_path, models, slices) -> None:
    models_dir = tmp_path / "models"
    with pytest.raises(UnknownVersionError, match="nlp versions"):
        promote(engine, models_dir, "toxicity-nope", "lead")
    with pytest.raises(NoEarlierVersionError, match="nothing was promoted"):
        rollback(engine, models_dir, "toxicity", "lead")
    a = _register(engine, models_dir, models, "a", slices)
    with pytest.raises(WrongTaskError, match="is a toxicity model, not a topic model"):
        get_version(engine, a, "topic")
    artefact = get_version(engine, a).artefact(models_dir)
    artefact.write_bytes(artefact.read_bytes()[:1000])  # damaged on disk
    with pytest.raises(RegistryError, match="changed since it was registered"):
        promote(engine, models_dir, a, "lead")
    assert not served_file(models_dir, "toxicity").exists()
    assert active_version(engine, "toxicity") is None


def test_promote_failing_midway_leaves_previous_model_in_service(
    engine, tmp_path, models, slices, monkeypatch: pytest.MonkeyPatch
) -> None:
    models_dir = tmp_path / "models"
    a = _register(engine, models_dir, models, "a", slices)
    b = _register(engine, models_dir, models, "b", slices)
    promote(engine, models_dir, a, "lead")
    before = _probs(models_dir)
    real_replace = os.replace

    def failing_replace(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        if Path(dst).name == "model.joblib":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(registry.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        promote(engine, models_dir, b, "lead")
    monkeypatch.undo()
    assert np.allclose(_probs(models_dir), before)  # the previous model still loads and serves
    assert _active_id(engine) == a  # status rolled back
    assert [h["action"] for h in promotion_history(engine, "toxicity")][-1] == "promote"
    assert len(promotion_history(engine, "toxicity")) == 2  # baseline + a; nothing recorded for b
    assert not list((models_dir / "toxicity").glob(".*tmp*"))  # no temp file left behind
    promote(engine, models_dir, b, "lead")  # and a retry works
    assert _served_id(engine, models_dir) == b


_CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import sqlalchemy as sa
    from nlp import registry

    db, models_dir, version, when = sys.argv[1:5]
    real_replace, real_switch = os.replace, registry._switch_served_files

    def replace(src, dst):  # killed (no cleanup, no rollback) just before the model file is switched
        if Path(dst).name == "model.joblib":
            os._exit(9)
        real_replace(src, dst)

    def switch(*args):  # killed after the switch, before the commit
        real_switch(*args)
        os._exit(9)

    if when == "before-switch":
        registry.os.replace = replace
    else:
        registry._switch_served_files = switch
    registry.promote(sa.create_engine(f"sqlite:///{db}"), Path(models_dir), version, "lead")
    """
)


def _promote_and_kill(db: Path, models_dir: Path, version: str, when: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(db), str(models_dir), version, when],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr


def test_promote_killed_midway_leaves_a_loadable_model(engine, tmp_path, models, slices) -> None:
    models_dir = tmp_path / "models"
    db = tmp_path / "app.db"
    a = _register(engine, models_dir, models, "a", slices)
    b = _register(engine, models_dir, models, "b", slices)
    promote(engine, models_dir, a, "lead")
    before = _probs(models_dir)

    # Killed after copying b's files to temp files, before the model file is replaced.
    _promote_and_kill(db, models_dir, b, "before-switch")
    assert np.allclose(_probs(models_dir), before)
    assert _active_id(engine) == a  # uncommitted: gone
    assert _served_id(engine, models_dir) == a
    assert list((models_dir / "toxicity").glob(".model.joblib.tmp-*"))  # the crash left a temp file
    promote(engine, models_dir, b, "lead")  # a later promotion cleans up and works
    assert not list((models_dir / "toxicity").glob(".*.tmp-*"))
    assert _served_id(engine, models_dir) == b

    # Killed after the switch, before the commit: the new model serves, the registry notices.
    _promote_and_kill(db, models_dir, a, "after-switch")
    assert np.allclose(_probs(models_dir), before, atol=1e-6)
    warning = reconcile_status(engine, models_dir, "toxicity")
    assert warning is not None and f"says {b} is active" in warning and a in warning
    # Rolling back from there returns to b (the version the registry had in service).
    assert rollback(engine, models_dir, "toxicity", "lead").id == b
    assert _served_id(engine, models_dir) == b
    assert reconcile_status(engine, models_dir, "toxicity") is None


def test_explanation_adds_up_to_the_score(models) -> None:
    model = models["a"]
    text = "Thằng này ngu như bò, đồ chó! Bài viết này rất hay."
    result = explain(model, text, k=10_000)
    total = sum(c.contribution for c in result.supporting + result.opposing)
    assert result.intercept + total == pytest.approx(result.score, abs=1e-4)
    decision = model.decision_function([text])[0]
    assert result.score == pytest.approx(float(decision[model.labels.index(result.label)]), abs=1e-4)
    assert result.label == model.predict([text])[0]
    # Every non-zero column of the text is named by the n-grams that produced it.
    x = model.features.transform([text])
    names = feature_names(model, text)
    assert all(int(j) in names for j in x.indices)
    top = explain(model, text, k=3)
    assert len(top.supporting) <= 3
    assert [c.contribution for c in top.supporting] == sorted(
        (c.contribution for c in top.supporting), reverse=True
    )
    kinds = {c.kind for c in result.supporting + result.opposing}
    assert {"word", "char"} <= kinds
    forced = explain(model, text, label="clean", k=5)
    assert forced.label == "clean"
    with pytest.raises(ValueError, match="not a label of the toxicity model"):
        explain(model, text, label="positive")
