"""The WebSocket endpoints: one dashboard (or service) view, or the live tail."""

import contextlib
import socket
import struct
import time

from flask import Blueprint, current_app, g, jsonify, request, session
from simple_websocket import ConnectionClosed
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from app.auth.credentials import session_user
from app.extensions import db, sock
from app.models import ApiToken
from app.realtime.hub import Hub, Outbox, View
from app.realtime.tail import TAIL, lines_held, render_tail_rows, shown_lines
from app.search import BadSearch, filters_from_args
from app.stats.dashboard import known_service
from app.stats.windows import make_window

bp = Blueprint("live", __name__)

ALERTS = "alerts"
# 1008 (policy violation) tells htmx not to reconnect: the same URL would fail again.
CLOSE_BAD_REQUEST = 1008
# 1012 (service restart) tells htmx to reconnect, which reaches a worker still running.
CLOSE_RESTARTING = 1012
# How often an idle socket checks that its client is still there.
IDLE_CHECK_SECONDS = 1.0
# How often a socket checks that the token or session it was opened with still holds.
CREDENTIAL_CHECK_SECONDS = 30.0
# Retry-After for a socket refused because the process has no thread to spare.
FULL_RETRY_SECONDS = 15


def current_hub() -> Hub:
    """This app's hub."""
    return current_app.extensions["logdash.live"]


def view_from_args(args) -> View:
    """The view a dashboard socket asks for, checked like the pages check it (ValueError)."""
    window = make_window(args.get("window") or "1h").name
    service = args.get("service") or None
    # Only known services: every distinct view costs a computation per tick.
    if service is not None and not known_service(service):
        raise ValueError(f"no service named {service!r} has sent logs")
    return View(window, service)


@bp.before_request
def take_a_socket_slot():
    """503 before the handshake when this process already holds its most sockets: each
    holds a thread, and the rest are kept for pages, the API and ingest. The slot is taken
    here, at once, so that handshakes arriving together cannot all pass one count."""
    if not current_hub().slots.acquire(blocking=False):
        response = jsonify(error="this server has no room for more live connections;"
                                 " try again shortly")
        return response, 503, {"Retry-After": str(FULL_RETRY_SECONDS)}
    g.socket_slot = True
    return None


@bp.errorhandler(RemoteProtocolError)
def refuse_a_bad_handshake(error: RemoteProtocolError):
    """A request to a socket's URL whose upgrade headers are wrong or missing (nothing has
    been sent on the connection yet): a 400 naming the problem."""
    return jsonify(error=f"not a valid WebSocket handshake: {error}"), 400


@bp.teardown_request
def give_back_the_socket_slot(_error) -> None:
    """The socket has ended (the view returns only then): free its slot."""
    if g.pop("socket_slot", False):
        current_hub().slots.release()


def opened_by() -> tuple:
    """What this socket was opened with: a token's id, or a session's user and id (both
    None for open access)."""
    if g.get("token") is not None:
        return g.token.id, None, None
    return None, session.get("user_id"), session.get("session_id")


def still_allowed(token_id: int | None, user_id, session_id) -> bool:
    """Whether what opened a socket still may: its token is not revoked, its session not
    ended (signed out, a new password, the user deleted). A database that does not answer
    does not close sockets: it says nothing about either."""
    try:
        if token_id is not None:
            return db.session.execute(select(ApiToken.id).where(
                ApiToken.id == token_id, ApiToken.revoked_at.is_(None))).first() is not None
        return user_id is None or session_user(user_id, session_id) is not None
    except SQLAlchemyError:
        return True
    finally:
        db.session.remove()


def limit_sends(ws, seconds: int) -> None:
    """Make a send that waits longer than `seconds` fail, on this socket only.

    The server's socket blocks without a timeout, so a client that stops reading (its
    buffers full) would hold this thread, and the ping thread's sends, forever. SO_SNDTIMEO
    bounds only sends: the reader thread's receives still wait as long as they need."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))


def send(ws, frame: str) -> None:
    """Send one text frame whole, or raise OSError (also when the client closed the
    socket meanwhile). simple-websocket's send() ignores how much a send() call wrote,
    which under SO_SNDTIMEO may be part of a frame."""
    try:
        data = ws.ws.send(TextMessage(data=frame))
    except LocalProtocolError:  # closed by the client: its message holds the whole frame
        raise ConnectionResetError("the client closed the socket") from None
    ws.sock.sendall(data)


def close(ws, reason: int, message: str) -> None:
    """Close the socket with a reason, unless the connection is already beyond it."""
    with contextlib.suppress(OSError, ConnectionClosed, LocalProtocolError):
        ws.close(reason=reason, message=message)


def pump(ws, subscription, render) -> None:
    """Send a subscription's frames, rendered, until the client or this process goes away."""
    # The access check and the view's validation used the database: a socket may stay open
    # for hours, so give the pooled connection back now rather than when it closes.
    opener = opened_by()
    db.session.remove()
    limit_sends(ws, current_app.config["LOGDASH_LIVE_SEND_TIMEOUT_SECONDS"])
    hub = current_hub()
    checked = time.monotonic()
    while ws.connected and not hub.stopping:
        try:
            received = ws.receive(timeout=0)
        except ConnectionClosed:  # the client left between the check above and here
            return
        if received is not None:
            # Nothing reads what a client sends here: kept, it would pile up in memory.
            close(ws, CLOSE_BAD_REQUEST, "this socket does not take messages")
            return
        if time.monotonic() - checked >= CREDENTIAL_CHECK_SECONDS:
            checked = time.monotonic()
            if not still_allowed(*opener):
                close(ws, CLOSE_BAD_REQUEST, "signed out: the token was revoked or the"
                                             " password changed")
                return
        payload = subscription.outbox.get(timeout=IDLE_CHECK_SECONDS)
        frame = None if payload is None else render(payload)
        if not frame:
            continue
        try:
            send(ws, frame)
        except OSError:  # the send timed out (or the connection broke): let it go
            return
    if hub.stopping:
        close(ws, CLOSE_RESTARTING, "server restarting")


@sock.route("/ws/logs/dashboard", bp=bp)
def dashboard_socket(ws):
    """Push a view's fresh numbers every tick, and alert banners as they happen."""
    try:
        view = view_from_args(request.args)
    except ValueError as error:  # BadWindow, or a service never seen
        close(ws, CLOSE_BAD_REQUEST, str(error)[:120])
        return
    with current_hub().subscription({view.topic, ALERTS}, view) as subscription:
        pump(ws, subscription, render=str)


@sock.route("/ws/logs/tail", bp=bp)
def tail_socket(ws):
    """Stream new lines passing the service, level and text filters of the query string."""
    try:
        filters = filters_from_args(request.args, current_app.config["LOGDASH_SEARCH_MAX_LIMIT"])
    except BadSearch as error:
        close(ws, CLOSE_BAD_REQUEST, str(error)[:120])
        return
    outbox = Outbox(weigh=lines_held)
    with current_hub().subscription({TAIL}, accepts=lambda m: shown_lines(m, filters),
                                    outbox=outbox) as subscription:
        pump(ws, subscription,
             render=lambda message: render_tail_rows(message, outbox.take_dropped()))
