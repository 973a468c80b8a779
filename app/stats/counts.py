"""Counts per bucket for a window, from the minute and hourly tiers.

Recent minutes live only in the minute tier; older hours in the hourly tier once the hourly
job has passed them (the watermark). Hours that late lines touched after aggregation are
"dirty" and read from minutes until the job redoes them. Combining the tiers this way keeps
every count exact at every moment, without reading raw lines.

The hourly part of a window (its sealed hours) is summed once per process and kept
(app/stats/sealed.py), and so are the minutes from the watermark to KEEP_AFTER ago, for a
minute; each request adds the last few minutes and the dirty hours to them. The 1h window,
bucketed by minute, keeps its minutes before the same cut that are in no dirty hour. A
page's cost then follows the last minutes' lines, not the window's or the hour's.
"""

import heapq
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import text

from app.extensions import db
from app.rollups.tiers import HOUR, KEEP_AFTER, floor_hour, floor_minute
from app.stats.sealed import sealed_sums
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
# The UTC hour a minute falls in, as date_trunc('hour', minute, 'UTC') gives it, for less
# than half its cost per row (date_trunc looks the zone up; date_bin counts from an origin).
HOUR_OF_MINUTE = "date_bin('1 hour', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
# Windows with more buckets than the 1h window (7d, 30d) may group more than work_mem holds.
LARGE_WINDOW_SLOTS = 60


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


def hour_ranges(hours: tuple[datetime, ...], params: dict) -> str:
    """A condition on `minute` for the given hours, adding their bounds to the parameters."""
    ranges = []
    for i, hour in enumerate(hours):
        params[f"hour_{i}"], params[f"hour_{i}_end"] = hour, hour + HOUR
        ranges.append(f"(minute >= :hour_{i} AND minute < :hour_{i}_end)")
    return " OR ".join(ranges)


@dataclass(frozen=True)
class Split:
    """Where an hour-bucketed window's counts are: sealed hours in the hourly tier before
    the watermark (the dirty ones excepted), kept minutes from the watermark to `cut`, and
    the minutes since `cut` (with the dirty hours') read by every request."""

    watermark: datetime
    dirty: tuple[datetime, ...]
    # When sealed hours last changed (logs.tier_changes): part of every cache key.
    changed_at: datetime | None
    # Minutes before it and from the watermark on are summed once per process and kept
    # while it stays the same (a minute): ingest marks any later change to them as a dirty
    # hour (app/ingest/store.py, LATE_AFTER). The watermark when such an hour is dirty.
    # Not part of the sealed hours' keys.
    cut: datetime = field(compare=False)


def split_of(window: Window) -> Split:
    """How the window divides between the tiers now."""
    return split_from(floor_hour(window.start), window.now)


def split_from(start: datetime, now: datetime) -> Split:
    """The tiers as divided at `now`, for buckets from `start` (a whole hour) on."""
    watermark, changed_at, dirty = db.session.execute(text(
        "SELECT (SELECT through FROM logs.watermarks WHERE tier = 'hourly'),"
        " (SELECT changed_at FROM logs.tier_changes WHERE tier = 'hourly'),"
        " ARRAY(SELECT hour FROM logs.dirty_hours WHERE hour >= :start ORDER BY hour)"),
        {"start": start}).one()
    # The window never starts after the watermark; dirty hours past it are minutes anyway.
    # Nor is it later than the hour `now` is in: the job's clock may run ahead of this
    # process's, and the hours it sealed are then read from their minutes, which stop at
    # the window's end, like every count this process serves.
    watermark = max(min(watermark or start, floor_hour(now)), start)
    sealed_dirty = tuple(hour for hour in dirty if hour < watermark)
    late = len(sealed_dirty) < len(dirty)
    cut = watermark if late else max(watermark, floor_minute(now) - KEEP_AFTER)
    return Split(watermark, sealed_dirty, changed_at, cut)


