"""The archive job moves old alert history out of the live tables (or deletes it), prunes old
job runs, and minute counts are kept per their own retention setting."""

from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from rq import SimpleWorker
from sqlalchemy import text

from app.alerts.archive import archive_alerts
from app.extensions import db
from app.jobs.schedule import SCHEDULE, make_scheduler, reconcile
from app.models import AlertConfig, AlertDelivery, AlertViolation, JobExecution
from app.rollups.retention import delete_old_counts
from app.rollups.tiers import floor_hour, floor_minute, minute_horizon
from tests.helpers import scalar

ARCHIVE_JOB = "app.jobs.maintenance.archive_alert_history"


def ago(days: float) -> datetime:
    """A moment this many days before now."""
    return datetime.now(UTC) - timedelta(days=days)


def violation(config: AlertConfig, started_days: float, resolved_days: float | None,
              **fields) -> AlertViolation:
    """A violation of 'api' that started and (unless None) resolved this many days ago."""
    row = AlertViolation(
        config_id=config.id, service="api", level="error", current_count=5, peak_count=9,
        threshold_value=3, timestamp=ago(started_days), last_notified_at=ago(started_days),
        resolved_at=None if resolved_days is None else ago(resolved_days),
        resolution=None if resolved_days is None else "recovered", **fields)
    db.session.add(row)
    db.session.flush()
    return row


def delivery(config: AlertConfig, of: AlertViolation | None, created_days: float,
             status: str = "success", **fields) -> AlertDelivery:
    """One attempt for a violation (or none: a test notification) made this long ago."""
    row = AlertDelivery(**{
        "delivery_id": f"d{created_days}{status}", "violation_id": of.id if of else None,
        "config_id": config.id, "service": "api", "channel": "webhook",
        "target": "https://h.example/x", "event": "firing" if of else "test", "attempt": 1,
        "status": status, "payload": {"service": "api", "note": f"{status} {created_days}"},
        "created_at": ago(created_days), **fields})
    db.session.add(row)
    db.session.flush()
    return row


def seed_history() -> dict:
    """Alert history of every kind the job must tell apart; ids of what goes and stays."""
    config = AlertConfig(service="api", webhook_secret="s3cret", alert_webhook_url="https://h")
    db.session.add(config)
    db.session.flush()
    old = violation(config, 101, 100, silenced=True, notification_held=False,
                    acknowledged_at=ago(100.5), acknowledged_by="ana",
                    alert_sent_at=ago(101))
    old_quiet = violation(config, 96, 95)
    recent = violation(config, 11, 10)
    firing = violation(config, 120, None)
    busy = violation(config, 101, 100)
    goes = [
        delivery(config, old, 101, response_code=200, duration_ms=41, started_at=ago(101),
                 completed_at=ago(101), digest_id="dg1", held_until=ago(101)),
        delivery(config, old, 100.9, "failed", error="receiver answered 404",
                 response_code=404, next_attempt_at=ago(100.8)),
        # Re-sent by hand yesterday: it still goes with its violation.
        delivery(config, old, 1, attempt=2),
        delivery(config, firing, 119),
        delivery(config, busy, 100),
        delivery(config, None, 100),
    ]
    stays = [
        delivery(config, recent, 10),
        delivery(config, firing, 100, "retrying"),
        delivery(config, firing, 100, "sending"),
        delivery(config, recent, 100, "held", held_until=ago(99.9)),
        delivery(config, busy, 100, "pending"),
    ]
    db.session.commit()
    return {"violations_go": {old.id, old_quiet.id},
            "violations_stay": {recent.id, firing.id, busy.id},
            "deliveries_go": {d.id for d in goes}, "deliveries_stay": {d.id for d in stays}}


def rows(table: str) -> dict[int, dict]:
    """Every row of a table as JSON, by id, without the archive's own timestamp."""
    return {row["id"]: row for (row,) in db.session.execute(
        text(f"SELECT to_jsonb(t) - 'archived_at' FROM logs.{table} t"))}


