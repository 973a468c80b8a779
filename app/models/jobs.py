"""A record of every scheduled job run."""

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class JobExecution(db.Model):
    """One run of a job: when it started and ended, and how it went."""

    __tablename__ = "job_executions"
    __table_args__ = (
        Index("job_executions_type_started_idx", "job_type", "started_at"),
        {"schema": "logs"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_type: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default=text("'running'"))
    error_message: Mapped[str | None] = mapped_column(Text)
