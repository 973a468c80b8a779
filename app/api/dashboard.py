"""Dashboard JSON: /api/logs/dashboard, per service, top errors, health, services."""

from flask import current_app, jsonify, request

from app.api import bp
from app.numbers import whole_number
from app.stats.dashboard import (
    dashboard,
    known_service,
    service_dashboard,
    services_overview,
    top_errors,
)
from app.stats.health import HealthRules, health_report
from app.stats.windows import BadWindow, window_from_args

MAX_TOP = 100


def _window():
    """The request's window; BadWindow becomes a 400."""
    return window_from_args(request.args)


def _limit(default: int = 10) -> int:
    """The `limit` argument, checked; empty means the default, as it does for `window`."""
    limit = whole_number(request.args.get("limit") or str(default))
    if limit is None or not 1 <= limit <= MAX_TOP:
        raise BadWindow(f"limit must be a whole number from 1 to {MAX_TOP}")
    return limit


@bp.errorhandler(BadWindow)
def _bad_window(error: BadWindow):
    """Bad window or limit arguments are a 400 naming them."""
    return jsonify(error=str(error)), 400


def _rules() -> HealthRules:
    """Health rules from the configuration."""
    return HealthRules.from_config(current_app.config)


@bp.get("/logs/dashboard")
def dashboard_all():
    """Totals, services, series, top errors, health and active violations for a window."""
    return jsonify(dashboard(_window(), _rules()))


@bp.get("/logs/dashboard/service/<service:service>")
def dashboard_service(service: str):
    """The dashboard for one service, with its top templates of every level."""
    window = _window()
    if not known_service(service):
        return _unknown(service)
    return jsonify(service_dashboard(window, _rules(), service))


def _unknown(service: str):
    """The 404 for a service that never sent a line."""
    return jsonify(error=f"no service named {service!r} has sent logs"), 404


@bp.get("/logs/dashboard/top-errors")
def dashboard_top_errors():
    """Error and critical templates by count, with a per-bucket series each."""
    window = _window()
    limit = _limit()
    service = request.args.get("service") or None
    if service is not None and not known_service(service):
        return _unknown(service)
    return jsonify(window=window.to_dict(), top_errors=top_errors(window, limit, service))


@bp.get("/logs/dashboard/health")
def dashboard_health():
    """Each service's status with the counts that decided it."""
    return jsonify(health_report(_rules()))


@bp.get("/logs/services")
def services():
    """Known services with first and last seen and their volume (default last 24h)."""
    args = request.args.to_dict()
    if not args.get("timeRange") and not args.get("window"):  # the seed's name counts too
        args["window"] = "24h"
    window = window_from_args(args)
    return jsonify(window=window.to_dict(), services=services_overview(window))
