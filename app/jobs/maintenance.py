"""Storage upkeep jobs: partitions ahead, aggregation into coarser tiers, retention, and
the archive of alert history."""

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete

from app.alerts.archive import archive_alerts
from app.extensions import db
from app.ingest.partitions import ensure_partitions_ahead
from app.jobs.executions import close_abandoned_runs, recorded
from app.models import JobExecution
from app.rollups.aggregate import aggregate_days, aggregate_hours
from app.rollups.retention import delete_old_counts, drop_old_partitions


def create_partitions_ahead() -> list[str]:
    """Create the daily partitions for today and the configured days ahead."""
    with recorded("create_partitions"):
        return ensure_partitions_ahead(current_app.config["LOGDASH_PARTITION_DAYS_AHEAD"])


def aggregate_hourly() -> dict:
    """Fill rollup_hourly and template_hourly up to the last complete hour."""
    with recorded("aggregate_hourly"):
        return aggregate_hours()


def aggregate_daily() -> dict:
    """Fill rollup_daily up to the last complete UTC day."""
    with recorded("aggregate_daily"):
        return aggregate_days()


def apply_retention() -> dict:
    """Drop raw partitions and counts older than their configured retention."""
    with recorded("retention"):
        now = datetime.now(UTC)
        config = current_app.config
        return {
            # First: a failure below must not leave dead workers' runs 'running' for good.
            "abandoned_runs_closed": close_abandoned_runs(),
            "partitions_dropped": drop_old_partitions(config["LOGDASH_RETAIN_RAW_DAYS"], now),
            **delete_old_counts(config, now),
        }


def _prune_job_history(keep_days: int, now: datetime) -> int:
    """Delete recorded job runs that started more than keep_days ago."""
    pruned = db.session.execute(delete(JobExecution).where(
        JobExecution.started_at < now - timedelta(days=keep_days))).rowcount
    db.session.commit()
    return pruned


def archive_alert_history() -> dict:
    """Archive (or delete) old violations and deliveries, and prune old job runs."""
    with recorded("archive_alerts"):
        now = datetime.now(UTC)
        config = current_app.config
        return {
            **archive_alerts(now, config["LOGDASH_ALERT_ARCHIVE_DAYS"],
                             keep=config["LOGDASH_ALERT_ARCHIVE"]),
            "job_executions_pruned": _prune_job_history(config["LOGDASH_JOB_HISTORY_DAYS"],
                                                        now),
        }
