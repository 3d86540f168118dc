import unicodedata

import pytest

from nlp.normalize import (
    collapse_repeated_letters,
    expand_teencode,
    normalize_social,
    normalize_text,
    normalize_tone_marks,
    remove_diacritics,
    replace_urls,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hoà bình", "hòa bình"),
        ("thuý", "thúy"),
        ("khoẻ mạnh", "khỏe mạnh"),
        ("Thuỷ Tiên", "Thủy Tiên"),
        ("uỷ ban", "ủy ban"),
        ("HOÀ", "HÒA"),
        ("qủa", "quả"),
        ("hòan thành", "hoàn thành"),
        # already in dictionary form: unchanged
        ("hoàng", "hoàng"),
        ("người", "người"),
        ("thuyết phục", "thuyết phục"),
        ("quý", "quý"),
        ("giữa", "giữa"),
        ("khuỷu tay", "khuỷu tay"),
        ("Covid-19 tháng 10", "Covid-19 tháng 10"),
    ],
)
def test_tone_marks_move_to_dictionary_position(raw: str, expected: str) -> None:
    assert normalize_tone_marks(raw) == expected


def test_decomposed_unicode_is_composed() -> None:
    nfd = unicodedata.normalize("NFD", "Đồng Nai")
    assert nfd != "Đồng Nai"
    assert normalize_text(nfd) == "Đồng Nai"


def test_whitespace_is_tidied_but_paragraphs_kept() -> None:
    assert normalize_text("  Tin\u00a0mới  \r\n\r\n  đoạn   hai ") == "Tin mới\nđoạn hai"


def test_urls_are_removed() -> None:
    assert replace_urls("xem https://vnexpress.net/a-b.html và www.baodongnai.com.vn nhé").split() == [
        "xem",
        "và",
        "nhé",
    ]


def test_repeated_letters_collapse_keeping_the_tone() -> None:
    assert collapse_repeated_letters("đẹppppp quáaaa ngooon") == "đẹp quá ngon"
    assert collapse_repeated_letters("xoong boong") == "xoong boong"  # genuine double letters stay


def test_teencode_expands_whole_words_only() -> None:
    assert expand_teencode("ko dc vs mk") == "không được với mình"
    assert expand_teencode("kobe") == "kobe"


def test_social_normalisation_chains_everything() -> None:
    assert (
        normalize_social("Sp đẹpppp quáaa, ko hoà tiền đâu http://shop.vn")
        == "sản phẩm đẹp quá, không hòa tiền đâu"
    )


def test_remove_diacritics() -> None:
    assert remove_diacritics("Đồng Xoài, Bình Phước") == "Dong Xoai, Binh Phuoc"
