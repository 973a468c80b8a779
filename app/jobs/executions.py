"""Record every job run in logs.job_executions."""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.extensions import db
from app.models import JobExecution


@contextmanager
def recorded(job_type: str):
    """Write a running row before the work, then mark it succeeded or failed with the error."""
    execution = JobExecution(job_type=job_type, started_at=datetime.now(UTC), status="running")
    db.session.add(execution)
    db.session.commit()
    try:
        yield execution
    except Exception as error:
        db.session.rollback()
        execution.status = "failed"
        execution.error_message = f"{type(error).__name__}: {error}"[:2000]
        execution.completed_at = datetime.now(UTC)
        db.session.commit()
        raise
    execution.status = "success"
    execution.completed_at = datetime.now(UTC)
    db.session.commit()


def close_abandoned_runs(older_than_hours: int = 1) -> int:
    """Mark runs still 'running' long after any job timeout as failed: their worker died."""
    cutoff = datetime.now(UTC) - timedelta(hours=older_than_hours)
    closed = db.session.execute(
        update(JobExecution)
        .where(JobExecution.status == "running", JobExecution.started_at < cutoff)
        .values(status="failed", completed_at=datetime.now(UTC),
                error_message="did not finish: the worker running it stopped")
    ).rowcount
    db.session.commit()
    return closed
