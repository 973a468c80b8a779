"""Counts per bucket for a window, from the minute and hourly tiers.

Recent minutes live only in the minute tier; older hours in the hourly tier once the hourly
job has passed them (the watermark). Hours that late lines touched after aggregation are
"dirty" and read from minutes until the job redoes them. Combining the tiers this way keeps
every count exact at every moment, without reading raw lines.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text

from app.extensions import db
from app.rollups.aggregate import read_watermark
from app.rollups.tiers import HOUR
from app.stats.windows import Window

# (minute table, hourly table, key columns) per kind of count.
KINDS = {
    "levels": ("rollup_minute", "rollup_hourly", ("service", "level")),
    "templates": ("template_minute", "template_hourly", ("service", "level", "fingerprint")),
}
# GROUPING(bucket, service, level) of the grouping sets (bucket, level) and (service,
# level): a bit is set for a column the set leaves out (bucket 4, service 2, level 1). The
# third set, (service, bucket), is 1.
SLOT_LEVEL, SERVICE_LEVEL = 2, 4
# A bucket's index in its window. Python gets small integers instead of timestamps, which
# are slow to convert and to hash by the thousand.
SLOT = "extract(epoch FROM bucket - :start)::bigint / :step_seconds"


def _filters(service: str | None, levels: list[str] | None,
             fingerprints: list[str] | None = None) -> str:
    """Extra WHERE conditions for a service, a set of levels and a set of templates."""
    where = ""
    if service is not None:
        where += " AND service = :service"
    if levels:
        where += " AND level = ANY(:levels)"
    if fingerprints:
        where += " AND fingerprint = ANY(:fingerprints)"
    return where


def _dirty_hours(start: datetime, watermark: datetime) -> list[datetime]:
    """Dirty hours the hourly tier would serve in [start, watermark); later ones are minutes."""
    return list(db.session.execute(
        text("SELECT hour FROM logs.dirty_hours WHERE hour >= :start AND hour < :watermark"
             " ORDER BY hour"),
        {"start": start, "watermark": watermark},
    ).scalars())


def _hour_ranges(hours: list[datetime], params: dict) -> str:
    """A condition on `minute` for the given hours, adding their bounds to the parameters."""
    ranges = []
    for i, hour in enumerate(hours):
        params[f"hour_{i}"], params[f"hour_{i}_end"] = hour, hour + HOUR
        ranges.append(f"(minute >= :hour_{i} AND minute < :hour_{i}_end)")
    return " OR ".join(ranges)


def counts_source(window: Window, kind: str, service=None, levels=None,
                  fingerprints=None) -> tuple[str, dict]:
    """A SELECT of (bucket, keys..., count) rows covering the window, and its parameters."""
    minute_table, hourly_table, keys = KINDS[kind]
    columns = ", ".join(keys)
    where = _filters(service, levels, fingerprints)
    params = {"start": window.start, "service": service, "levels": levels,
              "fingerprints": fingerprints}
    if window.bucket == "minute":
        sql = (f"SELECT minute AS bucket, {columns}, count FROM logs.{minute_table}"
               f" WHERE minute >= :start{where}")
        return sql, params
    # Every bound is a plain range on the tables' leading bucket column, so each branch is
    # an index range scan; the window never starts after the watermark.
    watermark = max(read_watermark("hourly") or window.start, window.start)
    dirty = _dirty_hours(window.start, watermark)
    params.update(watermark=watermark, dirty=dirty)
    hourly = (f"SELECT hour AS bucket, {columns}, count FROM logs.{hourly_table}"
              f" WHERE hour >= :start AND hour < :watermark{where}")
    minutes = (f" UNION ALL SELECT date_trunc('hour', minute, 'UTC'), {columns}, count"
               f" FROM logs.{minute_table} WHERE minute >= :watermark{where}")
    if not dirty:
        return hourly + minutes, params
    # Dirty hours come from their minutes, not from hours: one index range per hour (a join
    # with the list of hours would not be planned as ranges).
    redone = (f" UNION ALL SELECT date_trunc('hour', minute, 'UTC'), {columns}, count"
              f" FROM logs.{minute_table} WHERE ({_hour_ranges(dirty, params)}){where}")
    return hourly + " AND hour <> ALL(:dirty)" + minutes + redone, params


@dataclass
class LevelTotals:
    """A window's line counts summed three ways; a slot is a bucket's index in the window."""

    slots: int
    by_slot_level: dict = field(default_factory=dict)
    by_service_level: dict = field(default_factory=dict)
    by_service_slot: dict = field(default_factory=dict)

    def service_series(self, service: str) -> list[int]:
        """One service's count in every slot, zeros included."""
        return self.by_service_slot.get(service) or [0] * self.slots


def _slot_params(window: Window, params: dict) -> int:
    """Add what SLOT needs to the parameters; return the number of slots in the window."""
    params["step_seconds"] = int(window.step.total_seconds())
    return len(window.buckets())


