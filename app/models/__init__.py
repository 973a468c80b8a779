"""Tables, by area; importing this package registers them all with the metadata."""

from sqlalchemy import BigInteger

from app.extensions import db
from app.models.alerts import (
    AlertConfig,
    AlertDelivery,
    AlertViolation,
    ArchivedDelivery,
    ArchivedViolation,
    MaintenanceWindow,
    RateWindow,
    Silence,
)
from app.models.entries import LEVELS, Entry, IngestKey, RollupMinute, Service
from app.models.jobs import JobExecution
from app.models.rollups import (
    DirtyDay,
    DirtyHour,
    RollupDaily,
    RollupHourly,
    TemplateHourly,
    TemplateMinute,
    TierChange,
    Watermark,
)
from app.models.templates import Template
from app.models.users import ROLES, SCOPES, ApiToken, User, UserSession

__all__ = [
    "LEVELS",
    "ROLES",
    "SCOPES",
    "AlertConfig",
    "AlertDelivery",
    "AlertViolation",
    "ApiToken",
    "ArchivedDelivery",
    "ArchivedViolation",
    "DirtyDay",
    "DirtyHour",
    "Entry",
    "IngestKey",
    "JobExecution",
    "MaintenanceWindow",
    "RateWindow",
    "RollupDaily",
    "RollupHourly",
    "RollupMinute",
    "Service",
    "Silence",
    "Template",
    "TemplateHourly",
    "TemplateMinute",
    "TierChange",
    "User",
    "UserSession",
    "Watermark",
]


def row_by_id(model, row_id: int):
    """The row of `model` with this id, or None. An id too large for the id column names no
    row: asked for, PostgreSQL would refuse it rather than find nothing."""
    largest = 2**63 - 1 if isinstance(model.__table__.c.id.type, BigInteger) else 2**31 - 1
    return db.session.get(model, row_id) if 0 < row_id <= largest else None
