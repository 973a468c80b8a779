"""Turn alert events into deliveries: one row and one job per channel per event.

Each channel of a config has a rate window (at most rate_limit_count notifications per
rate_limit_minutes); notifications over it are stored as 'held' and sent together as one
digest when the window ends.
"""

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from flask import current_app
from sqlalchemy import and_, func, not_, select, text, update

from app.alerts.deliver import ALERT_JOB_TIMEOUT, REPEAT_AFTER_RESOLUTION, schedule_at
from app.alerts.evaluate import AlertEvent
from app.alerts.explain import MAX_MINUTES, templates_between
from app.alerts.signals import alert_changed
from app.extensions import db
from app.models import AlertConfig, AlertDelivery, AlertViolation
from app.rollups.tiers import MINUTE, floor_minute

PAYLOAD_VERSION = 1
EVALUATE_JOB = "app.jobs.alerts.evaluate_thresholds"
DIGEST_JOB = "app.jobs.alerts.send_digests"


def top_templates(violation: AlertViolation, event: str, repeat: bool) -> list[dict]:
    """The templates that drove a violation, by count: of the minute it fired (or, for a
    repeat, of now) and the one before; for a resolution, of the whole episode's minutes
    (its last MAX_MINUTES at most). A test names none: the service's real messages would
    read as what caused it."""
    if event == "test":
        return []
    if event == "resolved" and violation.resolved_at is not None:
        last = floor_minute(violation.resolved_at)
        first = max(floor_minute(violation.timestamp), last - MAX_MINUTES * MINUTE)
    else:
        last = floor_minute(violation.timestamp if event == "firing" and not repeat
                            else datetime.now(UTC))
        first = last - MINUTE
    return templates_between(violation.service, violation.level, first, last)["templates"]


def links(service: str, level: str | None, violation_id: int | None) -> dict:
    """The links every notification carries: dashboard, silence for 1 h (of one level, or
    both when level is None), the violation."""
    base = current_app.config["LOGDASH_BASE_URL"].rstrip("/")
    scope = {"service": service, "level": level} if level else {"service": service}
    query = urlencode({**scope, "minutes": 60}, quote_via=quote)
    violation_url = f"{base}/alerts/violations/{violation_id}" if violation_id else None
    return {
        "dashboard_url": f"{base}/services/{quote(service, safe='')}",
        "silence_url": f"{base}/alerts/silences/new?{query}",
        "violation_url": violation_url,
        "acknowledge_url": f"{violation_url}#acknowledge" if violation_url else None,
    }


def payload(violation: AlertViolation, event: str, repeat: bool = False,
            after_silence: bool = False) -> dict:
    """What every channel says about one event (the webhook body, minus its delivery id)."""
    return {
        "version": PAYLOAD_VERSION,
        "event": event,
        "repeat": repeat,
        "violation_id": violation.id,
        "service": violation.service,
        "level": violation.level,
        "current_count": violation.current_count,
        "peak_count": violation.peak_count,
        "threshold": violation.threshold_value,
        "window_seconds": 60,
        "started_at": violation.timestamp.isoformat(),
        "resolved_at": violation.resolved_at.isoformat() if violation.resolved_at else None,
        # A silence or maintenance window held back some of this episode's notifications;
        # after_silence: this one was owed and is sent now that the hold has ended.
        "silenced": bool(violation.silenced),
        "after_silence": after_silence,
        "acknowledged_at": (violation.acknowledged_at.isoformat()
                            if violation.acknowledged_at else None),
        **links(violation.service, violation.level, violation.id),
        "top_templates": top_templates(violation, event, repeat),
    }


def _delivery(config: AlertConfig, channel: str, target: str, event: str, body: dict,
              violation_id: int | None, held_until: datetime | None = None,
              delivery_id: str | None = None) -> AlertDelivery:
    """A first attempt: pending, or held for the digest when held_until is set."""
    return AlertDelivery(delivery_id=delivery_id or uuid.uuid4().hex, violation_id=violation_id,
                         config_id=config.id, service=config.service, channel=channel,
                         target=target, event=event, attempt=1,
                         status="held" if held_until else "pending", payload=body,
                         held_until=held_until)


def create_deliveries(config: AlertConfig, body: dict, event: str,
                      violation_id: int | None) -> list[AlertDelivery]:
    """One pending first attempt per channel of the config, outside any limit; committed."""
    rows = [_delivery(config, channel, target, event, body, violation_id)
            for channel, target in config.channels()]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def _take_slot(config: AlertConfig, channel: str, now: datetime) -> tuple[datetime, int]:
    """Count one notification in the channel's rate window; (window end, its number).

    The upsert locks the window's row until commit, so two workers cannot both take the
    last slot; a window that has ended gives way to a new one starting now.
    """
    length = timedelta(minutes=config.rate_limit_minutes)
    start, sent = db.session.execute(
        text("INSERT INTO logs.alert_rate_windows AS w (config_id, channel, window_start, sent)"
             " VALUES (:config, :channel, :now, 1)"
             " ON CONFLICT (config_id, channel) DO UPDATE SET"
             " window_start = CASE WHEN w.window_start <= :now - :length THEN :now"
             " ELSE w.window_start END,"
             " sent = CASE WHEN w.window_start <= :now - :length THEN 1 ELSE w.sent + 1 END"
             " RETURNING window_start, sent"),
        {"config": config.id, "channel": channel, "now": now, "length": length},
    ).one()
    return start + length, sent


