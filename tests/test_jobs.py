"""Scheduled jobs: partition upkeep through a real RQ worker, runs recorded, schedule reconciled."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from rq import SimpleWorker

from app.extensions import db
from app.ingest.partitions import partition_name
from app.jobs.schedule import SCHEDULE, make_scheduler, reconcile, schedule_id
from tests.helpers import scalar


def run_queued_jobs() -> None:
    """Run what is queued with a real RQ worker, in this process."""
    queue = current_app.task_queue
    SimpleWorker([queue], connection=current_app.redis).work(burst=True)


def test_partition_job_creates_days_ahead_and_records_its_run(app):
    """The job, run by an RQ worker, creates today's and the next days' partitions."""
    current_app.task_queue.enqueue("app.jobs.maintenance.create_partitions_ahead")
    run_queued_jobs()
    today = datetime.now(UTC).date()
    for offset in range(app.config["LOGDASH_PARTITION_DAYS_AHEAD"] + 1):
        name = partition_name(today + timedelta(days=offset))
        assert scalar("SELECT count(*) FROM pg_class WHERE relname = :n", n=name) == 1
    assert scalar("SELECT count(*) FROM logs.job_executions WHERE job_type = 'create_partitions'"
                  " AND status = 'success' AND completed_at >= started_at") == 1


def test_failed_job_is_recorded_with_its_error(app):
    """A job that raises is marked failed with the error, and the error still reaches RQ."""
    from app.jobs.executions import recorded

    with pytest.raises(RuntimeError), recorded("demo"):
        raise RuntimeError("disk full")
    assert scalar("SELECT error_message FROM logs.job_executions WHERE job_type = 'demo'"
                  " AND status = 'failed'") == "RuntimeError: disk full"


@pytest.fixture
def scheduler(app):
    """An rq-scheduler bound to this run's private keys; emptied afterwards."""
    instance = make_scheduler()
    yield instance
    for job in instance.get_jobs():
        instance.cancel(job)
        job.delete()


def test_reconcile_adds_once_and_cancels_what_is_no_longer_declared(scheduler):
    """Starting twice keeps one copy of each job; a removed entry is cancelled."""
    first = reconcile(scheduler)
    assert sorted(first["added"]) == sorted(schedule_id(e) for e in SCHEDULE)
    second = reconcile(scheduler)
    assert second["added"] == []
    assert second["kept"] == sorted(schedule_id(e) for e in SCHEDULE)
    assert len(list(scheduler.get_jobs())) == len(SCHEDULE)

    third = reconcile(scheduler, schedule=[])
    assert sorted(third["cancelled"]) == sorted(schedule_id(e) for e in SCHEDULE)
    assert list(scheduler.get_jobs()) == []


def test_periodic_job_ids_carry_the_installation_prefix(app, scheduler, monkeypatch):
    """RQ keeps a job under its id alone: two installations on one Redis register their
    schedules under different ids, so neither overwrites the other's jobs. Ids from before
    the prefix are cancelled."""
    legacy = scheduler.schedule(scheduled_time=datetime.now(UTC).replace(tzinfo=None),
                                func=SCHEDULE[0]["func"], interval=60, repeat=None,
                                id="logdash-periodic-0123456789abcdef")
    result = reconcile(scheduler)
    assert result["cancelled"] == [legacy.id]
    ours = {job.id for job in scheduler.get_jobs()}
    prefix = app.config["LOGDASH_QUEUE_PREFIX"]
    assert len(ours) == len(SCHEDULE)
    assert all(job_id.startswith(f"{prefix}-periodic-") for job_id in ours)
    monkeypatch.setitem(app.config, "LOGDASH_QUEUE_PREFIX", "another install")
    assert not ours & {schedule_id(entry) for entry in SCHEDULE}


