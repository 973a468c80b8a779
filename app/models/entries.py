"""Stored log lines and their exact per-minute counts."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Sequence, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

# Severity order, lowest first; the only values the level column may hold.
LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_CHECK = "level IN ('debug', 'info', 'warning', 'error', 'critical')"

entries_id_seq = Sequence("entries_id_seq", schema="logs", metadata=db.metadata)


class Entry(db.Model):
    """One log line; the table is partitioned by day on `timestamp`."""

    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint(LEVEL_CHECK, name="entries_level_check"),
        Index("entries_timestamp_id_idx", "timestamp", "id"),
        Index("entries_service_timestamp_id_idx", "service", "timestamp", "id"),
        Index("entries_level_timestamp_id_idx", "level", "timestamp", "id"),
        Index(
            "entries_fingerprint_timestamp_idx",
            "fingerprint",
            "timestamp",
            postgresql_where=text("fingerprint IS NOT NULL"),
        ),
        {"schema": "logs", "postgresql_partition_by": "RANGE (timestamp)"},
    )

    id: Mapped[int] = mapped_column(
        BigInteger, entries_id_seq, server_default=entries_id_seq.next_value(), primary_key=True
    )
    # The partition key must be part of the primary key.
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    service: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    logger: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    def to_dict(self) -> dict:
        """Return the line as the JSON API shows it."""
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat(),
            "received_at": self.received_at.isoformat(),
            "service": self.service,
            "level": self.level,
            "message": self.message,
            "fingerprint": self.fingerprint,
            "host": self.host,
            "logger": self.logger,
            "trace_id": self.trace_id,
            "attributes": self.attributes,
        }


class LevelCount:
    """Columns every count table shares: a count of lines per service and level."""

    service: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class RollupMinute(LevelCount, db.Model):
    """How many lines a service logged at a level in one UTC minute; written with the lines."""

    __tablename__ = "rollup_minute"
    __table_args__ = (
        CheckConstraint(LEVEL_CHECK, name="rollup_minute_level_check"),
        Index("rollup_minute_service_minute_idx", "service", "minute"),
        {"schema": "logs"},
    )

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)


class Service(db.Model):
    """A service that has sent lines: when first and last (by event time)."""

    __tablename__ = "services"
    __table_args__ = ({"schema": "logs"},)

    service: Mapped[str] = mapped_column(Text, primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IngestKey(db.Model):
    """An Idempotency-Key already used, with the answer given, so a retry is stored once."""

    __tablename__ = "ingest_keys"
    __table_args__ = (Index("ingest_keys_created_at_idx", "created_at"), {"schema": "logs"})

    # Who sent the key (a token, once ingest needs one); keys of different senders differ.
    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    response: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
