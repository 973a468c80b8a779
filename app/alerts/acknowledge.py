"""Acknowledging a firing episode: no repeat notifications for it until it resolves."""

from datetime import UTC, datetime

from sqlalchemy import text

from app.extensions import db
from app.models import AlertViolation


class NotFiring(ValueError):
    """Only a firing (unresolved) violation can be acknowledged."""


def acknowledge(violation: AlertViolation, who: str) -> AlertViolation:
    """Mark a firing violation acknowledged by `who`; acknowledging twice keeps the first."""
    updated = db.session.execute(
        text("UPDATE logs.alert_violations SET acknowledged_at = coalesce(acknowledged_at, :now),"
             " acknowledged_by = coalesce(acknowledged_by, :who)"
             " WHERE id = :id AND resolved_at IS NULL RETURNING id"),
        {"now": datetime.now(UTC), "who": who, "id": violation.id},
    ).scalar()
    db.session.commit()
    db.session.refresh(violation)
    if updated is None:
        raise NotFiring(f"violation {violation.id} is resolved")
    return violation
