"""Counts at coarser grains, filled by jobs from the minute tier, and the jobs' bookkeeping."""

from datetime import datetime

from sqlalchemy import DateTime, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.entries import LevelCount


class RollupHourly(LevelCount, db.Model):
    """Lines per (hour, service, level), recomputed from rollup_minute by the hourly job."""

    __tablename__ = "rollup_hourly"
    __table_args__ = (
        Index("rollup_hourly_service_hour_idx", "service", "hour"),
        {"schema": "logs"},
    )

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class RollupDaily(LevelCount, db.Model):
    """Lines per (UTC day, service, level), recomputed from rollup_hourly by the daily job."""

    __tablename__ = "rollup_daily"
    __table_args__ = (Index("rollup_daily_service_day_idx", "service", "day"), {"schema": "logs"})

    day: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class TemplateMinute(LevelCount, db.Model):
    """Lines per (minute, service, level, template); written by ingest with the lines."""

    __tablename__ = "template_minute"
    __table_args__ = (
        Index("template_minute_fingerprint_idx", "fingerprint", "minute"),
        {"schema": "logs"},
    )

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)


class TemplateHourly(LevelCount, db.Model):
    """Lines per (hour, service, level, template), recomputed by the hourly job."""

    __tablename__ = "template_hourly"
    __table_args__ = (
        # Both answer from the index alone: the series of a few templates, and top errors
        # (a range over the error levels).
        Index("template_hourly_fingerprint_idx", "fingerprint", "hour",
              postgresql_include=["service", "level", "count"]),
        Index("template_hourly_level_hour_idx", "level", "hour",
              postgresql_include=["service", "fingerprint", "count"]),
        {"schema": "logs"},
    )

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)


class DirtyHour(db.Model):
    """An hour already aggregated that received late lines; the hourly job redoes it."""

    __tablename__ = "dirty_hours"
    __table_args__ = ({"schema": "logs"},)

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class DirtyDay(db.Model):
    """A day already aggregated whose hours changed; the daily job redoes it."""

    __tablename__ = "dirty_days"
    __table_args__ = ({"schema": "logs"},)

    day: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class Watermark(db.Model):
    """How far a tier is complete: every bucket before `through` has been aggregated."""

    __tablename__ = "watermarks"
    __table_args__ = ({"schema": "logs"},)

    tier: Mapped[str] = mapped_column(Text, primary_key=True)
    through: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TierChange(db.Model):
    """When a tier's finished buckets last changed (the hourly job redid some, a line too
    old for minutes was added to them, retention removed some): cached sums of finished
    buckets are valid only as long as this stays the same."""

    __tablename__ = "tier_changes"
    __table_args__ = ({"schema": "logs"},)

    tier: Mapped[str] = mapped_column(Text, primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
