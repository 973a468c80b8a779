"""Hourly and daily jobs: exact, idempotent, catching up, safe to run twice at once."""

import threading
from datetime import UTC, datetime, timedelta

from flask import current_app
from rq import SimpleWorker
from sqlalchemy import text

from app.extensions import db
from app.rollups.aggregate import aggregate_days, aggregate_hours, read_watermark
from app.rollups.tiers import floor_day, floor_hour
from tests.helpers import post_logs, scalar

NOW = datetime.now(UTC)
NOW_IS_CLOCK = True  # conftest sets NOW anew for each test


def lines_at(*hours_ago: float, service="api", level="error", per=3) -> list[dict]:
    """`per` lines at each of the given number of hours before now."""
    return [
        {"service": service, "level": level, "message": f"failure {i} at {h}h",
         "timestamp": (NOW - timedelta(hours=h)).isoformat()}
        for h in hours_ago for i in range(per)
    ]


def table(sql: str) -> dict:
    """Rows of (bucket, service, level, count) as a dict."""
    return {(r[0], r[1], r[2]): r[3] for r in db.session.execute(text(sql))}


def raw_per(unit: str, before: datetime) -> dict:
    """Raw line counts per bucket of `unit` for buckets ending by `before`."""
    return table(
        f"SELECT date_trunc('{unit}', timestamp, 'UTC') AS b, service, level, count(*)"
        f" FROM logs.entries WHERE timestamp < '{before.isoformat()}' GROUP BY 1, 2, 3")


def hourly() -> dict:
    """The hourly tier."""
    return table("SELECT hour, service, level, count FROM logs.rollup_hourly")


def test_hourly_job_matches_raw_and_is_idempotent(client):
    """Complete hours are summed exactly; a second run changes nothing."""
    post_logs(client, lines_at(0, 1.5, 2.5, 5.2) + lines_at(1.5, level="info", service="web"))
    aggregate_hours()
    expected = raw_per("hour", floor_hour(NOW))
    assert hourly() == expected
    assert len(expected) == 4
    aggregate_hours()
    assert hourly() == expected
    assert read_watermark("hourly") == floor_hour(datetime.now(UTC))


def test_catch_up_after_the_scheduler_was_down(client):
    """A run after three missed hours fills every one of them."""
    post_logs(client, lines_at(4.5))
    aggregate_hours(NOW - timedelta(hours=4))
    post_logs(client, lines_at(3.5, 2.5, 1.5, 0.5))
    result = aggregate_hours()
    assert result["hours"] >= 4
    assert hourly() == raw_per("hour", floor_hour(NOW))


def test_catch_up_goes_a_step_at_a_time_and_keeps_finished_steps(client, monkeypatch):
    """A long catch-up commits a step of hours at a time (ingest waits for one step, not the
    whole backlog); when it is cut short, the steps it finished stay done."""
    from app.rollups import aggregate

    post_logs(client, lines_at(6.5))
    aggregate_hours(NOW - timedelta(hours=6))
    post_logs(client, lines_at(5.5, 4.5, 3.5, 2.5, 1.5, 0.5))
    # As if they had arrived on time, while the scheduler was down: not late, not dirty.
    db.session.execute(text("DELETE FROM logs.dirty_hours"))
    db.session.commit()
    first = read_watermark("hourly")
    monkeypatch.setattr(aggregate, "HOURS_PER_STEP", 2, raising=False)
    recompute, calls = aggregate._recompute, []

    def dies_in_the_second_step(*args):
        """The worker is stopped during the second step (two tables per step)."""
        calls.append(args)
        if len(calls) == 3:
            raise TimeoutError("job timeout")
        recompute(*args)

    monkeypatch.setattr(aggregate, "_recompute", dies_in_the_second_step)
    try:
        aggregate_hours()
    except TimeoutError:
        db.session.rollback()
    assert read_watermark("hourly") == first + timedelta(hours=2)
    assert hourly() == raw_per("hour", first + timedelta(hours=2))
    monkeypatch.setattr(aggregate, "_recompute", recompute)
    assert aggregate_hours()["hours"] >= 4
    assert hourly() == raw_per("hour", floor_hour(NOW))


