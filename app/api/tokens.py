"""API tokens over JSON: list, create (the value is shown once), revoke."""

from flask import g, jsonify

from app.api import bp
from app.api.alerts import json_object_body
from app.auth.credentials import (
    CredentialError,
    create_token,
    list_tokens,
    revoke_token,
    token_dict,
)


@bp.get("/tokens")
def list_api_tokens():
    """Every token, without values."""
    return jsonify(tokens=[token_dict(token) for token in list_tokens()])


@bp.post("/tokens")
def create_api_token():
    """Make a token; its value is in this answer only."""
    data = json_object_body()
    if data is None:
        return jsonify(error="body must be a JSON object"), 400
    if (refusal := _beyond_the_pin(data)) is not None:
        return jsonify(error=refusal), 403
    try:
        token, plain = create_token(data.get("name", ""), data.get("scope", "ingest"),
                                    data.get("service"))
    except CredentialError as error:
        return jsonify(error=str(error)), 400
    return jsonify({**token_dict(token), "token": plain}), 201


def _beyond_the_pin(data: dict) -> str | None:
    """Why a token pinned to a service may not make this token, if so: one that could
    send for another service would undo the pin."""
    pin = g.token.service if g.get("token") is not None else None
    scope = data.get("scope", "ingest")
    if pin is None or scope == "read" or data.get("service") == pin:
        return None
    return (f"this token only sends logs for service {pin!r}: the tokens it makes that"
            f" can send must be pinned to it too (\"service\": {pin!r})")


@bp.delete("/tokens/<int:token_id>")
def revoke_api_token(token_id: int):
    """Revoke a token; it stops working at once."""
    if not revoke_token(token_id):
        return jsonify(error=f"no live token with id {token_id}"), 404
    return "", 204
