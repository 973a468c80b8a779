"""How often a service's alert would have fired over the last days, from the minute counts.

A minute is over when its count is above the threshold (a minute without rows counts 0). With
`for_minutes` = N an episode fires once N consecutive minutes are over; it starts at the
first of them and closes at the first minute that is not over: the same rule the live
evaluation follows, so a preview promises what saving will do.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.alerts.configs import DEFAULTS, InvalidConfig, get_config, to_dict, validate
from app.alerts.evaluate import ALERT_LEVELS, over_runs
from app.extensions import db
from app.numbers import whole_number
from app.rollups.tiers import MINUTE, floor_minute
from app.stats.dashboard import known_service

MAX_DAYS = 7
# The settings a backtest tries; any not given come from the saved config.
TUNABLE = ("error_threshold_per_min", "warning_threshold_per_min", "for_minutes")


class BadParameter(ValueError):
    """A backtest parameter that cannot be used; its message names it."""


class UnknownService(LookupError):
    """The service has never sent a line, so there is nothing to replay."""


@dataclass(frozen=True)
class Settings:
    """What to replay: a threshold per alert level, the `for` duration, how many days."""

    thresholds: dict[str, int]
    for_minutes: int
    days: int


def _days(value) -> int:
    """The `days` parameter: a whole number from 1 to MAX_DAYS (default MAX_DAYS)."""
    if value is None or value == "":
        return MAX_DAYS
    days = whole_number(value) if isinstance(value, str) else None
    if days is None or not 1 <= days <= MAX_DAYS:
        raise BadParameter(f"days must be a whole number from 1 to {MAX_DAYS}")
    return days


def settings_for(service: str, args) -> Settings:
    """The settings asked for in args, the rest from the saved config (or the defaults)."""
    config = get_config(service)
    saved = to_dict(config) if config else DEFAULTS
    asked = {name: args[name] for name in TUNABLE if args.get(name) not in (None, "")}
    try:
        chosen = {**{name: saved[name] for name in TUNABLE}, **validate(asked, partial=True)}
    except InvalidConfig as error:
        raise BadParameter("; ".join(f"{name} {reason}" for name, reason
                                     in sorted(error.fields.items()))) from None
    return Settings({level: chosen[field] for level, (_, field) in ALERT_LEVELS.items()},
                    chosen["for_minutes"], _days(args.get("days")))


def per_minute_counts(service: str, since: datetime, until: datetime) -> dict[datetime, dict]:
    """Counts per minute and alert level of one service, in [since, until)."""
    sums = ", ".join(f"coalesce(sum(count) FILTER (WHERE level = ANY(:{level})), 0)::bigint"
                     for level in ALERT_LEVELS)
    rows = db.session.execute(
        text(f"SELECT minute, {sums} FROM logs.rollup_minute WHERE service = :service"
             " AND minute >= :since AND minute < :until GROUP BY minute"),
        {"service": service, "since": since, "until": until,
         **{level: list(levels) for level, (levels, _) in ALERT_LEVELS.items()}},
    )
    return {row[0]: dict(zip(ALERT_LEVELS, row[1:], strict=True)) for row in rows}


def earliest_minute() -> datetime | None:
    """The oldest minute still kept: retention removes older minute rows for every service."""
    return db.session.execute(text("SELECT min(minute) FROM logs.rollup_minute")).scalar()


def covered_span(days: int, now: datetime) -> tuple[datetime, datetime]:
    """[from, to): the last `days` up to and including the minute now filling, starting no
    earlier than the oldest minute row kept (an empty span when none is)."""
    until = floor_minute(now) + MINUTE
    earliest = earliest_minute()
    since = until - timedelta(days=days)
    if earliest is None:
        return until, until
    return min(max(since, earliest), until), until


def summary(result: dict) -> str:
    """'would have fired 14 times, longest episode 23 min' (or that it would not have)."""
    fired = result["fired"]
    if not fired:
        return "would not have fired"
    times = "once" if fired == 1 else f"{fired} times"
    return f"would have fired {times}, longest episode {result['longest_episode_minutes']} min"


def _level_result(minutes: list[datetime], counts: list[int], threshold: int,
                  for_minutes: int) -> dict:
    """Episodes and totals of one alert level over the minute series."""
    episodes = [{"start": minutes[first].isoformat(),
                 "end": minutes[end].isoformat() if end < len(minutes) else None,
                 "minutes": end - first, "peak": max(counts[first:end])}
                for first, end in over_runs([c > threshold for c in counts], for_minutes)]
    result = {"threshold": threshold, "fired": len(episodes),
              "longest_episode_minutes": max((e["minutes"] for e in episodes), default=0),
              "minutes_over": sum(count > threshold for count in counts),
              "episodes": episodes}
    return {**result, "summary": summary(result)}


def backtest(service: str, settings: Settings, now: datetime | None = None) -> dict:
    """Replay the settings over the service's minute counts of the last days."""
    if not known_service(service):
        raise UnknownService(service)
    since, until = covered_span(settings.days, now or datetime.now(UTC))
    rows = per_minute_counts(service, since, until)
    minutes = [since + MINUTE * i for i in range((until - since) // MINUTE)]
    answer = {level: _level_result(minutes, [rows.get(m, {}).get(level, 0) for m in minutes],
                                   settings.thresholds[level], settings.for_minutes)
              for level in ALERT_LEVELS}
    return {**answer, "service": service, "for_minutes": settings.for_minutes,
            "days": settings.days, "from": since.isoformat(), "to": until.isoformat(),
            "covered_minutes": len(minutes),
            "summary": "; ".join(f"{level}s {answer[level]['summary']}"
                                 for level in ALERT_LEVELS)}