def _sources(window: Window, split: Split, kind: str, service=None, levels=None,
             fingerprints=None) -> tuple[str | None, str | None, str, dict]:
    """SELECTs of (bucket, keys..., count) rows: the sealed hours', the kept minutes' (each
    None if there are none), the rest's, and their parameters."""
    minute_table, hourly_table, keys = KINDS[kind]
    columns = ", ".join(keys)
    where = _filters(service, levels, fingerprints)
    params = {"start": window.start, "end": window.until, "service": service,
              "levels": levels, "fingerprints": fingerprints}
    if window.bucket == "minute":
        return None, *minute_sources(window, split, minute_table, columns, where, params)
    params.update(watermark=split.watermark, dirty=list(split.dirty), cut=split.cut)
    # Every bound is a plain range on the tables' leading bucket column, so each branch is
    # an index range scan.
    sealed = kept = None
    if split.watermark > window.start:
        sealed = (f"SELECT hour AS bucket, {columns}, count FROM logs.{hourly_table}"
                  f" WHERE hour >= :start AND hour < :watermark{where}")
        if split.dirty:
            sealed += " AND hour <> ALL(:dirty)"
    if split.cut > split.watermark:
        kept = (f"SELECT {HOUR_OF_MINUTE} AS bucket, {columns}, count"
                f" FROM logs.{minute_table} WHERE minute >= :watermark AND minute < :cut{where}")
    minutes = (f"SELECT {HOUR_OF_MINUTE} AS bucket, {columns}, count"
               f" FROM logs.{minute_table} WHERE minute >= :cut AND minute < :end{where}")
    if split.dirty:
        # Dirty hours come from their minutes: one index range per hour (a join with the
        # list of hours would not be planned as ranges).
        minutes += (f" UNION ALL SELECT {HOUR_OF_MINUTE}, {columns}, count"
                    f" FROM logs.{minute_table} WHERE ({hour_ranges(split.dirty, params)})"
                    f" AND minute < :end{where}")
    return sealed, kept, minutes, params


def minute_sources(window: Window, split: Split, minute_table: str, columns: str,
                   where: str, params: dict) -> tuple[str | None, str, dict]:
    """SELECTs of (bucket, columns..., count) rows of a minute-bucketed window (1h) and
    their parameters: the part to keep, its minutes before the cut that are in no dirty
    hour (None if there are none), and the rest, read by every request."""
    params.update(cut=split.cut, end=window.until)
    dirty = tuple(hour for hour in split.dirty if hour + HOUR > window.start)
    rows = f"SELECT minute AS bucket, {columns}, count FROM logs.{minute_table}"
    live = "minute >= :cut"
    kept = None
    if split.cut > window.start:
        kept = f"{rows} WHERE minute >= :start AND minute < :cut{where}"
        if dirty:
            ranges = hour_ranges(dirty, params)
            kept += f" AND NOT ({ranges})"
            live += f" OR {ranges}"
    return kept, f"{rows} WHERE minute >= :start AND minute < :end AND ({live}){where}", params


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

    def copy(self) -> "LevelTotals":
        """A copy that can be added to without changing this one."""
        return LevelTotals(self.slots, dict(self.by_slot_level), dict(self.by_service_level),
                           {name: list(s) for name, s in self.by_service_slot.items()})

    def add(self, grouping: int, slot: int, name: str, level: str, count: int) -> None:
        """Add one row of the grouping-sets query."""
        if grouping == SERVICE_LEVEL:
            key = (name, level)
            self.by_service_level[key] = self.by_service_level.get(key, 0) + count
        elif grouping == SLOT_LEVEL:
            self.by_slot_level[slot, level] = self.by_slot_level.get((slot, level), 0) + count
        else:
            self.by_service_slot.setdefault(name, [0] * self.slots)[slot] += count


def _slot_params(window: Window, params: dict) -> int:
    """Add what SLOT needs to the parameters; return the number of slots in the window."""
    params["step_seconds"] = int(window.step.total_seconds())
    return len(window.buckets())