def test_two_workers_at_once_never_double_count(app, client):
    """Concurrent runs serialise on a lock and recompute the same numbers."""
    post_logs(client, lines_at(1.5, 2.5, 3.5, per=50))
    errors = []

    def run():
        """One job run in its own app context and connection."""
        with app.app_context():
            try:
                aggregate_hours()
            except Exception as error:  # reported below, the thread must not die silently
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert hourly() == raw_per("hour", floor_hour(NOW))
    assert sum(hourly().values()) == 150


def test_late_line_in_an_aggregated_hour_is_counted_at_once_and_redone(client):
    """A line for an hour already aggregated marks it dirty; reads stay exact meanwhile."""
    post_logs(client, lines_at(2.5))
    aggregate_hours()
    before = client.get("/api/logs/dashboard?window=24h").json["totals"]["total"]
    post_logs(client, lines_at(2.5, per=2))
    late_hour = floor_hour(NOW - timedelta(hours=2.5))
    assert scalar("SELECT count(*) FROM logs.dirty_hours WHERE hour = :h", h=late_hour) == 1
    assert client.get("/api/logs/dashboard?window=24h").json["totals"]["total"] == before + 2
    result = aggregate_hours()
    assert result["dirty"] == 1
    assert scalar("SELECT count(*) FROM logs.dirty_hours") == 0
    assert hourly() == raw_per("hour", floor_hour(NOW))
    assert client.get("/api/logs/dashboard?window=24h").json["totals"]["total"] == before + 2


def test_template_hourly_counts_match_templates_of_raw_lines(client):
    """Per-template hourly counts equal the raw lines grouped by fingerprint."""
    post_logs(client, lines_at(1.5, 2.5, per=4) + lines_at(1.5, level="warning", per=2))
    aggregate_hours()
    templates = {(r[0], r[1], r[2], r[3]): r[4] for r in db.session.execute(text(
        "SELECT hour, service, level, fingerprint, count FROM logs.template_hourly"))}
    raw = {(r[0], r[1], r[2], r[3]): r[4] for r in db.session.execute(text(
        "SELECT date_trunc('hour', timestamp, 'UTC'), service, level, fingerprint, count(*)"
        " FROM logs.entries GROUP BY 1, 2, 3, 4"))}
    assert templates == raw
    assert len({key[3] for key in templates}) == 1
    assert len({(key[2], key[3]) for key in templates}) == 2


def test_daily_job_sums_complete_days_after_the_hours(client):
    """Days are aggregated from hours once every hour of the day is; re-runs agree."""
    yesterday_noon = floor_day(NOW) - timedelta(hours=12)
    hours_ago = (NOW - yesterday_noon).total_seconds() / 3600
    post_logs(client, lines_at(hours_ago, hours_ago + 1, per=5) + lines_at(0, per=1))
    assert aggregate_days() == {"days": 0, "dirty": 0}
    aggregate_hours()
    aggregate_days()
    daily = table("SELECT day, service, level, count FROM logs.rollup_daily")
    assert daily == raw_per("day", floor_day(NOW))
    assert sum(daily.values()) == 10
    aggregate_days()
    assert table("SELECT day, service, level, count FROM logs.rollup_daily") == daily


def test_a_run_behind_another_runs_clock_still_marks_the_day_it_redid(client):
    """Runs on machines whose clocks differ (by up to 3 minutes): one already past midnight
    sums the day; a late line then dirties one of its hours, which a run still before
    midnight redoes. That run marks the day, so the daily job redoes it too."""
    ahead = floor_day(NOW) + timedelta(days=1, minutes=2)
    post_logs(client, lines_at(0.1))
    aggregate_hours(ahead)
    aggregate_days(ahead)
    post_logs(client, lines_at(1.5, per=2))  # late: its hour was summed
    aggregate_hours(NOW)
    aggregate_days(ahead)
    assert table("SELECT day, service, level, count FROM logs.rollup_daily") == raw_per(
        "day", ahead)


