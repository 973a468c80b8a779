"""Errors answered as JSON `{"error": ...}`; a database outage is a 503 with Retry-After."""

import psycopg
from flask import Flask, current_app, g, jsonify, make_response, render_template, request
from gunicorn.http.errors import ParseException as UnreadableRequest
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import BadHost, HTTPException

from app.extensions import db


def _database_unavailable(error: Exception):
    """Tell the sender to come back later; nothing of its request was committed."""
    current_app.logger.warning("database unavailable: %s", error)
    try:
        db.session.rollback()
    except Exception:
        # The connection is gone; the pool replaces it on next use (pool_pre_ping).
        current_app.logger.debug("rollback after outage failed", exc_info=True)
    response = _outage_page() if _wants_page() else None
    if response is None:
        response = jsonify(error="database unavailable, try again later")
    response.status_code = 503
    response.headers["Retry-After"] = str(current_app.config["LOGDASH_RETRY_AFTER_SECONDS"])
    return response


def _outage_page():
    """The error page for a browser during an outage, or None if it cannot be made."""
    # The rollback expired the signed-in user: naming them in the page's header would ask
    # the database that just failed.
    g.user = None
    try:
        return make_response(render_template(
            "error.html", code=503,
            message="The database is not answering; try again in a few seconds."))
    except Exception:
        current_app.logger.debug("outage page could not be rendered", exc_info=True)
        return None


def _dbapi_error(error: DBAPIError):
    """Lost connections are an outage; values PostgreSQL cannot take are the sender's."""
    if isinstance(error, OperationalError) or error.connection_invalidated:
        return _database_unavailable(error)
    if isinstance(error, DataError):
        # The edges validate what they take; this is the net under them.
        current_app.logger.warning("refused a value PostgreSQL cannot store: %s", error.orig)
        db.session.rollback()
        return refusal(400, "a value in the request cannot be stored (e.g. a NUL character)")
    return _internal_error(error)


def _unreadable_request(error: UnreadableRequest):
    """A body gunicorn could not read (chunks framed wrongly): the sender's fault."""
    return refusal(400, f"the request body could not be read: {error}")


def refusal(status: int, message: str):
    """Refuse a request: the error page to a browser, `{"error": ...}` to the API."""
    if _wants_page():
        response = make_response(render_template("error.html", code=status, message=message))
    else:
        response = jsonify(error=message)
    response.status_code = status
    return response


def refuse_nul_characters():
    """Before each request: a NUL in the path or query string is refused outright."""
    if "\x00" in request.path or any("\x00" in k or any("\x00" in v for v in vs)
                                      for k, vs in request.args.lists()):
        return refusal(400, "the URL contains a NUL character")
    return None


def _wants_page() -> bool:
    """Whether a browser asked for a page, rather than a script for the JSON API."""
    accepted = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return accepted == "text/html" and not request.path.startswith("/api/")


def _http_error(error: HTTPException):
    """Answer Flask's and Werkzeug's HTTP errors in JSON (as a page to browsers)."""
    # With a Host header it cannot read, Flask has no URL adapter: a page's links cannot
    # be built.
    if _wants_page() and not isinstance(error, BadHost):
        response = make_response(render_template(
            "error.html", code=error.code, message=error.description))
    else:
        response = jsonify(error=error.description)
    response.status_code = error.code or 500
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _internal_error(error: Exception):
    """Log the bug and answer a JSON 500 without details."""
    current_app.logger.exception("unhandled error", exc_info=error)
    return jsonify(error="internal server error"), 500


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers."""
    app.before_request(refuse_nul_characters)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _dbapi_error)
    app.register_error_handler(UnreadableRequest, _unreadable_request)
    app.register_error_handler(psycopg.OperationalError, _database_unavailable)
    # Every pooled connection busy: as good as unavailable for this request.
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(Exception, _internal_error)
