"""What the dashboard and service pages show: shared by the pages and the live frames."""

from flask import current_app

from app.search import SearchFilters, search_entries
from app.stats.dashboard import dashboard, service_dashboard, service_names
from app.stats.health import HealthRules
from app.stats.windows import WINDOWS, make_window

# Lines listed under "recent lines" on a service's page.
RECENT_LINES = 20


def view_context(window_name: str, service: str | None = None) -> dict:
    """Template variables of the dashboard, or of one service's page, for a window."""
    window = make_window(window_name)
    rules = HealthRules.from_config(current_app.config)
    context = {"window": window, "windows": list(WINDOWS), "service": service}
    if service is None:
        context["data"] = dashboard(window, rules)
        context["has_logs"] = bool(service_names())
        return context
    context["data"] = service_dashboard(window, rules, service)
    page = search_entries(SearchFilters(services=[service], limit=RECENT_LINES))
    context["recent"] = [line.to_dict() for line in page.entries]
    context["has_logs"] = True
    return context
