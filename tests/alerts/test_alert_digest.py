"""The daily digest on a small index whose numbers are known by construction."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.digest import Digest, build_digest, build_digest_email, render_digest_html, write_digest
from index.tantivy_backend import TantivyIndex
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, SmtpInbox
from tests.alerts.factories import make_doc

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 11, 27)
MIDNIGHT = datetime(2026, 11, 27, tzinfo=TZ)
SCRIPT_TITLE = "<script>alert('xss')</script> Tin đồn thất thiệt về Đồng Nai"


def _seed(index: TantivyIndex) -> None:
    hour = timedelta(hours=1)
    dong_nai = [("Đồng Nai", "LOC")]
    docs = [
        make_doc(
            "sat-lo-1",
            source="vnexpress",
            title="Sạt lở bờ sông Đồng Nai, 30 hộ dân phải di dời",
            published_at=MIDNIGHT + 8 * hour,
            topic="moi-truong",
            sentiment="negative",
            cluster_id="c-satlo",
            province_relevance=0.9,
            entities=[*dong_nai, ("Biên Hòa", "LOC")],
        ),
        make_doc(
            "sat-lo-2",
            source="tuoitre",
            title="Biên Hòa sạt lở nghiêm trọng",
            published_at=MIDNIGHT + 9 * hour,
            topic="moi-truong",
            sentiment="negative",
            cluster_id="c-satlo",
            province_relevance=0.85,
            entities=dong_nai,
        ),
        make_doc(
            "sat-lo-3",
            source="baodongnai",
            title="Tỉnh chỉ đạo khắc phục sạt lở",
            published_at=MIDNIGHT + 10 * hour,
            topic="moi-truong",
            sentiment="negative",
            cluster_id="c-satlo",
            province_relevance=0.95,
            entities=dong_nai,
        ),
        make_doc(  # exactly at local midnight: belongs to the day
            "bong-da",
            source="thanhnien",
            title="Đồng Nai thắng đậm ở giải hạng Nhất",
            published_at=MIDNIGHT,
            topic="the-thao",
            sentiment="positive",
        ),
        make_doc(
            "kinh-te",
            source="dantri",
            title="Xuất khẩu của Đồng Nai tăng 12%",
            published_at=MIDNIGHT + 14 * hour,
            topic="kinh-te",
            sentiment="neutral",
            province_relevance=0.3,
            entities=dong_nai,
        ),
        make_doc(
            "tin-don",
            source="baodongnai",
            title=SCRIPT_TITLE,
            published_at=MIDNIGHT + 20 * hour,
            topic="chinh-tri",
            sentiment="negative",
            province_relevance=0.7,
        ),
        make_doc(
            "ket-xe-ha-noi",
            source="dantri",
            title="Kẹt xe ở Hà Nội",
            published_at=MIDNIGHT + 23 * hour + timedelta(minutes=59),
            topic="giao-thong",
            sentiment="negative",
            province_relevance=0.1,
        ),
    ]
    previous_day = [
        make_doc(
            f"hom-truoc-{i}",
            source="vnexpress",
            published_at=MIDNIGHT - timedelta(hours=1 + i),
            sentiment="negative" if i == 0 else "neutral",
        )
        for i in range(4)
    ]
    next_day = [
        make_doc("ngay-sau", source="tuoitre", published_at=MIDNIGHT + 24 * hour, sentiment="negative"),
    ]
    index.upsert(docs + previous_day + next_day)


@pytest.fixture
def digest(index: TantivyIndex) -> Digest:
    _seed(index)
    return build_digest(index, DAY, TZ, "Đồng Nai", now=datetime(2026, 11, 28, 0, 0, tzinfo=UTC))


def test_headline_numbers(digest: Digest) -> None:
    h = digest.headline
    assert (h.documents, h.outlets, h.negative) == (7, 5, 5)
    assert (h.previous_documents, h.previous_negative) == (4, 1)
    assert h.negative_share == pytest.approx(5 / 7)
    assert h.documents_change == pytest.approx(0.75)
    assert h.negative_share_change_points == pytest.approx((5 / 7 - 1 / 4) * 100)


def test_stories_collapsed_by_cluster(digest: Digest) -> None:
    top = digest.topics[0]
    assert top.topic == "moi-truong" and top.documents == 3
    assert len(top.stories) == 1
    story = top.stories[0]
    assert (story.outlets, story.documents) == (3, 3)
    assert story.title == "Sạt lở bờ sông Đồng Nai, 30 hộ dân phải di dời"  # the earliest copy
    assert sum(t.documents for t in digest.topics) == 7


def test_province_negative_items(digest: Digest) -> None:
    titles = [s.title for s in digest.province_negative]
    assert titles == ["Sạt lở bờ sông Đồng Nai, 30 hộ dân phải di dời", SCRIPT_TITLE]
    assert digest.province_negative[0].province_relevance == pytest.approx(0.95)


def test_sources_entities_and_trend(digest: Digest) -> None:
    assert digest.top_sources[:2] == [("baodongnai", 2), ("dantri", 2)]
    assert digest.top_entities[0] == ("Đồng Nai", 4)
    assert ("Biên Hòa", 1) in digest.top_entities
    assert [d.day for d in digest.sentiment_trend][-2:] == [DAY - timedelta(days=1), DAY]
    assert digest.sentiment_trend[-1].counts == {"negative": 5, "neutral": 1, "positive": 1}
    assert digest.sentiment_trend[-2].counts == {"negative": 1, "neutral": 3, "positive": 0}


def test_html_escapes_crawled_text_and_embeds_charts(digest: Digest) -> None:
    html = render_digest_html(digest)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "Bản tin dư luận hằng ngày – Đồng Nai" in html
    assert "Thứ Sáu, 27/11/2026" in html
    assert "71,4%" in html  # 5/7 negative, Vietnamese decimal comma
    charts = re.findall(r'id="(bieu-do-[a-z-]+)"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [name for name, _ in charts] == ["bieu-do-sac-thai", "bieu-do-chu-de"]
    for _, payload in charts:
        png = base64.b64decode(payload)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2_000


def test_javascript_links_are_neutralised(index: TantivyIndex) -> None:
    doc = make_doc(
        "lien-ket-doc",
        source="baodongnai",
        title="Bài có liên kết lạ",
        published_at=MIDNIGHT + timedelta(hours=5),
        sentiment="negative",
        province_relevance=0.9,
    )
    index.upsert([doc.model_copy(update={"url": "javascript:alert(1)"})])
    html = render_digest_html(build_digest(index, DAY, TZ, "Đồng Nai"))
    assert "javascript:" not in html
    assert 'href="#"' in html


def test_write_digest_is_atomic_and_replaces(digest: Digest, tmp_path: Path) -> None:
    out = tmp_path / "digests"
    path = write_digest(digest, out)
    assert path == out / "ban-tin-2026-11-27.html"
    first = path.read_text(encoding="utf-8")
    assert "Tin tiêu cực liên quan đến Đồng Nai" in first
    assert write_digest(digest, out) == path
    assert sorted(p.name for p in out.iterdir()) == ["ban-tin-2026-11-27.html"]  # no temp files left


def test_empty_day_renders(index: TantivyIndex) -> None:
    empty = build_digest(index, DAY, TZ, "Đồng Nai")
    assert empty.headline.documents == 0 and empty.headline.documents_change is None
    html = render_digest_html(empty)
    assert "Không có tin tiêu cực nào liên quan đến Đồng Nai" in html


def test_digest_email_with_inline_charts_over_smtp(digest: Digest, smtp_server: SmtpInbox) -> None:
    smtp_server.refuse.add("nghi-huu@ioc.example.vn")
    recipients = ["lanh-dao@ioc.example.vn", "nghi-huu@ioc.example.vn"]
    mail = build_digest_email(digest, "ban-tin@ioc.example.vn", recipients)
    channel = EmailChannel(
        SmtpConfig(
            host=smtp_server.host,
            port=smtp_server.port,
            sender="ban-tin@ioc.example.vn",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            ca_file=smtp_server.ca_file,
        )
    )
    refused = channel.send_mail(mail, recipients)
    assert list(refused) == ["nghi-huu@ioc.example.vn"]
    received = smtp_server.messages[0]
    assert smtp_server.envelopes[0][1] == ["lanh-dao@ioc.example.vn"]
    assert received["Subject"] == "Bản tin dư luận Đồng Nai – Thứ Sáu, 27/11/2026"
    assert "Tỷ lệ tiêu cực: 71,4%" in received.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = received.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;" in html and "data:image" not in html
    images = [p for p in received.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2
    for image in images:
        assert f'src="cid:{str(image["Content-ID"]).strip().strip("<>")}"' in html
        assert image.get_payload(decode=True).startswith(b"\x89PNG")  # type: ignore[union-attr]
