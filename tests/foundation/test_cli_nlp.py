"""`duluan nlp …`: the analysts' loop — train, eval, versions, promote, predict, explain, rollback — and the
training on the analysts' corrections (one real child process, the rest in process to stay fast)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from duluan import accounts
from duluan.cli import app
from duluan.db import open_database
from duluan.settings import load_settings
from duluan.wiring import open_backend
from nlp.classify import load_classifier
from nlp.train import load_examples
from schema.document import Document
from tests.foundation.conftest import run_duluan

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
SAMPLE = "giảng viên dạy rất nhiệt tình, dễ hiểu"


def _slice(src: Path, dst: Path, n: int, every: int) -> Path:
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
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """1,200 rows of UIT-VSFC train and 300 of dev (read from the shared datasets), a small config."""
    root = tmp_path_factory.mktemp("uit_vsfc")
    config = root / "small.yaml"
    config.write_text("word_features: 16384\nchar_features: 16384\nchar_ngrams: [2, 4]\n", encoding="utf-8")
    return {
        "train": _slice(DATASETS / "uit_vsfc" / "train.jsonl.gz", root / "train.jsonl", 1200, 9),
        "dev": _slice(DATASETS / "uit_vsfc" / "dev.jsonl.gz", root / "dev.jsonl", 300, 5),
        "config": config,
    }


def _nlp(home: Path, *args: str, input: str | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "DULUAN_USER": "analyst1"})
    return runner.invoke(app, ["--home", str(home), "nlp", *args], input=input)


def _train(home: Path, data: dict[str, Path], *extra: str) -> dict:
    result = _nlp(
        home,
        "train",
        "--task",
        "sentiment",
        "--data",
        str(data["train"]),
        "--dev",
        str(data["dev"]),
        "--config",
        str(data["config"]),
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _predict(home: Path, *extra: str) -> dict:
    result = _nlp(home, "predict", "--task", "sentiment", *extra, input=json.dumps({"text": SAMPLE}) + "\n")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_evaluate_promote_explain_rollback(tmp_path: Path, data: dict[str, Path]) -> None:
    home = tmp_path / "home"
    version = _train(home, data, "--note", "first try")
    vid = version["id"]
    assert version["status"] == "candidate" and version["created_by"] == "analyst1"
    assert version["note"] == "first try" and version["config"]["word_features"] == 16384
    metrics = version["metrics"][str(data["dev"])]
    assert set(metrics["per_class"]) == {"negative", "neutral", "positive"}
    assert sum(map(sum, metrics["confusion"])) == metrics["n"] == 300
    assert 0.3 < metrics["macro_f1"] < 1 and 0 <= metrics["expected_calibration_error"] < 1

    listed = _nlp(home, "versions", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [vid]
    table = _nlp(home, "versions")
    assert vid in table.stdout and "candidate" in table.stdout

    evaluated = _nlp(
        home, "eval", "--task", "sentiment", "--data", str(data["dev"]), "--model", vid, "--json"
    )
    assert evaluated.exit_code == 0, evaluated.output
    again = json.loads(evaluated.stdout)
    assert again["macro_f1"] == pytest.approx(metrics["macro_f1"]) and again["model"] == vid
    shown = _nlp(home, "eval", "--task", "sentiment", "--data", str(data["dev"]), "--model", vid)
    assert "macro-F1" in shown.stdout and "confusion matrix" in shown.stdout and "neutral" in shown.stdout

    shipped = load_classifier("sentiment").predict([SAMPLE])[0]
    assert _predict(home)["scores"] == shipped.scores  # nothing promoted: the shipped model serves
    candidate = _predict(home, "--model", vid)
    promoted = _nlp(home, "promote", vid)
    assert promoted.exit_code == 0 and f"promoted {vid}" in promoted.stdout
    assert _predict(home)["scores"] == candidate["scores"]
    assert candidate["scores"] != shipped.scores

    explained = _nlp(home, "explain", "--task", "sentiment", "--json", "--top", "3", input=SAMPLE)
    assert explained.exit_code == 0, explained.output
    why = json.loads(explained.stdout)
    assert why["label"] == candidate["label"] and why["model"].startswith("in service")
    assert 0 < len(why["supporting"]) <= 3
    assert all(c["contribution"] > 0 for c in why["supporting"])
    table = _nlp(home, "explain", "--task", "sentiment", "--model", vid, input=SAMPLE)
    assert f"for {candidate['label']}" in table.stdout and "contribution" in table.stdout

    rolled = _nlp(home, "rollback", "--task", "sentiment")
    assert rolled.exit_code == 0 and "rolled back to sentiment-shipped-" in rolled.stdout
    assert _predict(home)["scores"] == shipped.scores
    by_id = {
        row["id"]: row["status"]
        for row in map(
            json.loads, _nlp(home, "versions", "--task", "sentiment", "--json").stdout.splitlines()
        )
    }
    assert by_id[vid] == "retired" and sorted(by_id.values()) == ["active", "retired"]


def test_errors_exit_2_with_a_clear_message(tmp_path: Path, data: dict[str, Path]) -> None:
    home = tmp_path / "home"
    unknown = _nlp(home, "promote", "sentiment-20990101-000000-beef")
    assert unknown.exit_code == 2 and "no model version 'sentiment-20990101-000000-beef'" in unknown.stderr
    missing = _nlp(home, "train", "--task", "sentiment", "--data", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "nope.jsonl not found" in missing.stderr
    bad_task = _nlp(home, "train", "--task", "weather", "--data", str(data["train"]))
    assert bad_task.exit_code == 2 and "unknown task 'weather'" in bad_task.stderr
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("learning_rate: 0.1\n", encoding="utf-8")
    rejected = _nlp(
        home, "train", "--task", "sentiment", "--data", str(data["train"]), "--config", str(bad_config)
    )
    assert rejected.exit_code == 2 and "unknown training config keys ['learning_rate']" in rejected.stderr
    no_rollback = _nlp(home, "rollback", "--task", "sentiment")
    assert no_rollback.exit_code == 2 and "nothing was promoted yet" in no_rollback.stderr
    empty = _nlp(home, "explain", "--task", "sentiment", input="  \n")
    assert empty.exit_code == 2 and "no text on stdin" in empty.stderr

    vid = _train(home, data)["id"]
    wrong = _nlp(home, "eval", "--task", "topic", "--data", str(data["dev"]), "--model", vid)
    assert wrong.exit_code == 2 and "is a sentiment model, not a topic model" in wrong.stderr
    wrong_predict = _nlp(home, "predict", "--task", "toxicity", "--model", vid, input='{"text": "x"}\n')
    assert wrong_predict.exit_code == 2 and "not a toxicity model" in wrong_predict.stderr


def test_train_with_the_analysts_labels(tmp_path: Path, data: dict[str, Path]) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=home)
    engine = open_database(settings.db_url)
    backend = open_backend(settings)
    docs = [
        Document(
            id=f"doc{i}",
            url=f"https://example.vn/{i}",
            canonical_url=f"https://example.vn/{i}",
            source="forum",
            title=f"Ý kiến số {i}",
            text="dịch vụ kiểu xoằng xịt, nhân viên lơ đễnh" if i % 2 else "cách làm xoằng xịt quá",
            fetched_at=datetime(2026, 11, 20, tzinfo=UTC),
        )
        for i in range(20)
    ]
    backend.upsert(docs)
    backend.close()
    try:
        for doc in docs:
            accounts.add_label(engine, doc.id, "sentiment", "positive", None, "staff1")
            accounts.add_label(engine, doc.id, "sentiment", "negative", "positive", "analyst1")  # newest wins
        accounts.add_label(engine, "not-in-index", "sentiment", "negative", None, "analyst1")
        accounts.add_label(engine, "doc0", "topic", "the-thao", None, "analyst1")  # another field: ignored
    finally:
        engine.dispose()

    plain = _train(home, data)
    with_labels = _train(home, data, "--with-labels")
    sources = {s["path"]: s["rows"] for s in with_labels["data_sources"]}
    assert sources["db:labels"] == 20 and sources[str(data["train"])] == 1200
    assert with_labels["data_hash"] != plain["data_hash"]
    metrics_file = home / "models" / "registry" / "sentiment" / with_labels["id"] / "metrics.json"
    info = json.loads(metrics_file.read_text(encoding="utf-8"))["model"]
    assert info["analyst_labels"] == {
        "labels": 21,
        "used": 20,
        "missing_document": 1,
        "invalid_label": 0,
        "empty_text": 0,
    }
    _, base_labels = load_examples("sentiment", data["train"])
    assert info["label_counts"]["negative"] == base_labels.count("negative") + 20
    assert info["rows"] == len(base_labels) + 20

    text = json.dumps({"text": "xoằng xịt"}) + "\n"
    before = _nlp(home, "predict", "--task", "sentiment", "--model", plain["id"], input=text)
    after = _nlp(home, "predict", "--task", "sentiment", "--model", with_labels["id"], input=text)
    assert json.loads(after.stdout)["scores"]["negative"] > json.loads(before.stdout)["scores"]["negative"]


def test_predict_through_the_real_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    lines = [
        json.dumps({"id": 1, "title": "Giáo dục", "text": SAMPLE}, ensure_ascii=False),
        "not json",
        "",
        json.dumps({"id": 2, "text": "The weather in London is nice today"}),
    ]
    done = run_duluan("nlp", "predict", "--task", "sentiment", home=home, input="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["title"] == "Giáo dục" and rows[0]["label"] in ("negative", "neutral", "positive")
    assert abs(sum(rows[0]["scores"].values()) - 1) < 1e-3 and "flag" not in rows[0]
    assert rows[1]["flag"] == "not-vietnamese"
    assert "stdin line 2" in done.stderr
    helped = _nlp(home, "--help")
    for command in ("train", "eval", "versions", "promote", "rollback", "predict", "explain"):
        assert command in helped.stdout
