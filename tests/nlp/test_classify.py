from pathlib import Path

import pytest

from nlp.classify import FLAG_BLANK, FLAG_NOT_VIETNAMESE, SHIPPED_MODELS_DIR, load_classifier
from nlp.train import TrainConfig, save_model, train
from schema.labels import SENTIMENTS, TOPICS, TOXICITY_LABELS

from .conftest import read_rows


@pytest.fixture(scope="module")
def topic():
    return load_classifier("topic")


@pytest.fixture(scope="module")
def vntc_dev(datasets) -> list[dict]:
    return read_rows(datasets / "vntc" / "dev.jsonl.gz")


@pytest.mark.parametrize(("task", "labels"), [("sentiment", SENTIMENTS), ("toxicity", TOXICITY_LABELS)])
def test_shipped_models_load_with_our_labels(task: str, labels: dict[str, str]) -> None:
    clf = load_classifier(task)
    assert clf.labels == list(labels)
    assert clf.source == SHIPPED_MODELS_DIR / task / "model.joblib"
    assert clf.source.stat().st_size <= 20 * 1024 * 1024


def test_topic_model_covers_the_taxonomy(topic) -> None:
    assert set(topic.labels) <= set(TOPICS)
    assert {"giao-thong", "giao-duc", "dat-dai", "the-thao"} <= set(topic.labels)


@pytest.mark.parametrize(
    ("vntc_label", "code"), [("The thao", "the-thao"), ("Suc khoe", "y-te"), ("The gioi", "the-gioi")]
)
def test_topic_on_real_dev_articles(topic, vntc_dev, vntc_label: str, code: str) -> None:
    rows = [r for r in vntc_dev if r["label"] == vntc_label][::30][:30]  # spread over sources
    preds = topic.predict([r["text"] for r in rows])
    assert sum(p.label == code for p in preds) >= 21  # recall on these classes is 0.85+ on the full dev set
    assert all(abs(sum(p.scores.values()) - 1.0) < 1e-3 for p in preds)


def test_topic_on_headlines(topic) -> None:
    preds = topic.predict(
        ["", "", ""],
        titles=[
            "Malaysia gửi lời thách thức tới đội tuyển Việt Nam sau chiến thắng 5-0 trước Lào",
            "Bộ GD-ĐT công bố phương án thi tốt nghiệp THPT năm 2025",
            "Giá đất nền giảm, chủ nhà trong phố vẫn hét giá cao",
        ],
    )
    assert [p.label for p in preds] == ["the-thao", "giao-duc", "dat-dai"]


def test_sentiment_on_real_feedback() -> None:
    clf = load_classifier("sentiment")
    preds = clf.predict(["giáo viên vui tính , tận tâm .", "giảng buồn ngủ , không hiểu gì cả ."])
    assert [p.label for p in preds] == ["positive", "negative"]


def test_toxicity_on_real_dev_comments(datasets) -> None:
    clf = load_classifier("toxicity")
    rows = read_rows(datasets / "vihsd" / "dev.jsonl.gz", limit=300)
    preds = clf.predict([r["text"] for r in rows])
    accuracy = sum(p.label == r["label"].lower() for p, r in zip(preds, rows, strict=True)) / len(rows)
    assert accuracy > 0.8


def test_blank_and_foreign_text_get_a_flag_not_an_error() -> None:
    clf = load_classifier("sentiment")
    blank, foreign, normal = clf.predict(
        ["   ", "The service was great and the staff were friendly", "Sản phẩm rất tốt"]
    )
    assert blank.flag == FLAG_BLANK
    assert foreign.flag == FLAG_NOT_VIETNAMESE
    assert normal.flag is None
    assert blank.confidence < 0.7 and foreign.confidence < 0.85
    assert clf.predict([]) == []
    with pytest.raises(ValueError, match="one title per text"):
        clf.predict(["a", "b"], titles=["only one"])


def test_models_dir_takes_precedence_over_shipped(datasets, tmp_path: Path) -> None:
    config = TrainConfig(
        social=True, max_rows_per_source=500, max_chars=300, word_features=2**14, char_ngrams=None
    )
    save_model(train("toxicity", [datasets / "vihsd" / "train.jsonl.gz"], config), tmp_path / "toxicity")
    assert load_classifier("toxicity", tmp_path).source == tmp_path / "toxicity" / "model.joblib"
    # a task missing from models_dir falls back to the shipped model
    assert load_classifier("sentiment", tmp_path).source == SHIPPED_MODELS_DIR / "sentiment" / "model.joblib"


def test_explain_returns_tokens_of_the_text() -> None:
    clf = load_classifier("sentiment")
    top = clf.explain("giảng viên rất nhiệt tình và tận tâm", "positive", k=5)
    assert top and all(gram in "giảng viên rất nhiệt tình và tận tâm" for gram, _ in top)


def test_shipped_models_fit_the_size_budget() -> None:
    for task in ("topic", "sentiment", "toxicity"):
        assert (SHIPPED_MODELS_DIR / task / "model.joblib").stat().st_size <= 20 * 1024 * 1024


def test_shipped_routed_models_pick_the_expert_by_domain_and_length(topic, vntc_dev) -> None:
    from nlp.textmodel import RoutedTextModel

    sentiment = load_classifier("sentiment").model
    assert isinstance(sentiment, RoutedTextModel)
    feedback = ["thầy dạy nhiệt tình , dễ hiểu .", "phòng học nóng , máy chiếu mờ ."]
    comment = ["Con chuột này dùng được 2 tuần là hỏng nút trái, bảo hành thì chờ cả tháng. Chán!"]
    assert sentiment.route(feedback + comment) == ["uit_vsfc", "uit_vsfc", "vlsp2016_sa"]

    model = topic.model
    assert isinstance(model, RoutedTextModel) and model.length_threshold
    article = vntc_dev[0]["text"]
    assert len(article) >= model.length_threshold
    assert model.route(["Giá xăng giảm lần thứ ba liên tiếp", article]) == ["short", "long"]
    # The predicted label comes from the routed expert, and every expert's labels are taxonomy codes.
    for expert in model.experts.values():
        assert set(expert.labels) <= set(TOPICS)
    long_expert = model.experts["long"]
    scores = topic.predict([article])[0].scores
    expected = dict(zip(long_expert.labels, long_expert.predict_proba([article])[0], strict=True))
    for label in model.labels:
        assert scores[label] == pytest.approx(expected.get(label, 0.0), abs=1e-3)