def run_archive_job():
    """Queue the archive job, run it with a real RQ worker, and return its result."""
    queue = current_app.task_queue
    job = queue.enqueue(ARCHIVE_JOB)
    SimpleWorker([queue], connection=current_app.redis).work(burst=True)
    assert job.get_status(refresh=True) == "finished", job.latest_result().exc_string
    db.session.expire_all()
    return job.return_value(refresh=True)


def test_old_resolved_violations_and_their_deliveries_move_intact(app):
    """Every column reaches the archive unchanged; deliveries keep their violation id."""
    history = seed_history()
    before_violations, before_deliveries = rows("alert_violations"), rows("alert_deliveries")

    result = run_archive_job()

    assert result["violations"] == 2 and result["deliveries"] == 6
    assert result["mode"] == "archived"
    archived_violations = rows("alert_violations_archive")
    archived_deliveries = rows("alert_deliveries_archive")
    assert set(archived_violations) == history["violations_go"]
    assert set(archived_deliveries) == history["deliveries_go"]
    for id_, row in archived_violations.items():
        assert row == before_violations[id_]
    for id_, row in archived_deliveries.items():
        assert row == before_deliveries[id_]
    assert scalar("SELECT count(*) FROM logs.alert_violations_archive"
                  " WHERE archived_at > now() - interval '1 minute'") == 2


def test_recent_open_and_unfinished_history_stays_and_a_rerun_moves_nothing(app):
    """Recent and firing violations, unfinished deliveries and their violation stay put."""
    history = seed_history()
    run_archive_job()
    assert set(rows("alert_violations")) == history["violations_stay"]
    assert set(rows("alert_deliveries")) == history["deliveries_stay"]

    again = run_archive_job()
    assert (again["violations"], again["deliveries"]) == (0, 0)
    assert len(rows("alert_violations_archive")) == 2
    assert len(rows("alert_deliveries_archive")) == 6
    assert scalar("SELECT count(*) FROM logs.job_executions WHERE job_type = 'archive_alerts'"
                  " AND status = 'success' AND completed_at >= started_at") == 2


