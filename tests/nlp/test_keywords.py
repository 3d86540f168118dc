from nlp.keywords import extract_keywords, segment, stopwords


def test_segment_joins_dictionary_words_and_names() -> None:
    words = segment("Thủ tướng Phạm Minh Chính chỉ đạo bảo đảm nguồn cung xăng dầu.")
    assert "Phạm Minh Chính" in words
    assert "chỉ đạo" in words and "xăng dầu" in words


def test_keywords_prefer_title_terms_and_drop_stopwords() -> None:
    keywords = extract_keywords(
        "Đồng Nai đẩy nhanh giải phóng mặt bằng sân bay Long Thành",
        "Sáng nay, UBND tỉnh Đồng Nai họp về giải phóng mặt bằng."
        " Việc giải phóng mặt bằng phải xong trong năm. Người dân được bồi thường thỏa đáng.",
        k=5,
    )
    assert keywords[0] in ("giải phóng", "mặt bằng", "Đồng Nai")
    assert "Đồng Nai" in keywords
    assert not {k.lower() for k in keywords} & stopwords()


def test_no_keywords_from_nothing() -> None:
    assert extract_keywords("", "") == []
