"""Per-service health over the last hour: ok, warning, error or silent, with the reason."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.stats.counts import Split, minute_sources, split_of
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


def judge(errors: int, warnings: int, quiet: bool, rules: HealthRules) -> tuple[str, str]:
    """Status and reason for one service from its last-hour counts and whether it logged
    in the last minutes."""
    if errors > rules.error_errors:
        return "error", f"{errors} errors in the last hour (more than {rules.error_errors})"
    if errors > rules.warning_errors:
        return "warning", f"{errors} errors in the last hour (more than {rules.warning_errors})"
    if warnings > rules.warning_warnings:
        return "warning", (f"{warnings} warnings in the last hour"
                           f" (more than {rules.warning_warnings})")
    if quiet:
        return "silent", f"no lines in the last {rules.silent_minutes} minutes"
    return "ok", f"{_plural(errors, 'error')} and {_plural(warnings, 'warning')} in the last hour"


def _sums_since(source: str) -> str:
    """(service, level, count, count from :since on) of a source of minute rows."""
    return ("SELECT service, level, sum(count)::bigint,"
            " coalesce(sum(count) FILTER (WHERE bucket >= :since), 0)::bigint"
            f" FROM ({source}) AS m GROUP BY 1, 2")


def hour_counts(hour: Window, since: datetime, service: str | None = None,
                split: Split | None = None) -> tuple[dict, dict]:
    """Counts per (service, level) in a minute window, as (all, from `since` on), and the
    last time each service seen in the last day logged.

    The window divides as every minute window does (app/stats/counts.py): its minutes
    before the cut outside dirty hours are summed once per process and kept; each call
    reads the rest and the services in one statement. `split` is the tiers as a dashboard
    already read them (from a whole hour at or before the window's start, at the same
    moment).
    """
    split = split or split_of(hour)
    where = " AND service = :service" if service else ""
    kept, live, params = minute_sources(hour, split, "rollup_minute", "service, level",
                                        where, {"start": hour.start, "service": service})
    params.update(since=since, active_since=hour.now - timedelta(days=1))
    rows = db.session.execute(text(
        f"SELECT *, NULL::timestamptz FROM ({_sums_since(live)}) AS s"
        " UNION ALL SELECT service, NULL, 0, 0, last_seen FROM logs.services"
        f" WHERE last_seen >= :active_since{where}"), params).all()
    counts, last_seen = {}, {}
    if kept is not None:
        key = ("health", hour.start, since, service, split, split.cut)
        counts = dict(sealed_sums("minutes").get(key, lambda: {
            (name, level): (count, recent) for name, level, count, recent
            in db.session.execute(text(_sums_since(kept)), params)}))
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
    # The last silent_minutes minute buckets cover less than silent_minutes by the part
    # of now's minute gone, so the minute before them is counted too; whether a line in it
    # was within silent_minutes, the service's last time tells.
    buckets = hour.buckets()
    recent_start = buckets[-rules.silent_minutes - 1]  # 1 to 59, as config checks
    counts, last_seen = hour_counts(hour, recent_start, service, split)
    quiet_since = now - timedelta(minutes=rules.silent_minutes)
    for (name, level), (count, recent) in counts.items():
        per_service[name][level] += count
        per_service[name]["_recent"] += recent
    report = []
    for name in sorted(set(last_seen) | set(per_service)):
        counts = per_service[name]
        errors = sum(counts[level] for level in ERROR_LEVELS)
        seen = last_seen.get(name)
        # A last time ahead of now (a line stamped ahead) says nothing of the last minutes:
        # then they decide, and a line in the minute before them counts as recent rather
        # than call a service silent that may not be.
        quiet = seen < quiet_since if seen is not None and seen <= now else counts["_recent"] == 0
        status, reason = judge(errors, counts["warning"], quiet, rules)
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
