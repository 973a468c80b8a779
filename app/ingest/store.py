"""Write normalised lines with COPY and count them, in one transaction.

Counts are increments, not recomputations: ingest only ever adds lines, and re-reading the
raw table to recompute a bucket would cost a scan per batch. Upserts take their rows in
sorted order so that concurrent batches lock rollup rows in the same order and cannot
deadlock.
"""

from collections import Counter
from datetime import UTC, datetime
from typing import NamedTuple

import psycopg
from flask import current_app
from psycopg.types.json import Jsonb
from sqlalchemy import text

from app.extensions import db
from app.ingest.partitions import forget_partitions
from app.ingest.records import COPY_COLUMNS, Record
from app.rollups.aggregate import LOCKS, NOTE_HOURLY_CHANGE, read_ingest_bounds
from app.rollups.tiers import LATE_AFTER, floor_day, floor_hour, floor_minute, minute_horizon

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


def store_records(records: list[Record], claim: "KeyClaim | None" = None) -> dict | None:
    """Store lines and all their counts; return only once everything is committed. Their
    partitions exist already (ensure_partitions, committed on its own before); one dropped
    meanwhile rolls everything back (PartitionGone).

    With a claim (an Idempotency-Key and the answer for this request), the key is recorded
    in the same transaction; if it was used before, nothing is stored and the earlier
    answer is returned instead.
    """
    if not records:
        db.session.commit()  # ends the transaction, and the service limit's lock with it
        return None
    try:
        return _copy_and_count(records, claim)
    except psycopg.errors.CheckViolation as error:
        db.session.rollback()
        # A partition this process thought existed was dropped (retention) meanwhile.
        forget_partitions()
        raise PartitionGone from error


class PartitionGone(Exception):
    """A partition the batch needed was dropped under it: nothing was stored."""


class KeyClaim(NamedTuple):
    """An Idempotency-Key, who sent it, and the answer to remember with it."""

    scope: str
    key: str
    response: dict


def _claim_key(cursor, claim: KeyClaim) -> dict | None:
    """Record the key; if another request already did, return the answer it got."""
    cursor.execute(
        "INSERT INTO logs.ingest_keys (scope, key, response) VALUES (%s, %s, %s)"
        " ON CONFLICT (scope, key) DO NOTHING RETURNING key",
        (claim.scope, claim.key, Jsonb(claim.response)),
    )
    if cursor.fetchone() is not None:
        return None
    cursor.execute("SELECT response FROM logs.ingest_keys WHERE scope = %s AND key = %s",
                   (claim.scope, claim.key))
    return cursor.fetchone()[0]


def _tally(records: list[Record], done: datetime | None, horizon: datetime | None) -> dict:
    """Everything a batch adds besides its rows: counts, dirty buckets, templates, services.

    `done` is the hourly watermark and `horizon` the minute horizon, as the hourly job last
    set them (app/rollups/aggregate.py)."""
    now = datetime.now(UTC)
    if horizon is None:
        # Before the job's first run every hour keeps its minutes; before its first run
        # since an upgrade that added the horizon, the clock's, within the sealed hours.
        horizon = (min(minute_horizon(now, current_app.config["LOGDASH_RETAIN_MINUTE_DAYS"]),
                       done) if done else datetime.min.replace(tzinfo=UTC))
    tally = {"counts": {table: Counter() for table in COUNT_TABLES}, "minutes": set(),
             "dirty_days": set(), "templates": {}, "services": {}}
    counts = tally["counts"]
    for r in records:
        if r.timestamp >= horizon:
            minute = floor_minute(r.timestamp)
            counts["rollup_minute"][(minute, r.service, r.level)] += 1
            counts["template_minute"][(minute, r.service, r.level, r.fingerprint)] += 1
            tally["minutes"].add(minute)
        else:
            # Older than the minute tier keeps: the hourly job can no longer recompute
            # this hour from minutes, so the hourly tier is added to directly.
            hour = floor_hour(r.timestamp)
            counts["rollup_hourly"][(hour, r.service, r.level)] += 1
            counts["template_hourly"][(hour, r.service, r.level, r.fingerprint)] += 1
            tally["dirty_days"].add(floor_day(hour))
        _widen(tally["templates"], (r.service, r.level, r.fingerprint), r.template, r.message,
               r.timestamp)
        _widen(tally["services"], r.service, None, None, r.timestamp)
    return tally


def _copy_and_count(records: list[Record], claim: KeyClaim | None) -> dict | None:
    """COPY the rows, add their counts, note templates and services, and commit."""
    # Shared with every other batch, exclusive to the hourly job (app/rollups/aggregate.py):
    # the job never seals an hour while a batch that writes into it is open, and a batch
    # begun after a run sees the watermark and minute horizon that run moved, whatever the
    # machines' clocks.
    db.session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": LOCKS["hourly"]})
    done, horizon = read_ingest_bounds()
    tally = _tally(records, done, horizon)
    with db.session.connection().connection.driver_connection.cursor() as cursor:
        earlier = _claim_key(cursor, claim) if claim else None
        if earlier is not None:
            db.session.rollback()
            return earlier
        with cursor.copy(COPY_ENTRIES) as copy:
            for record in records:
                copy.write_row(record[: len(COPY_COLUMNS)])
        _upsert_seen(cursor, tally["templates"], tally["services"])
        mark_dirty(cursor, "dirty_days", "day", tally["dirty_days"])
        if tally["counts"]["rollup_hourly"]:
            cursor.execute(NOTE_HOURLY_CHANGE)
        # Hot counter rows last: their row locks are then held only until the commit.
        for table, table_counts in tally["counts"].items():
            add_counts(cursor, table, table_counts)
        # Decided at the last moment before the commit, so that a slow transaction still
        # marks the minutes that grew late while it ran.
        late = late_hours(tally["minutes"], datetime.now(UTC), done)
        mark_dirty(cursor, "dirty_hours", "hour", late)
    db.session.commit()
    return None


def late_hours(minutes: set, now: datetime, done: datetime | None) -> set:
    """Hours of the minutes that are late: in an hour the hourly job has summed (before its
    watermark `done`), or more than LATE_AFTER before `now`, where statistics may keep
    sums of minutes."""
    late_before = floor_minute(now) - LATE_AFTER
    return {floor_hour(minute) for minute in minutes
            if minute < late_before or (done is not None and minute < done)}


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
