"""Storage upkeep jobs."""

from flask import current_app

from app.ingest.partitions import ensure_partitions_ahead
from app.jobs.executions import recorded


def create_partitions_ahead() -> list[str]:
    """Create the daily partitions for today and the configured days ahead."""
    with recorded("create_partitions"):
        return ensure_partitions_ahead(current_app.config["LOGDASH_PARTITION_DAYS_AHEAD"])
