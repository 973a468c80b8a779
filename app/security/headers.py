"""Security headers on every response."""

from flask import Flask

# Only the app's own scripts and styles; no inline script, no framing, sockets to self.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self';"
    " form-action 'self'; frame-ancestors 'none'"
)


def add_security_headers(response):
    """Set CSP, no sniffing, no framing, a strict referrer policy, and no caching of
    answers that do not say otherwise (static files do)."""
    # Pages and answers carry log lines, and some a secret shown once (a new token, a
    # webhook secret): none is to be kept by a browser's or a proxy's cache.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def init_app(app: Flask) -> None:
    """Install the headers."""
    app.after_request(add_security_headers)
