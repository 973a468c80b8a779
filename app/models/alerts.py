"""Per-service alert thresholds, the violations recorded against them, deliveries, silences
and maintenance windows, and the archive tables old violations and deliveries move to."""

from datetime import datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class AlertConfig(db.Model):
    """Thresholds for one service, in lines per minute, and where to send alerts."""

    __tablename__ = "alert_configs"
    __table_args__ = ({"schema": "logs"},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(Text, unique=True)
    error_threshold_per_min: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    warning_threshold_per_min: Mapped[int] = mapped_column(Integer, server_default=text("50"))
    alert_email: Mapped[str | None] = mapped_column(Text)
    alert_webhook_url: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Signs webhook bodies; shown to the user once, when created or rotated.
    webhook_secret: Mapped[str] = mapped_column(Text)
    repeat_interval_minutes: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    # Fire only after this many consecutive minutes over the threshold.
    for_minutes: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # Evaluate this config at most this often, however often ingest asks.
    min_evaluation_interval_seconds: Mapped[int] = mapped_column(
        Integer, server_default=text("0")
    )
    last_evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # At most rate_limit_count notifications per channel per rate_limit_minutes; the rest
    # are held and sent as one digest when the window ends.
    rate_limit_count: Mapped[int] = mapped_column(Integer, server_default=text("10"))
    rate_limit_minutes: Mapped[int] = mapped_column(Integer, server_default=text("10"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )

    def channels(self) -> list[tuple[str, str]]:
        """The (channel, target) pairs this config sends to."""
        pairs = []
        if self.alert_email:
            pairs.append(("email", self.alert_email))
        if self.alert_webhook_url:
            pairs.append(("webhook", self.alert_webhook_url))
        return pairs


class ViolationColumns:
    """The columns a violation has, live or archived."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    current_count: Mapped[int] = mapped_column(Integer)
    peak_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    threshold_value: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)
    alert_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A silence or maintenance window held back at least one of its notifications.
    silenced: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # A notification is owed once the silence holding it ends (if still firing then).
    notification_held: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)


class AlertViolation(ViolationColumns, db.Model):
    """A threshold crossed by a service at a level; open (firing) until resolved_at is set."""

    __tablename__ = "alert_violations"
    __table_args__ = (
        Index("alert_violations_service_timestamp_idx", "service", "timestamp"),
        # At most one open violation per (service, level): two evaluators at once cannot
        # open the same episode twice.
        Index("alert_violations_open_idx", "service", "level", unique=True,
              postgresql_where=text("resolved_at IS NULL")),
        {"schema": "logs"},
    )

    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("logs.alert_configs.id", ondelete="SET NULL")
    )


class ArchivedViolation(ViolationColumns, db.Model):
    """A violation moved out of the live table by the archive job."""

    __tablename__ = "alert_violations_archive"
    __table_args__ = (
        Index("alert_violations_archive_service_timestamp_idx", "service", "timestamp"),
        {"schema": "logs"},
    )

    config_id: Mapped[int | None] = mapped_column(Integer)
    archived_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class DeliveryColumns:
    """The columns a delivery attempt has, live or archived."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The same for every attempt of one notification, so receivers can drop duplicates.
    delivery_id: Mapped[str] = mapped_column(Text)
    service: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What is sent, frozen when the event happens so every attempt sends the same thing.
    payload: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    # When a worker claimed it; a 'sending' attempt claimed long ago lost its worker.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A 'held' notification (over the channel's rate limit) waits for the digest sent at
    # held_until; digest_id is the delivery id of the digest that carried it.
    held_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    digest_id: Mapped[str | None] = mapped_column(Text)


class AlertDelivery(DeliveryColumns, db.Model):
    """One attempt to deliver one notification on one channel; retries add rows."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("alert_deliveries_delivery_id_idx", "delivery_id"),
        Index("alert_deliveries_status_next_idx", "status", "next_attempt_at"),
        Index("alert_deliveries_violation_idx", "violation_id"),
        Index("alert_deliveries_config_created_idx", "config_id", "created_at"),
        {"schema": "logs"},
    )

    violation_id: Mapped[int | None] = mapped_column(
        ForeignKey("logs.alert_violations.id", ondelete="SET NULL")
    )
    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("logs.alert_configs.id", ondelete="SET NULL")
    )


class ArchivedDelivery(DeliveryColumns, db.Model):
    """A delivery attempt moved out of the live table by the archive job."""

    __tablename__ = "alert_deliveries_archive"
    __table_args__ = (
        Index("alert_deliveries_archive_created_idx", "created_at"),
        {"schema": "logs"},
    )

    violation_id: Mapped[int | None] = mapped_column(Integer)
    config_id: Mapped[int | None] = mapped_column(Integer)
    archived_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class RateWindow(db.Model):
    """The current rate-limit window of one config's channel: when it began, how many sent."""

    __tablename__ = "alert_rate_windows"
    __table_args__ = ({"schema": "logs"},)

    config_id: Mapped[int] = mapped_column(
        ForeignKey("logs.alert_configs.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Silence(db.Model):
    """No notifications for a service (or all, when service is null) and optionally one
    alert level, from starts_at to ends_at; violations are still recorded."""

    __tablename__ = "alert_silences"
    __table_args__ = (
        Index("alert_silences_ends_at_idx", "ends_at"),
        {"schema": "logs"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    # Set when someone ended the silence before its time (ends_at is moved to then).
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_by: Mapped[str | None] = mapped_column(Text)


class MaintenanceWindow(db.Model):
    """A silence that repeats: on the given weekdays (0 = Monday), from start_time to
    end_time in time_zone; a window whose end is before its start crosses midnight."""

    __tablename__ = "alert_maintenance_windows"
    __table_args__ = ({"schema": "logs"},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    weekdays: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    time_zone: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_by: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
