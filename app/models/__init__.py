"""Tables, by area; importing this package registers them all with the metadata."""

from app.models.alerts import AlertConfig, AlertDelivery, AlertViolation
from app.models.entries import LEVELS, Entry, IngestKey, RollupMinute, Service
from app.models.jobs import JobExecution
from app.models.rollups import (
    DirtyDay,
    DirtyHour,
    RollupDaily,
    RollupHourly,
    TemplateHourly,
    TemplateMinute,
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
    "DirtyDay",
    "DirtyHour",
    "Entry",
    "IngestKey",
    "JobExecution",
    "RollupDaily",
    "RollupHourly",
    "RollupMinute",
    "Service",
    "Template",
    "TemplateHourly",
    "TemplateMinute",
    "User",
    "Watermark",
]
