"""POST /api/logs: take lines as JSON, a JSON array, NDJSON or HTTPHandler form data."""

import threading

from flask import current_app, g, jsonify, request
from werkzeug.exceptions import ServiceUnavailable

from app.api import bp
from app.extensions import db
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


# Decoded, a body becomes Python objects of up to 30 times its size (an array of empty
# objects: 10 MiB of them, a few KB gzipped, take 250 MB), held until its request ends.
# Bodies this large take turns, a few at a time in each process.
LARGE_BODY_BYTES = 1024 * 1024
LARGE_BODY_TURNS = threading.BoundedSemaphore(2)
TURN_WAIT_SECONDS = 30


def take_a_large_body_turn(size: int) -> None:
    """Wait for a turn when a body of `size` bytes is large; 503 if none comes in time.
    The turn is given back when the request ends."""
    if size < LARGE_BODY_BYTES or g.get("large_body_turn"):
        return
    # No transaction is open here (request_body ended the token check's): the wait holds
    # no pooled connection.
    if not LARGE_BODY_TURNS.acquire(timeout=TURN_WAIT_SECONDS):
        raise ServiceUnavailable("busy decoding other large requests; try again shortly",
                                 retry_after=5)
    g.large_body_turn = True


@bp.teardown_app_request
def give_back_the_large_body_turn(_error) -> None:
    """The request has ended, and its decoded lines with it."""
    if g.pop("large_body_turn", False):
        LARGE_BODY_TURNS.release()


def decompressed_body(max_bytes: int, encoding_of=None) -> bytes:
    """The request body with its compression undone, within the body limit, and its turn
    taken when large; encoding_of tells the compression from the bytes where the
    Content-Encoding header cannot be trusted."""
    data = request_body(max_bytes)
    encoding = request.headers.get("Content-Encoding", "") if encoding_of is None \
        else encoding_of(data)
    data = decompress(data, encoding, max_bytes)
    take_a_large_body_turn(len(data))
    return data


def request_body(max_bytes: int) -> bytes:
    """The raw request body; BodyError when it is longer than max_bytes (413) or shorter
    than its Content-Length says (400: the sender stopped half-way)."""
    # The token's lookup began a transaction: it must not hold a pooled connection while
    # a slow sender trickles its body.
    db.session.commit()
    data = request.get_data(cache=False)
    # gunicorn hands over what came before the sender closed, as if that were all: lines
    # of a cut body, stored and counted, would be stored twice when the sender retries
    # the whole (or lost behind its Idempotency-Key).
    if request.content_length is not None and len(data) < request.content_length:
        raise BodyError(400, f"body ended after {len(data)} of the {request.content_length}"
                             " bytes its Content-Length announced; nothing was stored")
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
        data = decompressed_body(max_bytes)
        # curl -d sends JSON as a form unless told otherwise; a form never starts with { or [.
        if request.mimetype == FORM_TYPE and data.lstrip()[:1] not in (b"{", b"["):
            items = parse_logging_form(data, default_service)
        else:
            items = parse_json_body(data, config["LOGDASH_MAX_LINES_PER_REQUEST"])
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
