"""Violations and deliveries as the API and pages list them."""

from sqlalchemy import select

from app.alerts.configs import shown_url
from app.extensions import db
from app.models import AlertDelivery, AlertViolation, row_by_id
from app.numbers import whole_number
from app.search import BadSearch, parse_limit, parse_time


def violation_dict(v: AlertViolation) -> dict:
    """One violation for API answers."""
    return {
        "id": v.id, "service": v.service, "level": v.level,
        "status": "firing" if v.resolved_at is None else "resolved",
        "current_count": v.current_count, "peak_count": v.peak_count,
        "threshold": v.threshold_value, "started_at": v.timestamp.isoformat(),
        "resolved_at": v.resolved_at.isoformat() if v.resolved_at else None,
        "resolution": v.resolution,
        "alert_sent_at": v.alert_sent_at.isoformat() if v.alert_sent_at else None,
        "silenced": v.silenced,
        "acknowledged_at": v.acknowledged_at.isoformat() if v.acknowledged_at else None,
        "acknowledged_by": v.acknowledged_by,
    }


def get_violation(violation_id: int) -> AlertViolation | None:
    """The violation with this id, if any."""
    return row_by_id(AlertViolation, violation_id)


def delivery_dict(d: AlertDelivery) -> dict:
    """One delivery attempt for API answers."""
    return {
        "id": d.id, "delivery_id": d.delivery_id, "violation_id": d.violation_id,
        "service": d.service, "channel": d.channel, "event": d.event,
        "target": shown_url(d.target) if d.channel == "webhook" else d.target,
        "attempt": d.attempt, "status": d.status, "response_code": d.response_code,
        "error": d.error, "duration_ms": d.duration_ms,
        "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
        "created_at": d.created_at.isoformat() if d.created_at else None,
        "completed_at": d.completed_at.isoformat() if d.completed_at else None,
        "held_until": d.held_until.isoformat() if d.held_until else None,
        "digest_id": d.digest_id,
    }


def list_violations(args) -> list[dict]:
    """Violations filtered by service, status (firing|resolved) and since, newest first."""
    query = select(AlertViolation)
    if args.get("service"):
        query = query.where(AlertViolation.service == args["service"])
    status = args.get("status")
    if status == "firing":
        query = query.where(AlertViolation.resolved_at.is_(None))
    elif status == "resolved":
        query = query.where(AlertViolation.resolved_at.is_not(None))
    elif status:
        raise BadSearch("status must be firing or resolved")
    if args.get("since"):
        query = query.where(AlertViolation.timestamp >= parse_time(args["since"], "since"))
    query = query.order_by(AlertViolation.timestamp.desc(), AlertViolation.id.desc())
    limit = parse_limit(args, 1000)
    return [violation_dict(v) for v in db.session.scalars(query.limit(limit))]


# What an attempt can be: to send (pending, sending, held for a digest), sent (success),
# given up or replaced (failed, retrying, cancelled), or carried by a digest (digested).
DELIVERY_STATUSES = ("pending", "sending", "held", "success", "retrying", "failed",
                     "cancelled", "digested")


def list_deliveries(args) -> list[dict]:
    """Delivery attempts filtered by violation, service and status, newest first."""
    query = select(AlertDelivery)
    if args.get("violation_id"):
        violation_id = whole_number(args["violation_id"])
        if violation_id is None:
            raise BadSearch("violation_id must be a whole number")
        if get_violation(violation_id) is None:
            return []
        query = query.where(AlertDelivery.violation_id == violation_id)
    if args.get("service"):
        query = query.where(AlertDelivery.service == args["service"])
    if args.get("status"):
        if args["status"] not in DELIVERY_STATUSES:
            raise BadSearch(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        query = query.where(AlertDelivery.status == args["status"])
    query = query.order_by(AlertDelivery.id.desc())
    return [delivery_dict(d) for d in db.session.scalars(query.limit(parse_limit(args, 1000)))]
