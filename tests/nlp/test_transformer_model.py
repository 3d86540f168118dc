"""The strong model: a tiny real fine-tune of the (2-layer) rebuilt e5, save/load, predict interface."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlp.classify import FLAG_BLANK, Prediction
from nlp.transformer_model import (
    META_FILENAME,
    WEIGHTS_FILENAME,
    FineTuneConfig,
    evaluate_strong,
    fine_tune,
    load_transformer_classifier,
    model_card,
    save,
)
from tests.nlp.conftest import read_rows
from tests.nlp.e5_support import two_layer_model

REPO = Path(__file__).resolve().parents[2]


def _balanced(rows: list[dict], per_label: int) -> list[dict]:
    """The first ``per_label`` positive and negative rows (an easy binary slice of UIT-VSFC)."""
    picked: dict[str, list[dict]] = {"positive": [], "negative": []}
    for row in rows:
        bucket = picked.get(row["label"])
        if bucket is not None and len(bucket) < per_label and len(row["text"].split()) >= 4:
            bucket.append({"text": row["text"], "label": row["label"]})
    assert all(len(v) == per_label for v in picked.values())
    return [r for pair in zip(picked["positive"], picked["negative"], strict=True) for r in pair]


def _write(rows: list[dict], path: Path) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(datasets, tmp_path_factory):
    """A 2-layer e5 fine-tuned for a few steps on 64 rows; held-out rows from the dev split."""
    base = two_layer_model().out_dir
    root = tmp_path_factory.mktemp("strong")
    train = _write(
        _balanced(read_rows(datasets / "uit_vsfc" / "train.jsonl.gz", 2000), 32), root / "t.jsonl.gz"
    )
    held = _write(_balanced(read_rows(datasets / "uit_vsfc" / "dev.jsonl.gz", 1000), 32), root / "d.jsonl.gz")
    config = FineTuneConfig(
        max_length=48, batch_size=8, max_steps=24, train_layers=None, lr=1e-4, head_lr=5e-3, threads=2
    )
    clf = fine_tune("sentiment", base, [str(train)], config)
    return clf, base, held, root


def test_tiny_fine_tune_beats_chance_on_held_out_rows(tiny) -> None:
    clf, _base, held, _root = tiny
    assert clf.labels == ["negative", "positive"]
    assert clf.info["steps"] == 24 and clf.info["rows"] == 64
    metrics = evaluate_strong(clf, held)
    assert metrics["n"] == 64
    assert metrics["accuracy"] >= 0.7, metrics  # chance is 0.5 on this balanced slice
    assert metrics["macro_f1"] >= 0.65, metrics


def test_save_load_round_trip_and_predict_interface(tiny) -> None:
    clf, base, held, root = tiny
    out = root / "model"
    save(clf, out)
    assert (out / META_FILENAME).is_file() and (out / WEIGHTS_FILENAME).is_file()
    # only trained parameters are saved, never the 250k x 384 frozen word embeddings
    assert (out / WEIGHTS_FILENAME).stat().st_size < 0.2 * (base / "model.safetensors").stat().st_size
    loaded = load_transformer_classifier(out)
    texts = ["Thầy dạy rất nhiệt tình và dễ hiểu.", "Phòng học nóng, máy chiếu hỏng suốt cả kỳ.", "", "12345"]
    before, after = clf.predict(texts), loaded.predict(texts)
    assert all(isinstance(p, Prediction) for p in after)
    for a, b in zip(before, after, strict=True):
        assert a.label == b.label
        assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-3
        assert abs(sum(b.scores.values()) - 1) < 1e-3
    assert after[2].flag == FLAG_BLANK and after[3].flag == FLAG_BLANK
    assert after[0].flag is None
    with pytest.raises(ValueError, match="one title per text"):
        loaded.predict(["a", "b"], titles=["x"])
    card = model_card(loaded, {"held": evaluate_strong(loaded, held)})
    assert "t.jsonl.gz`: 64 rows" in card and "| held | 64 |" in card


def test_missing_base_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nlp\.e5_builder"):
        fine_tune("toxicity", tmp_path, ["vihsd/dev.jsonl.gz"], FineTuneConfig(max_steps=1))
    with pytest.raises(FileNotFoundError, match=r"strong\.json"):
        load_transformer_classifier(tmp_path)
    with pytest.raises(ValueError, match="unknown fine-tuning config keys"):
        FineTuneConfig.from_mapping({"epochs": 3})


def test_enrich_path_does_not_import_torch_or_transformers() -> None:
    code = (
        "import sys, nlp.enrich, nlp.transformer_model, nlp.e5_builder;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_predictions_follow_the_scores(tiny) -> None:
    clf, *_ = tiny
    probs = clf.predict_proba(["Giảng viên rất tận tâm.", "Môn học chán, không học được gì."])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    preds = clf.predict(["Giảng viên rất tận tâm.", "Môn học chán, không học được gì."])
    assert [p.label for p in preds] == [clf.labels[i] for i in probs.argmax(axis=1)]


def test_length_bucketed_batches_cover_every_row_once_with_similar_lengths() -> None:
    from nlp.transformer_model import _length_bucketed_batches

    rng = np.random.default_rng(0)
    lengths = list(rng.integers(3, 128, size=1000))
    batches = _length_bucketed_batches(lengths, batch_size=16, rng=np.random.default_rng(1), pool_batches=10)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert all(len(b) <= 16 for b in batches)
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[i : i + 16]) for i in range(0, 1000, 16)])
    assert spread < 0.3 * random_spread, (spread, random_spread)


def test_blend_of_linear_and_strong_models(tiny) -> None:
    from nlp.blend import BlendedModel
    from nlp.classify import TextClassifier, load_classifier

    strong, *_ = tiny
    linear = load_classifier("sentiment").model  # shipped: negative / neutral / positive
    texts = ["Thầy dạy rất nhiệt tình và dễ hiểu.", "Phòng học nóng, máy chiếu hỏng suốt cả kỳ."]
    lin, stro = linear.predict_proba(texts), strong.predict_proba(texts)
    half = BlendedModel(linear, strong, strong_weight=0.5)
    assert half.labels == linear.labels and half.task == "sentiment"
    blended = half.predict_proba(texts)
    cols = [linear.labels.index(lab) for lab in strong.labels]
    expected = 0.5 * lin
    expected[:, cols] += 0.5 * stro
    assert np.allclose(blended, expected, atol=1e-6) and np.allclose(blended.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(BlendedModel(linear, strong, 0.0).predict_proba(texts), lin)
    # the strong model never trained on "neutral": alone it gives it nothing
    only_strong = BlendedModel(linear, strong, 1.0).predict_proba(texts)
    assert np.allclose(only_strong[:, linear.labels.index("neutral")], 0.0)
    # the blend drops into TextClassifier unchanged: flags, explanations from the linear model
    clf = TextClassifier(model=half)  # type: ignore[arg-type]
    preds = clf.predict([*texts, ""])
    assert [p.label for p in preds[:2]] == [half.labels[i] for i in blended.argmax(axis=1)]
    assert preds[2].flag == FLAG_BLANK
    assert clf.explain(texts[0]) == linear.top_features(texts[0], preds[0].label, 10)
    with pytest.raises(ValueError, match="between 0 and 1"):
        BlendedModel(linear, strong, 1.5)
    with pytest.raises(ValueError, match="cannot blend a toxicity model with a sentiment model"):
        BlendedModel(load_classifier("toxicity").model, strong)


def test_enricher_blends_an_installed_strong_model_from_settings(tiny, tmp_path: Path, monkeypatch) -> None:
    from datetime import UTC, datetime

    from duluan.settings import load_settings
    from duluan.wiring import make_enricher
    from nlp.blend import BlendedModel
    from nlp.classify import TextClassifier
    from nlp.textmodel import LinearTextModel
    from schema.document import Document, SourceType

    clf, *_ = tiny
    strong_dir = tmp_path / "strong"
    save(clf, strong_dir / "sentiment")  # only sentiment has a strong model: the others stay linear
    monkeypatch.setenv("DULUAN_NLP__STRONG_MODELS_DIR", str(strong_dir))
    monkeypatch.setenv("DULUAN_NLP__STRONG_WEIGHT", "0.7")
    enricher = make_enricher(load_settings(home=tmp_path / "home"))
    assert isinstance(enricher.sentiment.model, BlendedModel)
    assert enricher.sentiment.model.strong_weight == 0.7
    assert isinstance(enricher.toxicity.model, LinearTextModel)
    assert isinstance(enricher.topic.model, LinearTextModel)
    text = "Phòng học nóng, máy chiếu hỏng suốt cả kỳ, thầy không trả lời câu hỏi."
    doc = Document(
        id="s1",
        url="https://example.vn/s1",
        canonical_url="https://example.vn/s1",
        source="test",
        source_type=SourceType.social,
        title="",
        text=text,
        fetched_at=datetime(2026, 11, 28, tzinfo=UTC),
    )
    out = enricher.enrich(doc)
    expected = enricher.sentiment.predict([text], [""])[0]
    assert out.sentiment == expected.label and out.sentiment_scores == expected.scores
    linear_only = enricher.sentiment.linear.predict_proba([text])[0]
    assert out.sentiment_scores != {
        lab: round(float(p), 4) for lab, p in zip(enricher.sentiment.labels, linear_only, strict=True)
    }
    assert out.toxicity is not None
    # news articles keep the linear models unless nlp.strong_for_news (cost; fine-tuned on comments)
    article = doc.model_copy(update={"id": "n1", "source_type": SourceType.news, "title": "Tin tức"})
    news_out, post_out = enricher.enrich_many([article, doc])
    assert post_out.sentiment_scores == out.sentiment_scores
    linear_news = TextClassifier(enricher.sentiment.linear).predict([text], ["Tin tức"])[0]
    assert news_out.sentiment_scores == linear_news.scores
    monkeypatch.setenv("DULUAN_NLP__STRONG_FOR_NEWS", "true")
    everywhere = make_enricher(load_settings(home=tmp_path / "home"))
    blended_news = enricher.sentiment.predict([text], ["Tin tức"])[0]
    assert everywhere.enrich(article).sentiment_scores == blended_news.scores != linear_news.scores


def test_status_reports_blended_models_and_a_missing_base(tiny, tmp_path: Path, monkeypatch) -> None:
    from duluan.settings import load_settings
    from duluan.status import check_models

    clf, *_ = tiny
    strong_dir = tmp_path / "strong"
    home = tmp_path / "home"
    assert check_models(load_settings(home=home)).summary == "linear models"
    monkeypatch.setenv("DULUAN_NLP__STRONG_MODELS_DIR", str(strong_dir))
    missing_dir = check_models(load_settings(home=home))
    assert missing_dir.level == "fail" and "does not exist" in missing_dir.summary
    strong_dir.mkdir()
    empty = check_models(load_settings(home=home))
    assert empty.level == "warn" and "no strong model found" in empty.summary
    save(clf, strong_dir / "sentiment")
    ok = check_models(load_settings(home=home))
    assert ok.level == "ok", ok.summary
    assert "blended (weight 0.5) for sentiment" in ok.summary
    assert ok.details["sentiment"]["strong"] == str(strong_dir / "sentiment")
    assert "strong" not in ok.details["toxicity"]
    meta_path = strong_dir / "sentiment" / META_FILENAME
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["info"]["base_model"] = str(tmp_path / "deleted-e5")
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    broken = check_models(load_settings(home=home))
    assert broken.level == "fail" and "nlp.e5_builder --out" in broken.summary


def test_default_strong_recipes_are_valid_configs_over_existing_data(datasets) -> None:
    from nlp.transformer_model import DEFAULT_STRONG_CONFIGS, DEFAULT_STRONG_DATA

    assert set(DEFAULT_STRONG_CONFIGS) == set(DEFAULT_STRONG_DATA) == {"sentiment", "toxicity"}
    for task, raw in DEFAULT_STRONG_CONFIGS.items():
        config = FineTuneConfig.from_mapping(raw)
        assert config.max_steps >= 1000, task  # epochs, not the quick default
        for path in DEFAULT_STRONG_DATA[task]:
            assert (datasets / path.split("#")[0]).is_file(), path
