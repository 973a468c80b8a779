"""The periodic jobs, declared as data and reconciled with rq-scheduler when it starts."""

import hashlib
import json
import logging
import re
import time
from datetime import UTC, datetime

from flask import current_app
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler
from rq_scheduler.utils import to_unix

# Each entry: the job function's import path, its interval in seconds and its timeout.
# Every job catches up on what it missed, so a run that is late or skipped costs nothing
# but freshness; that is also why plain intervals serve where a cron line might be expected.
SCHEDULE = [
    {"func": "app.jobs.maintenance.create_partitions_ahead", "interval": 3600, "timeout": 300},
    # Hourly counts: every 5 minutes, so a finished hour is aggregated within 5 minutes.
    {"func": "app.jobs.maintenance.aggregate_hourly", "interval": 300, "timeout": 600},
    # Daily counts: hourly, so each UTC day is aggregated within the hour after midnight
    # (as soon as its last hour is).
    {"func": "app.jobs.maintenance.aggregate_daily", "interval": 3600, "timeout": 900},
    {"func": "app.jobs.maintenance.apply_retention", "interval": 3600, "timeout": 900},
    # Alert history: daily, as nothing is urgent about rows already months old. Each run
    # works through the whole backlog in committed batches, so a first run on years of
    # history, or a run cut short by its timeout, loses nothing: the next one carries on.
    {"func": "app.jobs.maintenance.archive_alert_history", "interval": 86400, "timeout": 1800},
    # The seed's CheckThresholds: a backstop to the checks ingest asks for.
    {"func": "app.jobs.alerts.check_thresholds", "interval": 60, "timeout": 120},
]


def job_id_prefix() -> str:
    """This installation's mark on the ids of the jobs it schedules: RQ keeps a job under
    its id alone, so two installations on one Redis must never use the same id."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", current_app.config["LOGDASH_QUEUE_PREFIX"])


def schedule_id(entry: dict) -> str:
    """A stable id for a schedule entry, so restarts find the jobs they added before."""
    digest = hashlib.sha1(json.dumps(entry, sort_keys=True).encode(), usedforsecurity=False)
    return f"{job_id_prefix()}-periodic-{digest.hexdigest()}"


class PeriodicScheduler(Scheduler):
    """rq-scheduler that does not queue a periodic job again while its last copy still waits
    in the queue. rq-scheduler pushes it at every interval regardless: after workers were
    down for hours, they would run the minute's check hundreds of times over."""

    def enqueue_job(self, job: Job) -> None:
        """Queue the job, unless it is periodic and already waiting; reschedule it either way."""
        interval = job.meta.get("interval")
        if interval and self._waiting(job):
            self.connection.zadd(self.scheduled_jobs_key,
                                 {job.id: to_unix(datetime.now(UTC).replace(tzinfo=None))
                                  + int(interval)})
            return
        super().enqueue_job(job)

    def _waiting(self, job: Job) -> bool:
        """Whether the job is queued and its id is in its queue (not lost with the list)."""
        queue = self.get_queue_for_job(job)
        try:
            status = job.get_status(refresh=True)
        except InvalidJobOperation:  # its hash went too: certainly not waiting
            return False
        return status == JobStatus.QUEUED and self.connection.lpos(queue.key, job.id) is not None


def make_scheduler() -> Scheduler:
    """Return a scheduler bound to the app's Redis and queue, its keys under our prefix."""
    scheduler = PeriodicScheduler(queue=current_app.task_queue, connection=current_app.redis,
                                  interval=5)
    # rq-scheduler's keys are global by default; ours are prefixed so that two Logdash
    # installations (or a test run) on one Redis never see each other's schedule.
    prefix = current_app.config["LOGDASH_QUEUE_PREFIX"]
    scheduler.scheduled_jobs_key = f"{prefix}:scheduler:scheduled_jobs"
    scheduler.scheduler_lock_key = f"{prefix}:scheduler_lock"
    scheduler.redis_scheduler_namespace_prefix = f"{prefix}:scheduler_instance:"
    return scheduler


def reconcile(scheduler: Scheduler, schedule: list[dict] = SCHEDULE) -> dict:
    """Cancel periodic jobs no longer declared and add the declared ones that are missing."""
    wanted = {schedule_id(entry): entry for entry in schedule}
    present = set()
    cancelled = []
    for job in scheduler.get_jobs():
        # Also ids from before they carried the installation's prefix ("logdash-periodic-").
        if "-periodic-" not in job.id:
            continue
        if job.id in wanted:
            present.add(job.id)
        else:
            scheduler.cancel(job)
            cancelled.append(job.id)
    added = []
    for job_id, entry in wanted.items():
        if job_id not in present:
            _add(scheduler, job_id, entry)
            added.append(job_id)
    return {"added": added, "cancelled": cancelled, "kept": sorted(present)}


def _add(scheduler: Scheduler, job_id: str, entry: dict) -> None:
    """Register one schedule entry with rq-scheduler."""
    scheduler.schedule(
        scheduled_time=datetime.now(UTC).replace(tzinfo=None),
        func=entry["func"],
        interval=entry["interval"],
        repeat=None,
        timeout=entry["timeout"],
        id=job_id,
        result_ttl=entry["interval"] * 2,
    )


def run_forever(scheduler: Scheduler, should_stop=lambda: False) -> None:
    """Move due jobs to the queue every few seconds, surviving Redis going away.

    The schedule is reconciled on every round, so a Redis that restarts empty gets it back
    within one interval instead of waiting for the scheduler to be restarted.
    """
    log = logging.getLogger(__name__)
    while not should_stop():
        try:
            reconcile(scheduler)
            try:
                scheduler.run(burst=True)
            except ValueError as error:
                # rq-scheduler marks its key dead in a `finally`; when Redis went away
                # mid-round that failed too, and the live-looking key left behind (this
                # scheduler's own: names are unique) refuses every later start until it
                # expires. Mark it dead; the next round runs.
                log.warning("scheduler: %s; marking it stopped", error)
                scheduler.register_death()
        except RedisError as error:
            log.warning("scheduler: Redis unavailable (%s); retrying", error)
        time.sleep(scheduler._interval)
