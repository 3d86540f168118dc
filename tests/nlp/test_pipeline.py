"""The spaCy frame (nlp/pipeline.py): tokenizer, components, entity linking, relevance, CRF features."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from spacy.language import Language

from bench.nlp_entities import gazetteer_only, load_gold, pipeline, score
from nlp.entities import default_gazetteer
from nlp.pipeline import (
    _crf_steps,
    _CrfStep,
    build_pipeline,
    crf_ner_tags,
    doc_entities,
    doc_province_relevance,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nlp() -> Language:
    return build_pipeline()


def _ents(nlp: Language, text: str) -> dict[str, tuple[str, str]]:
    return {e.text: (e.label_, e.kb_id_) for e in nlp(text).ents}


def test_it_is_a_spacy_vietnamese_pipeline_with_the_registered_components(nlp: Language) -> None:
    assert nlp.lang == "vi"
    assert nlp.pipe_names == [
        "vi_normalize",
        "vi_langid",
        "vi_gazetteer",
        "vi_name_patterns",
        "vi_crf_ner",
        "vi_person_pattern",
    ]
    from underthesea import word_tokenize

    sentence = "Bác sĩ bây giờ có thể thản nhiên báo tin bệnh nhân bị ung thư"
    doc = nlp(sentence)
    # underthesea's word segmentation: multi-syllable words are single tokens
    assert [t.text for t in doc] == word_tokenize(sentence)
    assert [t.text for t in doc][:4] == ["Bác sĩ", "bây giờ", "có thể", "thản nhiên"]
    assert doc._.lang == "vi"


def test_doc_text_is_the_normalised_input_with_its_whitespace(nlp: Language) -> None:
    text = "Thuý  Kiều ở Hoà Bình.\n\nTP.HCM mưa lớn;  ngập nặng"
    doc = nlp(text)
    assert (
        doc.text == "Thúy  Kiều ở Hòa Bình.\n\nTP.HCM mưa lớn;  ngập nặng"
    )  # tone marks moved, nothing lost
    tp = next(t for t in doc if t.text == "TP.HCM")
    assert tp.norm_ == "tp hcm"
    assert tp._.no_diacritics == "tp hcm"
    assert next(t for t in doc if t.text == "Hòa Bình")._.no_diacritics == "hoa binh"


def test_old_and_new_names_link_to_the_new_province_keeping_the_surface(nlp: Language) -> None:
    ents = _ents(nlp, "Người dân Đồng Xoài và Bình Phước đón tin vui, Biên Hòa cũng vậy.")
    assert ents == {
        "Đồng Xoài": ("LOC", "Đồng Nai"),
        "Bình Phước": ("LOC", "Đồng Nai"),
        "Biên Hòa": ("LOC", "Đồng Nai"),
    }


def test_agencies_watchlist_people_and_foreign_names(nlp: Language) -> None:
    ents = _ents(
        nlp,
        "Chủ tịch UBND tỉnh Bình Phước Trần Tuệ Hiền làm việc với Sở Y tế Đồng Nai và ACV. "
        "Tổng thống Nga Vladimir Putin điện đàm với Bộ Công Thương.",
    )
    assert ents["UBND tỉnh Bình Phước"] == ("ORG", "UBND tỉnh Bình Phước")
    assert ents["Sở Y tế Đồng Nai"][0] == "ORG"
    assert ents["ACV"] == ("ORG", "Tổng công ty Cảng hàng không Việt Nam")
    assert ents["Trần Tuệ Hiền"][0] == "PER"
    assert ents["Nga"][0] == "LOC"
    assert ents["Vladimir Putin"][0] == "PER"  # underthesea's CRF, split from the country
    assert ents["Bộ Công Thương"][0] == "ORG"


def test_segmentation_decides_when_a_place_is_part_of_a_longer_name(nlp: Language) -> None:
    ents = _ents(
        nlp,
        "Anh Nguyễn Thanh Bình đi sân bay Tân Sơn Nhất. Người dân mong hòa bình. Ở Củ Chi-TPHCM mưa.",
    )
    assert ents["Nguyễn Thanh Bình"][0] == "PER"  # not the district Thanh Bình
    assert "Tân Sơn" not in ents and "hòa bình" not in ents
    assert ents["TPHCM"] == ("LOC", "Hồ Chí Minh")  # cut out of the hyphenated token


def test_wards_after_a_cue_are_places_linked_when_unambiguous(nlp: Language) -> None:
    doc = nlp("Ông Lý Văn Sáu ở xã Minh Hưng, huyện Chơn Thành nuôi heo.")
    by_text = {e.text: e for e in doc.ents}
    assert by_text["Minh Hưng"].label_ == "LOC"
    assert by_text["Minh Hưng"]._.province == "Đồng Nai"
    assert by_text["Chơn Thành"].kb_id_ == "Đồng Nai"
    assert by_text["Lý Văn Sáu"].label_ == "PER"


def test_watchlist_file_from_settings_adds_entries(tmp_path: Path) -> None:
    from nlp.entities import with_watchlist

    path = tmp_path / "watch.yaml"
    path.write_text(
        "watchlist:\n  - name: Công ty Điện lực Đồng Nai\n    label: ORG\n    aliases: [PC Đồng Nai]\n"
        "  - name: Nguyễn Văn Út\n    label: PER\n",
        encoding="utf-8",
    )
    nlp = build_pipeline(with_watchlist(default_gazetteer(), path), crf_ner=False)
    ents = _ents(nlp, "PC Đồng Nai cắt điện, ông Nguyễn Văn Út phản ánh.")
    assert ents["PC Đồng Nai"] == ("ORG", "Công ty Điện lực Đồng Nai")
    assert ents["Nguyễn Văn Út"] == ("PER", "Nguyễn Văn Út")
    bad = tmp_path / "bad.yaml"
    bad.write_text("watchlist:\n  - label: PER\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs a 'name'"):
        with_watchlist(default_gazetteer(), bad)
    with pytest.raises(FileNotFoundError, match="watchlist_path"):
        with_watchlist(default_gazetteer(), tmp_path / "missing.yaml")


def _relevance(nlp: Language, title: str, lead: str, body: str) -> float:
    doc = nlp(f"{title}\n{lead}\n{body}")
    return doc_province_relevance(doc, "Đồng Nai", len(title), len(title) + 1 + len(lead))


def test_relevance_title_over_lead_over_body_over_weather_list(nlp: Language) -> None:
    title = _relevance(nlp, "Bình Phước khởi công cầu mới", "Sáng nay lễ khởi công diễn ra.", "Dài 2 km.")
    lead = _relevance(nlp, "Khởi công cầu mới", "Sáng nay tại Đồng Xoài, lễ khởi công diễn ra.", "Dài 2 km.")
    body = _relevance(nlp, "Khởi công cầu mới", "Sáng nay lễ khởi công.", "Nhà thầu đến từ Đồng Nai.")
    weather = _relevance(
        nlp, "Dự báo thời tiết", "Nam Bộ có mưa.", "Mưa rào ở Bình Phước và Tây Ninh, chiều có dông."
    )
    other = _relevance(nlp, "Hà Nội mở rộng vành đai", "UBND TP Hà Nội họp.", "Dài 2 km.")
    assert title > lead > body > weather > other == 0.0
    assert title >= 0.7 and weather < 0.1


def test_fast_crf_features_equal_underthesea(nlp: Language) -> None:
    from underthesea import ner, word_tokenize
    from underthesea.pipeline.ner.tagged_feature import word2features

    sentence = "Ông Putin ca ngợi những thành tựu vĩ đại của Liên Xô tại Moskva năm 1980"
    words = word_tokenize(sentence)
    assert [(w, t) for w, _p, _c, t in crf_ner_tags(words)] == [(r[0], r[3]) for r in ner(sentence)]
    *_, ner_step = _crf_steps()
    tagged = [(w, p, c, "X") for w, p, c, _ in crf_ner_tags(words)]
    columns = [list(col) for col in zip(*tagged, strict=True)]
    assert ner_step.features(columns) == [
        word2features(tagged, i, ner_step_template(ner_step)) for i in range(len(tagged))
    ]
    with pytest.raises(ValueError, match="unsupported CRF feature template"):
        _CrfStep(None, ["T[0].is_in_dict"])


def ner_step_template(step: _CrfStep) -> list[str]:
    return [prefix[:-1] for prefix, *_ in step.template]


def test_pipeline_beats_the_gazetteer_only_extractor_on_the_gold_sentences() -> None:
    gold = load_gold()
    before = score(gazetteer_only(), gold)
    after = score(pipeline(), gold)
    assert after["micro_f1"] > before["micro_f1"] + 0.1
    assert after["ORG_f1"] > before["ORG_f1"] and after["PER_f1"] > before["PER_f1"]
    assert after["linking"] >= 0.95


def test_doc_entities_are_unique_schema_entities(nlp: Language) -> None:
    ents = doc_entities(nlp("Bình Phước, Bình Phước và Đồng Xoài."))
    assert [(e.text, e.label, e.canonical) for e in ents] == [
        ("Bình Phước", "LOC", "Đồng Nai"),
        ("Đồng Xoài", "LOC", "Đồng Nai"),
    ]


def test_importing_the_pipeline_does_not_load_torch_or_transformers() -> None:
    code = (
        "import sys; from nlp.pipeline import build_pipeline; build_pipeline()('Hà Nội mưa.');"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
