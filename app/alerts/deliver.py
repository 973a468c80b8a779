"""Deliver one attempt, record it, and schedule the next one when it may still succeed.

Each attempt is a row written before sending (status pending), claimed by one worker
with a conditional UPDATE, and updated with the outcome. A retry is a new row with the same
delivery id, so receivers can drop duplicates and the log shows every attempt.
"""

import random
import time
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, func, select, text, update

from app.alerts.transports import TransportError, send_email, send_webhook
from app.extensions import db
from app.jobs.schedule import job_id_prefix, make_scheduler
from app.models import AlertConfig, AlertDelivery, AlertViolation

# A 'pending' row this overdue lost its job (Redis flushed, scheduler down).
STALE_PENDING = timedelta(seconds=60)
# Seconds an alert job, a delivery among them, may run (RQ stops it then).
ALERT_JOB_TIMEOUT = 120
# An attempt 'sending' for longer has lost its worker (RQ stops a job at its timeout, and
# its monitor kills a work horse that did not stop within a minute after), and is sent
# again; a resolved notice waiting behind it waits this long.
STALE_SENDING = timedelta(seconds=ALERT_JOB_TIMEOUT + 90)
# How long after its firing notice's next attempt a resolved notice is tried again.
FOLLOW_FIRING = timedelta(seconds=2)
# Why a repeat is not sent: its count no longer holds, and it would reopen the episode.
REPEAT_AFTER_RESOLUTION = "the episode resolved before this repeat went out"
FIRST_NOTICE_ON_ITS_WAY = "the episode's first notice has not reached this channel yet"
# States of an attempt still to be sent.
WAITING = ("pending", "sending", "held")


def _claim(delivery_id: int) -> AlertDelivery | None:
    """Take a pending attempt for this worker; None if another worker has it or it is done."""
    claimed = db.session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == delivery_id, AlertDelivery.status == "pending")
        .values(status="sending", started_at=func.now())
        .returning(AlertDelivery.id)
    ).scalar()
    db.session.commit()
    return db.session.get(AlertDelivery, claimed) if claimed else None


def _send(delivery: AlertDelivery, config: AlertConfig | None) -> tuple[int | None, str | None]:
    """Send on the attempt's channel: the webhook's status code, and what an email's server
    refused of it."""
    if delivery.channel == "webhook":
        body = {**delivery.payload, "delivery_id": delivery.delivery_id}
        settings = current_app.config
        return send_webhook(delivery.target, body, delivery.delivery_id, config.webhook_secret,
                            settings["LOGDASH_WEBHOOK_TIMEOUT_SECONDS"],
                            settings["LOGDASH_WEBHOOK_ALLOW"]), None
    return None, send_email(delivery.target, delivery.payload, delivery.delivery_id)


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: exponential with jitter, or what the receiver asked."""
    config = current_app.config
    base = config["LOGDASH_ALERT_RETRY_BASE_SECONDS"] * 2 ** (attempt - 1)
    delay = min(base, config["LOGDASH_ALERT_RETRY_MAX_SECONDS"])
    delay *= random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)
    if retry_after is not None:
        delay = max(delay, min(retry_after, config["LOGDASH_ALERT_RETRY_MAX_SECONDS"]))
    return delay


def deliver(delivery_id: int) -> str:
    """Run one attempt; return its final status."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return "skipped"
    config, unsendable = _config_of(delivery)
    if unsendable:
        return _finish(delivery, "cancelled", error=unsendable)
    if delivery.event == "firing" and (outdated := _outdated_firing(delivery)):
        return _finish(delivery, "cancelled", error=outdated)
    if delivery.event == "resolved" and (firing_at := _firing_still_due(delivery)):
        return _postpone(delivery, firing_at)
    # A retry, or a re-send, goes where the config sends now: an address changed since
    # (one failing, leaked or retired) gets nothing more; the new one gets the notice.
    delivery.target = dict(config.channels())[delivery.channel]
    started = time.monotonic()
    try:
        code, refused = _send(delivery, config)
    except TransportError as error:
        delivery.duration_ms = int((time.monotonic() - started) * 1000)
        return _failed(delivery, error)
    delivery.duration_ms = int((time.monotonic() - started) * 1000)
    if delivery.violation_id and delivery.event == "firing":
        db.session.execute(
            update(AlertViolation)
            .where(AlertViolation.id == delivery.violation_id,
                   AlertViolation.alert_sent_at.is_(None))
            .values(alert_sent_at=datetime.now(UTC))
        )
    return _finish(delivery, "success", response_code=code, error=refused)


