"""Which silence or maintenance window, if any, holds back a service's notifications now."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.extensions import db
from app.models import MaintenanceWindow, Silence


@dataclass(frozen=True)
class Hold:
    """What holds a notification back: a silence or a maintenance window, until when."""

    kind: str
    id: int
    until: datetime


def _matches(rule: Silence | MaintenanceWindow, service: str, level: str) -> bool:
    """A rule with no service covers every service; one with no level covers both levels."""
    return rule.service in (None, service) and rule.level in (None, level)


def window_occurrence(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """When the occurrence of the window holding `now` ends, or None if none holds it.

    Times are wall-clock times in the window's zone; an end before the start means the
    window runs past midnight into the next day, and belongs to the weekday it starts on.
    """
    zone = ZoneInfo(window.time_zone)
    local = now.astimezone(zone)
    crosses_midnight = window.end_time <= window.start_time
    for days_back in (0, 1) if crosses_midnight else (0,):
        day = local.date() - timedelta(days=days_back)
        if day.weekday() not in window.weekdays:
            continue
        start = datetime.combine(day, window.start_time, zone)
        end_day = day + timedelta(days=1) if crosses_midnight else day
        end = datetime.combine(end_day, window.end_time, zone)
        if start <= local < end:
            return end
    return None


class SilenceBook:
    """The silences and enabled maintenance windows in force at one moment, loaded once."""

    def __init__(self, now: datetime) -> None:
        """Load the silences holding at `now` and every enabled maintenance window."""
        self.now = now
        self.silences = list(db.session.scalars(select(Silence).where(
            Silence.starts_at <= now, Silence.ends_at > now)))
        self.windows = list(db.session.scalars(select(MaintenanceWindow).where(
            MaintenanceWindow.enabled)))

    def hold(self, service: str, level: str) -> Hold | None:
        """The silence or window holding this service's level now, the longest-lasting first."""
        holds = [Hold("silence", s.id, s.ends_at) for s in self.silences
                 if _matches(s, service, level)]
        for window in self.windows:
            if _matches(window, service, level):
                until = window_occurrence(window, self.now)
                if until is not None:
                    holds.append(Hold("maintenance", window.id, until))
        return max(holds, key=lambda h: h.until, default=None)

