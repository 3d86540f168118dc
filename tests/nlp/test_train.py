from pathlib import Path

import numpy as np

from nlp.train import TrainConfig, evaluate, load_examples, load_model, save_model, train


def test_hash_split_is_deterministic_and_disjoint(datasets) -> None:
    path = datasets / "vlsp2016_sa" / "train.jsonl.gz"
    train_texts, _ = load_examples("sentiment", f"{path}#train")
    dev_texts, dev_labels = load_examples("sentiment", f"{path}#dev")
    assert 300 < len(dev_texts) < 800
    assert not set(train_texts) & set(dev_texts)
    assert load_examples("sentiment", f"{path}#dev")[0] == dev_texts
    assert set(dev_labels) == {"negative", "neutral", "positive"}


def test_train_on_a_slice_and_evaluate_per_class(datasets, tmp_path: Path) -> None:
    config = TrainConfig(
        social=True, max_rows_per_source=1500, max_chars=500, word_features=2**16, char_features=2**15
    )
    model = train("toxicity", [datasets / "vihsd" / "train.jsonl.gz"], config)
    assert model.labels == ["clean", "offensive", "hate"]
    assert model.info["rows"] == 1500
    assert 0.05 < model.temperature < 5.0

    metrics = evaluate(model, datasets / "vihsd" / "dev.jsonl.gz", limit=600)
    assert metrics.n == 600
    assert set(metrics.per_class) == {"clean", "offensive", "hate"}
    for row in metrics.per_class.values():
        assert set(row) == {"precision", "recall", "f1", "support"}
    assert sum(row["support"] for row in metrics.per_class.values()) == 600
    assert np.array(metrics.confusion).shape == (3, 3)
    assert np.array(metrics.confusion).sum() == 600
    assert metrics.macro_f1 > 0.3  # a 1,500-row model is weak but clearly better than chance
    assert metrics.accuracy > 0.75
    assert 0.0 <= metrics.expected_calibration_error <= 1.0

    saved = save_model(model, tmp_path / "toxicity")
    again = load_model(saved)
    texts = ["Đồ ngu như bò, cút đi", "Chúc mừng năm mới cả nhà"]
    assert np.allclose(again.predict_proba(texts), model.predict_proba(texts), atol=1e-3)  # float16 weights


def test_topic_training_applies_seed_rules(datasets) -> None:
    config = TrainConfig(char_ngrams=None, max_rows_per_source=800, max_chars=800, word_features=2**16)
    model = train("topic", [datasets / "vntc" / "train.jsonl.gz"], config)
    assert model.info["relabelled_by_seed_rules"] > 0
    assert "giao-thong" in model.labels
    restricted = evaluate(model, datasets / "vntc" / "dev.jsonl.gz", restrict_to_gold_labels=True, limit=400)
    assert "giao-thong" not in restricted.labels
    assert restricted.macro_f1 > 0.6


def test_cli_writes_model_metrics_and_card(datasets, tmp_path: Path) -> None:
    import json

    from nlp.train import main

    config = tmp_path / "config.yaml"
    config.write_text("social: true\nmax_rows_per_source: 800\nword_features: 16384\nchar_ngrams: null\n")
    out = tmp_path / "model"
    dev = f"{datasets / 'vlsp2016_sa' / 'train.jsonl.gz'}#dev"
    train_part = f"{datasets / 'vlsp2016_sa' / 'train.jsonl.gz'}#train"
    assert (
        main(
            [
                "--task",
                "sentiment",
                "--out",
                str(out),
                "--data",
                train_part,
                "--dev",
                dev,
                "--config",
                str(config),
            ]
        )
        == 0
    )
    report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert report["model"]["rows"] == 800
    assert set(report["dev"][dev]["per_class"]) == {"negative", "neutral", "positive"}
    card = (out / "model_card.md").read_text(encoding="utf-8")
    assert "VLSP user agreement" in card and "macro-F1" in card
    assert (out / "model.joblib").is_file()


def test_dataset_routing_trains_one_expert_per_domain(datasets, tmp_path: Path) -> None:
    from nlp.explain import explain
    from nlp.textmodel import RoutedTextModel

    config = TrainConfig(
        social=True,
        max_rows_per_source=700,
        max_chars=400,
        word_features=2**15,
        char_features=2**15,
        class_weight="balanced",
        route="dataset",
        router_features=2**14,
        calibration_folds=3,
        expert_of={"aivivn2019_sa": "vlsp2016_sa"},
        dataset_weights={"aivivn2019_sa": 0.3},
    )
    data = [
        datasets / "vlsp2016_sa" / "train.jsonl.gz#train",
        datasets / "uit_vsfc" / "train.jsonl.gz",
        datasets / "aivivn2019_sa" / "train.jsonl.gz",
    ]
    model = train("sentiment", data, config)
    assert isinstance(model, RoutedTextModel)
    # aivivn is pooled into the VLSP expert (expert_of), so there are two experts, not three.
    assert set(model.experts) == {"vlsp2016_sa", "uit_vsfc"}
    assert model.labels == ["negative", "neutral", "positive"]
    assert model.info["experts"]["uit_vsfc"]["rows"] == 700
    assert model.info["experts"]["vlsp2016_sa"]["rows"] == 1400
    # The domain classifier sends held-out texts of each dataset to that dataset's expert.
    vsfc_dev, _ = load_examples("sentiment", datasets / "uit_vsfc" / "dev.jsonl.gz", limit=200)
    vlsp_dev, _ = load_examples("sentiment", f"{datasets / 'vlsp2016_sa' / 'train.jsonl.gz'}#dev", limit=200)
    assert model.route(vsfc_dev).count("uit_vsfc") > 180
    assert model.route(vlsp_dev).count("vlsp2016_sa") > 160
    # Each row's probabilities come from its expert and sum to 1.
    probs = model.predict_proba(vsfc_dev[:5] + vlsp_dev[:5])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expert = model.experts["uit_vsfc"]
    assert np.allclose(probs[:5], expert.predict_proba(vsfc_dev[:5]), atol=1e-6)
    assert evaluate(model, datasets / "uit_vsfc" / "dev.jsonl.gz", limit=400).macro_f1 > 0.5

    again = load_model(save_model(model, tmp_path / "sentiment"))
    assert isinstance(again, RoutedTextModel)
    assert np.allclose(again.predict_proba(vsfc_dev[:20]), model.predict_proba(vsfc_dev[:20]), atol=1e-3)
    why = explain(again, "giảng viên nhiệt tình, dạy dễ hiểu", label="positive")
    assert why.label == "positive" and why.supporting