def _outdated_firing(delivery: AlertDelivery) -> str | None:
    """Why a firing notice (a retry, often) should no longer be sent, if so: its channel
    was told the episode resolved, which it would reopen; or it repeats an episode that
    has ended, with a count that no longer holds."""
    if _resolution_delivered(delivery):
        return "the episode's resolution was delivered already"
    if delivery.payload.get("repeat") and _first_notice_on_its_way(delivery):
        return FIRST_NOTICE_ON_ITS_WAY
    if delivery.payload.get("repeat") and db.session.execute(
            select(AlertViolation.resolved_at)
            .where(AlertViolation.id == delivery.violation_id)).scalar() is not None:
        return REPEAT_AFTER_RESOLUTION
    return None


def _config_of(delivery: AlertDelivery) -> tuple[AlertConfig | None, str | None]:
    """The delivery's config, and why nothing may be sent for it now, if so."""
    config = db.session.get(AlertConfig, delivery.config_id) if delivery.config_id else None
    if config is None:
        return None, "alert config deleted"
    # Tests are sent on request, and digests carry what was already promised: neither
    # waits for the config to be enabled.
    if not config.enabled and delivery.event not in ("test", "digest"):
        return config, "alert config disabled"
    if delivery.channel not in dict(config.channels()):
        return config, f"alert config no longer sends by {delivery.channel}"
    return config, None


def _firing_still_due(delivery: AlertDelivery) -> datetime | None:
    """When to try the resolved notice `delivery` again, if a firing notice of its episode
    must reach the channel first: one being sent right now, or in a digest not sent yet
    (a repeat too); or, while none has reached the channel, one retried, held for a digest
    or lost with its worker mid-send.

    A receiver told "resolved" before "firing" (a firing notice retried after the episode
    ended) would open an incident that nothing closes; one told "firing" once already needs
    no more before the resolution, but a repeat on its way would reopen it.
    """
    firing = db.session.execute(
        select(AlertDelivery.status, AlertDelivery.digest_id, *_wait_columns())
        .where(AlertDelivery.violation_id == delivery.violation_id,
               AlertDelivery.event == "firing", AlertDelivery.channel == delivery.channel)
    ).all()
    carrying = _carrying_digests(firing, delivery.channel, *_wait_columns())
    first = [row.due for row in firing if row.in_flight] + [row.due for row in carrying]
    if first:
        return max(first)
    if any(row.status == "success" for row in firing):
        return None
    return max((row.due for row in firing if row.status in WAITING), default=None)


def _wait_columns() -> tuple:
    """For attempts a resolved notice may wait for: whether one is being sent now (by the
    database's clock, which stamped it), and when it is due: now while being sent, when a
    lost worker's send is taken up again, else its next attempt, hold or creation."""
    now = func.now()
    in_flight = and_(AlertDelivery.status == "sending",
                     AlertDelivery.started_at > now - STALE_SENDING)
    due = case(
        (in_flight, now),
        (AlertDelivery.status == "sending", AlertDelivery.started_at + STALE_SENDING),
        else_=func.coalesce(AlertDelivery.next_attempt_at, AlertDelivery.held_until,
                            AlertDelivery.created_at))
    return in_flight.label("in_flight"), due.label("due")


def _postpone(delivery: AlertDelivery, firing_at: datetime) -> str:
    """Put the attempt back, to run just after the firing notice it must follow."""
    at = max(firing_at, datetime.now(UTC)) + FOLLOW_FIRING
    _finish(delivery, "pending", next_attempt_at=at, started_at=None, completed_at=None)
    schedule_at(at, deliver_job_path(), delivery.id)
    return "postponed"


