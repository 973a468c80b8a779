"""Per-service alert thresholds, the violations recorded against them, and deliveries."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
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
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class AlertViolation(db.Model):
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

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("logs.alert_configs.id", ondelete="SET NULL")
    )
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


class AlertDelivery(db.Model):
    """One attempt to deliver one notification on one channel; retries add rows."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("alert_deliveries_delivery_id_idx", "delivery_id"),
        Index("alert_deliveries_status_next_idx", "status", "next_attempt_at"),
        Index("alert_deliveries_violation_idx", "violation_id"),
        {"schema": "logs"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The same for every attempt of one notification, so receivers can drop duplicates.
    delivery_id: Mapped[str] = mapped_column(Text)
    violation_id: Mapped[int | None] = mapped_column(
        ForeignKey("logs.alert_violations.id", ondelete="SET NULL")
    )
    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("logs.alert_configs.id", ondelete="SET NULL")
    )
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
