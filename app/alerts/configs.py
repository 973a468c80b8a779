"""Alert configurations: validation shared by the JSON API and the pages, and changes."""

import re
import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update

from app.alerts.turn import take_evaluation_turn
from app.auth.access import asker_is_admin
from app.extensions import db
from app.ingest.records import InvalidLine, service_name
from app.models import AlertConfig, AlertDelivery, AlertViolation
from app.numbers import whole_number
from app.security.outbound import Allowlist, BlockedAddress, check_url_host

FIELDS = ("error_threshold_per_min", "warning_threshold_per_min", "alert_email",
          "alert_webhook_url", "enabled", "repeat_interval_minutes", "for_minutes",
          "min_evaluation_interval_seconds", "rate_limit_count", "rate_limit_minutes")
DEFAULTS = {"error_threshold_per_min": 100, "warning_threshold_per_min": 50,
            "alert_email": None, "alert_webhook_url": None, "enabled": True,
            "repeat_interval_minutes": 60, "for_minutes": 1,
            "min_evaluation_interval_seconds": 0, "rate_limit_count": 10,
            "rate_limit_minutes": 10}
MAX_THRESHOLD = 1_000_000_000
# How long disabling or deleting a config waits for a running evaluation before a 503.
CHANGE_PATIENCE_SECONDS = 10
MAX_REPEAT_MINUTES = 7 * 24 * 60
_EMAIL = re.compile(r"^[^@\s,;<>\"\x00-\x1f\x7f]+@[^@\s,;<>\"\x00-\x1f\x7f]+"
                    r"\.[^@\s,;<>\".\x00-\x1f\x7f]+$")


class InvalidConfig(ValueError):
    """Fields that cannot be saved, each with the reason."""

    def __init__(self, fields: dict[str, str]) -> None:
        """Keep the per-field reasons."""
        super().__init__(f"invalid alert config: {', '.join(sorted(fields))}")
        self.fields = fields


def _whole(value, minimum: int = 1, maximum: int = MAX_THRESHOLD) -> int:
    """A whole number from minimum to maximum (a string of digits is accepted too)."""
    problem = f"must be a whole number from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(problem)
    if isinstance(value, str):
        value = whole_number(value)
        if value is None:
            raise ValueError(problem)
    if not minimum <= value <= maximum:
        raise ValueError(problem)
    return value


def _emails(value) -> str | None:
    """One address, or several separated by commas; empty means none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 1000:
        raise ValueError("must be an email address")
    addresses = [part.strip() for part in value.split(",")]
    bad = [a for a in addresses if not _EMAIL.match(a)]
    if bad:
        raise ValueError(f"{bad[0][:80]!r} is not a valid email address")
    return ", ".join(addresses)


# A host name's labels as DNS takes them (underscores too, which some names hold), or an
# IP address; a name in other scripts is checked in its IDNA form.
_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.?)+|[0-9A-Fa-f:.]+")


def _valid_host(host: str) -> bool:
    """Whether a URL's host is a name DNS could hold, or an IP address."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label, or one over 63 characters
        return False
    return len(ascii_host) <= 253 and _HOST.fullmatch(ascii_host) is not None


def _webhook_url(value) -> str | None:
    """An http or https URL with a host; empty means none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise ValueError("must be an http or https URL")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in value.strip()):
        raise ValueError("must not contain spaces or control characters")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not _valid_host(parts.hostname):
        raise ValueError(f"has an invalid host name {parts.hostname[:80]!r}")
    allow = Allowlist(current_app.config["LOGDASH_WEBHOOK_ALLOW"])
    try:
        check_url_host(parts.hostname, port, allow)
    except BlockedAddress as error:
        raise ValueError(str(error)) from None
    return value.strip()


def _enabled(value) -> bool:
    """true or false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "1", "0"):
        return value.lower() in ("true", "on", "1")
    raise ValueError("must be true or false")


VALIDATORS = {
    "error_threshold_per_min": _whole,
    "warning_threshold_per_min": _whole,
    "alert_email": _emails,
    "alert_webhook_url": _webhook_url,
    "enabled": _enabled,
    "repeat_interval_minutes": lambda v: _whole(v, 1, MAX_REPEAT_MINUTES),
    "for_minutes": lambda v: _whole(v, 1, 60),
    "min_evaluation_interval_seconds": lambda v: _whole(v, 0, 3600),
    "rate_limit_count": lambda v: _whole(v, 1, 1000),
    "rate_limit_minutes": lambda v: _whole(v, 1, 1440),
}


def validate(data: dict, partial: bool) -> dict:
    """Return the cleaned known fields of data, or raise InvalidConfig naming every bad one."""
    if not isinstance(data, dict):
        raise InvalidConfig({"body": "must be a JSON object"})
    cleaned, errors = {}, {}
    for name in FIELDS:
        if name in data:
            try:
                cleaned[name] = VALIDATORS[name](data[name])
            except ValueError as error:
                errors[name] = str(error)
        elif not partial:
            cleaned[name] = DEFAULTS[name]
    unknown = sorted(set(data) - set(FIELDS) - {"service"})
    for name in unknown:
        errors[name] = "is not a field of an alert config"
    if errors:
        raise InvalidConfig(errors)
    return cleaned


