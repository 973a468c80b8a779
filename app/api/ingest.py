"""POST /api/logs: take lines as JSON, a JSON array, NDJSON or HTTPHandler form data."""

from flask import current_app, g, jsonify, request

from app.api import bp
from app.ingest.batch import ingest_items
from app.ingest.bodies import (
    BodyError,
    check_line_count,
    decompress,
    parse_json_body,
    parse_logging_form,
)

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_KEY_CHARS = 200
# Idempotency keys are per token; senders without one (open ingest) share a key space.
OPEN_SCOPE = "open"


def request_body(max_bytes: int) -> bytes:
    """The raw request body, or BodyError (413) when it is longer than max_bytes."""
    data = request.get_data(cache=False)
    # Sent in chunks, without a Content-Length, a body is cut at the limit without a word
    # (Werkzeug's stream ends there): one more byte from the connection tells a body of
    # exactly the limit from a longer one, whose lines past the cut would be lost.
    if (len(data) >= max_bytes and request.content_length is None
            and request.environ["wsgi.input"].read(1)):
        raise BodyError(413, f"body is larger than {max_bytes} bytes")
    return data


@bp.post("/logs")
def ingest_logs():
    """Store every valid line of the body; answer 202 with what was accepted and refused."""
    config = current_app.config
    max_bytes = config["LOGDASH_MAX_BODY_BYTES"]
    token = g.get("token")
    pinned = token.service if token is not None else None
    default_service = pinned or request.args.get("service") or None
    try:
        data = decompress(
            request_body(max_bytes), request.headers.get("Content-Encoding", ""), max_bytes
        )
        # curl -d sends JSON as a form unless told otherwise; a form never starts with { or [.
        if request.mimetype == FORM_TYPE and data.lstrip()[:1] not in (b"{", b"["):
            items = parse_logging_form(data, default_service)
        else:
            items = parse_json_body(data)
        check_line_count(len(items), config["LOGDASH_MAX_LINES_PER_REQUEST"])
    except BodyError as error:
        return jsonify(error=str(error)), error.status
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > MAX_KEY_CHARS:
        return jsonify(error=f"Idempotency-Key is longer than {MAX_KEY_CHARS} characters"), 400
    scope = f"token:{token.id}" if token is not None else OPEN_SCOPE
    answer, replayed = ingest_items(items, default_service, config,
                                    (scope, key) if key else None, pinned)
    response = jsonify(answer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 202
