"""Server-rendered pages and the HTMX partials they swap in."""

from flask import Blueprint

bp = Blueprint("web", __name__)

from app.web import alerts, api_docs, filters, logs, pages, silences, tokens  # noqa: E402, F401
