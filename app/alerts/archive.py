"""Move old violations and deliveries out of the live tables, into the archive or away.

Each batch is one transaction: the rows are deleted from the live table and the very rows
deleted are inserted into the archive (`WITH moved AS (DELETE ... RETURNING ...) INSERT
... SELECT`), so a row is never in both tables nor in neither. Batches keep a years-long
backlog from holding one giant transaction and its locks; `SKIP LOCKED` leaves rows that a
worker is busy with to the next run.
"""

from datetime import datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.models import ArchivedDelivery, ArchivedViolation

BATCH = 1000
# A delivery in one of these states still has work ahead (a send, a retry, a digest).
ACTIVE_DELIVERY = ["pending", "sending", "held", "retrying"]


def _columns(archive_model) -> str:
    """The columns a live table shares with its archive table."""
    return ", ".join(f'"{c.name}"' for c in archive_model.__table__.columns
                     if c.name != "archived_at")


def _move(table: str, archive_model, where: str, keep: bool, **params) -> int:
    """Delete the live rows matching where (a condition on `id`); archive them if keep."""
    delete = f"DELETE FROM logs.{table} WHERE {where}"
    if not keep:
        return db.session.execute(text(delete), params).rowcount
    columns = _columns(archive_model)
    return db.session.execute(text(
        f"WITH moved AS ({delete} RETURNING {columns})"
        f" INSERT INTO logs.{archive_model.__tablename__} ({columns})"
        f" SELECT {columns} FROM moved"), params).rowcount


def _violation_batch(cutoff: datetime, batch: int) -> list[int]:
    """Ids of violations resolved before cutoff whose deliveries have no work left; locked.

    The lock also makes a delivery being inserted for one of them wait (its foreign key
    check needs the row), so no new delivery can appear before the violation is gone.
    """
    return list(db.session.execute(text(
        "SELECT id FROM logs.alert_violations v WHERE resolved_at < :cutoff"
        " AND NOT EXISTS (SELECT 1 FROM logs.alert_deliveries d WHERE d.violation_id = v.id"
        " AND d.status = ANY(:active))"
        " ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED"),
        {"cutoff": cutoff, "active": ACTIVE_DELIVERY, "batch": batch}).scalars())


def _move_violations(cutoff: datetime, keep: bool, batch: int) -> tuple[int, int]:
    """Move a batch of old resolved violations, deliveries first; count both."""
    ids = _violation_batch(cutoff, batch)
    if not ids:
        return 0, 0
    # Deliveries go first: deleting the violation would set their violation_id to NULL.
    deliveries = _move("alert_deliveries", ArchivedDelivery,
                       "violation_id = ANY(:ids) AND status <> ALL(:active)", keep,
                       ids=ids, active=ACTIVE_DELIVERY)
    violations = _move("alert_violations", ArchivedViolation,
                       "id = ANY(:ids) AND NOT EXISTS (SELECT 1 FROM logs.alert_deliveries d"
                       " WHERE d.violation_id = alert_violations.id)", keep, ids=ids)
    db.session.commit()
    return violations, deliveries


def _move_deliveries(cutoff: datetime, keep: bool, batch: int) -> int:
    """Move one batch of finished deliveries created before cutoff, whatever their violation."""
    moved = _move("alert_deliveries", ArchivedDelivery,
                  "id IN (SELECT id FROM logs.alert_deliveries WHERE created_at < :cutoff"
                  " AND status <> ALL(:active) ORDER BY id LIMIT :batch"
                  " FOR UPDATE SKIP LOCKED)", keep,
                  cutoff=cutoff, active=ACTIVE_DELIVERY, batch=batch)
    db.session.commit()
    return moved


def archive_alerts(now: datetime, keep_days: int, keep: bool = True,
                   batch: int = BATCH) -> dict:
    """Archive (keep) or delete alert history older than keep_days; count what went."""
    cutoff = now - timedelta(days=keep_days)
    totals = {"violations": 0, "deliveries": 0}
    while True:
        violations, deliveries = _move_violations(cutoff, keep, batch)
        totals["violations"] += violations
        totals["deliveries"] += deliveries
        if violations + deliveries == 0:
            break
    while moved := _move_deliveries(cutoff, keep, batch):
        totals["deliveries"] += moved
    return {**totals, "mode": "archived" if keep else "deleted"}