def test_length_routing_and_feature_selection(datasets) -> None:
    from nlp.textmodel import RoutedTextModel

    config = TrainConfig(
        char_ngrams=None,
        max_rows_per_source=900,
        max_chars=1500,
        word_features=2**16,
        route="length",
        route_length=600,
        short_max_chars=300,
        select_features=5000,
    )
    data = [datasets / "vntc" / "train.jsonl.gz", f"{datasets / 'tc201805_baomoi' / 'corpus.jsonl.gz'}#train"]
    model = train("topic", data, config)
    assert isinstance(model, RoutedTextModel)
    assert set(model.experts) == {"short", "long"}
    long_expert, short_expert = model.experts["long"], model.experts["short"]
    # The long expert sees every VNTC article plus baomoi rows of labels VNTC lacks (e.g. giao-duc).
    assert "giao-duc" in long_expert.labels and "giao-duc" in short_expert.labels
    assert long_expert.info["rows"] < model.info["rows"] == short_expert.info["rows"]
    assert short_expert.features.config.max_chars == 300
    for expert in (long_expert, short_expert):
        assert int((np.abs(expert.coef).sum(axis=0) > 0).sum()) <= 5000
    assert model.route(["Giá xăng tăng mạnh", "x" * 700]) == ["short", "long"]
    scores = model.decision_function(["Đội tuyển Việt Nam thắng Thái Lan 2-0 ở chung kết"])
    assert scores.shape == (1, len(model.labels))
    assert model.predict(["Đội tuyển Việt Nam thắng Thái Lan 2-0 ở chung kết AFF Cup"]) == ["the-thao"]


def test_unknown_route_is_a_clear_error() -> None:
    import pytest

    with pytest.raises(ValueError, match="route must be one of"):
        TrainConfig(route="by-mood")


def test_default_routed_configs_fall_back_to_one_model_on_a_single_file(datasets) -> None:
    """Analysts train the default recipe on their own single file: no experts to route to, one model."""
    import dataclasses

    from nlp.textmodel import RoutedTextModel
    from nlp.train import DEFAULT_CONFIGS

    small = {"max_rows_per_source": 300, "word_features": 2**12, "char_features": 2**12}
    config = dataclasses.replace(DEFAULT_CONFIGS["sentiment"], **small)
    assert config.route == "dataset" and config.dataset_weights  # names aivivn2019_sa, absent here
    model = train("sentiment", [datasets / "uit_vsfc" / "train.jsonl.gz"], config)
    assert not isinstance(model, RoutedTextModel)
    assert "at least two experts" in model.info["route_skipped"]
    assert model.predict(["thầy dạy rất hay , nhiệt tình ."]) == ["positive"]

    topic_config = dataclasses.replace(
        DEFAULT_CONFIGS["topic"], **small, select_features=None, short_overrides={}
    )
    topic = train("topic", [datasets / "vntc" / "train.jsonl.gz"], topic_config)
    assert not isinstance(topic, RoutedTextModel)
    assert "route=length" in topic.info["route_skipped"]


def test_small_datasets_join_the_expert_the_router_picks(datasets, tmp_path: Path) -> None:
    import json

    from nlp.textmodel import RoutedTextModel

    corrections = tmp_path / "analyst_labels" / "labels.jsonl"
    corrections.parent.mkdir()
    feedback = ["thầy giảng bài khó hiểu , nói nhỏ .", "môn học quá tải , bài tập nhiều ."] * 6
    corrections.write_text(
        "\n".join(json.dumps({"text": t, "label": "negative"}, ensure_ascii=False) for t in feedback),
        encoding="utf-8",
    )
    config = TrainConfig(
        social=True,
        max_rows_per_source=600,
        word_features=2**14,
        char_ngrams=None,
        class_weight="balanced",
        route="dataset",
        router_features=2**14,
    )
    data = [
        datasets / "vlsp2016_sa" / "train.jsonl.gz#train",
        datasets / "uit_vsfc" / "train.jsonl.gz",
        corrections,
    ]
    model = train("sentiment", data, config)
    assert isinstance(model, RoutedTextModel)
    assert set(model.experts) == {"vlsp2016_sa", "uit_vsfc"}  # 12 one-label rows get no expert of their own
    assert model.info["experts"]["uit_vsfc"]["rows"] == 612  # they look like student feedback
    assert model.info["experts"]["vlsp2016_sa"]["rows"] == 600
