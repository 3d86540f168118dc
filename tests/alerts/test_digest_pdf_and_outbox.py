"""The digest as PDF (Vietnamese text intact, charts embedded) and its e-mail outbox (exactly once)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.delivery import DeliveryPolicy
from alerts.digest import Digest, archive_digest, build_digest, render_digest_pdf
from alerts.digest_delivery import deliver_digests, digest_delivery_rows, queue_digest
from alerts.store import digest_deliveries
from index.tantivy_backend import TantivyIndex
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, SmtpInbox, _free_port
from tests.alerts.test_alert_digest import DAY, TZ, _seed

NOW = datetime(2026, 11, 28, 0, 5, tzinfo=UTC)
SENDER = "ban-tin@ioc.example.vn"
GROUPS = {
    "lanh-dao-tinh": ["chu-tich@ioc.example.vn", "pho-chu-tich@ioc.example.vn"],
    "ioc": ["truc@ioc.example.vn"],
}


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install poppler-utils (scripts/system-deps.sh)")
    return path


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "digest.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        [_poppler("pdftotext"), "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def digest(tmp_path_factory: pytest.TempPathFactory) -> Digest:
    index = TantivyIndex(tmp_path_factory.mktemp("index"))
    try:
        _seed(index)
        return build_digest(index, DAY, TZ, "Đồng Nai", now=NOW)
    finally:
        index.close()


@pytest.fixture(scope="module")
def pdf(digest: Digest) -> bytes:
    return render_digest_pdf(digest)


def test_pdf_keeps_vietnamese_diacritics(pdf: bytes, tmp_path: Path) -> None:
    assert pdf.startswith(b"%PDF-")
    text = " ".join(_pdf_text(pdf, tmp_path).split())
    for expected in (
        "Bản tin dư luận hằng ngày – Đồng Nai",
        "Thứ Sáu, 27/11/2026",
        "Sạt lở bờ sông Đồng Nai, 30 hộ dân phải di dời",
        "Tin tiêu cực liên quan đến Đồng Nai cần chú ý",
        "71,4%",
        # Crawled text is shown as text, not interpreted.
        "<script>alert('xss')</script> Tin đồn thất thiệt về Đồng Nai",
    ):
        assert expected in text, f"{expected!r} missing from the PDF text"


def test_pdf_embeds_its_font_and_both_charts(pdf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "digest.pdf"
    path.write_bytes(pdf)
    fonts = subprocess.run(
        [_poppler("pdffonts"), str(path)], capture_output=True, text=True, check=True
    ).stdout
    faces = [line.split() for line in fonts.splitlines()[2:]]
    assert faces and all("Duluan-Sans" in face[0] for face in faces), fonts  # no fallback to system fonts
    assert all(face[-5] == "yes" for face in faces), fonts  # embedded
    images = subprocess.run(
        [_poppler("pdfimages"), "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    charts = [line for line in images.splitlines()[2:] if line.split()[2] == "image"]
    assert len(charts) == 2, images


def test_archive_writes_html_pdf_and_email_with_pdf_attached(digest: Digest, tmp_path: Path) -> None:
    archive = archive_digest(digest, tmp_path / "digests", email_sender=SENDER)
    assert archive.html.name == "ban-tin-2026-11-27.html" and "Đồng Nai" in archive.html.read_text("utf-8")
    assert archive.pdf is not None and archive.pdf.read_bytes().startswith(b"%PDF-")
    assert archive.email is not None
    names = sorted(p.name for p in (tmp_path / "digests").iterdir())
    assert names == ["ban-tin-2026-11-27.eml", "ban-tin-2026-11-27.html", "ban-tin-2026-11-27.pdf"]
    html_only = archive_digest(digest, tmp_path / "html-only", pdf=False)
    assert html_only.pdf is None and html_only.email is None


def _smtp(inbox: SmtpInbox, port: int | None = None) -> EmailChannel:
    return EmailChannel(
        SmtpConfig(
            host=inbox.host,
            port=port or inbox.port,
            sender=SENDER,
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            ca_file=inbox.ca_file,
            timeout_s=5,
        )
    )


@pytest.fixture(scope="module")
def archived_email(digest: Digest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = archive_digest(digest, tmp_path_factory.mktemp("digests"), email_sender=SENDER)
    assert archive.email is not None
    return archive.email


@pytest.fixture
def queued(archived_email: Path, db: sa.Engine) -> Path:
    keys = queue_digest(db, DAY, GROUPS, archived_email, now=NOW)
    assert len(keys) == 3
    return archived_email


def test_digest_sent_once_per_recipient_with_pdf(queued: Path, db: sa.Engine, smtp_server: SmtpInbox) -> None:
    assert queue_digest(db, DAY, GROUPS, queued, now=NOW) == []  # queued again: nothing new
    report = deliver_digests(db, _smtp(smtp_server), now=NOW)
    assert len(report.sent) == 3 and not report.retrying
    assert sorted(rcpt for _, rcpts in smtp_server.envelopes for rcpt in rcpts) == sorted(
        a for addresses in GROUPS.values() for a in addresses
    )
    for mail in smtp_server.messages:
        assert isinstance(mail, EmailMessage)
        assert mail["Subject"] == "Bản tin dư luận Đồng Nai – Thứ Sáu, 27/11/2026"
        assert mail["To"] in {a for addresses in GROUPS.values() for a in addresses}
        attachments = [p for p in mail.iter_attachments() if p.get_content_type() == "application/pdf"]
        assert len(attachments) == 1 and attachments[0].get_filename() == "ban-tin-2026-11-27.pdf"
        assert attachments[0].get_payload(decode=True).startswith(b"%PDF-")  # type: ignore[union-attr]
    assert len({m["Message-ID"] for m in smtp_server.messages}) == 3
    # A second pass sends nothing more.
    assert deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(minutes=1)).sent == []
    assert len(smtp_server.messages) == 3
    assert {r["status"] for r in digest_delivery_rows(db, DAY)} == {"sent"}


def test_bounced_recipient_is_recorded_not_retried(
    queued: Path, db: sa.Engine, smtp_server: SmtpInbox
) -> None:
    smtp_server.refuse.add("pho-chu-tich@ioc.example.vn")
    report = deliver_digests(db, _smtp(smtp_server), now=NOW)
    assert len(report.sent) == 2 and list(report.bounced) == [
        "digest:2026-11-27:lanh-dao-tinh:pho-chu-tich@ioc.example.vn"
    ]
    rows = {r["recipient"]: r for r in digest_delivery_rows(db)}
    assert rows["pho-chu-tich@ioc.example.vn"]["status"] == "bounced"
    assert "550" in rows["pho-chu-tich@ioc.example.vn"]["last_error"]
    later = deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(days=1))
    assert later.sent == [] and len(smtp_server.messages) == 2


def test_server_down_retries_with_backoff_then_delivers(
    queued: Path, db: sa.Engine, smtp_server: SmtpInbox
) -> None:
    down = _smtp(smtp_server, port=_free_port())  # nothing listens there
    policy = DeliveryPolicy(base_backoff_s=60)
    report = deliver_digests(db, down, now=NOW, policy=policy)
    assert len(report.retrying) == 1 and "email" in report.channels_down  # one try, then the rest wait
    first = next(r for r in digest_delivery_rows(db) if r["attempts"] == 1)
    assert first["status"] == "pending" and first["next_attempt_at"] == NOW + timedelta(seconds=60)
    assert deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(seconds=30)).sent.__len__() == 2
    assert len(deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(seconds=61)).sent) == 1
    assert len(smtp_server.messages) == 3


def test_without_email_channel_digests_wait(queued: Path, db: sa.Engine) -> None:
    report = deliver_digests(db, None, now=NOW)
    assert report.unconfigured_channels == {"email"} and report.sent == []
    assert {r["status"] for r in digest_delivery_rows(db)} == {"pending"}


def test_crash_between_send_and_mark_is_not_resent(
    queued: Path, db: sa.Engine, smtp_server: SmtpInbox
) -> None:
    # A sender started transmitting a row and died before recording the outcome.
    with db.begin() as conn:
        row_id = conn.execute(sa.select(sa.func.min(digest_deliveries.c.id))).scalar()
        conn.execute(
            digest_deliveries.update()
            .where(digest_deliveries.c.id == row_id)
            .values(status="transmitting", claimed_at=NOW, attempts=1)
        )
    report = deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(minutes=20))
    assert len(report.sent) == 2 and len(report.interrupted) == 1
    statuses = sorted(r["status"] for r in digest_delivery_rows(db))
    assert statuses == ["interrupted", "sent", "sent"]
    assert len(smtp_server.messages) == 2


def test_crash_after_claim_before_transmitting_is_resent(
    queued: Path, db: sa.Engine, smtp_server: SmtpInbox
) -> None:
    # A sender claimed a row and died while connecting: nothing left, so the row is sent later.
    with db.begin() as conn:
        row_id = conn.execute(sa.select(sa.func.min(digest_deliveries.c.id))).scalar()
        conn.execute(
            digest_deliveries.update()
            .where(digest_deliveries.c.id == row_id)
            .values(status="sending", claimed_at=NOW, attempts=1)
        )
    first = deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(minutes=20))
    assert len(first.sent) == 3 and first.interrupted == []
    second = deliver_digests(db, _smtp(smtp_server), now=NOW + timedelta(minutes=21))
    assert second.sent == []
    assert sorted(r["status"] for r in digest_delivery_rows(db)) == ["sent", "sent", "sent"]
    assert len(smtp_server.messages) == 3