def _limited(config: AlertConfig, body: dict, event: str, violation_id: int | None
             ) -> tuple[list[AlertDelivery], list[tuple]]:
    """One attempt per channel: pending within the rate limit, else held for the digest;
    not committed. Also the schedule_at calls owed after the commit: the first
    notification held in a window schedules that window's digest."""
    now = datetime.now(UTC)
    rows, schedules = [], []
    for channel, target in config.channels():
        if event == "resolved" and _firing_went_alone(violation_id, channel):
            # The receiver was told of the episode: it is told it ended, outside the limit,
            # rather than in a digest that a receiver closing incidents would not read.
            rows.append(_delivery(config, channel, target, event, body, violation_id))
            continue
        window_end, number = _take_slot(config, channel, now)
        held = number > config.rate_limit_count
        rows.append(_delivery(config, channel, target, event, body, violation_id,
                              held_until=window_end if held else None))
        if number == config.rate_limit_count + 1:
            schedules.append((window_end, DIGEST_JOB,
                              f"digest-{config.id}-{channel}-{int(window_end.timestamp())}"))
    db.session.add_all(rows)
    return rows, schedules


def _firing_went_alone(violation_id: int, channel: str) -> bool:
    """Whether a firing notice of the episode went to the channel by itself (not held for
    a digest), reaching it or on its way."""
    return db.session.execute(
        select(AlertDelivery.id).where(
            AlertDelivery.violation_id == violation_id, AlertDelivery.channel == channel,
            AlertDelivery.event == "firing",
            # A retried attempt's own row says 'retrying' whatever became of the retries.
            AlertDelivery.status.in_(("pending", "sending", "success")))
        .limit(1)).first() is not None


def create_limited(config: AlertConfig, body: dict, event: str,
                   violation_id: int | None) -> list[AlertDelivery]:
    """One attempt per channel, within the rate limit or held for the digest; committed."""
    rows, schedules = _limited(config, body, event, violation_id)
    db.session.commit()
    _schedule(schedules)
    return rows


def _schedule(schedules: list[tuple]) -> None:
    """Make the (when, job, key) schedule_at calls."""
    for when, job, key in schedules:
        schedule_at(when, job, key=key)


def enqueue_delivery(delivery: AlertDelivery) -> None:
    """Queue one attempt for a worker, ahead of routine jobs."""
    current_app.alert_queue.enqueue("app.jobs.alerts.deliver_alert", delivery.id,
                                    job_timeout=ALERT_JOB_TIMEOUT)


class NoChannels(ValueError):
    """A config with neither an email address nor a webhook URL has nowhere to send to."""


def send_test(config: AlertConfig) -> list[AlertDelivery]:
    """Queue a test notification on every channel of the config, once, without retries."""
    if not config.channels():
        raise NoChannels("the config has no email address or webhook URL")
    sample = AlertViolation(id=None, service=config.service, level="error", current_count=0,
                            peak_count=0, threshold_value=config.error_threshold_per_min,
                            timestamp=datetime.now(UTC))
    body = {**payload(sample, "test"), "event": "test"}
    deliveries = create_deliveries(config, body, "test", None)
    for delivery in deliveries:
        enqueue_delivery(delivery)
    return deliveries


def announce(item: AlertEvent) -> None:
    """Tell listeners (the live pages) about a firing or resolved violation."""
    violation = item.violation
    alert_changed.send(current_app._get_current_object(), event={
        "violation_id": violation.id, "service": violation.service, "level": violation.level,
        "event": item.event,
        # The last count over the threshold, as the alerts panel and API show it, and the
        # episode's peak, which a resolved banner names.
        "current_count": violation.current_count,
        "peak_count": violation.peak_count or violation.current_count,
        "threshold": violation.threshold_value,
        "at": (violation.resolved_at or violation.timestamp).isoformat(),
    })


