"""Per-service health over the last hour: ok, warning, error or silent, with the reason."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.stats.counts import counts_source
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


def _hour_and_activity(hour: Window, since: datetime, service: str | None) -> list:
    """In one round trip: (service, level, count in the hour, count from `since`, None) per
    non-empty pair, and (service, None, 0, 0, last seen) per service seen in the last day."""
    source, params = counts_source(hour, "levels", service)
    params.update(since=since, active_since=hour.now - timedelta(days=1))
    return db.session.execute(text(
        "SELECT service, level, sum(count)::bigint,"
        " coalesce(sum(count) FILTER (WHERE bucket >= :since), 0)::bigint, NULL::timestamptz"
        f" FROM ({source}) AS c GROUP BY 1, 2"
        " UNION ALL SELECT service, NULL, 0, 0, last_seen FROM logs.services"
        " WHERE last_seen >= :active_since" + (" AND service = :service" if service else "")
    ), params).all()


def service_health(rules: HealthRules, now: datetime | None = None,
                   service: str | None = None) -> list[dict]:
    """Health of every service that logged in the last day (or of one service)."""
    now = now or datetime.now(UTC)
    hour = make_window("1h", now)
    per_service: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    recent_start = (hour.buckets()[-rules.silent_minutes] if rules.silent_minutes <= 60
                    else hour.start)
    last_seen = {}
    for name, level, count, recent, seen in _hour_and_activity(hour, recent_start, service):
        if level is None:
            last_seen[name] = seen
        else:
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