def test_jobs_run_through_rq_and_are_recorded(client):
    """The scheduled job functions run in a real RQ worker and record their runs."""
    post_logs(client, lines_at(1.5))
    queue = current_app.task_queue
    for name in ("aggregate_hourly", "aggregate_daily", "apply_retention"):
        queue.enqueue(f"app.jobs.maintenance.{name}")
    SimpleWorker([queue], connection=current_app.redis).work(burst=True)
    done = dict(db.session.execute(text(
        "SELECT job_type, status FROM logs.job_executions")).all())
    assert done == {"aggregate_hourly": "success", "aggregate_daily": "success",
                    "retention": "success"}
    assert sum(hourly().values()) == 3


def test_daily_job_waits_for_batches_still_writing_a_dirty_day(app, client, database_url):
    """A batch adding late lines to a day already marked dirty (its mark is then left as
    it is) must be in that day's count: the daily job waits for batches in flight rather
    than taking the mark and summing without them."""
    import psycopg

    from app.ingest.batch import ingest_items

    moment = (NOW - timedelta(days=5)).replace(minute=30, second=0, microsecond=0)
    line = {"service": "late", "message": "late line", "timestamp": moment.isoformat()}
    post_logs(client, [line])
    aggregate_hours(NOW)
    aggregate_days(NOW)
    post_logs(client, [line])  # late: straight into the hourly tier, the day marked dirty
    assert scalar("SELECT count(*) FROM logs.dirty_days WHERE day = :d", d=floor_day(moment)) == 1
    db.session.remove()

    def in_thread(work):
        """Run work in an app context of its own thread."""
        def run():
            with app.app_context():
                work()
                db.session.remove()
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with psycopg.connect(database_url, autocommit=True) as admin, \
            psycopg.connect(database_url) as holder:
        holder.execute("SELECT 1 FROM logs.rollup_hourly WHERE service = 'late' FOR UPDATE")
        batch = in_thread(lambda: ingest_items([dict(line)], None, app.config))
        for _ in range(250):  # until the batch waits, its day's mark already left as it was
            if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                             " 'Lock' AND query LIKE 'INSERT INTO logs.rollup_hourly%%'"
                             ).fetchone()[0]:
                break
            threading.Event().wait(0.02)
        daily = in_thread(lambda: aggregate_days(NOW))
        daily.join(0.5)
        holder.rollback()
        batch.join(10)
        daily.join(10)
    aggregate_days(NOW)  # a later run: whatever is still marked dirty is redone now
    assert scalar("SELECT sum(count) FROM logs.rollup_hourly WHERE service = 'late'") == 3
    assert scalar("SELECT sum(count) FROM logs.rollup_daily WHERE service = 'late'") == 3


def test_a_recompute_reads_each_source_row_once():
    """Dirty buckets inside the range, or next to each other, are read as one span: a row
    read twice would be counted twice."""
    from app.rollups.aggregate import _spans
    from app.rollups.tiers import HOUR

    t = floor_hour(NOW)
    hours = [t - 5 * HOUR, t - 4 * HOUR, t - 2 * HOUR, t - HOUR, t - 9 * HOUR]
    assert _spans(hours, t - 2 * HOUR, t, HOUR) == [
        (t - 9 * HOUR, t - 8 * HOUR), (t - 5 * HOUR, t - 3 * HOUR), (t - 2 * HOUR, t)]
    assert _spans([], t, t, HOUR) == []
    assert _spans([t - HOUR], t, t, HOUR) == [(t - HOUR, t)]
