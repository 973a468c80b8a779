"""Alerting: per-service thresholds, violations and their lifecycle, and their delivery."""
