"""Probes: /healthz says the process is up, /readyz that its database and Redis answer."""

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db
from app.realtime import live_connections

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer while the process can serve requests at all."""
    return jsonify(status="ok")


def _check(name: str, probe) -> str:
    """Run one readiness probe and describe its outcome. The probe is public: it names the
    kind of failure only; the details (hosts, ports, database names) go to the log."""
    try:
        probe()
    except Exception as error:  # any failure means not ready
        current_app.logger.warning("not ready: %s: %s", name, error)
        return f"error: {type(error).__name__}"
    return "ok"


@bp.get("/readyz")
def readyz():
    """Answer 200 only when PostgreSQL and Redis both respond."""
    checks = {
        "database": _check("database", lambda: db.session.execute(text("SELECT 1"))),
        "redis": _check("redis", current_app.redis.ping),
    }
    db.session.rollback()
    ready = all(value == "ok" for value in checks.values())
    # Informational only (null while Redis is down): it never changes the status.
    websockets = live_connections() if checks["redis"] == "ok" else None
    return jsonify(status="ready" if ready else "unavailable", checks=checks,
                   websockets=websockets), (200 if ready else 503)