def level_totals(window: Window, service: str | None = None) -> LevelTotals:
    """Counts per (slot, level), (service, level) and (service, slot) of the window."""
    source, params = counts_source(window, "levels", service)
    totals = LevelTotals(slots=_slot_params(window, params))
    # A saturated 30-day window groups 160 000 rows into 40 000 groups: 11 MB of hash
    # tables, which the default 4 MB turns into a sort on disk. A cap, not an allocation,
    # and for this transaction only.
    db.session.execute(text("SET LOCAL work_mem = '32MB'"))
    # One pass and a few hundred rows per set, instead of every (bucket, service, level).
    rows = db.session.execute(text(
        f"SELECT GROUPING(bucket, service, level), {SLOT}, service, level, sum(count)::bigint"
        f" FROM ({source}) AS c"
        " GROUP BY GROUPING SETS ((bucket, level), (service, level), (service, bucket))"
    ), params).all()
    for grouping, slot, name, level, count in rows:
        if grouping == SERVICE_LEVEL:
            totals.by_service_level[name, level] = count
        elif slot >= totals.slots:
            continue  # lines stamped ahead of now are in the totals, in no bucket's series
        elif grouping == SLOT_LEVEL:
            totals.by_slot_level[slot, level] = count
        else:
            totals.by_service_slot.setdefault(name, [0] * totals.slots)[slot] = count
    return totals


def recent_level_counts(window: Window, since: datetime, service: str | None = None) -> list:
    """(service, level, count in the window, count from `since` on) per non-empty pair."""
    source, params = counts_source(window, "levels", service)
    params["since"] = since
    return db.session.execute(text(
        "SELECT service, level, sum(count)::bigint,"
        " coalesce(sum(count) FILTER (WHERE bucket >= :since), 0)::bigint"
        f" FROM ({source}) AS c GROUP BY 1, 2"
    ), params).all()


def _top_keys(window: Window, limit: int, service, levels) -> list:
    """The `limit` most frequent (service, level, template) keys with their template rows."""
    source, params = counts_source(window, "templates", service, levels)
    params["limit"] = limit
    # Group and rank the counts alone; only the winners are joined to their texts.
    return db.session.execute(text(
        f"WITH c AS ({source})"
        " SELECT best.service, best.level, best.fingerprint, best.n,"
        " t.template, t.sample, t.first_seen, t.last_seen"
        " FROM (SELECT service, level, fingerprint, sum(count)::bigint AS n FROM c"
        " GROUP BY 1, 2, 3 ORDER BY n DESC, fingerprint, service, level LIMIT :limit) AS best"
        " LEFT JOIN logs.templates t USING (service, level, fingerprint)"
        " ORDER BY best.n DESC, best.fingerprint, best.service, best.level"
    ), params).all()


def _series(window: Window, top: list, service, levels) -> dict[tuple, list]:
    """Each top key's count in every slot: {(service, level, fingerprint): [n, ...]}."""
    fingerprints = sorted({r.fingerprint for r in top})
    source, params = counts_source(window, "templates", service, levels, fingerprints)
    slots = _slot_params(window, params)
    params.update(top_services=[r.service for r in top], top_levels=[r.level for r in top],
                  top_fingerprints=[r.fingerprint for r in top])
    # The fingerprint filter reaches the tables' indexes; a template that other services or
    # levels share is then dropped here, by its whole key.
    rows = db.session.execute(text(
        f"SELECT service, level, fingerprint, {SLOT}, sum(count)::bigint FROM ({source}) AS c"
        " WHERE (service, level, fingerprint) IN (SELECT * FROM unnest("
        "CAST(:top_services AS text[]), CAST(:top_levels AS text[]),"
        " CAST(:top_fingerprints AS text[])))"
        " GROUP BY 1, 2, 3, bucket"
    ), params).all()
    series = {(r.service, r.level, r.fingerprint): [0] * slots for r in top}
    for service_name, level, fingerprint, slot, count in rows:
        if slot < slots:  # lines stamped ahead of now are in no bucket
            series[service_name, level, fingerprint][slot] = count
    return series


def top_templates(window: Window, limit: int, service=None, levels=None) -> list[dict]:
    """The most frequent templates in the window, with their per-bucket counts."""
    top = _top_keys(window, limit, service, levels)
    if not top:
        return []
    series = _series(window, top, service, levels)
    return [
        {
            "fingerprint": r.fingerprint,
            "template": r.template,
            "sample": r.sample,
            "service": r.service,
            "level": r.level,
            "count": r.n,
            "first_seen": r.first_seen.isoformat() if r.first_seen else None,
            "last_seen": r.last_seen.isoformat() if r.last_seen else None,
            "series": series[r.service, r.level, r.fingerprint],
        }
        for r in top
    ]
