"""Fill the hourly and daily tiers by recomputing whole buckets from the tier below.

Recomputing (delete the bucket, insert its sums) rather than adding makes every run
idempotent: a re-run, a retry after a crash, or two workers at once give the same numbers.
Each tier has a watermark: every bucket before it has been aggregated. A run covers every
bucket from the watermark to the last complete one, so a scheduler that was down catches
up in one run, plus the "dirty" buckets that late lines touched after they were done.
"""

from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.rollups.tiers import DAY, HOUR, floor_day, floor_hour, minute_horizon

# pg_advisory_xact_lock keys: one run per tier at a time, across every process. Ingest
# batches hold the hourly one in shared mode (app/ingest/store.py), so a run waits for them.
LOCKS = {"hourly": 0x6C6F6801, "daily": 0x6C6F6802}

# For each tier: (bucket column, source table per target table, source bucket column).
RECOMPUTE_HOURLY = [
    ("rollup_hourly", "rollup_minute", "service, level"),
    ("template_hourly", "template_minute", "service, level, fingerprint"),
]
RECOMPUTE_DAILY = [("rollup_daily", "rollup_hourly", "service, level")]
# Hours the hourly job redoes per transaction (a day's worth).
HOURS_PER_STEP = 24
# The watermarks row holding the minute horizon: ingest counts lines of hours before it
# straight into the hourly tier, and per minute from it on. Only the hourly job moves it,
# so every batch between two runs agrees on it, whatever its clock says: an hour that still
# has minutes to be redone from never also gets hourly counts that the redo would replace.
MINUTE_HORIZON = "minute_horizon"


# Notes, in the caller's transaction, that finished hours changed. Always a later time than
# the one stored, even if the clock went back, so a change is never missed.
NOTE_HOURLY_CHANGE = (
    "INSERT INTO logs.tier_changes (tier, changed_at) VALUES ('hourly', clock_timestamp())"
    " ON CONFLICT (tier) DO UPDATE SET changed_at = greatest("
    "tier_changes.changed_at + interval '1 microsecond', excluded.changed_at)"
)


def note_hourly_change() -> None:
    """Record that hourly buckets before the watermark changed (see logs.tier_changes)."""
    db.session.execute(text(NOTE_HOURLY_CHANGE))


def read_watermark(tier: str) -> datetime | None:
    """The start of the first bucket of a tier not yet aggregated, if any run happened."""
    return db.session.execute(
        text("SELECT through FROM logs.watermarks WHERE tier = :tier"), {"tier": tier}
    ).scalar()


def read_ingest_bounds() -> tuple[datetime | None, datetime | None]:
    """The hourly watermark and the minute horizon, as the last hourly run left them."""
    return db.session.execute(text(
        "SELECT max(through) FILTER (WHERE tier = 'hourly'),"
        f" max(through) FILTER (WHERE tier = '{MINUTE_HORIZON}') FROM logs.watermarks"
    )).one()


def _set_watermark(tier: str, through: datetime) -> None:
    """Move a tier's watermark forward (never back)."""
    db.session.execute(
        text(
            "INSERT INTO logs.watermarks (tier, through) VALUES (:tier, :through)"
            " ON CONFLICT (tier) DO UPDATE"
            " SET through = greatest(watermarks.through, excluded.through)"
        ),
        {"tier": tier, "through": through},
    )


def _claim_dirty(table: str, column: str, before: datetime) -> list[datetime]:
    """Take the dirty buckets before a time; late lines after this mark them again."""
    rows = db.session.execute(
        text(f"DELETE FROM logs.{table} WHERE {column} < :before RETURNING {column}"),
        {"before": before},
    )
    return sorted(bucket for (bucket,) in rows)


def _spans(buckets: list[datetime], start: datetime, end: datetime, step) -> list[tuple]:
    """The [from, to) spans of time a recompute reads: [start, end) and each listed bucket
    outside it, merged where they touch, so no source row is read twice."""
    spans = sorted(([(start, end)] if start < end else [])
                   + [(b, b + step) for b in buckets if not start <= b < end])
    merged: list[tuple] = []
    for low, high in spans:
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _recompute(target: str, source: str, keys: str, unit: str, buckets: list[datetime],
               start: datetime | None, end: datetime) -> None:
    """Replace target's buckets in [start, end) and the listed ones with sums from source."""
    bucket = "hour" if unit == "hour" else "day"
    source_bucket = "minute" if unit == "hour" else "hour"
    spans = _spans(buckets, start or end, end, HOUR if unit == "hour" else DAY)
    if not spans:  # most runs: no new hour and nothing late
        return
    params = {"lows": [low for low, _ in spans], "highs": [high for _, high in spans]}
    # Each span is a range of the source's primary key (time first): read by index, where a
    # condition on date_trunc() of it read the whole table, every run, under the job's lock.
    db.session.execute(
        text(
            f"DELETE FROM logs.{target} t USING unnest(CAST(:lows AS timestamptz[]),"
            f" CAST(:highs AS timestamptz[])) AS span(low, high)"
            f" WHERE t.{bucket} >= span.low AND t.{bucket} < span.high"
        ),
        params,
    )
    db.session.execute(
        text(
            f"INSERT INTO logs.{target} ({bucket}, {keys}, count)"
            f" SELECT date_trunc('{unit}', s.{source_bucket}, 'UTC'), {keys}, sum(s.count)"
            f" FROM unnest(CAST(:lows AS timestamptz[]), CAST(:highs AS timestamptz[]))"
            f" AS span(low, high) JOIN logs.{source} s"
            f" ON s.{source_bucket} >= span.low AND s.{source_bucket} < span.high"
            f" GROUP BY 1, {keys}"
        ),
        params,
    )


