"""GET /api/logs and /api/logs/<id>: search what was stored."""

from flask import current_app, jsonify, request

from app.api import bp
from app.search import BadSearch, filters_from_args, get_entry, search_entries


@bp.get("/logs")
def search_logs():
    """Return matching lines, newest first, with a cursor for the next page."""
    try:
        filters = filters_from_args(request.args, current_app.config["LOGDASH_SEARCH_MAX_LIMIT"])
    except BadSearch as error:
        return jsonify(error=str(error)), 400
    entries, next_cursor = search_entries(filters)
    return jsonify(
        logs=[entry.to_dict() for entry in entries], count=len(entries), next_cursor=next_cursor
    )


@bp.get("/logs/<int:entry_id>")
def show_log(entry_id: int):
    """Return one stored line."""
    entry = get_entry(entry_id)
    if entry is None:
        return jsonify(error=f"no log line with id {entry_id}"), 404
    return jsonify(entry.to_dict())
