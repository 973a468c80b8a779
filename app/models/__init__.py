"""Tables, by area; importing this package registers them all with the metadata."""

from app.models.alerts import AlertConfig, AlertViolation
from app.models.entries import LEVELS, Entry, RollupMinute
from app.models.jobs import JobExecution

__all__ = ["LEVELS", "AlertConfig", "AlertViolation", "Entry", "JobExecution", "RollupMinute"]