def _finish(delivery: AlertDelivery, status: str, **fields) -> str:
    """Record an attempt's outcome and commit."""
    delivery.status = status
    delivery.completed_at = datetime.now(UTC)
    for name, value in fields.items():
        setattr(delivery, name, value)
    db.session.commit()
    return status


def _first_attempt_at(delivery: AlertDelivery) -> datetime:
    """When the first attempt of this notification was created."""
    return db.session.execute(
        select(func.min(AlertDelivery.created_at))
        .where(AlertDelivery.delivery_id == delivery.delivery_id)
    ).scalar_one()


def _failed(delivery: AlertDelivery, error: TransportError) -> str:
    """Record a failure; schedule another attempt unless it is final or past the horizon."""
    fields = {"error": str(error)[:1000], "response_code": error.response_code}
    if error.permanent or delivery.event == "test":
        return _finish(delivery, "failed", **fields)
    delay = backoff(delivery.attempt, error.retry_after)
    next_at = datetime.now(UTC) + timedelta(seconds=delay)
    horizon = timedelta(hours=current_app.config["LOGDASH_ALERT_RETRY_HORIZON_HOURS"])
    if next_at > _first_attempt_at(delivery) + horizon:
        fields["error"] = f"{fields['error']}; gave up after {delivery.attempt} attempts"
        return _finish(delivery, "failed", **fields)
    retry = _next_attempt(delivery, next_at)
    _finish(delivery, "retrying", next_attempt_at=next_at, **fields)
    schedule_at(next_at, deliver_job_path(), retry.id)
    return "retrying"


def schedule_at(when: datetime, func: str, *args, key: str | None = None) -> None:
    """Run an alert job at `when` (rq-scheduler); calls with the same key schedule it once.

    rq-scheduler keeps whole seconds, dropping the rest: rounded down, a job due at the end
    of a hold or a rate window would run just before it and find nothing due yet, leaving
    the work to the every-minute check. So the time is rounded up.
    """
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    job_id = f"{job_id_prefix()}-{key}" if key is not None else None
    make_scheduler().enqueue_at(when.astimezone(UTC).replace(tzinfo=None), func, *args,
                                queue_name=current_app.alert_queue.name,
                                timeout=ALERT_JOB_TIMEOUT, job_id=job_id)


def deliver_job_path() -> str:
    """The RQ job that runs one attempt."""
    return "app.jobs.alerts.deliver_alert"


def _next_attempt(delivery: AlertDelivery, at: datetime | None) -> AlertDelivery:
    """A new pending row for the same notification, numbered after the latest attempt."""
    latest = db.session.execute(
        select(func.max(AlertDelivery.attempt))
        .where(AlertDelivery.delivery_id == delivery.delivery_id)
    ).scalar_one()
    retry = AlertDelivery(
        delivery_id=delivery.delivery_id, violation_id=delivery.violation_id,
        config_id=delivery.config_id, service=delivery.service, channel=delivery.channel,
        target=delivery.target, event=delivery.event, attempt=latest + 1, status="pending",
        payload=delivery.payload, next_attempt_at=at,
    )
    db.session.add(retry)
    db.session.flush()
    return retry


# Outcomes after which a notification may be sent again by hand.
RESENDABLE = ("failed", "cancelled")


class NotResendable(ValueError):
    """Only failed or cancelled attempts can be sent again."""


