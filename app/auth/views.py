"""Sign in and out."""

import re
import secrets
from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select

from app.auth import bp
from app.auth.credentials import authenticate, end_session, password_tag, start_session
from app.auth.csrf import csrf_ok
from app.extensions import db
from app.models import User
from app.security.ratelimit import clear, hit, take_back

# Failed sign-ins allowed per address and per user name in this many seconds.
LOGIN_WINDOW = 15 * 60

# A browser that signed in as a user before carries a signed cookie naming it; its attempts
# count on their own instead of against the user name, so that whoever fails a user's
# sign-ins from elsewhere does not lock that person out of the browser they always use.
DEVICE_COOKIE = "logdash_device"
DEVICE_SECONDS = 180 * 24 * 3600


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
    name = username.lower()[:100]
    device = _known_device(username)
    address = f"login-ip:{request.remote_addr}"
    person = f"login-device:{device}" if device else f"login-user:{name}"
    if not csrf_ok():
        return render_template("auth/login.html", error="The form expired; please try again.",
                               next=request.form.get("next", "")), 400
    # The person's count is not touched once the address is over its limit: guesses
    # from one place must not lock a name out of everywhere else.
    waits = [hit(address, limit, LOGIN_WINDOW)]
    if not waits[0]:
        waits.append(hit(person, limit, LOGIN_WINDOW))
        if waits[1]:
            # Nor is the address's, once the name is: whoever keeps a name locked must
            # not use up the limit of the place its owner tries from.
            take_back(address, LOGIN_WINDOW)
    if any(waits):
        response = render_template("auth/login.html", next=request.form.get("next", ""),
                                   error="Too many attempts; try again later.")
        return response, 429, {"Retry-After": str(max(waits))}
    user = authenticate(username, request.form.get("password", ""))
    if user is None:
        return render_template("auth/login.html", error="Wrong user name or password.",
                               next=request.form.get("next", ""), username=username), 401
    # The person's count starts again; the address's keeps its failures (clearing it
    # would let anyone with an account try other names' passwords without limit).
    clear(person, LOGIN_WINDOW)
    take_back(address, LOGIN_WINDOW)
    session.clear()
    session["user_id"] = user.id
    session["session_id"] = start_session(user)
    session.permanent = True
    response = redirect(_safe_next(request.form.get("next")))
    _remember_device(response, user, device or secrets.token_urlsafe(16))
    return response


def _devices() -> URLSafeTimedSerializer:
    """Signs and reads device cookies with the app's secret key."""
    return URLSafeTimedSerializer(current_app.secret_key, salt="logdash-device")


def _known_device(username: str) -> str | None:
    """This browser's device id if it signed in as this user, with the current password,
    before; else None."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        user_id, device, tag = _devices().loads(raw, max_age=DEVICE_SECONDS)
    except (BadData, ValueError, TypeError):
        return None
    user = db.session.scalars(select(User).where(User.username == username)).first()
    if user is None or user.id != user_id or password_tag(user) != tag:
        return None
    return device


def _remember_device(response, user: User, device: str) -> None:
    """Mark this browser as one the user signs in from; sent to the sign-in form only."""
    response.set_cookie(DEVICE_COOKIE, _devices().dumps([user.id, device, password_tag(user)]),
                        max_age=DEVICE_SECONDS, path=url_for("auth.login"), httponly=True,
                        samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"])


@bp.post("/logout")
def logout():
    """End the session, on the server too: a copy of the cookie signs no one in."""
    end_session(session.get("session_id"))
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/session")
def session_check():
    """Nothing, to a signed-in person (a live page asks when its socket cannot reopen; one
    whose session ended is told where to sign in, by the access check)."""
    return "", 204
