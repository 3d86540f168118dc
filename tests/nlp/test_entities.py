from nlp.entities import EntityExtractor, default_gazetteer, find_mentions, province_relevance


def test_old_and_new_unit_names_link_to_the_new_province() -> None:
    gaz = default_gazetteer()
    assert gaz.canonical_province("Bình Phước") == "Đồng Nai"
    assert gaz.canonical_province("Đồng Xoài") == "Đồng Nai"
    assert gaz.canonical_province("Đồng Nai") == "Đồng Nai"
    assert gaz.canonical_province("Biên Hòa") == "Đồng Nai"
    assert gaz.canonical_province("Bà Rịa - Vũng Tàu") == "Hồ Chí Minh"
    assert gaz.canonical_province("Quảng Nam") == "Đà Nẵng"
    assert len(gaz.provinces) == 34


def test_extractor_links_locations_agencies_and_people() -> None:
    entities = EntityExtractor().extract(
        "Bình Phước khởi công đường nối Đồng Xoài",
        "Chủ tịch UBND tỉnh Bình Phước Trần Tuệ Hiền cùng Sở Y tế Đồng Nai kiểm tra bệnh viện. "
        "Ông Nguyễn Văn Hùng, Giám đốc Công an TP.HCM, cho biết.",
    )
    by_text = {e.text: e for e in entities}
    assert by_text["Bình Phước"].label == "LOC"
    assert by_text["Bình Phước"].canonical == "Đồng Nai"
    assert by_text["Đồng Xoài"].canonical == "Đồng Nai"
    assert by_text["UBND tỉnh Bình Phước"].label == "ORG"
    assert by_text["Sở Y tế Đồng Nai"].label == "ORG"
    assert by_text["Công an TP.HCM"].label == "ORG"
    assert by_text["Trần Tuệ Hiền"].label == "PER"
    assert by_text["Nguyễn Văn Hùng"].label == "PER"


def test_lower_case_common_words_are_not_places() -> None:
    mentions = find_mentions("Người dân mong hòa bình và an giang hồ", default_gazetteer())
    assert mentions == []


def test_watchlist_entries_are_recognised() -> None:
    entities = EntityExtractor().extract("ACV đẩy nhanh sân bay Long Thành", "")
    assert {e.canonical for e in entities} >= {
        "Tổng công ty Cảng hàng không Việt Nam",
        "Cảng hàng không quốc tế Long Thành",
    }


def _relevance(title: str, lead: str, body: str) -> float:
    entities = EntityExtractor().extract(title, f"{lead}\n{body}")
    return province_relevance(entities, title, lead, body, "Đồng Nai")


def test_relevance_orders_title_over_lead_over_buried_list() -> None:
    title_hit = _relevance(
        "Bình Phước khởi công cầu mới", "Sáng nay, lễ khởi công diễn ra.", "Dự án dài 2 km."
    )
    lead_hit = _relevance(
        "Khởi công cầu mới", "Sáng nay tại Đồng Nai, lễ khởi công diễn ra.", "Dự án dài 2 km."
    )
    body_hit = _relevance("Khởi công cầu mới", "Sáng nay, lễ khởi công diễn ra.", "Nhà thầu đến từ Đồng Nai.")
    list_hit = _relevance(
        "Dự báo thời tiết ngày mai",
        "Nam Bộ có mưa rào.",
        "Mưa lớn ở Tây Ninh, Bình Phước, Long An, Đồng Tháp và An Giang.",
    )
    none = _relevance("Hà Nội mở rộng đường vành đai", "UBND TP Hà Nội họp.", "Dự án dài 2 km.")
    assert title_hit > lead_hit > body_hit > list_hit > none == 0.0
    assert title_hit >= 0.7
    assert list_hit < 0.1


def test_relevance_accepts_any_name_of_the_province() -> None:
    a = province_relevance([], "Đồng Xoài thêm trường học", "", "", "Bình Phước")
    b = province_relevance([], "Đồng Xoài thêm trường học", "", "", "Đồng Nai")
    assert a == b > 0.5


def test_longer_names_and_streets_are_not_misread() -> None:
    entities = EntityExtractor().extract(
        "",
        "Sân bay Tân Sơn Nhất đông khách. Người dân dạo phố đường Nguyễn Huệ. "
        "Chủ tịch UBND tỉnh Bình Phước Trần Tuệ Hiền phát biểu.",
    )
    texts = {e.text for e in entities}
    assert "Tân Sơn" not in texts  # a district of Phú Thọ, but here part of the airport's name
    assert "Nguyễn Huệ" not in texts  # a street
    assert {"UBND tỉnh Bình Phước", "Trần Tuệ Hiền"} <= texts  # a name right after a place still counts
