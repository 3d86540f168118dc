from collections import Counter

import pytest

from nlp.train import TOPIC_LABEL_MAP, apply_seed_rules, load_seed_rules, map_label
from schema.labels import TOPICS

from .conftest import read_rows

VNTC_LABELS = {
    "Chinh tri Xa hoi",
    "Doi song",
    "Khoa hoc",
    "Kinh doanh",
    "Phap luat",
    "Suc khoe",
    "The gioi",
    "The thao",
    "Van hoa",
    "Vi tinh",
}


def test_every_target_is_a_taxonomy_code_or_none() -> None:
    for dataset, table in TOPIC_LABEL_MAP.items():
        for label, code in table.items():
            assert code is None or code in TOPICS, (dataset, label, code)


def test_vntc_maps_onto_nine_taxonomy_classes() -> None:
    table = TOPIC_LABEL_MAP["vntc"]
    assert set(table) == VNTC_LABELS
    assert len({code for code in table.values()}) == 9
    assert table["Khoa hoc"] == table["Vi tinh"] == "cong-nghe"
    assert table["The thao"] == "the-thao"
    assert table["Suc khoe"] == "y-te"


def test_baomoi_covers_classes_vntc_lacks() -> None:
    codes = set(TOPIC_LABEL_MAP["tc201805_baomoi"].values())
    assert {"giao-duc", "dat-dai", "moi-truong", "kinh-te", "the-thao"} <= codes
    assert TOPIC_LABEL_MAP["tc201805_baomoi"]["bat dong san"] == "dat-dai"
    assert TOPIC_LABEL_MAP["tc201805_baomoi"]["giao duc va viec lam - giao duc"] == "giao-duc"


def test_the_table_covers_every_label_in_the_real_data(datasets) -> None:
    vntc = Counter(r["label"] for r in read_rows(datasets / "vntc" / "dev.jsonl.gz"))
    assert set(vntc) == VNTC_LABELS
    baomoi = {r["label"] for r in read_rows(datasets / "tc201805_baomoi" / "corpus.jsonl.gz")}
    assert baomoi == set(TOPIC_LABEL_MAP["tc201805_baomoi"])


def test_unknown_labels_fail_loudly_and_our_codes_pass_through() -> None:
    with pytest.raises(ValueError, match="TOPIC_LABEL_MAP"):
        map_label("topic", "vntc", "Am nhac")
    assert map_label("topic", "analyst_labels", "giao-thong") == "giao-thong"
    assert map_label("toxicity", "vihsd", "OFFENSIVE") == "offensive"
    with pytest.raises(ValueError):
        map_label("sentiment", "x", "very good")


def test_seed_rules_bootstrap_traffic_and_leave_others() -> None:
    rules = load_seed_rules()
    assert "giao-thong" in {r.label for r in rules}
    texts = [
        "Tai nạn giao thông trên quốc lộ 1A, xe khách lật khiến 3 người bị thương",
        "Ùn tắc kéo dài, xe máy và ô tô chen nhau trên cầu Đồng Nai",
        "U23 Việt Nam thắng đậm Lào 5-0 ở vòng bảng",
    ]
    assert apply_seed_rules(texts, ["phap-luat", "chinh-tri", "the-thao"], rules) == [
        "giao-thong",
        "giao-thong",
        "the-thao",
    ]
