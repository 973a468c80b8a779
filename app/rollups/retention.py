"""Drop what is older than each tier keeps: raw partitions, minute, hourly and daily counts.

Service counts per minute (rollup_minute) outlive template counts per minute: alert
checks and the 7-day alert backtest read them, and they are small.
"""

import logging
from datetime import UTC, date, datetime, timedelta

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.ingest.partitions import DDL_LOCK_TIMEOUT, existing_partitions, forget_partitions
from app.rollups.aggregate import note_hourly_change, read_ingest_bounds, read_watermark
from app.rollups.tiers import floor_day

log = logging.getLogger(__name__)


def _partition_day(name: str) -> date | None:
    """The day a partition holds, from its name."""
    try:
        return datetime.strptime(name.removeprefix("entries_p"), "%Y%m%d").date()
    except ValueError:
        return None


def drop_old_partitions(keep_days: int, now: datetime) -> list[str]:
    """Drop raw partitions whose whole day is older than keep_days; one that cannot be
    locked soon is left for the next run."""
    oldest_kept = (now - timedelta(days=keep_days)).date()
    old = sorted(name for name in existing_partitions()
                 if (day := _partition_day(name)) is not None and day < oldest_kept)
    db.session.commit()
    dropped = [name for name in old if _drop_partition(name)]
    if dropped:
        forget_partitions()
    return dropped


def _drop_partition(name: str) -> bool:
    """Drop one partition in a transaction of its own; False if its lock was not granted
    within DDL_LOCK_TIMEOUT."""
    db.session.execute(text(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))
    try:
        # The name was read from the catalogue and matched a date pattern.
        db.session.execute(text(f"DROP TABLE IF EXISTS logs.{name}"))
        db.session.commit()
    except OperationalError as error:
        db.session.rollback()
        if not isinstance(error.orig, psycopg.errors.LockNotAvailable):
            raise
        log.warning("retention: %s is in use; it is dropped on a later run", name)
        return False
    return True


def _delete(sql: str, **params) -> int:
    """Run one DELETE and return how many rows it removed."""
    return db.session.execute(text(sql), params).rowcount


def minute_cutoffs(config, now: datetime) -> dict:
    """Per minute table, the time before which rows are past retention and aggregated."""
    # Minutes from the horizon on may still be written and their hour redone from them; the
    # horizon is at or before the hourly watermark, and lags the clock while no job runs.
    _, horizon = read_ingest_bounds()
    kept_from = horizon or datetime.min.replace(tzinfo=UTC)
    template_days = config["LOGDASH_RETAIN_MINUTE_DAYS"]
    # Ingest writes both minute tables up to LOGDASH_RETAIN_MINUTE_DAYS back (minute_horizon),
    # so service counts are never kept for less than that, whatever the setting says.
    counts_days = max(config["LOGDASH_RETAIN_MINUTE_COUNTS_DAYS"], template_days)
    return {
        "rollup_minute": min(now - timedelta(days=counts_days), kept_from),
        "template_minute": min(now - timedelta(days=template_days), kept_from),
    }


def delete_old_counts(config, now: datetime) -> dict:
    """Delete counts past their tier's retention; minutes only once their hour is aggregated."""
    hour_cutoff = now - timedelta(days=config["LOGDASH_RETAIN_HOURLY_DAYS"])
    day_cutoff = now - timedelta(days=config["LOGDASH_RETAIN_DAILY_DAYS"])
    # The daily job sums whole days of service counts from their hours: they stay until
    # their day is summed and clean, and go a whole day at a time.
    summed_before = read_watermark("daily") or datetime.min.replace(tzinfo=UTC)
    service_hour_cutoff = min(floor_day(hour_cutoff), summed_before)
    not_dirty = ("AND date_trunc('hour', minute, 'UTC') NOT IN"
                 " (SELECT hour FROM logs.dirty_hours)")
    removed = {
        **{table: _delete(f"DELETE FROM logs.{table} WHERE minute < :cut {not_dirty}", cut=cut)
           for table, cut in minute_cutoffs(config, now).items()},
        "rollup_hourly": _delete(
            "DELETE FROM logs.rollup_hourly WHERE hour < :cut AND date_trunc('day', hour, 'UTC')"
            " NOT IN (SELECT day FROM logs.dirty_days)", cut=service_hour_cutoff),
        "template_hourly": _delete("DELETE FROM logs.template_hourly WHERE hour < :cut",
                                   cut=hour_cutoff),
        "rollup_daily": _delete("DELETE FROM logs.rollup_daily WHERE day < :cut", cut=day_cutoff),
        "ingest_keys": _delete(
            "DELETE FROM logs.ingest_keys WHERE created_at < :cut",
            cut=now - timedelta(hours=config["LOGDASH_IDEMPOTENCY_HOURS"])),
        # A template with no counts left in any tier has nothing to show.
        "templates": _delete("DELETE FROM logs.templates WHERE last_seen < :cut",
                             cut=hour_cutoff),
    }
    if removed["rollup_hourly"] or removed["template_hourly"]:
        note_hourly_change()
    db.session.commit()
    return removed
