"""Per-service alert thresholds and the violations recorded against them."""

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class AlertConfig(db.Model):
    """Thresholds for one service, in lines per minute, and where to send alerts."""

    __tablename__ = "alert_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(Text, unique=True)
    error_threshold_per_min: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    warning_threshold_per_min: Mapped[int] = mapped_column(Integer, server_default=text("50"))
    alert_email: Mapped[str | None] = mapped_column(Text)
    alert_webhook_url: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class AlertViolation(db.Model):
    """A threshold crossed by a service at a level; open until resolved_at is set."""

    __tablename__ = "alert_violations"
    __table_args__ = (
        Index("alert_violations_service_timestamp_idx", "service", "timestamp"),
        {"schema": "logs"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    current_count: Mapped[int] = mapped_column(Integer)
    threshold_value: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    alert_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
