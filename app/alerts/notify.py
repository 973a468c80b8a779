"""Turn alert events into deliveries: one row and one job per channel per event."""

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from flask import current_app
from sqlalchemy import text

from app.alerts.evaluate import ALERT_LEVELS, AlertEvent
from app.alerts.signals import alert_changed
from app.extensions import db
from app.models import AlertConfig, AlertDelivery, AlertViolation
from app.rollups.tiers import MINUTE, floor_minute

PAYLOAD_VERSION = 1
TOP_TEMPLATES = 5


def channels(config: AlertConfig) -> list[tuple[str, str]]:
    """The (channel, target) pairs a config sends to."""
    pairs = []
    if config.alert_email:
        pairs.append(("email", config.alert_email))
    if config.alert_webhook_url:
        pairs.append(("webhook", config.alert_webhook_url))
    return pairs


def top_templates(service: str, level: str, moment: datetime) -> list[dict]:
    """The templates that drove a violation: its minute and the one before, by count."""
    current = floor_minute(moment)
    rows = db.session.execute(
        text("SELECT m.fingerprint, sum(m.count)::bigint AS n, t.template, t.sample"
             " FROM logs.template_minute m LEFT JOIN logs.templates t"
             " USING (service, level, fingerprint)"
             " WHERE m.service = :service AND m.level = ANY(:levels)"
             " AND m.minute >= :previous AND m.minute <= :current"
             " GROUP BY m.fingerprint, t.template, t.sample ORDER BY n DESC, m.fingerprint"
             " LIMIT :limit"),
        {"service": service, "levels": list(ALERT_LEVELS[level][0]),
         "previous": current - MINUTE, "current": current, "limit": TOP_TEMPLATES},
    )
    return [{"fingerprint": fp, "count": n, "template": template, "sample": sample}
            for fp, n, template, sample in rows]


def payload(violation: AlertViolation, event: str, repeat: bool = False) -> dict:
    """What every channel says about one event (the webhook body, minus its delivery id)."""
    base = current_app.config["LOGDASH_BASE_URL"].rstrip("/")
    moment = violation.timestamp if event == "firing" and not repeat else datetime.now(UTC)
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
        "dashboard_url": f"{base}/services/{quote(violation.service, safe='')}",
        "top_templates": top_templates(violation.service, violation.level, moment),
    }


def create_deliveries(config: AlertConfig, body: dict, event: str,
                      violation_id: int | None) -> list[AlertDelivery]:
    """One pending first attempt per channel of the config; committed."""
    rows = [
        AlertDelivery(delivery_id=uuid.uuid4().hex, violation_id=violation_id,
                      config_id=config.id, service=config.service, channel=channel,
                      target=target, event=event, attempt=1, status="pending", payload=body)
        for channel, target in channels(config)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def enqueue_delivery(delivery: AlertDelivery) -> None:
    """Queue one attempt for a worker, ahead of routine jobs."""
    current_app.alert_queue.enqueue("app.jobs.alerts.deliver_alert", delivery.id,
                                    job_timeout=120)


class NoChannels(ValueError):
    """A config with neither an email address nor a webhook URL has nowhere to send to."""


def send_test(config: AlertConfig) -> list[AlertDelivery]:
    """Queue a test notification on every channel of the config, once, without retries."""
    if not channels(config):
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
        "service": violation.service, "level": violation.level, "event": item.event,
        "current_count": violation.peak_count or violation.current_count,
        "threshold": violation.threshold_value,
        "at": (violation.resolved_at or violation.timestamp).isoformat(),
    })


def notify(events: list[AlertEvent]) -> list[AlertDelivery]:
    """Create and queue the deliveries for a list of events, and announce them."""
    deliveries = []
    for item in events:
        announce(item)
        body = payload(item.violation, item.event, item.repeat)
        for delivery in create_deliveries(item.config, body, item.event, item.violation.id):
            enqueue_delivery(delivery)
            deliveries.append(delivery)
    return deliveries
