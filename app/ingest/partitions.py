"""Daily partitions of logs.entries: created ahead by a job, and on demand at ingest."""

from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import text

from app.extensions import db

# One key for every process, so two creators of the same partition take turns.
_LOCK_KEY = 0x6C6F6764  # "logd"

# Creating or dropping a partition locks all of logs.entries, and every ingest batch
# queues behind such a statement while it waits for a long search to finish: the wait is
# bounded, so ingest stalls at most this long and the statement is tried again later.
DDL_LOCK_TIMEOUT = "2s"


def partition_name(day: date) -> str:
    """Return the table name holding the lines of one UTC day."""
    return f"entries_p{day:%Y%m%d}"


def existing_partitions() -> set[str]:
    """Read the names of the partitions that exist now."""
    rows = db.session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'logs.entries'::regclass"
        )
    )
    return {name for (name,) in rows}


def _known() -> set[str]:
    """The partitions this process knows exist, read from the catalogue on first use."""
    cache = current_app.extensions.setdefault("logdash.partitions", None)
    if cache is None:
        cache = existing_partitions()
        db.session.commit()
        current_app.extensions["logdash.partitions"] = cache
    return cache


def forget_partitions() -> None:
    """Drop what this process believes exists, after a partition turned out to be missing."""
    current_app.extensions["logdash.partitions"] = None


def ensure_partitions(days: set[date]) -> None:
    """Create the partitions for these days that do not exist yet, committed on their own;
    raises LockNotAvailable (a 503 at ingest) when logs.entries stays in use too long."""
    known = _known()
    missing = sorted(day for day in days if partition_name(day) not in known)
    if not missing:
        return
    db.session.execute(text(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    for day in missing:
        # DDL takes no bound parameters; name and bounds are built from a date object only.
        db.session.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS logs.{partition_name(day)}"
                f" PARTITION OF logs.entries FOR VALUES FROM ('{day.isoformat()} 00:00+00')"
                f" TO ('{(day + timedelta(days=1)).isoformat()} 00:00+00')"
            )
        )
    db.session.commit()
    known.update(partition_name(day) for day in missing)


def ensure_partitions_ahead(days_ahead: int, today: date | None = None) -> list[str]:
    """Make sure today's partition and the next days' exist; return their names."""
    today = today or datetime.now(UTC).date()
    days = {today + timedelta(days=offset) for offset in range(days_ahead + 1)}
    ensure_partitions(days)
    return sorted(partition_name(day) for day in days)