def notify(events: list[AlertEvent]) -> list[AlertDelivery]:
    """Create the deliveries for evaluate()'s events and commit them with its changes; then
    queue them and announce the events.

    One commit: a job that dies in between cannot have recorded an alert and lost its
    notice. Rows whose job was never queued are queued again by the every-minute check
    (recover_stale). Silenced events are announced only; one held back by a hold that ends
    schedules an evaluation then, so the notice owed for a still-firing episode goes out
    promptly (the every-minute check covers a lost job).
    """
    deliveries, schedules = [], []
    for item in events:
        if item.silenced:
            if item.held_until is not None:
                schedules.append((item.held_until, EVALUATE_JOB,
                                  f"evaluate-at-{int(item.held_until.timestamp())}"))
            continue
        body = payload(item.violation, item.event, item.repeat, item.after_silence)
        rows, digests = _limited(item.config, body, item.event, item.violation.id)
        deliveries += rows
        schedules += digests
    db.session.commit()
    for item in events:
        announce(item)
    for delivery in deliveries:
        if delivery.status == "pending":
            enqueue_delivery(delivery)
    _schedule(schedules)
    return deliveries


def _digest_body(config: AlertConfig, held: list[AlertDelivery]) -> dict:
    """The digest payload: every held notification, and "+N more: ..." by kind."""
    groups = Counter((d.payload["service"], d.payload["level"], d.event) for d in held)
    ordered = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    kinds = ", ".join(f"{service} {level} {event} x{count}"
                      for (service, level, event), count in ordered)
    return {
        "version": PAYLOAD_VERSION,
        "event": "digest",
        "service": config.service,
        "held_count": len(held),
        "summary": f"+{len(held)} more: {kinds}",
        "groups": [{"service": service, "level": level, "event": event, "count": count}
                   for (service, level, event), count in ordered],
        "notifications": [
            {"delivery_id": d.delivery_id, "violation_id": d.violation_id,
             "level": d.payload["level"], "event": d.event,
             "repeat": d.payload.get("repeat", False),
             "current_count": d.payload["current_count"],
             "threshold": d.payload["threshold"], "started_at": d.payload["started_at"],
             "held_at": d.created_at.isoformat()}
            for d in held],
        **{name: url for name, url in links(config.service, None, None).items()
           if name in ("dashboard_url", "silence_url")},
    }


def _digest(config: AlertConfig, channel: str, now: datetime) -> AlertDelivery | None:
    """Claim the channel's held notifications that are due and make one digest of them;
    repeats of episodes that have ended are cancelled instead."""
    digest_id = uuid.uuid4().hex
    held_due = (AlertDelivery.config_id == config.id, AlertDelivery.channel == channel,
                AlertDelivery.status == "held", AlertDelivery.held_until <= now)
    outdated = and_(AlertDelivery.event == "firing",
                    func.coalesce(AlertDelivery.payload["repeat"].as_boolean(), False),
                    select(AlertViolation.id).where(AlertViolation.id == AlertDelivery.violation_id,
                                                    AlertViolation.resolved_at.is_not(None))
                    .exists())
    # Their episodes cannot resolve until this digest is committed (a resolution updates
    # the violation): one resolved before is seen by the claim, and one resolved after
    # sees the digest and waits for it. Otherwise a resolved notice could go, not seeing
    # a repeat this digest was about to carry.
    db.session.execute(
        select(AlertViolation.id)
        .join(AlertDelivery, AlertDelivery.violation_id == AlertViolation.id)
        .where(*held_due).with_for_update(read=True, of=AlertViolation))
    # The conditional UPDATE claims the rows: a concurrent run finds none left to send.
    claimed = db.session.scalars(
        update(AlertDelivery).where(*held_due, not_(outdated))
        .values(status="digested", digest_id=digest_id, completed_at=now)
        .returning(AlertDelivery.id)
    ).all()
    db.session.execute(update(AlertDelivery).where(*held_due, outdated).values(
        status="cancelled", completed_at=now, error=REPEAT_AFTER_RESOLUTION))
    if not claimed:
        db.session.commit()
        return None
    held = list(db.session.scalars(
        select(AlertDelivery).where(AlertDelivery.id.in_(claimed)).order_by(AlertDelivery.id)
        .execution_options(populate_existing=True)))
    target = dict(config.channels()).get(channel, held[-1].target)
    digest = _delivery(config, channel, target, "digest", _digest_body(config, held), None,
                       delivery_id=digest_id)
    db.session.add(digest)
    db.session.commit()
    return digest


def send_due_digests(now: datetime | None = None) -> list[AlertDelivery]:
    """Send one digest per (config, channel) whose held notifications' window has ended."""
    now = now or datetime.now(UTC)
    due = db.session.execute(
        select(AlertDelivery.config_id, AlertDelivery.channel).distinct()
        .where(AlertDelivery.status == "held", AlertDelivery.held_until <= now,
               AlertDelivery.config_id.is_not(None))
    ).all()
    digests = []
    for config_id, channel in due:
        config = db.session.get(AlertConfig, config_id)
        digest = _digest(config, channel, now) if config else None
        if digest is not None:
            enqueue_delivery(digest)
            digests.append(digest)
    return digests
