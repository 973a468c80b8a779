"""The dashboard, one service's page and the health page, with the partials they swap in."""

from flask import abort, current_app, render_template, request

from app.stats.dashboard import known_service
from app.stats.health import HealthRules, health_report
from app.stats.windows import BadWindow
from app.web import bp
from app.web.context import view_context


def _window_name() -> str:
    """The window the request asks for (the seed's timeRange too); 1h by default."""
    return request.args.get("window") or request.args.get("timeRange") or "1h"


def _known(service: str) -> str:
    """The service, or a 404 page when it never sent a line."""
    if not known_service(service):
        abort(404, description=f"No service named “{service}” has sent logs.")
    return service


@bp.errorhandler(BadWindow)
def _bad_window(error: BadWindow):
    """An unknown window is a 400 page naming the choices."""
    return render_template("error.html", code=400, message=str(error)), 400


@bp.get("/")
def dashboard_page():
    """Totals, chart, services, top errors and active alerts of every service."""
    return render_template("dashboard.html", **view_context(_window_name()))


@bp.get("/partials/dashboard")
def dashboard_partial():
    """The dashboard's content for another window, swapped in without a reload."""
    return render_template("partials/view.html", **view_context(_window_name()))


@bp.get("/services/<service:service>")
def service_page(service: str):
    """One service: its numbers, templates, top errors and recent lines."""
    return render_template("service.html", **view_context(_window_name(), _known(service)))


@bp.get("/partials/services/<service:service>")
def service_partial(service: str):
    """One service's content for another window."""
    return render_template("partials/view.html", **view_context(_window_name(), _known(service)))


def _health_context() -> dict:
    """The health report, exactly as GET /api/logs/dashboard/health answers it."""
    return {"report": health_report(HealthRules.from_config(current_app.config))}


@bp.get("/health")
def health_page():
    """Every service's status with the numbers and the reason behind it."""
    return render_template("health.html", **_health_context())


@bp.get("/partials/health")
def health_partial():
    """The health table alone, polled by the health page."""
    return render_template("partials/health_table.html", **_health_context())
