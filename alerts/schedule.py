"""When a rule is due (lịch chạy luật).

A rule's schedule is either empty (every engine cycle), an interval such as ``every 15m`` / ``every 2h``,
or a five-field crontab such as ``*/30 7-22 * * *`` evaluated in the given time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_INTERVAL = re.compile(r"^every\s+(\d+)\s*(m|min|h|d)$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 24 * 60}
#: Crontab schedules are read in the province's local time unless told otherwise.
DEFAULT_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class InvalidSchedule(ValueError):
    """A schedule string that is neither empty, ``every N(m|h|d)`` nor a five-field crontab."""


@dataclass(frozen=True)
class RuleSchedule:
    """A parsed schedule; `is_due` is a pure function of the last run and now."""

    text: str
    interval: timedelta | None
    cron: CronTrigger | None

    def is_due(self, last_run_at: datetime | None, now: datetime) -> bool:
        if last_run_at is None:
            return True
        if self.interval is not None:
            return now - last_run_at >= self.interval
        if self.cron is not None:
            next_fire = self.cron.get_next_fire_time(None, last_run_at + timedelta(microseconds=1))
            return next_fire is not None and next_fire <= now
        return True


def parse_schedule(text: str | None, tz: tzinfo = DEFAULT_TZ) -> RuleSchedule:
    """Parse a rule schedule; raises `InvalidSchedule` with an example of each accepted form."""
    cleaned = (text or "").strip()
    if not cleaned:
        return RuleSchedule("", None, None)
    match = _INTERVAL.match(cleaned)
    if match:
        minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2).lower()]
        if minutes < 1:
            raise InvalidSchedule(f"schedule {cleaned!r}: the interval must be at least 1 minute")
        return RuleSchedule(cleaned, timedelta(minutes=minutes), None)
    if len(cleaned.split()) == 5:
        try:
            return RuleSchedule(cleaned, None, CronTrigger.from_crontab(cleaned, timezone=tz))
        except ValueError as exc:
            raise InvalidSchedule(f"schedule {cleaned!r} is not a valid crontab: {exc}") from None
    raise InvalidSchedule(
        f"schedule {cleaned!r} not understood; use nothing (every cycle), 'every 15m', 'every 2h' "
        "or a five-field crontab such as '*/30 7-22 * * *'"
    )
