"""Write normalised lines with COPY and count them, in one transaction.

Counts are increments, not recomputations: ingest only ever adds lines, and re-reading the
raw table to recompute a bucket would cost a scan per batch. Upserts take their rows in
sorted order so that concurrent batches lock rollup rows in the same order and cannot
deadlock.
"""

from collections import Counter
from datetime import UTC, datetime

import psycopg
from flask import current_app

from app.extensions import db
from app.ingest.partitions import ensure_partitions, forget_partitions
from app.ingest.records import COPY_COLUMNS, Record
from app.rollups.aggregate import read_watermark
from app.rollups.tiers import floor_day, floor_hour, floor_minute, minute_horizon

COPY_ENTRIES = f"COPY logs.entries ({', '.join(COPY_COLUMNS)}) FROM STDIN"

# (table, key columns with their array types) for each count table ingest adds to.
COUNT_TABLES = {
    "rollup_minute": (("minute", "timestamptz"), ("service", "text"), ("level", "text")),
    "template_minute": (("minute", "timestamptz"), ("service", "text"), ("level", "text"),
                        ("fingerprint", "text")),
    "rollup_hourly": (("hour", "timestamptz"), ("service", "text"), ("level", "text")),
    "template_hourly": (("hour", "timestamptz"), ("service", "text"), ("level", "text"),
                        ("fingerprint", "text")),
}

UPSERT_TEMPLATES = """
INSERT INTO logs.templates (service, level, fingerprint, template, sample, first_seen, last_seen)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::timestamptz[], %s::timestamptz[])
ORDER BY 1, 2, 3
ON CONFLICT (service, level, fingerprint) DO UPDATE SET
    first_seen = least(templates.first_seen, excluded.first_seen),
    last_seen = greatest(templates.last_seen, excluded.last_seen)
"""

UPSERT_SERVICES = """
INSERT INTO logs.services (service, first_seen, last_seen)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])
ORDER BY 1
ON CONFLICT (service) DO UPDATE SET
    first_seen = least(services.first_seen, excluded.first_seen),
    last_seen = greatest(services.last_seen, excluded.last_seen)
"""


def _add_counts_sql(table: str) -> str:
    """An upsert adding counts to one of COUNT_TABLES."""
    keys = COUNT_TABLES[table]
    names = ", ".join(name for name, _ in keys)
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in keys)
    order = ", ".join(str(i + 1) for i in range(len(keys)))
    return (
        f"INSERT INTO logs.{table} ({names}, count)"
        f" SELECT * FROM unnest({arrays}, %s::bigint[]) ORDER BY {order}"
        f" ON CONFLICT ({names}) DO UPDATE SET count = {table}.count + excluded.count"
    )


ADD_COUNTS = {table: _add_counts_sql(table) for table in COUNT_TABLES}


def add_counts(cursor, table: str, counts: Counter) -> None:
    """Add counts keyed by tuples in the table's key order."""
    if not counts:
        return
    keys = sorted(counts)
    columns = [list(column) for column in zip(*keys, strict=True)]
    cursor.execute(ADD_COUNTS[table], (*columns, [counts[k] for k in keys]))


def mark_dirty(cursor, table: str, column: str, buckets: set) -> None:
    """Note aggregated buckets that changed, for the jobs to redo."""
    if buckets:
        cursor.execute(
            f"INSERT INTO logs.{table} ({column}) SELECT unnest(%s::timestamptz[])"
            " ORDER BY 1 ON CONFLICT DO NOTHING",
            (sorted(buckets),),
        )


def store_records(records: list[Record]) -> None:
    """Store lines and all their counts; return only once everything is committed."""
    if not records:
        return
    ensure_partitions({r.timestamp.date() for r in records})
    try:
        _copy_and_count(records)
    except psycopg.errors.CheckViolation:
        db.session.rollback()
        # A partition this process thought existed was dropped (retention) meanwhile.
        forget_partitions()
        ensure_partitions({r.timestamp.date() for r in records})
        _copy_and_count(records)


def _copy_and_count(records: list[Record]) -> None:
    """COPY the rows, add their counts, note templates and services, and commit."""
    now = datetime.now(UTC)
    horizon = minute_horizon(now, current_app.config["LOGDASH_RETAIN_MINUTE_DAYS"])
    if any(r.timestamp < horizon for r in records):
        # Hours the hourly job has not reached yet keep their minutes until it does.
        horizon = min(horizon, read_watermark("hourly") or horizon)
    this_hour, today = floor_hour(now), floor_day(now)
    counts = {table: Counter() for table in COUNT_TABLES}
    dirty_hours, dirty_days = set(), set()
    templates: dict[tuple, list] = {}
    services: dict[str, list] = {}
    for r in records:
        if r.timestamp >= horizon:
            minute = floor_minute(r.timestamp)
            counts["rollup_minute"][(minute, r.service, r.level)] += 1
            counts["template_minute"][(minute, r.service, r.level, r.fingerprint)] += 1
            if minute < this_hour:
                dirty_hours.add(floor_hour(minute))
        else:
            # Older than the minute tier keeps: the hourly job can no longer recompute
            # this hour from minutes, so the hourly tier is added to directly.
            hour = floor_hour(r.timestamp)
            counts["rollup_hourly"][(hour, r.service, r.level)] += 1
            counts["template_hourly"][(hour, r.service, r.level, r.fingerprint)] += 1
            dirty_days.add(floor_day(hour))
        _widen(templates, (r.service, r.level, r.fingerprint), r.template, r.message, r.timestamp)
        _widen(services, r.service, None, None, r.timestamp)
    dirty_days.discard(today)
    with db.session.connection().connection.driver_connection.cursor() as cursor:
        with cursor.copy(COPY_ENTRIES) as copy:
            for record in records:
                copy.write_row(record[: len(COPY_COLUMNS)])
        _upsert_seen(cursor, templates, services)
        mark_dirty(cursor, "dirty_hours", "hour", dirty_hours)
        mark_dirty(cursor, "dirty_days", "day", dirty_days)
        # Hot counter rows last: their row locks are then held only until the commit.
        for table, table_counts in counts.items():
            add_counts(cursor, table, table_counts)
    db.session.commit()


def _widen(seen: dict, key, template, sample, moment: datetime) -> None:
    """Track the first and last time a key appears in the batch, with its first sample."""
    entry = seen.get(key)
    if entry is None:
        seen[key] = [template, sample, moment, moment]
    elif moment < entry[2]:
        entry[2] = moment
    elif moment > entry[3]:
        entry[3] = moment


def _upsert_seen(cursor, templates: dict, services: dict) -> None:
    """Record templates and services with their first and last times."""
    keys = sorted(templates)
    cursor.execute(UPSERT_TEMPLATES, (
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        *([templates[k][i] for k in keys] for i in range(4)),
    ))
    names = sorted(services)
    cursor.execute(UPSERT_SERVICES, (
        names, [services[n][2] for n in names], [services[n][3] for n in names],
    ))
