"""Ask for a threshold evaluation when lines that can cross a threshold arrive."""

from flask import Flask

from app.ingest.signals import lines_stored
from app.redis_extras import try_redis

# Levels that count towards a threshold; debug and info lines never trigger a check.
TRIGGERING_LEVELS = {"warning", "error", "critical"}


def pending_key(app: Flask) -> str:
    """The Redis key saying an evaluation is already queued."""
    return f"{app.config['LOGDASH_QUEUE_PREFIX']}:alerts:evaluation-pending"


def request_evaluation(app: Flask) -> bool:
    """Queue one evaluation unless one is already waiting; True if this call queued it."""
    # The key expires in case a worker dies before clearing it.
    if not app.redis.set(pending_key(app), 1, nx=True, ex=10):
        return False
    app.alert_queue.enqueue("app.jobs.alerts.evaluate_thresholds", job_timeout=60)
    return True


def _on_lines_stored(app: Flask, records) -> None:
    """Request an evaluation for batches holding warnings or errors."""
    if any(record.level in TRIGGERING_LEVELS for record in records):
        # The lines are committed either way; the every-minute check catches up.
        try_redis("threshold check request", lambda: request_evaluation(app), False)


def connect(app: Flask) -> None:
    """Listen for stored lines of this app."""
    lines_stored.connect(_on_lines_stored, app, weak=False)
