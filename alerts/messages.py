"""Alert texts per channel (nội dung cảnh báo), from Jinja2 templates in Vietnamese.

Every template says what fired (rule), why (counts vs threshold or baseline), the top documents with
source, time and sentiment, and links to the alert in the web UI. HTML variants autoescape everything.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from alerts.channels.base import OutboxMessage, RenderedAlert
from alerts.links import safe_url
from schema import SENTIMENTS

MAX_SUBJECT_CHARS = 160
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
