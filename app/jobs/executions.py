"""Record every job run in logs.job_executions."""

from contextlib import contextmanager
from datetime import UTC, datetime

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
