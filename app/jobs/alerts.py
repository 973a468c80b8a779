"""Alert jobs: evaluate thresholds, deliver one attempt, send due digests, and the
every-minute backstop."""

from flask import current_app

from app.alerts.deliver import deliver, recover_stale
from app.alerts.evaluate import evaluate
from app.alerts.notify import notify, send_due_digests
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


def send_digests() -> int:
    """Send the digests of rate windows that have ended; return how many were queued."""
    return len(send_due_digests())


def check_thresholds() -> dict:
    """The every-minute backstop: evaluate, send due digests, recover lost deliveries."""
    with recorded("check_thresholds"):
        queued = len(notify(evaluate()))
        return {"notifications": queued, "digests": send_digests(), **recover_stale()}