def resend(delivery: AlertDelivery) -> AlertDelivery:
    """Queue a new attempt of a failed notification now, with the same delivery id; only
    from its latest attempt, so a double click or two people send it once."""
    if delivery.status not in RESENDABLE:
        raise NotResendable(f"delivery {delivery.id} is {delivery.status}, not failed")
    _, unsendable = _config_of(delivery)
    if unsendable:  # it would be cancelled as soon as a worker took it
        raise NotResendable(f"delivery {delivery.id} cannot be sent: {unsendable}")
    # The first of two resends at once holds this lock until its attempt is committed; the
    # second then sees that attempt.
    db.session.execute(select(AlertDelivery.id).where(AlertDelivery.id == delivery.id)
                       .with_for_update())
    later = db.session.execute(
        select(func.max(AlertDelivery.attempt))
        .where(AlertDelivery.delivery_id == delivery.delivery_id,
               AlertDelivery.attempt > delivery.attempt)).scalar()
    if later is not None:
        db.session.rollback()
        raise NotResendable(f"delivery {delivery.id} was sent again already (attempt {later})")
    if delivery.event == "firing" and _resolution_delivered(delivery):
        db.session.rollback()
        raise NotResendable(f"delivery {delivery.id} announced an episode whose resolution"
                            " this channel was told already: sent now, it would reopen it")
    retry = _next_attempt(delivery, None)
    db.session.commit()
    current_app.alert_queue.enqueue(deliver_job_path(), retry.id, job_timeout=ALERT_JOB_TIMEOUT)
    return retry


def _first_notice_on_its_way(delivery: AlertDelivery) -> bool:
    """Whether a firing notice of this attempt's episode that is not a repeat has still to
    reach its channel (waiting for a retry, held, being sent, or in a digest that is): a
    repeat sent now would arrive before it ("still firing" before "alert")."""
    first = db.session.execute(
        select(AlertDelivery.status, AlertDelivery.digest_id).where(
            AlertDelivery.violation_id == delivery.violation_id,
            AlertDelivery.event == "firing", AlertDelivery.channel == delivery.channel,
            AlertDelivery.payload["repeat"].as_boolean().is_(False))).all()
    if any(row.status in WAITING for row in first):
        return True
    return bool(_carrying_digests(first, delivery.channel, AlertDelivery.id))


def _carrying_digests(attempts: list, channel: str, *columns) -> list:
    """`columns` of the digests still to go out on `channel` that carry any of `attempts`
    (rows with a status and a digest_id)."""
    digests = [row.digest_id for row in attempts if row.status == "digested"]
    if not digests:
        return []
    return db.session.execute(select(*columns).where(
        AlertDelivery.delivery_id.in_(digests), AlertDelivery.channel == channel,
        AlertDelivery.status.in_(WAITING))).all()


def _resolution_delivered(delivery: AlertDelivery) -> bool:
    """Whether the channel was told that this attempt's episode resolved."""
    return db.session.execute(
        select(AlertDelivery.id).where(
            AlertDelivery.violation_id == delivery.violation_id,
            AlertDelivery.event == "resolved", AlertDelivery.channel == delivery.channel,
            AlertDelivery.status == "success").limit(1)).first() is not None


def recover_stale() -> dict:
    """Requeue attempts whose job was lost, and retry ones whose worker died mid-send."""
    now = datetime.now(UTC)
    lost_workers = 0
    while (delivery := _take_lost()) is not None:
        _failed(delivery, TransportError("worker stopped while sending"))  # commits
        lost_workers += 1
    overdue = db.session.execute(text(
        "SELECT id FROM logs.alert_deliveries WHERE status = 'pending'"
        " AND coalesce(next_attempt_at, created_at) < :cutoff"), {"cutoff": now - STALE_PENDING},
    ).scalars().all()
    for delivery_id in overdue:
        current_app.alert_queue.enqueue(deliver_job_path(), delivery_id,
                                        job_timeout=ALERT_JOB_TIMEOUT)
    return {"requeued": len(overdue), "worker_lost": lost_workers}


def _take_lost() -> AlertDelivery | None:
    """Lock one attempt whose worker died mid-send, skipping any another check holds: two
    checks at once must not both schedule its retry. Its status changes before the lock
    goes, with the commit, so no later check takes it again."""
    # By the database's clock, which stamped started_at: a checker's clock ahead of it
    # would take sends still running for lost.
    return db.session.scalars(
        select(AlertDelivery)
        .where(AlertDelivery.status == "sending",
               AlertDelivery.started_at < func.now() - STALE_SENDING)
        .order_by(AlertDelivery.id).limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()
