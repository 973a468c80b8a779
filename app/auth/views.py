"""Sign in and out."""

import re
from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for

from app.auth import bp
from app.auth.credentials import authenticate
from app.auth.csrf import csrf_ok
from app.security.ratelimit import clear, hit

# Failed sign-ins allowed per address and per user name in this many seconds.
LOGIN_WINDOW = 15 * 60


# A path on this site: one leading slash, and nothing a browser would read as another host
# ("//host", "/\\host", or slashes with a tab or newline between them, which browsers drop).
# Spaces stay: they come decoded from a page's own path ("/services/a b").
_LOCAL_PATH = re.compile(r"/(?![/\\])[^\\\x00-\x1f\x7f]*")


def _safe_next(target: str | None) -> str:
    """Only ever go back to a path on this site after signing in."""
    if not target or not _LOCAL_PATH.fullmatch(target) or urlsplit(target).netloc:
        return url_for("web.dashboard_page")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the form; check the password; start a session."""
    if request.method == "GET":
        return render_template("auth/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")
    limit = current_app.config["LOGDASH_LOGIN_ATTEMPTS"]
    keys = [f"login-ip:{request.remote_addr}", f"login-user:{username.lower()[:100]}"]
    if not csrf_ok():
        return render_template("auth/login.html", error="The form expired; please try again.",
                               next=request.form.get("next", "")), 400
    waits = [hit(key, limit, LOGIN_WINDOW) for key in keys]
    if any(waits):
        response = render_template("auth/login.html", next=request.form.get("next", ""),
                                   error="Too many attempts; try again later.")
        return response, 429, {"Retry-After": str(max(waits))}
    user = authenticate(username, request.form.get("password", ""))
    if user is None:
        return render_template("auth/login.html", error="Wrong user name or password.",
                               next=request.form.get("next", ""), username=username), 401
    for key in keys:
        clear(key, LOGIN_WINDOW)
    session.clear()
    session["user_id"] = user.id
    session.permanent = True
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    """End the session."""
    session.clear()
    return redirect(url_for("auth.login"))