def test_with_archiving_off_old_history_is_deleted(app, monkeypatch):
    """LOGDASH_ALERT_ARCHIVE=0: the same rows leave the live tables, the archive stays empty."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_ARCHIVE", False)
    history = seed_history()
    result = run_archive_job()
    assert (result["violations"], result["deliveries"], result["mode"]) == (2, 6, "deleted")
    assert set(rows("alert_violations")) == history["violations_stay"]
    assert set(rows("alert_deliveries")) == history["deliveries_stay"]
    assert scalar("SELECT count(*) FROM logs.alert_violations_archive") == 0
    assert scalar("SELECT count(*) FROM logs.alert_deliveries_archive") == 0


def test_a_backlog_larger_than_a_batch_moves_whole(app):
    """Many batches: every violation goes with all its deliveries, none is left half-moved."""
    config = AlertConfig(service="api", webhook_secret="s")
    db.session.add(config)
    db.session.flush()
    for n in range(5):
        old = violation(config, 200 + n, 199 + n)
        delivery(config, old, 199 + n)
        delivery(config, old, 199 + n, "failed")
    for n in range(3):
        delivery(config, None, 150 + n)
    db.session.commit()

    assert archive_alerts(datetime.now(UTC), 90, batch=2) == {
        "violations": 5, "deliveries": 13, "mode": "archived"}
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 0
    assert scalar("SELECT count(*) FROM logs.alert_deliveries") == 0
    assert scalar("SELECT count(*) FROM logs.alert_deliveries_archive d"
                  " JOIN logs.alert_violations_archive v ON v.id = d.violation_id") == 10


def test_job_runs_older_than_the_history_setting_are_pruned(app, monkeypatch):
    """Runs recorded before LOGDASH_JOB_HISTORY_DAYS go; later ones and this run stay."""
    monkeypatch.setitem(app.config, "LOGDASH_JOB_HISTORY_DAYS", 30)
    db.session.add_all([
        JobExecution(job_type="old", status="success", started_at=ago(31)),
        JobExecution(job_type="kept", status="failed", started_at=ago(29)),
    ])
    db.session.commit()
    assert run_archive_job()["job_executions_pruned"] == 1
    kept = db.session.execute(text("SELECT job_type FROM logs.job_executions")).scalars()
    assert sorted(kept) == ["archive_alerts", "kept"]


def test_the_scheduled_entry_runs_the_job(app):
    """The SCHEDULE entry, put on the queue by rq-scheduler, runs and records the job."""
    entry = next(e for e in SCHEDULE if e["func"] == ARCHIVE_JOB)
    scheduler = make_scheduler()
    reconcile(scheduler, [entry])
    scheduler.enqueue_jobs()
    SimpleWorker([current_app.task_queue], connection=current_app.redis).work(burst=True)
    assert scalar("SELECT status FROM logs.job_executions WHERE job_type = 'archive_alerts'"
                  ) == "success"


AGES_HOURS = (12, 36, 72, 216)


def seed_minutes(minute_days: int = 2) -> None:
    """Service and template minute counts at each age, in hours the hourly job has done (with
    LOGDASH_RETAIN_MINUTE_DAYS at `minute_days`, which sets the minute horizon)."""
    now = datetime.now(UTC)
    for hours in AGES_HOURS:
        minute = floor_minute(now - timedelta(hours=hours))
        db.session.execute(text("INSERT INTO logs.rollup_minute VALUES (:m, 'api', 'error', :n)"
                                ), {"m": minute, "n": hours})
        db.session.execute(text("INSERT INTO logs.template_minute (minute, service, level,"
                                " fingerprint, count) VALUES (:m, 'api', 'error', 'f', :n)"),
                           {"m": minute, "n": hours})
    db.session.execute(text("INSERT INTO logs.watermarks VALUES ('hourly', :w),"
                            " ('minute_horizon', :h)"),
                       {"w": floor_hour(now), "h": minute_horizon(now, minute_days)})
    db.session.commit()


def kept_ages(table: str) -> set[int]:
    """The ages (the counts were set to them) of the minute rows still in a table."""
    return set(db.session.execute(text(f"SELECT count FROM logs.{table}")).scalars())


def test_retention_job_keeps_minute_counts_longer_than_template_minutes(app):
    """Defaults: service counts per minute for 8 days, template counts per minute for 2."""
    seed_minutes()
    queue = current_app.task_queue
    queue.enqueue("app.jobs.maintenance.apply_retention")
    SimpleWorker([queue], connection=current_app.redis).work(burst=True)
    assert kept_ages("rollup_minute") == {12, 36, 72}
    assert kept_ages("template_minute") == {12, 36}


@pytest.mark.parametrize(("counts_days", "minute_days", "counts_kept", "templates_kept"), [
    (4, 1, {12, 36, 72}, {12}),
    # Never shorter than template minutes: ingest writes both up to that far back.
    (1, 2, {12, 36}, {12, 36}),
])
def test_each_minute_table_follows_its_setting(app, counts_days, minute_days, counts_kept,
                                               templates_kept):
    """LOGDASH_RETAIN_MINUTE_COUNTS_DAYS for rollup_minute, ..._MINUTE_DAYS for templates."""
    seed_minutes(minute_days)
    config = {**app.config, "LOGDASH_RETAIN_MINUTE_COUNTS_DAYS": counts_days,
              "LOGDASH_RETAIN_MINUTE_DAYS": minute_days}
    delete_old_counts(config, datetime.now(UTC))
    assert kept_ages("rollup_minute") == counts_kept
    assert kept_ages("template_minute") == templates_kept