def _grouped(source: str, params: dict, totals: LevelTotals) -> LevelTotals:
    """Add the source's counts per (slot, level), (service, level) and (service, slot)."""
    # One pass and a few hundred rows per set, instead of every (bucket, service, level).
    rows = db.session.execute(text(
        f"SELECT GROUPING(bucket, service, level), {SLOT}, service, level, sum(count)::bigint"
        f" FROM ({source}) AS c"
        " GROUP BY GROUPING SETS ((bucket, level), (service, level), (service, bucket))"
    ), params)
    for row in rows:
        totals.add(*row)
    return totals


def _grouped_sealed(source: str, params: dict, slots: int) -> LevelTotals:
    """_grouped() of sealed hours, with more work_mem for windows longer than a day."""
    if slots <= LARGE_WINDOW_SLOTS:
        return _grouped(source, params, LevelTotals(slots))
    # A saturated 30-day window groups 160 000 rows into 40 000 groups: 11 MB of hash
    # tables, which the default 4 MB turns into a sort on disk. A cap, not an allocation,
    # and only until the transaction ends; reads of the API and the pages run without one
    # (app/extensions.py), so they get one of their own for this statement.
    connection = db.session.connection().connection.dbapi_connection
    with connection.transaction() if connection.autocommit else nullcontext():
        db.session.execute(text("SET LOCAL work_mem = '32MB'"))
        return _grouped(source, params, LevelTotals(slots))


def level_totals(window: Window, service: str | None = None,
                 split: Split | None = None) -> LevelTotals:
    """Counts per (slot, level), (service, level) and (service, slot) of the window.

    A caller reading several things of one window passes its split, read once.
    """
    split = split or split_of(window)
    sealed, kept, minutes, params = _sources(window, split, "levels", service)
    slots = _slot_params(window, params)
    key = ("levels", window.name, window.start, service, split)

    def sealed_sums_of_hours() -> LevelTotals:
        """The sealed hours' sums, kept."""
        if sealed is None:
            return LevelTotals(slots)
        return sealed_sums().get(key, lambda: _grouped_sealed(sealed, params, slots))

    if window.bucket == "hour":
        kept, minutes = _per_hour(kept), _per_hour(minutes)
    if kept is None:
        totals = sealed_sums_of_hours().copy()
    else:
        totals = sealed_sums("minutes").get((*key, split.cut), lambda: _grouped(
            kept, params, sealed_sums_of_hours().copy())).copy()
    return _grouped(minutes, params, totals)


def _per_hour(source: str | None) -> str | None:
    """A source of minute rows summed to their hours first.

    One hash pass over thousands of rows, then three over hundreds, instead of three over
    thousands (at 10 M lines a month, 0.8 ms instead of 1.3 ms for 40 minutes' rows).
    """
    if source is None:
        return None
    return (f"SELECT bucket, service, level, sum(count)::bigint AS count FROM ({source})"
            " AS m GROUP BY 1, 2, 3")


def _kept_parts(key: tuple, split: Split, sealed: str | None, kept: str | None,
                compute: Callable) -> list:
    """compute() of the sealed hours and of the kept minutes of a window (where there are
    any), each kept under `key`. Never mutate them."""
    parts = []
    if sealed is not None:
        parts.append(sealed_sums().get(key, lambda: compute(sealed)))
    if kept is not None:
        parts.append(sealed_sums("minutes").get((*key, split.cut), lambda: compute(kept)))
    return parts


class TopKey(NamedTuple):
    """One of the most frequent templates of a window, with its stored text."""

    service: str
    level: str
    fingerprint: str
    n: int
    template: str | None
    sample: str | None
    first_seen: datetime | None
    last_seen: datetime | None


def _key_sums(source: str, params: dict) -> dict:
    """Count per (service, level, fingerprint) of a source."""
    rows = db.session.execute(text(
        f"SELECT service, level, fingerprint, sum(count)::bigint FROM ({source}) AS c"
        " GROUP BY 1, 2, 3"), params)
    return {(service, level, fingerprint): n for service, level, fingerprint, n in rows}


def _live_rows(window: Window, split: Split, service, levels) -> list[tuple]:
    """(service, level, fingerprint, slot, count) of every template in the part of the
    window read now: the minutes since the cut and the dirty hours. Top templates take both
    their counts and their series from it, in one statement."""
    _, _, minutes, params = _sources(window, split, "templates", service, levels)
    _slot_params(window, params)
    return [tuple(row) for row in db.session.execute(text(
        f"SELECT service, level, fingerprint, {SLOT}, sum(count)::bigint FROM ({minutes})"
        " AS c GROUP BY 1, 2, 3, bucket"), params)]


