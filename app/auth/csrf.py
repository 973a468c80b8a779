"""CSRF protection for requests authenticated by the session cookie.

A random token lives in the session; forms send it as `csrf_token`, HTMX and fetch as the
X-CSRF-Token header (static/app.js adds it from the page's meta tag). Requests carrying a
bearer token are not cookie-authenticated and need none.
"""

import hmac
import secrets

from flask import request, session

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def csrf_token() -> str:
    """This session's token, made on first use."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def csrf_ok() -> bool:
    """Whether the request carries this session's token."""
    expected = session.get(FIELD)
    sent = request.headers.get(HEADER) or request.form.get(FIELD)
    # compare_digest refuses str with non-ASCII characters; the token never has any.
    return bool(expected and sent) and sent.isascii() and hmac.compare_digest(expected, sent)
