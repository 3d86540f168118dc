"""Outbox delivery to real local servers: SMTP (aiosmtpd, STARTTLS + login), webhook, Telegram, Zalo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import alerts.delivery
from alerts.channels import CHANNEL_TYPES, Channel
from alerts.channels.email import EmailChannel, SmtpConfig
from alerts.channels.telegram import TelegramChannel, TelegramConfig
from alerts.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookChannel,
    WebhookConfig,
    verify_signature,
)
from alerts.channels.zalo import ZaloChannel, ZaloConfig
from alerts.delivery import DeliveryPolicy, backoff_delay, deliver_pending, delivery_status_counts
from alerts.engine import run_rules_once
from alerts.store import alert_deliveries, save_rule
from index.tantivy_backend import TantivyIndex
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, LocalHttpServer, RecordedRequest, SmtpInbox
from tests.alerts.factories import make_doc

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
UI = "http://127.0.0.1:8000"
SECRET = "bi-mat-webhook"
GOOD, BOUNCING = "truc-ban@ioc.example.vn", "khong-ton-tai@ioc.example.vn"


def _fire(index: TantivyIndex, db: sa.Engine, channels: list[dict[str, Any]]) -> None:
    index.upsert(
        [
            make_doc(
                "chay-kho-hang",
                source="baodongnai",
                title="Cháy lớn tại kho hàng ở KCN Biên Hòa <script>alert(1)</script>",
                published_at=NOW - timedelta(minutes=20),
                sentiment="negative",
                topic="phap-luat",
                cluster_id="c-chay",
                province_relevance=0.9,
            ),
            make_doc(
                "chay-kho-hang-bien-hoa",
                source="vnexpress",
                title="Biên Hòa: cháy kho hàng, khói đen bao trùm khu dân cư",
                published_at=NOW - timedelta(minutes=10),
                sentiment="negative",
                topic="phap-luat",
                cluster_id="c-chay",
                province_relevance=0.85,
            ),
        ]
    )
    save_rule(
        db,
        {
            "name": "Tin tiêu cực về Đồng Nai",
            "owner": "ioc",
            "rule_type": "match",
            "filters": {"sentiment": "negative", "min_province_relevance": 0.5},
            "channels": channels,
        },
    )
    assert len(run_rules_once(index, db, NOW)) == 1


def _email(inbox: SmtpInbox) -> EmailChannel:
    return EmailChannel(
        SmtpConfig(
            host=inbox.host,
            port=inbox.port,
            sender="canh-bao@ioc.example.vn",
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            starttls=True,
            ca_file=inbox.ca_file,
        )
    )


def _statuses(db: sa.Engine) -> dict[str, str]:
    with db.connect() as conn:
        return {r.recipient: r.status for r in conn.execute(sa.select(alert_deliveries))}


def test_channel_registry() -> None:
    assert {"email", "webhook", "telegram", "zalo"} <= set(CHANNEL_TYPES)


def test_email_over_starttls_with_login_and_bounce(
    index: TantivyIndex, db: sa.Engine, smtp_server: SmtpInbox
) -> None:
    smtp_server.refuse.add(BOUNCING)
    _fire(index, db, [{"channel": "email", "recipients": [GOOD, BOUNCING]}])
    report = deliver_pending(db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW)

    assert len(report.sent) == 1 and len(report.bounced) == 1
    assert "550" in next(iter(report.bounced.values()))
    assert _statuses(db) == {GOOD: "sent", BOUNCING: "bounced"}
    assert smtp_server.logins == [SMTP_USER, SMTP_USER]
    assert smtp_server.envelopes == [("canh-bao@ioc.example.vn", [GOOD])]
    mail = smtp_server.messages[0]
    assert mail["Subject"].startswith("[Duluan] Tin tiêu cực về Đồng Nai: ")
    assert mail["X-Duluan-Idempotency-Key"].endswith(f":email:{GOOD}")
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Lý do: 2 bài mới khớp phạm vi theo dõi, từ 2 nguồn" in text
    assert "baodongnai" in text and "Tiêu cực" in text
    assert f"{UI}/alerts/" in text
    assert "<script>" not in html and "&lt;script&gt;" in html

    # The bounced address is not retried; the sent one is not sent again.
    again = deliver_pending(db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW + timedelta(hours=2))
    assert again.sent == [] and len(smtp_server.messages) == 1


def test_crash_between_send_and_mark_never_sends_twice(
    index: TantivyIndex, db: sa.Engine, smtp_server: SmtpInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fire(index, db, [{"channel": "email", "recipients": [GOOD]}])
    real_mark = alerts.delivery._mark

    def crash_when_marking_sent(engine: sa.Engine, delivery_ids: list[int], **values: Any) -> None:
        if values.get("status") == "sent":
            raise SystemExit("killed between send and mark")
        real_mark(engine, delivery_ids, **values)

    monkeypatch.setattr(alerts.delivery, "_mark", crash_when_marking_sent)
    with pytest.raises(SystemExit):
        deliver_pending(db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW)
    monkeypatch.setattr(alerts.delivery, "_mark", real_mark)
    assert len(smtp_server.messages) == 1
    assert _statuses(db) == {GOOD: "transmitting"}

    # Restarted sender: the claimed row is not pending, so it is not sent again ...
    soon = deliver_pending(db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW + timedelta(minutes=1))
    assert soon.sent == [] and len(smtp_server.messages) == 1
    # ... and once stale it is reported as interrupted, still not resent.
    later = deliver_pending(
        db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW + timedelta(minutes=15)
    )
    assert len(later.interrupted) == 1 and later.sent == []
    assert len(smtp_server.messages) == 1
    assert delivery_status_counts(db) == {"interrupted": 1}


def test_webhook_signed_retried_while_down_without_delaying_email(
    index: TantivyIndex, db: sa.Engine, smtp_server: SmtpInbox, http_server: LocalHttpServer
) -> None:
    hooks = [f"{http_server.url}/hook/a", f"{http_server.url}/hook/b"]
    _fire(
        index, db, [{"channel": "webhook", "recipients": hooks}, {"channel": "email", "recipients": [GOOD]}]
    )
    http_server.respond = lambda request: (503, {"error": "bảo trì"})
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(WebhookConfig(SECRET)),
        "email": _email(smtp_server),
    }

    down = deliver_pending(db, channels, ui_base_url=UI, now=NOW)
    assert len(down.sent) == 1 and down.sent[0].endswith(f":email:{GOOD}")  # email went out
    assert len(down.retrying) == 1  # the second webhook message was not even tried: channel down
    assert len(http_server.requests) == 1
    assert "HTTP 503" in down.channels_down["webhook"]

    http_server.respond = lambda request: (200, {"received": True})
    too_early = deliver_pending(db, channels, ui_base_url=UI, now=NOW + timedelta(seconds=30))
    assert len(too_early.sent) == 1 and "/hook/b" in too_early.sent[0]  # only the untried one is due
    recovered = deliver_pending(db, channels, ui_base_url=UI, now=NOW + backoff_delay(1, DeliveryPolicy()))
    assert len(recovered.sent) == 1
    assert set(_statuses(db).values()) == {"sent"}
    assert len(smtp_server.messages) == 1

    for request in http_server.requests:
        assert verify_signature(
            SECRET, request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER]
        )
        payload = request.json()
        assert payload["rule"] == "Tin tiêu cực về Đồng Nai"
        assert request.headers["Idempotency-Key"] == payload["idempotency_key"]
        assert payload["details"]["counts"] == {"documents": 2, "outlets": 2}
    tampered = http_server.requests[0]
    assert not verify_signature(
        SECRET, tampered.headers[TIMESTAMP_HEADER], tampered.body + b" ", tampered.headers[SIGNATURE_HEADER]
    )


def test_gives_up_after_max_attempts(
    index: TantivyIndex, db: sa.Engine, http_server: LocalHttpServer
) -> None:
    _fire(index, db, [{"channel": "webhook", "recipients": [f"{http_server.url}/hook"]}])
    http_server.respond = lambda request: (500, {"error": "hỏng"})
    policy = DeliveryPolicy(max_attempts=3, base_backoff_s=1)
    channels: dict[str, Channel] = {"webhook": WebhookChannel(WebhookConfig(SECRET))}
    for minute in range(5):
        deliver_pending(db, channels, ui_base_url=UI, now=NOW + timedelta(minutes=minute), policy=policy)
    assert len(http_server.requests) == 3
    assert delivery_status_counts(db) == {"failed": 1}


def test_interrupted_webhook_is_resent_with_the_same_idempotency_key(
    index: TantivyIndex, db: sa.Engine, http_server: LocalHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fire(index, db, [{"channel": "webhook", "recipients": [f"{http_server.url}/hook"]}])
    channels: dict[str, Channel] = {"webhook": WebhookChannel(WebhookConfig(SECRET))}
    real_mark = alerts.delivery._mark

    def crash(engine: sa.Engine, delivery_ids: list[int], **values: Any) -> None:
        if values.get("status") == "sent":
            raise SystemExit("killed between send and mark")
        real_mark(engine, delivery_ids, **values)

    monkeypatch.setattr(alerts.delivery, "_mark", crash)
    with pytest.raises(SystemExit):
        deliver_pending(db, channels, ui_base_url=UI, now=NOW)
    monkeypatch.setattr(alerts.delivery, "_mark", real_mark)
    report = deliver_pending(db, channels, ui_base_url=UI, now=NOW + timedelta(minutes=15))
    assert len(report.requeued) == 1 and len(report.sent) == 1
    keys = [r.headers["Idempotency-Key"] for r in http_server.requests]
    assert len(keys) == 2 and len(set(keys)) == 1  # the receiver can drop the repeat


def test_telegram_send_message_shape(
    index: TantivyIndex, db: sa.Engine, http_server: LocalHttpServer
) -> None:
    token = "123456:ABC-token"

    def telegram(request: RecordedRequest) -> tuple[int, Any]:
        if request.path != f"/bot{token}/sendMessage":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        if request.json()["chat_id"] == "-100999":
            return 403, {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        return 200, {"ok": True, "result": {"message_id": 7}}

    http_server.respond = telegram
    _fire(index, db, [{"channel": "telegram", "recipients": ["-100123", "-100999"]}])
    channel = TelegramChannel(TelegramConfig(bot_token=token, api_base=http_server.url))
    report = deliver_pending(db, {"telegram": channel}, ui_base_url=UI, now=NOW)
    assert len(report.sent) == 1 and "blocked" in next(iter(report.bounced.values()))
    payload = http_server.requests[0].json()
    assert payload["parse_mode"] == "HTML" and payload["chat_id"] == "-100123"
    assert payload["text"].startswith("<b>⚠️ ")
    assert "&lt;script&gt;" in payload["text"] and "<script>" not in payload["text"]
    assert f'<a href="{UI}/alerts/' in payload["text"]


def test_zalo_oa_message_shape(index: TantivyIndex, db: sa.Engine, http_server: LocalHttpServer) -> None:
    def zalo(request: RecordedRequest) -> tuple[int, Any]:
        if request.headers.get("access_token") != "zalo-token":
            return 200, {"error": -216, "message": "Access token is invalid"}
        if request.json()["recipient"]["user_id"] == "9999999999":
            return 200, {"error": -213, "message": "User has not followed OA"}
        return 200, {"error": 0, "message": "Success", "data": {"message_id": "m1"}}

    http_server.respond = zalo
    _fire(index, db, [{"channel": "zalo", "recipients": ["2512523625412515", "9999999999"]}])
    wrong_token = ZaloChannel(ZaloConfig(access_token="cu", api_url=f"{http_server.url}/v3.0/oa/message/cs"))
    first = deliver_pending(db, {"zalo": wrong_token}, ui_base_url=UI, now=NOW)
    assert len(first.retrying) == 1 and first.bounced == {}  # a token problem keeps messages queued

    channel = ZaloChannel(
        ZaloConfig(access_token="zalo-token", api_url=f"{http_server.url}/v3.0/oa/message/cs")
    )
    report = deliver_pending(db, {"zalo": channel}, ui_base_url=UI, now=NOW + timedelta(hours=1))
    assert len(report.sent) == 1 and len(report.bounced) == 1
    ok = next(r for r in http_server.requests if r.json()["recipient"]["user_id"] == "2512523625412515")
    assert ok.path == "/v3.0/oa/message/cs"
    assert ok.json()["message"]["text"].startswith("CẢNH BÁO: ")


def test_unconfigured_channel_waits(index: TantivyIndex, db: sa.Engine) -> None:
    _fire(index, db, [{"channel": "telegram", "recipients": ["-100123"]}])
    report = deliver_pending(db, {}, ui_base_url=UI, now=NOW)
    assert report.unconfigured_channels == {"telegram"}
    assert delivery_status_counts(db) == {"pending": 1}


def test_alerts_within_the_aggregation_window_go_out_as_one_message(
    index: TantivyIndex, db: sa.Engine, smtp_server: SmtpInbox
) -> None:
    _fire(index, db, [{"channel": "email", "recipients": [GOOD], "aggregate_minutes": 30}])
    later = NOW + timedelta(minutes=10)
    index.upsert(
        [
            make_doc(
                f"ngap-{source}",
                source=source,
                title="Ngập sâu ở Long Khánh sau mưa lớn",
                published_at=later - timedelta(minutes=5),
                sentiment="negative",
                cluster_id="c-ngap",
                province_relevance=0.8,
            )
            for source in ("tuoitre", "thanhnien")
        ]
    )
    assert len(run_rules_once(index, db, later)) == 1
    email = {"email": _email(smtp_server)}
    assert deliver_pending(db, email, ui_base_url=UI, now=later).sent == []  # window still open
    report = deliver_pending(db, email, ui_base_url=UI, now=NOW + timedelta(minutes=30))
    assert len(report.sent) == 2 and _statuses(db) == {GOOD: "sent"}
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail["Subject"] == "[Duluan] Tin tiêu cực về Đồng Nai: 2 cảnh báo mới"
    assert str(mail["X-Duluan-Idempotency-Key"]).strip().startswith("group:")
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "1. Biên Hòa: cháy kho hàng, khói đen bao trùm khu dân cư" in text  # newest copy leads
    assert "2. Ngập sâu ở Long Khánh sau mưa lớn" in text
    assert text.count("số bài = 2; số nguồn = 2") == 2  # per-key counts
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert html.count('href="http://127.0.0.1:8000/alerts/') == 2


def test_crash_after_claim_before_transmitting_is_resent_once(
    index: TantivyIndex, db: sa.Engine, smtp_server: SmtpInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the claim but before the message left (connecting, logging in): nothing reached
    the server, so the stale claim is requeued and the alert is delivered exactly once — not lost."""
    _fire(index, db, [{"channel": "email", "recipients": [GOOD]}])
    real_mark = alerts.delivery._mark

    def crash_before_transmitting(engine: sa.Engine, delivery_ids: list[int], **values: Any) -> None:
        if values.get("status") == "transmitting":
            raise SystemExit("killed after login, before DATA")
        real_mark(engine, delivery_ids, **values)

    monkeypatch.setattr(alerts.delivery, "_mark", crash_before_transmitting)
    with pytest.raises(SystemExit):
        deliver_pending(db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW)
    monkeypatch.setattr(alerts.delivery, "_mark", real_mark)
    assert smtp_server.messages == [] and _statuses(db) == {GOOD: "sending"}

    soon = deliver_pending(db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW + timedelta(minutes=1))
    assert soon.sent == [] and smtp_server.messages == [], "a fresh claim may still be in flight elsewhere"
    later = deliver_pending(
        db, {"email": _email(smtp_server)}, ui_base_url=UI, now=NOW + timedelta(minutes=15)
    )
    assert len(later.sent) == 1 and later.interrupted == []
    assert len(smtp_server.messages) == 1 and _statuses(db) == {GOOD: "sent"}