def _top_keys(window: Window, split: Split, limit: int, service, levels,
              live: list[tuple]) -> list[TopKey]:
    """The `limit` most frequent (service, level, template) keys with their template rows."""
    sealed, kept, _, params = _sources(window, split, "templates", service, levels)
    key = ("templates", window.name, window.start, service, tuple(levels or ()), split)
    sums: dict = {}
    for service_name, level, fingerprint, _, n in live:
        template_key = service_name, level, fingerprint
        sums[template_key] = sums.get(template_key, 0) + n
    for part in _kept_parts(key, split, sealed, kept, lambda s: _key_sums(s, params)):
        for template_key, n in part.items():
            sums[template_key] = sums.get(template_key, 0) + n
    # Most lines first; ties by fingerprint, service and level, as before.
    best = heapq.nsmallest(limit, sums.items(),
                           key=lambda item: (-item[1], item[0][2], item[0][0], item[0][1]))
    if not best:
        return []
    texts = {(r.service, r.level, r.fingerprint): r for r in db.session.execute(text(
        "SELECT service, level, fingerprint, template, sample, first_seen, last_seen"
        " FROM logs.templates WHERE (service, level, fingerprint) IN (SELECT * FROM unnest("
        "CAST(:services AS text[]), CAST(:levels AS text[]), CAST(:fingerprints AS text[])))"),
        {"services": [k[0] for k, _ in best], "levels": [k[1] for k, _ in best],
         "fingerprints": [k[2] for k, _ in best]})}
    return [TopKey(*key, n, *(texts[key][3:] if key in texts else (None,) * 4))
            for key, n in best]


def _series_rows(source: str, params: dict) -> list[tuple]:
    """(service, level, fingerprint, slot, count) of the top keys in a source."""
    # The fingerprint filter reaches the tables' indexes; a template that other services or
    # levels share is then dropped here, by its whole key.
    return [tuple(row) for row in db.session.execute(text(
        f"SELECT service, level, fingerprint, {SLOT}, sum(count)::bigint FROM ({source}) AS c"
        " WHERE (service, level, fingerprint) IN (SELECT * FROM unnest("
        "CAST(:top_services AS text[]), CAST(:top_levels AS text[]),"
        " CAST(:top_fingerprints AS text[])))"
        " GROUP BY 1, 2, 3, bucket"
    ), params)]


def _series(window: Window, split: Split, top: list[TopKey], service, levels,
            live: list[tuple]) -> dict[tuple, list]:
    """Each top key's count in every slot: {(service, level, fingerprint): [n, ...]}."""
    fingerprints = sorted({r.fingerprint for r in top})
    sealed, kept, _, params = _sources(window, split, "templates", service, levels,
                                       fingerprints)
    slots = _slot_params(window, params)
    keys = tuple((r.service, r.level, r.fingerprint) for r in top)
    params.update(top_services=[k[0] for k in keys], top_levels=[k[1] for k in keys],
                  top_fingerprints=[k[2] for k in keys])
    key = ("series", window.name, window.start, service, tuple(levels or ()), keys, split)
    rows = [row for part in _kept_parts(key, split, sealed, kept,
                                        lambda s: _series_rows(s, params)) for row in part]
    series = {key: [0] * slots for key in keys}
    rows += [row for row in live if row[:3] in series]
    for service_name, level, fingerprint, slot, count in rows:
        series[service_name, level, fingerprint][slot] += count
    return series


def top_templates(window: Window, limit: int, service=None, levels=None,
                  split: Split | None = None) -> list[dict]:
    """The most frequent templates in the window, with their per-bucket counts."""
    split = split or split_of(window)
    live = _live_rows(window, split, service, levels)
    top = _top_keys(window, split, limit, service, levels, live)
    if not top:
        return []
    series = _series(window, split, top, service, levels, live)
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
