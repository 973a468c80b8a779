"""Message templates: what a group of similar lines looks like, and when it was seen."""

from datetime import datetime

from sqlalchemy import DateTime, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Template(db.Model):
    """One template as logged by one service at one level."""

    __tablename__ = "templates"
    __table_args__ = (
        Index("templates_fingerprint_idx", "fingerprint"),
        {"schema": "logs"},
    )

    service: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    template: Mapped[str] = mapped_column(Text)
    sample: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
