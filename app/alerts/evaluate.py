"""Threshold evaluation and the violation lifecycle: ok → firing → resolved.

Counts come from the minute rollup: a threshold is per UTC minute, and the check looks at
the minute now filling (so a crossing is seen within seconds) and the one before it (so a
burst late in a minute still counts after the minute turns). An episode resolves once a
full minute and the current one are both at or under the threshold.

Every change of state is claimed with a conditional statement (a unique index for
opening, `WHERE resolved_at IS NULL` for resolving, `WHERE last_notified_at < ...` for
repeats), so evaluators running at once never notify twice for one thing.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from app.extensions import db
from app.models import AlertConfig, AlertViolation
from app.rollups.tiers import MINUTE, floor_minute

# What each alert level counts, and the config field holding its threshold.
ALERT_LEVELS = {
    "error": (("error", "critical"), "error_threshold_per_min"),
    "warning": (("warning",), "warning_threshold_per_min"),
}


@dataclass
class AlertEvent:
    """A notification to send: a violation firing (first or repeat) or resolved."""

    event: str
    violation: AlertViolation
    config: AlertConfig
    repeat: bool = False


def minute_counts(services: list[str], now: datetime) -> dict:
    """Per (service, alert level): the larger count of the current and previous minute."""
    current = floor_minute(now)
    rows = db.session.execute(
        text("SELECT service, minute, level, count FROM logs.rollup_minute"
             " WHERE minute >= :previous AND minute <= :current AND service = ANY(:services)"),
        {"previous": current - MINUTE, "current": current, "services": services},
    )
    per_minute: dict = defaultdict(int)
    for service, minute, level, count in rows:
        for alert_level, (levels, _) in ALERT_LEVELS.items():
            if level in levels:
                per_minute[(service, alert_level, minute)] += count
    counts: dict = defaultdict(int)
    for (service, alert_level, _), count in per_minute.items():
        counts[(service, alert_level)] = max(counts[(service, alert_level)], count)
    return counts


def _open(config: AlertConfig, level: str, count: int, threshold: int,
          now: datetime) -> AlertViolation | None:
    """Open a violation unless one is already open for this service and level."""
    row = db.session.execute(
        text("INSERT INTO logs.alert_violations (config_id, service, level, current_count,"
             " peak_count, threshold_value, timestamp, last_notified_at)"
             " VALUES (:config, :service, :level, :count, :count, :threshold, :now, :now)"
             " ON CONFLICT (service, level) WHERE resolved_at IS NULL DO NOTHING"
             " RETURNING id"),
        {"config": config.id, "service": config.service, "level": level, "count": count,
         "threshold": threshold, "now": now},
    ).scalar()
    return db.session.get(AlertViolation, row) if row else None


def _claim_repeat(violation: AlertViolation, config: AlertConfig, count: int,
                  now: datetime) -> bool:
    """Note the peak, and claim a repeat notification if the repeat interval has passed."""
    due = now - timedelta(minutes=config.repeat_interval_minutes)
    claimed = db.session.execute(
        text("UPDATE logs.alert_violations SET peak_count = greatest(peak_count, :count),"
             " last_notified_at = CASE WHEN last_notified_at <= :due THEN :now"
             " ELSE last_notified_at END"
             " WHERE id = :id AND resolved_at IS NULL RETURNING last_notified_at = :now"),
        {"count": count, "due": due, "now": now, "id": violation.id},
    ).scalar()
    return bool(claimed)


def _resolve(violation: AlertViolation, now: datetime) -> bool:
    """Resolve an open violation; False if another evaluator already did."""
    return db.session.execute(
        text("UPDATE logs.alert_violations SET resolved_at = :now, resolution = 'recovered'"
             " WHERE id = :id AND resolved_at IS NULL RETURNING id"),
        {"now": now, "id": violation.id},
    ).scalar() is not None


def evaluate(now: datetime | None = None) -> list[AlertEvent]:
    """Check every enabled config against its last two minutes; commit; return the events."""
    now = now or datetime.now(UTC)
    configs = list(db.session.scalars(select(AlertConfig).where(AlertConfig.enabled)))
    if not configs:
        return []
    services = [config.service for config in configs]
    counts = minute_counts(services, now)
    open_violations = {
        (v.service, v.level): v
        for v in db.session.scalars(select(AlertViolation).where(
            AlertViolation.resolved_at.is_(None), AlertViolation.service.in_(services)))
    }
    events = []
    for config in configs:
        for level, (_, threshold_field) in ALERT_LEVELS.items():
            threshold = getattr(config, threshold_field)
            count = counts.get((config.service, level), 0)
            violation = open_violations.get((config.service, level))
            if count > threshold and violation is None:
                opened = _open(config, level, count, threshold, now)
                if opened is not None:
                    events.append(AlertEvent("firing", opened, config))
            elif count > threshold:
                if _claim_repeat(violation, config, count, now):
                    events.append(AlertEvent("firing", violation, config, repeat=True))
            elif violation is not None and _resolve(violation, now):
                events.append(AlertEvent("resolved", violation, config))
    db.session.commit()
    for event in events:
        db.session.refresh(event.violation)
    return events
