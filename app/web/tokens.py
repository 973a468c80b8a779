"""The API tokens page, for admins only: list, create (the value is shown once), revoke.

It uses the same functions as /api/tokens and `flask tokens`.
"""

from flask import abort, get_template_attribute, render_template, request

from app.auth.access import asking_pin
from app.auth.credentials import (
    CredentialError,
    create_token,
    list_tokens,
    revoke_token,
    token_dict,
)
from app.extensions import db
from app.models import SCOPES, ApiToken, row_by_id
from app.stats.dashboard import service_names
from app.web import bp
from app.web.alerts import require_admin

# Viewers may read every other page; token names and pins map how the setup is wired.
TOKENS_WHAT = "see and change API tokens"


def _panel_context(values: dict | None = None, error: str | None = None,
                  created: dict | None = None) -> dict:
    """What the page shows below its title: a new token's value, the form, every token."""
    return {"tokens": [token_dict(t) for t in list_tokens()], "created": created,
            "values": values or {"scope": "ingest"}, "error": error, "scopes": SCOPES,
            "services": service_names()}


@bp.get("/settings/tokens")
def tokens_page():
    """Every token, with the create form."""
    require_admin(TOKENS_WHAT)
    return render_template("tokens.html", **_panel_context())


@bp.post("/settings/tokens")
def create_token_form():
    """Make a token; answer the panel with its value, which is never shown again."""
    require_admin(TOKENS_WHAT)
    form = request.form
    try:
        token, plain = create_token(form.get("name", ""), form.get("scope", "ingest"),
                                    form.get("service", "").strip() or None, asking_pin())
    except CredentialError as error:
        return render_template("tokens_panel.html", **_panel_context(form, str(error)))
    created = {**token_dict(token), "value": plain}
    return render_template("tokens_panel.html", **_panel_context(created=created))


@bp.delete("/settings/tokens/<int:token_id>")
def revoke_token_form(token_id: int):
    """Revoke a token at once; answer its row, now marked revoked."""
    require_admin(TOKENS_WHAT)
    token = row_by_id(ApiToken, token_id)
    if token is None:
        abort(404, description=f"No token with id {token_id}.")
    revoke_token(token_id)
    db.session.refresh(token)
    return get_template_attribute("tokens_parts.html", "token_row")(token_dict(token))
