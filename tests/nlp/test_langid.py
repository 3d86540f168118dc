import pytest

from nlp.langid import detect_language, is_vietnamese_syllable


@pytest.mark.parametrize(
    "text",
    [
        "UBND tỉnh Đồng Nai họp bàn về giải phóng mặt bằng dự án cao tốc Biên Hòa - Vũng Tàu",
        "Ubnd tinh Dong Nai hop ban ve giai phong mat bang du an cao toc Bien Hoa Vung Tau",
        "sp dung tot, giao hang nhanh, shop nhiet tinh lam",
        "Chi ba vang ngoc dep va tre mai",
    ],
)
def test_vietnamese_with_and_without_diacritics(text: str) -> None:
    lang, confidence = detect_language(text)
    assert lang == "vi"
    assert confidence > 0.5


def test_english_is_not_vietnamese() -> None:
    assert (
        detect_language("The prime minister said on Monday that the government will raise taxes")[0] == "en"
    )


@pytest.mark.parametrize(
    "text", ["Der Bundeskanzler hat am Montag gesagt, dass", "Saya suka makan nasi goreng"]
)
def test_other_languages_are_not_vietnamese(text: str) -> None:
    assert detect_language(text)[0] != "vi"


@pytest.mark.parametrize("text", ["", "   ", "12345 !!! 2024"])
def test_blank_is_undetermined_with_zero_confidence(text: str) -> None:
    assert detect_language(text) == ("und", 0.0)


def test_syllable_inventory() -> None:
    assert is_vietnamese_syllable("nghiêng")
    assert is_vietnamese_syllable("nghieng")
    assert is_vietnamese_syllable("khuya")
    assert not is_vietnamese_syllable("street")
    assert not is_vietnamese_syllable("and")


def test_comments_with_loanwords_are_vietnamese() -> None:
    assert detect_language("Cùng tham gia chống covid-19 nha huhu")[0] == "vi"
    assert detect_language("Le gouvernement a annoncé lundi que le président")[0] != "vi"


def test_real_comments_are_mostly_recognised(datasets) -> None:
    from .conftest import read_rows

    rows = read_rows(datasets / "vihsd" / "dev.jsonl.gz", limit=1000)
    share = sum(detect_language(r["text"])[0] == "vi" for r in rows) / len(rows)
    assert share > 0.9  # the rest: emoji-only, "hahaha", English phrases
