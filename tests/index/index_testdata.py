"""Test data for the index tests: a small corpus with known answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from schema import Document, Entity

VN = timezone(timedelta(hours=7))


def make_doc(doc_id: str, title: str = "", text: str = "", **fields: Any) -> Document:
    url = fields.pop("url", f"https://vnexpress.net/{doc_id}.html")
    fields.setdefault("source", "vnexpress")
    fields.setdefault("fetched_at", datetime(2026, 11, 20, 8, 0, tzinfo=VN))
    return Document(id=doc_id, url=url, canonical_url=url, title=title, text=text, **fields)


def corpus() -> list[Document]:
    """Eight documents chosen so every query in the tests has a known answer."""
    return [
        make_doc(
            "bp-rain",
            "Bình Phước mưa lớn gây ngập",
            "Mưa lớn kéo dài ở Đồng Xoài, tỉnh Bình Phước, làm ngập nhiều tuyến đường. Đất đai sạt lở.",
            published_at=datetime(2026, 11, 1, 23, 30, tzinfo=VN),
            topic="moi-truong",
            sentiment="negative",
            entities=[Entity(text="Bình Phước", label="LOC", canonical="Bình Phước")],
            author="Nguyễn Văn An",
        ),
        make_doc(
            "bp-ascii",
            "Binh phuoc football",
            "Tran dau binh phuoc tai san van dong tinh",
            published_at=datetime(2026, 11, 2, 0, 30, tzinfo=VN),
            topic="the-thao",
            sentiment="positive",
            source="tuoitre",
            url="https://e.tuoitre.vn/bp-ascii.html",
        ),
        make_doc(
            "land",
            "Đấu giá đất tại Đồng Nai",
            "Phiên đấu giá quyền sử dụng đất thu hút nhiều nhà đầu tư.",
            published_at=datetime(2026, 11, 10, 9, 0, tzinfo=VN),
            topic="dat-dai",
            sentiment="neutral",
            entities=[Entity(text="Đồng Nai", label="LOC", canonical="Đồng Nai")],
        ),
        make_doc(
            "fraud",
            "Cảnh báo lừa đảo đất nền",
            "Công an Đồng Nai cảnh báo thủ đoạn lừa đảo bán đất nền dự án ma.",
            published_at=datetime(2026, 11, 12, 14, 0, tzinfo=VN),
            topic="phap-luat",
            sentiment="negative",
            source="tuoitre",
            url="https://tuoitre.vn/fraud.html",
            entities=[Entity(text="Đồng Nai", label="LOC", canonical="Đồng Nai")],
        ),
        make_doc(
            "football",
            "Đội bóng Đồng Nai thắng đậm",
            "Trận đấu trên sân vận động tỉnh diễn ra sôi nổi, khán giả cổ vũ nhiệt tình.",
            published_at=datetime(2026, 11, 15, 20, 0, tzinfo=VN),
            topic="the-thao",
            sentiment="positive",
            source="thanhnien",
            url="https://thanhnien.vn/football.html",
        ),
        make_doc(
            "hostile",
            "<script>alert('x')</script> Tin nóng",
            "Nội dung có thẻ <b>in đậm</b> & ký tự đặc biệt <img src=x onerror=alert(1)> tin nóng.",
            published_at=datetime(2026, 11, 16, 10, 0, tzinfo=VN),
            topic="doi-song",
            sentiment="neutral",
            source_type="forum",
            source="voz",
            url="https://voz.vn/t/hostile",
        ),
        make_doc(
            "no-date",
            "Giá xăng giảm",
            "Giá xăng dầu trong nước giảm từ chiều nay.",
            fetched_at=datetime(2026, 11, 20, 8, 0, tzinfo=VN),
            topic="kinh-te",
            sentiment="positive",
        ),
        make_doc(
            "rice",
            "Giá lúa tăng, nông dân phấn khởi",
            "Nông dân Bình Phước phấn khởi vì giá lúa tăng cao. Đồng lúa chín vàng.",
            published_at=datetime(2026, 10, 28, 7, 0, tzinfo=VN),
            topic="kinh-te",
            sentiment="positive",
            entities=[Entity(text="Bình Phước", label="LOC", canonical="Bình Phước")],
        ),
    ]


def ids(result: Any) -> set[str]:
    return {hit.document.id for hit in result.hits}
