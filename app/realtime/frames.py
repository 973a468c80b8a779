"""HTML sent over the sockets, rendered with the same autoescaping templates as the pages."""

import uuid

from flask import Flask, render_template

from app.extensions import db
from app.realtime.hub import View
from app.web.context import view_context


def render_context(app: Flask):
    """A neutral request at the root: url_for needs one, and frames are made outside any."""
    return app.test_request_context("/")


def render_view_frame(app: Flask, view: View) -> str:
    """The out-of-band fragments refreshing one view; made once per tick, sent to every socket."""
    with render_context(app):
        try:
            return render_template("live/view_frame.html",
                                   **view_context(view.window, view.service))
        finally:
            # Ticker threads live forever: hand the connection back to the pool every tick.
            db.session.remove()


def render_alert_banner(app: Flask, event: dict) -> str:
    """A banner announcing that an alert fired or resolved."""
    with render_context(app):
        return render_template("live/alert_banner.html", event=event,
                               banner_id=f"alert-{uuid.uuid4().hex[:12]}")
