"""Per-service health over the last hour: ok, warning, error or silent, with the reason."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.rollups.tiers import HOUR
from app.stats.counts import Split, hour_ranges, split_of
from app.stats.sealed import sealed_sums
from app.stats.windows import Window, make_window

ERROR_LEVELS = ("error", "critical")
# Worst first: the overall status is the worst of any service.
SEVERITY = ("error", "warning", "silent", "ok")


@dataclass(frozen=True)
class HealthRules:
    """Thresholds over the last hour; errors means error + critical lines."""

    error_errors: int
    warning_errors: int
    warning_warnings: int
    silent_minutes: int

    @classmethod
    def from_config(cls, config) -> "HealthRules":
        """Read the rules from the app's configuration."""
        return cls(
            error_errors=config["LOGDASH_HEALTH_ERROR_ERRORS"],
            warning_errors=config["LOGDASH_HEALTH_WARNING_ERRORS"],
            warning_warnings=config["LOGDASH_HEALTH_WARNING_WARNINGS"],
            silent_minutes=config["LOGDASH_HEALTH_SILENT_MINUTES"],
        )

    def to_dict(self) -> dict:
        """Describe the rules in API answers."""
        return {
            "error": f"errors > {self.error_errors} in the last hour",
            "warning": f"errors > {self.warning_errors} or warnings > {self.warning_warnings}"
                       " in the last hour",
            "silent": f"logged in the last day, nothing in the last {self.silent_minutes} min",
        }


def _plural(count: int, word: str) -> str:
    """"1 error", "2 errors"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def judge(errors: int, warnings: int, recent: int, rules: HealthRules) -> tuple[str, str]:
    """Status and reason for one service from its last-hour and last-minutes counts."""
    if errors > rules.error_errors:
        return "error", f"{errors} errors in the last hour (more than {rules.error_errors})"
    if errors > rules.warning_errors:
        return "warning", f"{errors} errors in the last hour (more than {rules.warning_errors})"
    if warnings > rules.warning_warnings:
        return "warning", (f"{warnings} warnings in the last hour"
                           f" (more than {rules.warning_warnings})")
    if recent == 0:
        return "silent", f"no lines in the last {rules.silent_minutes} minutes"
    return "ok", f"{_plural(errors, 'error')} and {_plural(warnings, 'warning')} in the last hour"


def _sealed_minutes(where: str, params: dict) -> dict:
    """{(service, level): (count, count from :since on)} of a minute window's minutes
    before :kept_until, dirty hours left out."""
    rows = db.session.execute(text(
        "SELECT service, level, sum(count)::bigint,"
        " coalesce(sum(count) FILTER (WHERE minute >= :since), 0)::bigint"
        f" FROM logs.rollup_minute WHERE minute >= :start AND minute < :kept_until{where}"
        " GROUP BY 1, 2"), params)
    return {(name, level): (count, recent) for name, level, count, recent in rows}


def hour_counts(hour: Window, since: datetime, service: str | None = None,
                split: Split | None = None) -> tuple[dict, dict]:
    """Counts per (service, level) in a minute window, as (all, from `since` on), and the
    last time each service seen in the last day logged.

    Like a window's sealed hours and kept minutes, the minutes before the split's cut that
    no late line has touched are summed once per process (for as long as the window starts
    in the same minute) and kept; each call reads the minutes since, the dirty hours' and
    the services in one statement. `split` is the tiers as a dashboard already read them
    (from a whole hour at or before the window's start, at the same moment).
    """
    split = split or split_of(hour)
    kept_until = max(split.cut, hour.start)
    dirty = tuple(h for h in split.dirty if h + HOUR > hour.start)
    params = {"start": hour.start, "kept_until": kept_until, "since": since,
              "service": service, "active_since": hour.now - timedelta(days=1)}
    where = " AND service = :service" if service else ""
    live = "minute >= :kept_until"
    if dirty:
        live += f" OR {hour_ranges(dirty, params)}"
    rows = db.session.execute(text(
        "SELECT service, level, sum(count)::bigint,"
        " coalesce(sum(count) FILTER (WHERE minute >= :since), 0)::bigint, NULL::timestamptz"
        f" FROM logs.rollup_minute WHERE minute >= :start AND ({live}){where} GROUP BY 1, 2"
        " UNION ALL SELECT service, NULL, 0, 0, last_seen FROM logs.services"
        f" WHERE last_seen >= :active_since{where}"), params).all()
    counts, last_seen = {}, {}
    if kept_until > hour.start:
        kept_where = where + (f" AND NOT ({hour_ranges(dirty, params)})" if dirty else "")
        key = ("health", hour.start, since, service, kept_until, dirty, split.changed_at)
        counts = dict(sealed_sums("minutes").get(key,
                                                 lambda: _sealed_minutes(kept_where, params)))
    for name, level, count, recent, seen in rows:
        if level is None:
            last_seen[name] = seen
        else:
            earlier = counts.get((name, level), (0, 0))
            counts[name, level] = (earlier[0] + count, earlier[1] + recent)
    return counts, last_seen


def service_health(rules: HealthRules, now: datetime | None = None,
                   service: str | None = None, split: Split | None = None) -> list[dict]:
    """Health of every service that logged in the last day (or of one service).

    `split` is the tiers as read for a dashboard's hour-bucketed window, if there is one.
    """
    now = now or datetime.now(UTC)
    hour = make_window("1h", now)
    per_service: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    recent_start = (hour.buckets()[-rules.silent_minutes] if rules.silent_minutes <= 60
                    else hour.start)
    counts, last_seen = hour_counts(hour, recent_start, service, split)
    for (name, level), (count, recent) in counts.items():
        per_service[name][level] += count
        per_service[name]["_recent"] += recent
    report = []
    for name in sorted(set(last_seen) | set(per_service)):
        counts = per_service[name]
        errors = sum(counts[level] for level in ERROR_LEVELS)
        status, reason = judge(errors, counts["warning"], counts["_recent"], rules)
        report.append({
            "service": name,
            "status": status,
            "reason": reason,
            "errors": errors,
            "warnings": counts["warning"],
            "total": sum(v for k, v in counts.items() if not k.startswith("_")),
            "last_seen": last_seen[name].isoformat() if name in last_seen else None,
        })
    return report


def overall(report: list[dict]) -> str:
    """The worst status of any service, or ok when there are none."""
    statuses = {entry["status"] for entry in report}
    return next((status for status in SEVERITY if status in statuses), "ok")


def health_report(rules: HealthRules) -> dict:
    """Every service's health, the overall status and the rules that decided them."""
    report = service_health(rules)
    return {"status": overall(report), "services": report, "rules": rules.to_dict()}
