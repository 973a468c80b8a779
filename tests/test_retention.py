"""Retention: whole raw partitions by age, counts by tier, never unaggregated minutes."""

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import text

from app.config import HOURLY_DAYS_MIN
from app.extensions import db
from app.rollups.aggregate import aggregate_days, aggregate_hours
from app.rollups.retention import delete_old_counts, drop_old_partitions
from app.rollups.tiers import floor_day, floor_hour, minute_horizon
from app.stats.windows import make_window
from tests.helpers import finishes_during_a_long_read, post_logs, scalar

NOW = datetime.now(UTC)
NOW_IS_CLOCK = True  # conftest sets NOW anew for each test


def put(sql: str, **params) -> None:
    """Write rows the way an older installation would have left them."""
    db.session.execute(text(sql), params)
    db.session.commit()


def test_old_raw_partitions_are_dropped_counts_kept(client):
    """Lines older than the raw retention go with their partition; their counts stay."""
    old = (NOW - timedelta(days=20)).replace(microsecond=0)
    post_logs(client, [{"service": "a", "message": "old", "timestamp": old.isoformat()},
                       {"service": "a", "message": "new"}])
    dropped = drop_old_partitions(14, NOW)
    assert dropped == [f"entries_p{old:%Y%m%d}"]
    assert scalar("SELECT count(*) FROM logs.entries") == 1
    assert scalar("SELECT count(*) FROM pg_class WHERE relname = :n", n=dropped[0]) == 0
    # In whichever tier holds it (minutes, as the hourly job has not run here yet).
    assert scalar("SELECT (SELECT coalesce(sum(count), 0) FROM logs.rollup_hourly"
                  " WHERE hour < :h) + (SELECT coalesce(sum(count), 0) FROM logs.rollup_minute"
                  " WHERE minute < :h)", h=NOW - timedelta(days=19)) == 1
    # Ingest still works after the partition cache was reset.
    assert post_logs(client, {"service": "a", "message": "later"}).json["accepted"] == 1


def test_counts_past_retention_are_deleted(app):
    """Each tier keeps its configured number of days; minutes only once aggregated."""
    # Past the minute counts' retention (LOGDASH_RETAIN_MINUTE_COUNTS_DAYS, 8).
    nine_days = floor_hour(NOW - timedelta(days=9))
    for minute in (nine_days, nine_days + timedelta(hours=1)):
        put("INSERT INTO logs.rollup_minute VALUES (:m, 'a', 'info', 5)", m=minute)
    put("INSERT INTO logs.watermarks VALUES ('hourly', :w), ('minute_horizon', :h),"
        " ('daily', :d)", w=floor_hour(NOW), d=floor_day(NOW),
        h=minute_horizon(NOW, current_app.config["LOGDASH_RETAIN_MINUTE_DAYS"]))
    put("INSERT INTO logs.dirty_hours VALUES (:h)", h=nine_days + timedelta(hours=1))
    put("INSERT INTO logs.rollup_hourly VALUES (:h, 'a', 'info', 7)",
        h=floor_hour(NOW - timedelta(days=91)))
    put("INSERT INTO logs.rollup_hourly VALUES (:h, 'a', 'info', 8)",
        h=floor_hour(NOW - timedelta(days=89)))
    put("INSERT INTO logs.rollup_daily VALUES (:d, 'a', 'info', 9)",
        d=NOW - timedelta(days=731))
    put("INSERT INTO logs.templates VALUES ('a', 'info', 'f1', 't', 's', :t, :t)",
        t=NOW - timedelta(days=100))
    for hours, key in ((25, "old"), (23, "recent")):
        put("INSERT INTO logs.ingest_keys VALUES ('open', :k, '{}', :t)", k=key,
            t=NOW - timedelta(hours=hours))

    removed = delete_old_counts(current_app.config, NOW)

    assert removed["rollup_minute"] == 1
    assert scalar("SELECT count(*) FROM logs.rollup_minute") == 1  # the dirty hour's minute
    assert removed["rollup_hourly"] == 1
    assert scalar("SELECT sum(count) FROM logs.rollup_hourly") == 8
    assert removed["rollup_daily"] == 1
    assert removed["templates"] == 1
    assert removed["ingest_keys"] == 1
    assert scalar("SELECT key FROM logs.ingest_keys") == "recent"


def test_minutes_ingest_may_still_write_are_kept_while_no_job_runs(app, client):
    """Past retention but not before the minute horizon the last hourly run set: ingest
    still counts late lines of that hour per minute, and the job would redo the hour from
    them, so they stay until a run moves the horizon past them."""
    days = app.config["LOGDASH_RETAIN_MINUTE_DAYS"]
    last_run = NOW - timedelta(hours=3)  # the scheduler has been down since
    aggregate_hours(last_run)
    horizon = minute_horizon(last_run, days)
    for minute in (horizon - timedelta(minutes=1), horizon + timedelta(minutes=1)):
        put("INSERT INTO logs.template_minute VALUES (:m, 'a', 'info', 'f', 5)", m=minute)
    assert horizon + timedelta(minutes=1) < NOW - timedelta(days=days)  # past retention
    assert delete_old_counts(app.config, NOW)["template_minute"] == 1
    assert scalar("SELECT minute FROM logs.template_minute") == horizon + timedelta(minutes=1)
    aggregate_hours(NOW)
    assert delete_old_counts(app.config, NOW)["template_minute"] == 1


