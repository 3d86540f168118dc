"""Alert texts per channel (nội dung cảnh báo), from Jinja2 templates in Vietnamese.

Every template says what fired (rule), why (counts vs threshold or baseline), the top documents with
source, time and sentiment, and links to the alert in the web UI. HTML variants autoescape everything.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2

from alerts.channels.base import OutboxMessage, RenderedAlert
from alerts.links import safe_url
from schema import SENTIMENTS

MAX_SUBJECT_CHARS = 160
#: Vietnamese names of the numbers rule types report (`Finding.counts`).
COUNT_LABELS = {
    "documents": "số bài",
    "outlets": "số nguồn",
    "count": "số bài",
    "min_count": "ngưỡng",
    "negative": "số bài tiêu cực",
    "total": "tổng số bài",
    "share": "tỷ lệ tiêu cực",
    "current": "số bài hiện tại",
    "baseline_mean": "trung bình cùng giờ",
    "baseline_stdev": "độ lệch chuẩn",
    "threshold": "ngưỡng đột biến",
    "silence_hours": "số giờ không có bài",
    "active_days": "số ngày có bài cùng giờ",
    "history_days": "số ngày so sánh",
}
DISPLAY_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _local_time(value: str | None, tz: ZoneInfo = DISPLAY_TZ) -> str:
    if not value:
        return "—"
    try:
        return datetime.fromisoformat(value).astimezone(tz).strftime("%H:%M %d/%m/%Y")
    except ValueError:
        return value


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("alerts", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        local_time=_local_time,
        safe_url=safe_url,
        sentiment_vi=lambda code: SENTIMENTS.get(code or "", "—"),
        count_label=lambda name: COUNT_LABELS.get(name, name),
    )
    return env


@cache
def _html_env() -> jinja2.Environment:
    return _environment(autoescape=True)


@cache
def _text_env() -> jinja2.Environment:
    return _environment(autoescape=False)


def alert_link(ui_base_url: str, alert_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/alerts/{alert_id}"


def subject_for(message: OutboxMessage) -> str:
    subject = f"[Duluan] {message.rule_name}: {message.title}"
    subject = " ".join(subject.split())  # no newlines in a header
    return subject if len(subject) <= MAX_SUBJECT_CHARS else subject[: MAX_SUBJECT_CHARS - 1] + "…"


def render_alert(message: OutboxMessage, ui_base_url: str) -> RenderedAlert:
    link = alert_link(ui_base_url, message.alert_id)
    context: dict[str, Any] = {
        "message": message,
        "body": message.body,
        "documents": message.body.get("documents", []),
        "counts": message.body.get("counts", {}),
        "link": link,
    }
    return RenderedAlert(
        subject=subject_for(message),
        text=_text_env().get_template("alert.txt.j2").render(context).strip() + "\n",
        html=_html_env().get_template("alert_email.html.j2").render(context),
        chat_html=_html_env().get_template("alert_telegram.html.j2").render(context).strip(),
        link=link,
    )


def group_message(messages: list[OutboxMessage]) -> OutboxMessage:
    """The envelope of a grouped send: its idempotency key is derived from every member's key, so a
    resend of the same batch carries the same key."""
    first = messages[0]
    members = sorted(m.idempotency_key for m in messages)
    digest = hashlib.sha256("\n".join(members).encode()).hexdigest()[:32]
    return OutboxMessage(
        delivery_id=first.delivery_id,
        alert_id=first.alert_id,
        idempotency_key=f"group:{digest}:{first.channel}:{first.recipient}",
        channel=first.channel,
        recipient=first.recipient,
        rule_name=first.rule_name,
        title=f"{len(messages)} cảnh báo mới",
        body={
            "rule": first.rule_name,
            "grouped": [
                {"alert_id": m.alert_id, "idempotency_key": m.idempotency_key, "title": m.title, **m.body}
                for m in messages
            ],
        },
        created_at=max(m.created_at for m in messages),
        attempts=max(m.attempts for m in messages),
    )


def render_alert_group(messages: list[OutboxMessage], ui_base_url: str) -> RenderedAlert:
    """One message for several alerts of one rule, with per-key counts (tin gộp)."""
    envelope = group_message(messages)
    items = [
        {
            "message": m,
            "counts": m.body.get("counts", {}),
            "top": (m.body.get("documents") or [None])[0],
            "link": alert_link(ui_base_url, m.alert_id),
        }
        for m in messages
    ]
    link = f"{ui_base_url.rstrip('/')}/alerts?rule={quote(envelope.rule_name)}"
    context: dict[str, Any] = {"envelope": envelope, "items": items, "link": link}
    return RenderedAlert(
        subject=subject_for(envelope),
        text=_text_env().get_template("alert_group.txt.j2").render(context).strip() + "\n",
        html=_html_env().get_template("alert_group_email.html.j2").render(context),
        chat_html=_html_env().get_template("alert_group_telegram.html.j2").render(context).strip(),
        link=link,
    )
