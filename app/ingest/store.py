"""Write normalised lines with COPY and count them into the minute rollup, in one transaction."""

from collections import Counter

import psycopg

from app.extensions import db
from app.ingest.partitions import ensure_partitions, forget_partitions
from app.ingest.records import Record

COPY_ENTRIES = (
    "COPY logs.entries (timestamp, service, level, message, host, logger, trace_id, attributes)"
    " FROM STDIN"
)

# Increment, not recompute: ingest only ever adds lines, and re-reading the raw table to
# recompute a minute would cost a scan per batch. Rows are sorted so that concurrent
# batches lock rollup rows in the same order and cannot deadlock.
UPSERT_ROLLUP = """
INSERT INTO logs.rollup_minute (minute, service, level, count)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::bigint[])
ORDER BY 1, 2, 3
ON CONFLICT (minute, service, level) DO UPDATE SET count = rollup_minute.count + excluded.count
"""


def minute_counts(records: list[Record]) -> Counter:
    """Count lines per (minute, service, level)."""
    return Counter(
        (r.timestamp.replace(second=0, microsecond=0), r.service, r.level) for r in records
    )


def store_records(records: list[Record]) -> None:
    """Store lines and their rollup counts; return only once both are committed."""
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
    """COPY the rows, add their counts to the rollup, and commit."""
    counts = minute_counts(records)
    with db.session.connection().connection.driver_connection.cursor() as cursor:
        with cursor.copy(COPY_ENTRIES) as copy:
            for record in records:
                copy.write_row(record)
        keys = sorted(counts)
        cursor.execute(
            UPSERT_ROLLUP,
            (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [counts[k] for k in keys],
            ),
        )
    db.session.commit()
