"""Silences and maintenance windows: which one, if any, holds back a service's notifications
now, and the rules for creating, expiring, changing and listing them (API and pages)."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import and_, case, or_, select, update

from app.alerts import configs
from app.extensions import db
from app.ingest.records import InvalidLine, clean_text, service_name
from app.models import MaintenanceWindow, Silence, row_by_id
from app.numbers import whole_number


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
    # Compared in UTC: in the hour a DST change repeats, wall clocks would say a time
    # before the end when that end has passed already.
    instant = now.astimezone(UTC)
    crosses_midnight = window.end_time <= window.start_time
    for days_back in (0, 1) if crosses_midnight else (0,):
        day = local.date() - timedelta(days=days_back)
        if day.weekday() not in window.weekdays:
            continue
        start = datetime.combine(day, window.start_time, zone)
        end_day = day + timedelta(days=1) if crosses_midnight else day
        end = datetime.combine(end_day, window.end_time, zone)
        if start <= instant < end:
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


# Changes: validation shared by the JSON API and the pages, then create, expire, list.

# The levels of app.alerts.evaluate.ALERT_LEVELS, not imported from there: evaluation and
# delivery consult SilenceBook here, and importing them back would risk a circle.
LEVELS = ("error", "warning")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
STATES = ("active", "upcoming", "ended")
DEFAULT_STATES = ("active", "upcoming")
MAX_SILENCE = timedelta(days=90)
# How far from now a silence may start: far enough for any plan, near enough that adding
# a duration never leaves the calendar.
MAX_START_DISTANCE = timedelta(days=365)
MAX_COMMENT_CHARS = 1000
MAX_LISTED = 1000
DEFAULT_LISTED = 100
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class InvalidSilence(ValueError):
    """Fields of a silence or maintenance window that cannot be saved, each with the reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        """Keep the per-field reasons."""
        super().__init__(f"invalid silence or maintenance window: {', '.join(sorted(fields))}")
        self.fields = fields


class AlreadyEnded(Exception):
    """The silence is over already; there is nothing left to expire."""


def _service(value) -> str | None:
    """A service name, or None (absent or null) for every service."""
    if value is None:
        return None
    try:
        return service_name(value)
    except InvalidLine as error:
        raise ValueError(str(error).removeprefix("service ")) from None


def _level(value) -> str | None:
    """An alert level, or None (absent or null) for both."""
    if value is None:
        return None
    if value not in LEVELS:
        raise ValueError(f"must be one of {', '.join(LEVELS)} (or absent for both)")
    return value


