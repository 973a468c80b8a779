"""Why a violation fired: its level's count per minute around it against the threshold, the
templates that drove it over, its deliveries, and whether it is silenced or acknowledged."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.alerts.backtest import earliest_minute, per_minute_counts
from app.alerts.evaluate import ALERT_LEVELS
from app.alerts.silences import SilenceBook
from app.alerts.views import list_deliveries
from app.extensions import db
from app.models import AlertViolation
from app.rollups.tiers import MINUTE, floor_hour, floor_minute

# The minutes shown before the episode, so its onset is visible against calm.
LEAD = timedelta(minutes=10)
MAX_MINUTES = 180
TOP_TEMPLATES = 5
# Template counts by tier: per minute while kept, per hour after (bucket column, floor).
TEMPLATE_TIERS = (("template_minute", "minute", floor_minute),
                  ("template_hourly", "hour", floor_hour))


def _span(violation: AlertViolation, now: datetime) -> tuple[datetime, datetime, bool]:
    """[start, end) of the minutes shown, and whether the cap cut the episode short."""
    start = floor_minute(violation.timestamp) - LEAD
    wanted_end = floor_minute(violation.resolved_at or now) + MINUTE
    end = min(wanted_end, start + MINUTE * MAX_MINUTES)
    return start, end, wanted_end > end


def minute_series(violation: AlertViolation, now: datetime) -> dict:
    """The level's count per minute over the span, each over or not; None where the minute
    counts are no longer kept."""
    start, end, truncated = _span(violation, now)
    rows = {minute: counts[violation.level]
            for minute, counts in per_minute_counts(violation.service, start, end).items()}
    kept_since = earliest_minute()
    minutes = []
    for index in range((end - start) // MINUTE):
        minute = start + MINUTE * index
        count = rows.get(minute, 0) if kept_since and minute >= kept_since else None
        over = None if count is None else count > violation.threshold_value
        minutes.append({"minute": minute.isoformat(), "count": count, "over": over})
    return {"minutes": minutes, "truncated": truncated}


def _over_minutes(violation: AlertViolation, minutes: list[dict]) -> list[datetime]:
    """The episode's minutes over the threshold: from the minute before the violation
    opened (the check looks at it too) on, not those of the calm shown before it."""
    opened = floor_minute(violation.timestamp) - MINUTE
    return [moment for m in minutes
            if m["over"] and (moment := datetime.fromisoformat(m["minute"])) >= opened]


def templates_between(service: str, level: str, first: datetime, last: datetime,
                      only: list[datetime] | None = None) -> dict:
    """The templates with the most lines of an alert level from first to last minute (of
    those, only the `only` minutes where minutes are kept): from the minute tier, or the
    hourly one once those minutes are gone."""
    for table, bucket, floor in TEMPLATE_TIERS:
        chosen = " AND c.minute = ANY(:only)" if only and bucket == "minute" else ""
        rows = db.session.execute(
            text(f"SELECT c.fingerprint, sum(c.count)::bigint AS n, min(t.template),"
                 f" min(t.sample) FROM logs.{table} c LEFT JOIN logs.templates t"
                 " USING (service, level, fingerprint)"
                 " WHERE c.service = :service AND c.level = ANY(:levels)"
                 f" AND c.{bucket} >= :first AND c.{bucket} <= :last{chosen}"
                 " GROUP BY c.fingerprint ORDER BY n DESC, c.fingerprint LIMIT :limit"),
            {"service": service, "levels": list(ALERT_LEVELS[level][0]),
             "first": floor(first), "last": last, "limit": TOP_TEMPLATES, "only": only},
        ).all()
        if rows:
            return {"per": bucket, "templates": [
                {"fingerprint": fp, "count": n, "template": template, "sample": sample}
                for fp, n, template, sample in rows]}
    return {"per": None, "templates": []}


def _hold(violation: AlertViolation, now: datetime) -> dict | None:
    """The silence or maintenance window holding a firing violation's notifications now."""
    if violation.resolved_at is not None:
        return None
    hold = SilenceBook(now).hold(violation.service, violation.level)
    return None if hold is None else {"kind": hold.kind, "id": hold.id,
                                      "until": hold.until.isoformat()}


def explain(violation: AlertViolation, now: datetime | None = None) -> dict:
    """Everything the violation's page and API answer say about why it fired."""
    now = now or datetime.now(UTC)
    series = minute_series(violation, now)
    over = _over_minutes(violation, series["minutes"])
    # Without known minute counts: every hour from the episode's start to the last shown.
    first, last = ((over[0], over[-1]) if over else
                   (floor_minute(violation.timestamp) - MINUTE,
                    datetime.fromisoformat(series["minutes"][-1]["minute"])))
    return {
        "threshold": violation.threshold_value,
        "levels_counted": list(ALERT_LEVELS[violation.level][0]),
        **series,
        "top_templates": templates_between(violation.service, violation.level, first, last,
                                           only=over or None),
        "deliveries": list_deliveries({"violation_id": str(violation.id)}),
        "held_by": _hold(violation, now),
    }
