"""Tables, by area; importing this package registers them all with the metadata."""

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
from app.models.users import ROLES, SCOPES, ApiToken, User

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
    "Watermark",
]