def _first_bucket(source: str, column: str, unit: str) -> datetime | None:
    """The earliest bucket holding data in a source tier, for a tier never aggregated."""
    return db.session.execute(
        text(f"SELECT date_trunc('{unit}', min({column}), 'UTC') FROM logs.{source}")
    ).scalar()


def aggregate_hours(now: datetime | None = None) -> dict:
    """Aggregate every complete hour since the watermark, and the dirty hours.

    A step of at most HOURS_PER_STEP hours per transaction, each committed: ingest waits for
    the job's lock only as long as one step takes, and a catch-up cut short keeps the steps
    it finished.
    """
    now = now or datetime.now(UTC)
    end = floor_hour(now)
    done = {"hours": 0, "from": None, "to": end.isoformat(), "dirty": 0}
    while True:
        start, stop, hours, dirty = _aggregate_step(now, end)
        done["from"] = done["from"] or start.isoformat()
        done["hours"] += hours
        done["dirty"] += dirty
        if stop >= end:
            return done


def _aggregate_step(now: datetime, end: datetime) -> tuple[datetime, datetime, int, int]:
    """Redo the dirty hours and the next hours from the watermark; commit. Returns the
    step's first and last hour, how many hours it redid, and how many were dirty."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCKS["hourly"]})
    start = read_watermark("hourly") or _first_bucket("rollup_minute", "minute", "hour") or end
    start = min(start, end)
    stop = min(start + HOURS_PER_STEP * HOUR, end)
    # Those after the step are in a later step's hours anyway.
    dirty = _claim_dirty("dirty_hours", "hour", stop)
    for target, source, keys in RECOMPUTE_HOURLY:
        _recompute(target, source, keys, "hour", dirty, start, stop)
    hours = sorted(set(dirty) | _range(start, stop, HOUR))
    # Days already aggregated that these hours belong to must be redone from them. Today's
    # mark too: another run, or a clock ahead of this one, may have summed it already.
    _mark_days_dirty({floor_day(hour) for hour in hours})
    _set_watermark("hourly", stop)
    # Dirty hours before the new horizon were redone above; from now on they only get
    # hourly counts.
    horizon = minute_horizon(now, current_app.config["LOGDASH_RETAIN_MINUTE_DAYS"])
    _set_watermark(MINUTE_HORIZON, min(horizon, stop))
    if hours:
        # Only a run that redid hours changes sealed ones; most runs (every 5 minutes) find
        # nothing new, and sums kept of sealed hours then stay valid.
        note_hourly_change()
    db.session.commit()
    return start, stop, len(hours), len(dirty)


def aggregate_days(now: datetime | None = None) -> dict:
    """Aggregate every complete UTC day since the watermark, and the dirty days; commit."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCKS["daily"]})
    # Batches and hourly steps in flight may be adding to a day already marked dirty, which
    # leaves its mark as it is: wait for them, so the day is not summed without their hours
    # and its mark taken. Ingest waits for this short transaction in turn.
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCKS["hourly"]})
    hourly_done = read_watermark("hourly")
    if hourly_done is None:
        db.session.commit()
        return {"days": 0, "dirty": 0}
    # A day is complete only once all its hours are: never run ahead of the hourly tier.
    end = min(floor_day(now or datetime.now(UTC)), floor_day(hourly_done))
    start = read_watermark("daily") or _first_bucket("rollup_hourly", "hour", "day") or end
    start = min(start, end)
    dirty = _claim_dirty("dirty_days", "day", end)
    for target, source, keys in RECOMPUTE_DAILY:
        _recompute(target, source, keys, "day", dirty, start, end)
    _set_watermark("daily", end)
    db.session.commit()
    days = set(dirty) | _range(start, end, DAY)
    return {"days": len(days), "from": start.isoformat(), "to": end.isoformat(),
            "dirty": len(dirty)}


def _range(start: datetime, end: datetime, step) -> set[datetime]:
    """Bucket starts from start (inclusive) to end (exclusive)."""
    buckets, moment = set(), start
    while moment < end:
        buckets.add(moment)
        moment += step
    return buckets


def _mark_days_dirty(days: set[datetime]) -> None:
    """Note days the daily job must recompute because their hours changed."""
    if days:
        db.session.execute(
            text("INSERT INTO logs.dirty_days (day) SELECT unnest(CAST(:days AS timestamptz[]))"
                 " ON CONFLICT DO NOTHING"),
            {"days": sorted(days)},
        )
