"""Alert jobs: evaluate thresholds, deliver one attempt, and the every-minute backstop."""

from flask import current_app

from app.alerts.deliver import deliver, recover_stale
from app.alerts.evaluate import evaluate
from app.alerts.notify import notify
from app.alerts.triggers import pending_key
from app.jobs.executions import recorded


def evaluate_thresholds() -> int:
    """Evaluate now, as asked by ingest; return how many notifications were queued."""
    # Clear the request first: lines committed after this point ask again, and lines
    # committed before it are visible to the evaluation below.
    current_app.redis.delete(pending_key(current_app))
    return len(notify(evaluate()))


def deliver_alert(delivery_id: int) -> str:
    """Run one delivery attempt."""
    return deliver(delivery_id)


def check_thresholds() -> dict:
    """The every-minute backstop: evaluate, and recover deliveries whose job was lost."""
    with recorded("check_thresholds"):
        queued = len(notify(evaluate()))
        return {"notifications": queued, **recover_stale()}