def _looks_like_a_key(label: str) -> bool:
    """Whether a host label may be a generated key ("eo2bzfqp6lx4f5o"): 12 or more letters
    and digits, a digit among them. Some names are hidden with them ("alerts2024prod");
    a key shown would be worse."""
    return (len(label) >= 12 and label.isascii() and label.isalnum()
            and any(c.isdigit() for c in label))


def shown_url(url: str | None) -> str | None:
    """A webhook URL as the asker may see it: whole to admins; to others only its scheme
    and host, since many receivers (Slack, Teams, Discord) take the URL itself, path and
    all, as the credential, and some (Pipedream) a label of the host."""
    if url is None or asker_is_admin():
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # no user:password@
    labels = ["…" if _looks_like_a_key(label) else label for label in host.split(".")]
    return f"{parts.scheme}://{'.'.join(labels)}/…"


def to_dict(config: AlertConfig, with_secret: bool = False) -> dict:
    """The config as the API shows it; the signing secret only when asked (once), the
    webhook URL whole only to admins."""
    body = {"id": config.id, "service": config.service,
            **{name: getattr(config, name) for name in FIELDS},
            "alert_webhook_url": shown_url(config.alert_webhook_url),
            "created_at": config.created_at.isoformat(),
            "updated_at": config.updated_at.isoformat()}
    if with_secret:
        body["webhook_secret"] = config.webhook_secret
    return body


def get_config(service: str) -> AlertConfig | None:
    """The config of a service, if any."""
    return db.session.scalars(select(AlertConfig).where(AlertConfig.service == service)).first()


def list_configs() -> list[AlertConfig]:
    """Every config, by service name."""
    return list(db.session.scalars(select(AlertConfig).order_by(AlertConfig.service)))


class ConfigExists(Exception):
    """The service already has a config."""


def create_config(data: dict) -> AlertConfig:
    """Validate and store a new config with a fresh signing secret."""
    errors = {}
    try:
        service = service_name(data.get("service") if isinstance(data, dict) else None)
    except InvalidLine as error:
        errors["service"] = str(error)
    try:
        cleaned = validate(data, partial=False)
    except InvalidConfig as invalid:
        errors.update(invalid.fields)
    if errors:
        raise InvalidConfig(errors)
    if get_config(service) is not None:
        raise ConfigExists(service)
    config = AlertConfig(service=service, webhook_secret=secrets.token_hex(32), **cleaned)
    db.session.add(config)
    db.session.commit()
    return config


def update_config(config: AlertConfig, data: dict) -> AlertConfig:
    """Apply a partial update; fields not sent stay as they are."""
    cleaned = validate(data, partial=True)
    disabling = cleaned.get("enabled") is False
    if disabling:
        take_evaluation_turn(CHANGE_PATIENCE_SECONDS)
    changed = {name: value for name, value in cleaned.items() if getattr(config, name) != value}
    for name, value in changed.items():
        setattr(config, name, value)
    if changed:  # an update that changes nothing keeps the catch-up's horizon (_missed)
        config.updated_at = datetime.now(UTC)
    if disabling:
        close_open_violations(config, "config disabled")
    db.session.commit()
    return config


def rotate_secret(config: AlertConfig) -> AlertConfig:
    """Give the config a new signing secret."""
    config.webhook_secret = secrets.token_hex(32)
    config.updated_at = datetime.now(UTC)
    db.session.commit()
    return config


def delete_config(config: AlertConfig) -> None:
    """Remove a config; its open violations are closed, pending and held deliveries cancelled
    (with the config goes the webhook secret: there is nothing left to send them with)."""
    take_evaluation_turn(CHANGE_PATIENCE_SECONDS)
    close_open_violations(config, "config deleted", ("pending", "held"), spare=())
    db.session.delete(config)
    db.session.commit()


def close_open_violations(config: AlertConfig, reason: str,
                          cancel: tuple[str, ...] = ("pending",),
                          spare: tuple[str, ...] = ("digest", "test")) -> None:
    """End the service's firing episodes without a notice, and cancel their deliveries in
    the given states, except those of the spared events. By default held ones stay, and
    digests (a retry included) and tests are spared: they still go out."""
    now = datetime.now(UTC)
    db.session.execute(
        update(AlertViolation)
        .where(AlertViolation.service == config.service, AlertViolation.resolved_at.is_(None))
        # A notice held back by a silence is not owed any more: the episode ends quietly.
        .values(resolved_at=now, resolution=reason, notification_held=False)
    )
    # Nor is a resolution held back: a later config of the service must not send it.
    db.session.execute(
        update(AlertViolation)
        .where(AlertViolation.service == config.service, AlertViolation.notification_held)
        .values(notification_held=False)
    )
    db.session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.config_id == config.id, AlertDelivery.status.in_(cancel),
               AlertDelivery.event.not_in(spare))
        .values(status="cancelled", error=reason, completed_at=now)
    )
