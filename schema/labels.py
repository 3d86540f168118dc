"""Label vocabularies. The codes are part of the public API (CLI filters, REST, alert rules)."""

from typing import Literal

#: Topic code → Vietnamese display name (chủ đề).
TOPICS: dict[str, str] = {
    "chinh-tri": "Chính trị – Xã hội",
    "kinh-te": "Kinh tế – Kinh doanh – Tài chính",
    "phap-luat": "Pháp luật – An ninh trật tự",
    "y-te": "Y tế – Sức khỏe",
    "giao-duc": "Giáo dục",
    "giao-thong": "Giao thông",
    "dat-dai": "Đất đai – Quy hoạch – Xây dựng – Bất động sản",
    "moi-truong": "Tài nguyên – Môi trường",
    "van-hoa": "Văn hóa – Giải trí – Du lịch",
    "the-thao": "Thể thao",
    "cong-nghe": "Khoa học – Công nghệ – An ninh mạng",
    "the-gioi": "Thế giới",
    "doi-song": "Đời sống",
}

Sentiment = Literal["negative", "neutral", "positive"]
#: Sentiment code → Vietnamese display name (sắc thái).
SENTIMENTS: dict[str, str] = {"negative": "Tiêu cực", "neutral": "Trung lập", "positive": "Tích cực"}

Toxicity = Literal["clean", "offensive", "hate"]
#: Toxicity code → Vietnamese display name (mức độ độc hại).
TOXICITY_LABELS: dict[str, str] = {"clean": "Bình thường", "offensive": "Xúc phạm", "hate": "Thù ghét"}
