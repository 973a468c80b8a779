"""Receivers for other shippers' wire formats: OTLP/HTTP logs (POST /v1/logs), Loki push
(POST /loki/api/v1/push) and GELF over HTTP (POST /gelf).

Each turns its format into the log objects /api/logs takes and hands them to the one ingest
path (`ingest_items`): same normalisation, limits, COPY, rollups, Idempotency-Key and token
pinning. Only the answers differ, each as its protocol's own server gives them.
"""

import os
from datetime import UTC, datetime

from flask import Blueprint, current_app, g, jsonify, request

from app.api.ingest import (
    MAX_KEY_CHARS,
    OPEN_SCOPE,
    decompressed_body,
    take_a_large_body_turn,
)
from app.ingest import gelf, loki, otlp
from app.ingest.batch import ingest_items
from app.ingest.bodies import BodyError, check_line_count
from app.ingest.records import Limits

bp = Blueprint("receivers", __name__)

DEFAULT_LOKI_SERVICE_LABELS = "service_name,job,app"


@bp.record_once
def _configure(state) -> None:
    """Read this blueprint's setting from the environment unless the app was given it."""
    state.app.config.setdefault(
        "LOGDASH_LOKI_SERVICE_LABELS",
        os.environ.get("LOGDASH_LOKI_SERVICE_LABELS", DEFAULT_LOKI_SERVICE_LABELS))


def _body(encoding_of=None) -> bytes:
    """The request body with its compression undone, within the body limit (see
    decompressed_body)."""
    return decompressed_body(current_app.config["LOGDASH_MAX_BODY_BYTES"], encoding_of)


def _max_lines() -> int:
    """The most lines one request may carry."""
    return current_app.config["LOGDASH_MAX_LINES_PER_REQUEST"]


def _limits() -> Limits:
    """What one line may hold."""
    return Limits.from_config(current_app.config, datetime.now(UTC))


def _default_service() -> str | None:
    """The service of lines that name none: the token's pinned one, else ?service=."""
    token = g.get("token")
    return (token.service if token is not None else None) or request.args.get("service") or None


def _store(receiver: str, items: list, fallback_service: str | None = None) -> dict:
    """Store converted lines through the ingest path, as /api/logs does; return its answer.
    `receiver` names the protocol in the /metrics counts."""
    config = current_app.config
    check_line_count(len(items), config["LOGDASH_MAX_LINES_PER_REQUEST"])
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > MAX_KEY_CHARS:
        raise BodyError(400, f"Idempotency-Key is longer than {MAX_KEY_CHARS} characters")
    token = g.get("token")
    scope = f"token:{token.id}" if token is not None else OPEN_SCOPE
    answer, g.replayed = ingest_items(
        items, _default_service() or fallback_service, config,
        (scope, key) if key else None, token.service if token is not None else None, receiver)
    return answer


@bp.post("/v1/logs")
def otlp_logs():
    """OTLP/HTTP: 200 with an ExportLogsServiceResponse, partial_success naming refusals."""
    if request.mimetype not in (otlp.PROTOBUF, otlp.JSON):
        return jsonify(error=f"Content-Type must be {otlp.PROTOBUF} or {otlp.JSON}"), 415
    try:
        items = otlp.parse_request(_body(), request.mimetype, _limits(), _max_lines())
        answer = _store("otlp", items, otlp.UNKNOWN_SERVICE)
    except BodyError as error:
        return jsonify(error=str(error)), error.status
    return current_app.response_class(otlp.export_response(answer, request.mimetype),
                                      mimetype=request.mimetype)


@bp.after_request
def _otlp_errors_as_status(response):
    """OTLP wants every 4xx/5xx body to be a google.rpc.Status in the request's encoding;
    errors are made as JSON everywhere (policy, limits, outage), so they are re-encoded here."""
    if request.endpoint != "receivers.otlp_logs" or response.status_code < 400:
        return response
    error = response.get_json(silent=True) or {}
    encoding = otlp.PROTOBUF if request.mimetype == otlp.PROTOBUF else otlp.JSON
    response.set_data(otlp.status(response.status_code,
                                  str(error.get("error", response.status)), encoding))
    response.mimetype = encoding
    return response


@bp.after_request
def _mark_replays(response):
    """Say when the answer is the one an earlier request with the same key got, as
    /api/logs does."""
    if g.get("replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/loki/api/v1/push")
def loki_push():
    """Loki push: 204 when every entry is stored; 400 naming refused entries (the others are
    kept, as Loki does)."""
    protobuf = request.mimetype == "application/x-protobuf"
    try:
        data = _body()
        if protobuf:
            data = loki.unsnappy(data, current_app.config["LOGDASH_MAX_BODY_BYTES"])
            take_a_large_body_turn(len(data))
        items = loki.parse_push(data, protobuf, _loki_service_labels(), _limits(),
                                _max_lines())
        answer = _store("loki", items, otlp.UNKNOWN_SERVICE)
    except BodyError as error:
        return jsonify(error=str(error)), error.status
    if answer["rejected"]:
        return jsonify(error=_refusals("entries", answer), **answer), 400
    return "", 204


def _loki_service_labels() -> tuple[str, ...]:
    """The labels that may name a stream's service, first present wins."""
    setting = current_app.config["LOGDASH_LOKI_SERVICE_LABELS"]
    return tuple(label.strip() for label in setting.split(",") if label.strip())


@bp.post("/gelf")
def gelf_messages():
    """GELF over HTTP: 202 like Graylog; 400 when no message could be stored."""
    try:
        answer = _store("gelf", gelf.parse_messages(_body(gelf.content_encoding),
                                                    _default_service(), _max_lines()))
    except BodyError as error:
        return jsonify(error=str(error)), error.status
    if answer["rejected"] and not answer["accepted"]:
        return jsonify(error=_refusals("messages", answer), **answer), 400
    if answer["rejected"]:
        return jsonify(answer), 202
    return "", 202


def _refusals(what: str, answer: dict) -> str:
    """One sentence naming how many lines were refused and the first reason."""
    first = answer["errors"][0]
    return (f"{answer['rejected']} of {answer['accepted'] + answer['rejected']} {what}"
            f" refused; the first, index {first['index']}: {first['error']}")
