"""GET /api/logs and /api/logs/<id>: search what was stored."""

from flask import current_app, jsonify, request

from app.api import bp
from app.search import BadSearch, filters_from_args, get_entry, search_budget, search_entries


@bp.get("/logs")
def search_logs():
    """Return matching lines, newest first, with a cursor for the next page."""
    try:
        filters = filters_from_args(request.args, current_app.config["LOGDASH_SEARCH_MAX_LIMIT"])
    except BadSearch as error:
        return jsonify(error=str(error)), 400
    page = search_entries(filters, search_budget())
    since = page.searched_since
    return jsonify(
        logs=[entry.to_dict() for entry in page.entries], count=len(page.entries),
        next_cursor=page.next_cursor, searched_since=since.isoformat() if since else None,
    )


@bp.get("/logs/<int:entry_id>")
def show_log(entry_id: int):
    """Return one stored line."""
    entry = get_entry(entry_id)
    if entry is None:
        return jsonify(error=f"no log line with id {entry_id}"), 404
    return jsonify(entry.to_dict())