def _moment(value) -> datetime:
    """An ISO-8601 time with a UTC offset, in UTC."""
    hint = "must be an ISO-8601 time with an offset, e.g. 2026-11-27T22:00:00Z"
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(hint)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(hint) from None
    if moment.tzinfo is None:
        raise ValueError("must have a UTC offset (Z or +01:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


def _minutes(value) -> int:
    """A duration in whole minutes, from 1 minute to MAX_SILENCE."""
    most = int(MAX_SILENCE.total_seconds() // 60)
    if isinstance(value, str):
        value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"must be a whole number of minutes from 1 to {most}")
    return value


def _comment(value) -> str:
    """Free text up to MAX_COMMENT_CHARS; absent or null is empty."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_COMMENT_CHARS:
        raise ValueError(f"must be text of at most {MAX_COMMENT_CHARS} characters")
    return clean_text(value.strip())


def _weekday(value) -> int:
    """One weekday: 0 (Monday) to 6, or a name such as mon or monday."""
    if isinstance(value, str) and (number := whole_number(value)) is not None:
        value = number
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        for number, day in enumerate(WEEKDAYS):
            if len(name) >= 3 and day.startswith(name):
                return number
    raise ValueError("must list weekdays as 0 (Monday) to 6 or names such as mon or monday")


def _weekdays(value) -> list[int]:
    """At least one weekday, as a list (or comma-separated text); sorted, without repeats."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or len(value) > 7 * 3:
        raise ValueError("must list at least one weekday, e.g. [\"sat\", \"sun\"]")
    return sorted({_weekday(day) for day in value})


def _clock(value) -> time:
    """A wall-clock time of day as HH:MM."""
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be a time of day as HH:MM, e.g. 22:00")
    return time(int(match[1]), int(match[2]))


@cache
def _known_zones() -> frozenset[str]:
    """Every IANA time zone name this system (or the tzdata package) knows."""
    return frozenset(available_timezones())


def _enabled(value) -> bool:
    """true or false, read as alert configs read it."""
    # Looked up when called: configs may come to import the evaluator, which imports us.
    return configs.VALIDATORS["enabled"](value)


def _time_zone(value) -> str:
    """An IANA time zone name, such as Europe/Berlin."""
    if not isinstance(value, str) or value.strip() not in _known_zones():
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin or UTC")
    return value.strip()


SILENCE_FIELDS = {"service": _service, "level": _level, "starts_at": _moment,
                  "ends_at": _moment, "duration_minutes": _minutes, "comment": _comment}
WINDOW_FIELDS = {"service": _service, "level": _level, "weekdays": _weekdays,
                 "start_time": _clock, "end_time": _clock, "time_zone": _time_zone,
                 "comment": _comment, "enabled": _enabled}
WINDOW_DEFAULTS = {"service": None, "level": None, "time_zone": "UTC", "comment": "",
                   "enabled": True}


def _clean(data, validators: dict) -> dict:
    """The validated fields present in data, or InvalidSilence naming every bad one."""
    if not isinstance(data, dict):
        raise InvalidSilence({"body": "must be a JSON object"})
    cleaned, errors = {}, {}
    for name, value in data.items():
        if name not in validators:
            errors[str(name)] = "is not a field here"
            continue
        try:
            cleaned[name] = validators[name](value)
        except ValueError as error:
            errors[name] = str(error)
    if errors:
        raise InvalidSilence(errors)
    return cleaned


def _silence_span(cleaned: dict, now: datetime) -> tuple[datetime, datetime]:
    """Start and end of a new silence: start defaults to now; the end is given or a duration."""
    start = cleaned.get("starts_at", now)
    if abs(start - now) > MAX_START_DISTANCE:
        raise InvalidSilence({"starts_at": "must be within 365 days of now"})
    if "ends_at" in cleaned and "duration_minutes" in cleaned:
        raise InvalidSilence({"duration_minutes": "give ends_at or duration_minutes, not both"})
    if "duration_minutes" in cleaned:
        end, field = start + timedelta(minutes=cleaned["duration_minutes"]), "duration_minutes"
    elif "ends_at" in cleaned:
        end, field = cleaned["ends_at"], "ends_at"
    else:
        raise InvalidSilence({"ends_at": "ends_at or duration_minutes is required"})
    if end <= start:
        raise InvalidSilence({"ends_at": "must be after starts_at"})
    if end - start > MAX_SILENCE:
        raise InvalidSilence({"ends_at": "must be at most 90 days after starts_at"})
    if end <= now:
        raise InvalidSilence({field: "ends in the past: the silence would be over already"})
    return start, end


def create_silence(data, who: str, now: datetime | None = None) -> Silence:
    """Validate and store a silence created by `who`."""
    now = now or datetime.now(UTC)
    cleaned = _clean(data, SILENCE_FIELDS)
    start, end = _silence_span(cleaned, now)
    silence = Silence(service=cleaned.get("service"), level=cleaned.get("level"),
                      starts_at=start, ends_at=end, comment=cleaned.get("comment", ""),
                      created_by=who)
    db.session.add(silence)
    db.session.commit()
    return silence


def get_silence(silence_id: int) -> Silence | None:
    """The silence with this id, if any."""
    return row_by_id(Silence, silence_id)


def expire_silence(silence: Silence, who: str) -> Silence:
    """End a silence now (one not yet started never starts); AlreadyEnded if it is over."""
    now = datetime.now(UTC)
    # Conditional, so two people expiring at once cannot both succeed.
    changed = db.session.execute(
        update(Silence).where(Silence.id == silence.id, Silence.ends_at > now)
        .values(ends_at=now, expired_at=now, expired_by=who)
    ).rowcount
    db.session.commit()
    db.session.refresh(silence)
    if not changed:
        raise AlreadyEnded(f"silence {silence.id} has ended already")
    return silence


def silence_state(silence: Silence, now: datetime) -> str:
    """active, upcoming or ended, at `now`."""
    if silence.ends_at <= now:
        return "ended"
    return "upcoming" if silence.starts_at > now else "active"


def _iso(moment: datetime | None) -> str | None:
    """A time as ISO-8601 text, or None."""
    return moment.isoformat() if moment else None


def silence_dict(silence: Silence, now: datetime | None = None) -> dict:
    """One silence as the API shows it, with its state now."""
    return {"id": silence.id, "service": silence.service, "level": silence.level,
            "starts_at": _iso(silence.starts_at), "ends_at": _iso(silence.ends_at),
            "state": silence_state(silence, now or datetime.now(UTC)),
            "comment": silence.comment, "created_by": silence.created_by,
            "created_at": _iso(silence.created_at), "expired_at": _iso(silence.expired_at),
            "expired_by": silence.expired_by}


def _states(value) -> set[str]:
    """The states asked for: comma-separated names; none asked means active and upcoming."""
    if not value:
        return set(DEFAULT_STATES)
    states = {part.strip() for part in value.split(",")}
    if not states <= set(STATES):
        raise InvalidSilence({"state": "must be active, upcoming or ended, comma-separated"})
    return states


def _limit(value) -> int:
    """How many silences to list at most."""
    if value is None:
        return DEFAULT_LISTED
    limit = whole_number(value)
    if limit is None or not 1 <= limit <= MAX_LISTED:
        raise InvalidSilence({"limit": f"must be a whole number from 1 to {MAX_LISTED}"})
    return limit


def list_silences(args) -> list[dict]:
    """Silences in the states asked (?state=), soonest to end first, then the latest ended."""
    now = datetime.now(UTC)
    states, limit = _states(args.get("state")), _limit(args.get("limit"))
    conditions = {"active": and_(Silence.starts_at <= now, Silence.ends_at > now),
                  "upcoming": and_(Silence.starts_at > now, Silence.ends_at > now),
                  "ended": Silence.ends_at <= now}
    query = (select(Silence).where(or_(*(conditions[s] for s in states)))
             # Live ones first (ended ones sort after by the case), then by end.
             .order_by(case((Silence.ends_at > now, 0), else_=1),
                       case((Silence.ends_at > now, Silence.ends_at)),
                       Silence.ends_at.desc(), Silence.id.desc())
             .limit(limit))
    return [silence_dict(s, now) for s in db.session.scalars(query)]


def next_start(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """When the window's next occurrence starts after `now`, in its zone (None if disabled)."""
    if not window.enabled:
        return None
    zone = ZoneInfo(window.time_zone)
    today = now.astimezone(zone).date()
    for days_ahead in range(8):
        day = today + timedelta(days=days_ahead)
        start = datetime.combine(day, window.start_time, zone)
        if day.weekday() in window.weekdays and start > now:
            return start
    return None


def window_dict(window: MaintenanceWindow, now: datetime | None = None) -> dict:
    """One maintenance window as the API shows it: whether it holds now, when it next starts."""
    now = now or datetime.now(UTC)
    until = window_occurrence(window, now) if window.enabled else None
    return {"id": window.id, "service": window.service, "level": window.level,
            "weekdays": list(window.weekdays),
            "weekday_names": [WEEKDAYS[day][:3] for day in window.weekdays],
            "start_time": window.start_time.strftime("%H:%M"),
            "end_time": window.end_time.strftime("%H:%M"),
            "crosses_midnight": window.end_time <= window.start_time,
            "time_zone": window.time_zone, "enabled": window.enabled,
            "active_now": until is not None, "active_until": _iso(until),
            "next_start": _iso(next_start(window, now)), "comment": window.comment,
            "created_by": window.created_by, "created_at": _iso(window.created_at)}


def _check_times(window: dict) -> None:
    """A window's start and end must differ (equal would mean no time, or all of it)."""
    if window["start_time"] == window["end_time"]:
        raise InvalidSilence({"end_time": "must differ from start_time"})


def create_window(data, who: str) -> MaintenanceWindow:
    """Validate and store a maintenance window created by `who`."""
    missing = {name: "is required" for name in ("weekdays", "start_time", "end_time")
               if isinstance(data, dict) and name not in data}
    try:
        cleaned = {**WINDOW_DEFAULTS, **_clean(data, WINDOW_FIELDS)}
    except InvalidSilence as invalid:
        raise InvalidSilence({**missing, **invalid.fields}) from None
    if missing:
        raise InvalidSilence(missing)
    _check_times(cleaned)
    window = MaintenanceWindow(**cleaned, created_by=who)
    db.session.add(window)
    db.session.commit()
    return window


def get_window(window_id: int) -> MaintenanceWindow | None:
    """The maintenance window with this id, if any."""
    return row_by_id(MaintenanceWindow, window_id)


def update_window(window: MaintenanceWindow, data) -> MaintenanceWindow:
    """Change the fields sent (enabled alone switches it on or off); the rest stay."""
    cleaned = _clean(data, WINDOW_FIELDS)
    _check_times({"start_time": cleaned.get("start_time", window.start_time),
                  "end_time": cleaned.get("end_time", window.end_time)})
    for name, value in cleaned.items():
        setattr(window, name, value)
    db.session.commit()
    return window


def delete_window(window: MaintenanceWindow) -> None:
    """Remove a maintenance window."""
    db.session.delete(window)
    db.session.commit()


def list_windows() -> list[dict]:
    """Every maintenance window, enabled first, then by service."""
    now = datetime.now(UTC)
    query = select(MaintenanceWindow).order_by(
        MaintenanceWindow.enabled.desc(), MaintenanceWindow.service.nulls_first(),
        MaintenanceWindow.id)
    return [window_dict(w, now) for w in db.session.scalars(query)]