def test_minutes_not_yet_aggregated_are_kept(client):
    """Without an hourly run, no minute is deleted however old, so nothing is lost."""
    put("INSERT INTO logs.rollup_minute VALUES (:m, 'a', 'info', 5)",
        m=floor_hour(NOW - timedelta(days=10)))
    assert delete_old_counts(current_app.config, NOW)["rollup_minute"] == 0
    aggregate_hours()
    assert delete_old_counts(current_app.config, NOW)["rollup_minute"] == 1
    assert scalar("SELECT sum(count) FROM logs.rollup_hourly") == 5


def test_a_partition_in_use_is_dropped_on_a_later_run(app, client):
    """A long read of logs.entries holds its lock: the drop gives up after a short wait
    (ingest queues behind a waiting drop) and succeeds once the read is over."""
    old = (NOW - timedelta(days=20)).replace(microsecond=0)
    post_logs(client, {"service": "a", "message": "old", "timestamp": old.isoformat()})
    result = {}

    def retention():
        """The retention job's drop, on a connection of its own."""
        with app.app_context():
            result["dropped"] = drop_old_partitions(14, NOW)
            db.session.remove()

    assert finishes_during_a_long_read(retention)
    assert result["dropped"] == []
    assert drop_old_partitions(14, NOW) == [f"entries_p{old:%Y%m%d}"]


def test_hours_past_retention_stay_until_their_day_is_summed(app):
    """The hourly cut falls inside a day: that day's hours all stay while the day is dirty
    or not yet summed, so the daily job never replaces its count with part of one."""
    day = floor_day(NOW - timedelta(days=app.config["LOGDASH_RETAIN_HOURLY_DAYS"]))
    before = day - timedelta(days=1)
    for hour, count in ((day, 5), (day + timedelta(hours=23), 7), (before, 2)):
        put("INSERT INTO logs.rollup_hourly VALUES (:h, 'a', 'info', :c)", h=hour, c=count)
    # The daily job summed both days before a late line added the 7 and marked `day` dirty.
    put("INSERT INTO logs.rollup_daily VALUES (:d, 'a', 'info', 5), (:b, 'a', 'info', 2)",
        d=day, b=before)
    put("INSERT INTO logs.watermarks VALUES ('hourly', :w), ('daily', :d)",
        w=floor_hour(NOW), d=floor_day(NOW))
    put("INSERT INTO logs.dirty_days VALUES (:d)", d=day)

    assert delete_old_counts(app.config, NOW)["rollup_hourly"] == 1  # the clean day before
    aggregate_days(NOW)
    assert scalar("SELECT count FROM logs.rollup_daily WHERE day = :d", d=day) == 12
    # Clean and summed, the whole day goes once the cut has passed all of it.
    assert delete_old_counts(app.config, NOW + timedelta(days=1))["rollup_hourly"] == 2
    assert scalar("SELECT count FROM logs.rollup_daily WHERE day = :d", d=day) == 12


def test_hours_of_days_not_yet_summed_are_kept(app):
    """Without a daily run since, hours past retention are kept for it."""
    old = floor_hour(NOW - timedelta(days=app.config["LOGDASH_RETAIN_HOURLY_DAYS"] + 2))
    put("INSERT INTO logs.rollup_hourly VALUES (:h, 'a', 'info', 3)", h=old)
    put("INSERT INTO logs.watermarks VALUES ('hourly', :w), ('daily', :d)",
        w=floor_hour(NOW), d=floor_day(old))
    assert delete_old_counts(app.config, NOW)["rollup_hourly"] == 0
    aggregate_days(NOW)
    assert delete_old_counts(app.config, NOW)["rollup_hourly"] == 1
    assert scalar("SELECT sum(count) FROM logs.rollup_daily") == 3


def test_the_fewest_hours_kept_still_cover_the_30d_window(client, app):
    """At the lowest hourly retention allowed, retention takes the hours before the 30d
    window and leaves its oldest."""
    oldest = make_window("30d", NOW).start
    assert post_logs(client, {"service": "a", "message": "a month ago",
                              "timestamp": (oldest + timedelta(minutes=1)).isoformat()}
                     ).json["accepted"] == 1
    put("INSERT INTO logs.rollup_hourly VALUES (:h, 'a', 'info', 4)",
        h=floor_day(oldest) - timedelta(days=2))
    aggregate_hours(NOW)
    aggregate_days(NOW)
    fewest = {**app.config, "LOGDASH_RETAIN_HOURLY_DAYS": HOURLY_DAYS_MIN}
    assert delete_old_counts(fewest, NOW)["rollup_hourly"] == 1
    assert client.get("/api/logs/dashboard?window=30d").json["totals"]["total"] == 1
