"""The dashboard: totals, services, series, top errors, health and active violations."""

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select, text

from app.extensions import db
from app.models import LEVELS, AlertViolation
from app.stats.counts import Split, level_totals, split_of, top_templates
from app.stats.health import ERROR_LEVELS, HealthRules, overall, service_health
from app.stats.windows import Window


def summarize(by_level: dict) -> dict:
    """Total, every level (zeros included) and error rate of a set of counts."""
    levels = {level: by_level.get(level, 0) for level in LEVELS}
    total = sum(levels.values())
    errors = sum(levels[level] for level in ERROR_LEVELS)
    return {"total": total, "by_level": levels,
            "error_rate": round(errors / total, 6) if total else 0.0}


def series(window: Window, by_slot_level: dict) -> dict:
    """Counts by level for every bucket of the window, zeros included."""
    count = by_slot_level.get
    points = []
    for slot, label in enumerate(window.labels()):
        point = {"t": label}
        for level in LEVELS:
            point[level] = count((slot, level), 0)
        points.append(point)
    return {"bucket": window.bucket, "points": points}


def top_errors(window: Window, limit: int = 10, service: str | None = None,
               split: Split | None = None) -> list[dict]:
    """Error and critical templates, most frequent first."""
    return top_templates(window, limit, service=service, levels=list(ERROR_LEVELS),
                         split=split)


def active_violations(service: str | None = None) -> list[dict]:
    """Violations not yet resolved, newest first."""
    v = AlertViolation
    # Columns, not ORM objects: every dashboard request asks, mostly to hear "none".
    query = select(v.id, v.service, v.level, v.current_count, v.threshold_value,
                   v.timestamp, v.acknowledged_at).where(v.resolved_at.is_(None))
    if service:
        query = query.where(v.service == service)
    return [
        {"id": row.id, "service": row.service, "level": row.level,
         "current_count": row.current_count, "threshold": row.threshold_value,
         "started_at": row.timestamp.isoformat(),
         "acknowledged_at": row.acknowledged_at and row.acknowledged_at.isoformat()}
        for row in db.session.execute(query.order_by(v.timestamp.desc()))
    ]


def _health_of(entry: dict | None) -> dict:
    """A service's health and its reason, for its row beside the window's counts."""
    # Health judges the last hour and the row's error rate the window: the reason says
    # why a service can be "ok" with a high error rate on few lines.
    if entry is None:  # lines in the window, none in the last day
        return {"health": "ok", "health_reason": "no lines in the last day"}
    return {"health": entry["status"], "health_reason": entry["reason"]}


def dashboard(window: Window, rules: HealthRules, service: str | None = None,
              split: Split | None = None) -> dict:
    """Everything the dashboard shows for a window (optionally for one service)."""
    # Every part reads the tiers as divided at one moment.
    split = split or split_of(window)
    counts = level_totals(window, service, split)
    per_service: dict = defaultdict(dict)
    all_levels: dict = defaultdict(int)
    for (name, level), count in counts.by_service_level.items():
        per_service[name][level] = count
        all_levels[level] += count
    health = service_health(rules, window.now, service, split)
    judged = {entry["service"]: entry for entry in health}
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "window": window.to_dict(),
        "totals": summarize(all_levels),
        "services": [
            {"service": name, **summarize(per_service[name]), **_health_of(judged.get(name)),
             "series": counts.service_series(name)}
            for name in sorted(per_service, key=lambda n: (-sum(per_service[n].values()), n))
        ],
        "series": series(window, counts.by_slot_level),
        "top_errors": top_errors(window, 10, service, split),
        "health": {"status": overall(health), "services": health},
        "active_violations": active_violations(service),
    }


def service_dashboard(window: Window, rules: HealthRules, service: str) -> dict:
    """The dashboard of one service, with its top templates of every level."""
    split = split_of(window)
    body = dashboard(window, rules, service, split)
    body["service"] = service
    body["top_templates"] = top_templates(window, 10, service=service, split=split)
    return body


def service_names() -> list[str]:
    """Every service that has ever sent lines, by name."""
    return list(db.session.execute(
        text("SELECT service FROM logs.services ORDER BY service")).scalars())


def known_service(name: str) -> bool:
    """Whether a service has ever sent lines."""
    return db.session.execute(
        text("SELECT 1 FROM logs.services WHERE service = :s"), {"s": name}
    ).first() is not None


def services_overview(window: Window) -> list[dict]:
    """Every known service with first/last seen and its volume in the window."""
    volume: dict = defaultdict(int)
    for (name, _), count in level_totals(window).by_service_level.items():
        volume[name] += count
    rows = db.session.execute(
        text("SELECT service, first_seen, last_seen FROM logs.services ORDER BY service")
    ).all()
    return [{"service": name, "first_seen": first.isoformat(), "last_seen": last.isoformat(),
             "volume": volume.get(name, 0)} for name, first, last in rows]
