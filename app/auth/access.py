"""The access policy, applied before every request: deny unless a rule allows.

- Probes, the login page and static files are public.
- /metrics is read like the API (a read token, as Prometheus' `authorization` sends, or a
  session), unless LOGDASH_METRICS_PUBLIC=1 makes it public for a scraper on a private
  network.
- Ingest needs a token with the ingest (or admin) scope, unless LOGDASH_OPEN_INGEST is set.
- Everything else needs a signed-in person or a token: reading needs the read scope or any
  role; changing needs the admin scope or role. Cookie-authenticated changes need the CSRF
  token, and WebSocket handshakes must come from this site's own pages (Origin).
"""

from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, session, url_for

from app.auth.credentials import find_token, session_user
from app.auth.csrf import csrf_ok
from app.errors import refusal
from app.security.ratelimit import hit

PUBLIC = {"health.healthz", "health.readyz", "auth.login", "static"}
# Other shippers' formats (app/api/receivers.py) feed the same ingest path.
INGEST = {"api.ingest_logs", "receivers.otlp_logs", "receivers.loki_push",
          "receivers.gelf_messages"}
METRICS = "metrics.metrics"
# Changes any signed-in person may make.
ANY_USER_CHANGES = {"auth.logout"}
# Reads only admins may make: tokens say who sends what, and from where (the tokens page
# checks the same itself, answering with an HTML page).
ADMIN_READS = {"api.list_api_tokens"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _deny(status: int, message: str, **headers):
    """A refusal: JSON, or the error page to a browser's own form."""
    response = refusal(status, message)
    response.headers.update(headers)
    return response


def _presented_token() -> str | None:
    """A token from `Authorization: Bearer T`, or from Basic auth's password, which is all
    logging.handlers.HTTPHandler can send (its user name is ignored)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if header[:6].lower() == "basic " and request.authorization is not None:
        return request.authorization.password or ""
    return None


def _identify():
    """Find who is asking: a bearer token, or the session's user. A bad token is refused."""
    g.token, g.user = None, None
    presented = _presented_token()
    if presented is not None:
        g.token = find_token(presented)
        if g.token is None:
            return _deny(401, "invalid or revoked API token", **{"WWW-Authenticate": "Bearer"})
    elif "user_id" in session:
        g.user = session_user(session["user_id"], session.get("session_id"))
        if g.user is None:  # signed out elsewhere, a new password, or deleted: sign out here too
            session.clear()
    return None


def _rate_limited():
    """429 when a token sends more requests per minute than allowed."""
    limit = current_app.config["LOGDASH_TOKEN_RATE_PER_MINUTE"]
    wait = hit(f"token:{g.token.id}", limit, 60)
    if wait:
        return _deny(429, f"more than {limit} requests per minute with this token",
                     **{"Retry-After": str(wait)})
    return None


def _from_own_page(loopback_only: bool = False) -> bool:
    """Whether a browser request comes from one of this site's pages (with loopback_only,
    served on a loopback name of this machine); a request without an Origin is from no
    page. An Origin that is not a URL ("http://[") is from none of them."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    return parts.netloc == request.host and (
        not loopback_only or host in ("localhost", "127.0.0.1", "::1"))


def _for_ingest():
    """Ingest: a token with the ingest or admin scope, or open ingest without a token (a
    read token is refused there too: it would be refused once ingest is closed)."""
    if g.token is not None:
        if g.token.scope in ("ingest", "admin"):
            return _rate_limited()
        return _deny(403, f"this token has the {g.token.scope} scope; sending logs needs"
                          " ingest or admin")
    if current_app.config["LOGDASH_OPEN_INGEST"]:
        # A web page the person has open may post here too (a form, or fetch with a
        # text/plain body, needs no preflight); shippers send no Origin. A page of another
        # site whose name it made resolve to this machine (DNS rebinding) sends its own
        # name as Host too: open ingest is for this machine, so a page must be served on
        # one of its loopback names.
        if not _from_own_page(loopback_only=True):
            return _deny(403, "open ingest does not take lines from other sites' pages")
        return None
    return _deny(401, "sending logs needs an API token with the ingest scope"
                      " (Authorization: Bearer ...)", **{"WWW-Authenticate": "Bearer"})


def _for_token():
    """Reading needs read or admin scope; changing needs admin."""
    if g.token.scope == "ingest":
        return _deny(403, "this token may only send logs")
    if g.token.scope != "admin" and (request.method not in SAFE_METHODS
                                     or request.endpoint in ADMIN_READS):
        return _deny(403, "this needs a token with the admin scope")
    return _rate_limited()


def _for_user():
    """People: viewers read, admins change; changes by cookie need the CSRF token."""
    if request.path.startswith("/ws/") and not _from_own_page():
        return _deny(403, "WebSocket connections must come from Logdash's own pages")
    if request.endpoint in ADMIN_READS and g.user.role != "admin":
        return _deny(403, "only admins can see this")
    if request.method in SAFE_METHODS:
        return None
    if request.endpoint not in ANY_USER_CHANGES and g.user.role != "admin":
        return _deny(403, "only admins can change this")
    if not csrf_ok():
        return _deny(403, "missing or wrong CSRF token; reload the page and try again")
    return None


def _wants_page() -> bool:
    """Whether an anonymous request is a browser asking for a page (vs. the API)."""
    if request.path.startswith(("/api/", "/ws/", "/v1/", "/loki/", "/gelf")):
        return False
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def _this_page() -> str:
    """The path and query asked for, as the client sent them. Decoded, a service name's
    %2F would turn into a slash, and its ../ into a different page after sign-in."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    return raw if raw and raw.startswith("/") else request.full_path.rstrip("?")


def enforce_access():
    """The before_request hook: None to let the request through, or a refusal."""
    if request.endpoint in PUBLIC or request.endpoint is None:
        return None
    if request.endpoint == METRICS and current_app.config["LOGDASH_METRICS_PUBLIC"]:
        return None
    refused = _identify()
    if refused is not None:
        return refused
    if request.endpoint in INGEST:
        return _for_ingest()
    if g.token is not None:
        return _for_token()
    if g.user is not None:
        return _for_user()
    if _wants_page():
        return redirect(url_for("auth.login", next=_this_page()))
    if request.headers.get("HX-Request") == "true":
        return _sign_in_again()
    return _deny(401, "sign in or send an API token (Authorization: Bearer ...)",
                 **{"WWW-Authenticate": "Bearer"})


def _sign_in_again():
    """Refuse a request a page made with htmx after its session ended (signed out in another
    tab, expired): htmx takes the browser to the sign-in form, then back to that page."""
    page = urlsplit(request.headers.get("HX-Current-URL", ""))
    back = page.path + (f"?{page.query}" if page.query else "")
    response = _deny(401, "your session has ended; sign in again")
    response.headers["HX-Redirect"] = url_for("auth.login",
                                              next=back if back.startswith("/") else "/")
    return response


def asker_is_admin() -> bool:
    """Whether whoever asks may change settings: an admin, or a token with the admin scope.
    Outside a request (a job), nobody asks: False."""
    token, user = g.get("token"), g.get("user")
    if token is not None:
        return token.scope == "admin"
    return user is not None and user.role == "admin"


def asking_pin() -> str | None:
    """The service the token making this request is pinned to, if it is one."""
    token = g.get("token")
    return token.service if token is not None else None


def actor() -> str:
    """Who is making this request, as recorded on what they create: a user or a token."""
    if g.get("user") is not None:
        return g.user.username
    if g.get("token") is not None:
        return f"token {g.token.name}"
    return "anonymous"
