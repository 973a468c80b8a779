"""Search (GET /logs) and the live tail page (GET /tail)."""

from flask import current_app, render_template, request, url_for

from app.models import LEVELS
from app.search import (
    FILTER_ARGS,
    BadSearch,
    filters_from_args,
    search_budget,
    search_entries,
)
from app.stats.dashboard import service_names
from app.web import bp
from app.web.filters import socket_path


def _form_context() -> dict:
    """What the filter forms of both pages need: the query so far, services and levels."""
    return {"args": request.args, "services": service_names(), "levels": LEVELS}


def _filters():
    """The request's filters, with the JSON API's names and rules."""
    return filters_from_args(request.args, current_app.config["LOGDASH_SEARCH_MAX_LIMIT"])


def _filter_args() -> dict[str, list[str]]:
    """The request's search parameters, and no others: anything else passed on to url_for
    could be one of its own arguments (endpoint, _anchor, _external...)."""
    return {name: request.args.getlist(name) for name in FILTER_ARGS if name in request.args}


def _page_url(cursor: str | None) -> str:
    """This search's URL for the page after `cursor` (the newest page for None)."""
    return url_for("web.logs_page", **{**_filter_args(), "cursor": cursor})


@bp.get("/logs")
def logs_page():
    """Matching lines, newest first, a page at a time (the API's cursor)."""
    try:
        page = search_entries(_filters(), search_budget())
    except BadSearch as error:
        return render_template("logs.html", error=str(error), lines=[], **_form_context()), 400
    return render_template(
        "logs.html",
        lines=[entry.to_dict() for entry in page.entries],
        searched_since=page.searched_since,
        older_url=_page_url(page.next_cursor) if page.next_cursor else None,
        newest_url=_page_url(None) if request.args.get("cursor") else None,
        **_form_context(),
    )


@bp.get("/tail")
def tail_page():
    """New lines as they arrive, filtered on the server by service, level and text."""
    try:
        _filters()
    except BadSearch as error:
        return render_template("tail.html", error=str(error), **_form_context()), 400
    socket_url = socket_path("live.tail_socket", **_filter_args())
    return render_template("tail.html", socket_url=socket_url, **_form_context())
