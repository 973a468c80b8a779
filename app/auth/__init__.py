"""Who may do what: people with passwords and roles, scripts with scoped tokens."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import views  # noqa: E402, F401  (routes register on bp)
