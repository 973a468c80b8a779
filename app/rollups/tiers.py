"""The count tiers and their time arithmetic, shared by ingest, jobs and statistics."""

from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Ingest stops writing minute rows this long before retention would delete them, so a
# job never recomputes an hour whose minutes are being deleted at the same moment.
HORIZON_MARGIN = HOUR
# A line for a minute more than LATE_AFTER before the time its batch commits marks that
# minute's hour dirty, the current hour too. Statistics may then keep sums of minutes older
# than KEEP_AFTER (app/stats/counts.py): the gap between the two allows for the clocks of
# different processes and hosts to disagree by up to 3 minutes.
LATE_AFTER = timedelta(minutes=2)
KEEP_AFTER = timedelta(minutes=5)


def floor_minute(moment: datetime) -> datetime:
    """The start of the minute holding moment."""
    return moment.replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    """The start of the hour holding moment."""
    return moment.replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    """The start of the UTC day holding moment."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def minute_horizon(now: datetime, retain_minute_days: int) -> datetime:
    """Lines older than this are counted straight into the hourly tier, not per minute."""
    return floor_hour(now - timedelta(days=retain_minute_days) + HORIZON_MARGIN)
