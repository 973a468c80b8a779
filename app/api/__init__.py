"""JSON endpoints for scripts and shippers."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from app.api import alerts, dashboard, ingest, logs, openapi, silences, tokens  # noqa: E402, F401