def test_a_periodic_job_still_waiting_is_not_queued_again(scheduler):
    """With the workers down, each interval finds the last copy still in the queue: the run
    is only moved on, so the workers run it once when they are back, not once per interval."""
    reconcile(scheduler)
    [job] = [j for j in scheduler.get_jobs() if j.func_name.endswith(".check_thresholds")]
    queue = current_app.task_queue
    try:
        for _ in range(3):  # three intervals come due
            scheduler.enqueue_job(job)
        assert queue.get_job_ids().count(job.id) == 1
        assert job.id in {j.id for j in scheduler.get_jobs()}  # its next run is scheduled
        queue.empty()  # the copy is lost (Redis flushed the list): queued again
        scheduler.enqueue_job(job)
        assert queue.get_job_ids() == [job.id]
    finally:
        queue.empty()


def test_scheduler_keys_are_prefixed(app, scheduler):
    """Two installations on one Redis do not share a schedule."""
    prefix = app.config["LOGDASH_QUEUE_PREFIX"]
    assert scheduler.scheduled_jobs_key.startswith(prefix)
    assert scheduler.scheduler_lock_key.startswith(prefix)


def test_scheduler_puts_the_schedule_back_and_outlives_redis(app, scheduler):
    """Each round reconciles (a Redis restarted empty gets the jobs back); Redis errors
    are waited out instead of ending the scheduler."""
    from app.jobs.schedule import run_forever

    scheduler._interval = 0.05
    rounds = iter(range(3))
    run_forever(scheduler, should_stop=lambda: next(rounds, None) is None)
    assert len(list(scheduler.get_jobs())) == len(SCHEDULE)
    app.redis.delete(scheduler.scheduled_jobs_key)  # as if Redis restarted empty
    rounds = iter(range(2))
    run_forever(scheduler, should_stop=lambda: next(rounds, None) is None)
    assert len(list(scheduler.get_jobs())) == len(SCHEDULE)

    import redis
    from rq_scheduler import Scheduler

    dead = Scheduler(queue_name="x", connection=redis.Redis(port=1, socket_connect_timeout=0.2),
                     interval=0.05)
    rounds = iter(range(3))
    run_forever(dead, should_stop=lambda: next(rounds, None) is None)  # returns, no raise


def test_a_round_cut_off_by_redis_does_not_stop_the_scheduler(app, scheduler):
    """A round that lost Redis midway leaves this scheduler's key looking alive (its death is
    registered in a `finally` that failed too); the next rounds start regardless."""
    from app.jobs.schedule import run_forever

    scheduler._interval = 0.05
    app.redis.hset(scheduler.key, "birth", time.time())  # what the cut-off round left
    app.redis.expire(scheduler.key, 60)
    rounds = iter(range(3))
    run_forever(scheduler, should_stop=lambda: next(rounds, None) is None)
    assert len(list(scheduler.get_jobs())) == len(SCHEDULE)
    assert app.redis.hexists(scheduler.key, "death")  # the last round ended as usual


def test_runs_abandoned_by_a_dead_worker_are_closed(app):
    """A run still 'running' hours later is marked failed by the retention job."""
    from app.jobs.executions import close_abandoned_runs
    from app.models import JobExecution

    now = datetime.now(UTC)
    db.session.add_all([
        JobExecution(job_type="old", status="running", started_at=now - timedelta(hours=3)),
        JobExecution(job_type="new", status="running", started_at=now),
    ])
    db.session.commit()
    assert close_abandoned_runs() == 1
    assert scalar("SELECT status FROM logs.job_executions WHERE job_type = 'old'") == "failed"
    assert scalar("SELECT status FROM logs.job_executions WHERE job_type = 'new'") == "running"


def test_a_failing_retention_run_still_closes_abandoned_runs(app, monkeypatch):
    """Closing dead workers' runs comes before the work that may fail."""
    from app.jobs import maintenance
    from app.models import JobExecution

    db.session.add(JobExecution(job_type="old", status="running",
                                started_at=datetime.now(UTC) - timedelta(hours=3)))
    db.session.commit()

    def fails(*args):
        """Retention meets an error."""
        raise RuntimeError("lock timeout")

    monkeypatch.setattr(maintenance, "drop_old_partitions", fails)
    with pytest.raises(RuntimeError):
        maintenance.apply_retention()
    assert scalar("SELECT status FROM logs.job_executions WHERE job_type = 'old'") == "failed"
