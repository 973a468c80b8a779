"""API tokens over JSON: list, create (the value is shown once), revoke."""

from flask import jsonify

from app.api import bp
from app.api.alerts import json_object_body
from app.auth.access import asking_pin
from app.auth.credentials import (
    BeyondThePin,
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
    try:
        token, plain = create_token(data.get("name", ""), data.get("scope", "ingest"),
                                    data.get("service"), asking_pin())
    except BeyondThePin as error:
        return jsonify(error=str(error)), 403
    except CredentialError as error:
        return jsonify(error=str(error)), 400
    return jsonify({**token_dict(token), "token": plain}), 201


@bp.delete("/tokens/<int:token_id>")
def revoke_api_token(token_id: int):
    """Revoke a token; it stops working at once."""
    if not revoke_token(token_id):
        return jsonify(error=f"no live token with id {token_id}"), 404
    return "", 204
