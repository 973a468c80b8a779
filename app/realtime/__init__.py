"""Live pages: dashboard frames, alert banners and the tail over WebSockets, fanned out
through Redis pub/sub so every web process serves the same frames to its own sockets."""


import redis
from flask import Flask, current_app

from app.alerts.signals import alert_changed
from app.ingest.signals import lines_stored
from app.realtime.frames import render_alert_banner, render_view_frame
from app.realtime.hub import Hub, connection_count, publish
from app.realtime.sockets import ALERTS
from app.realtime.sockets import bp as sockets_bp
from app.realtime.tail import publish_lines
from app.redis_extras import try_redis

__all__ = ["close_sockets", "init_app", "live_connections", "publish_alert"]


def live_connections(app: Flask | None = None) -> int | None:
    """Open live sockets across every process, or None while Redis does not answer."""
    try:
        return connection_count(app or current_app._get_current_object())
    except redis.RedisError:
        return None


def publish_alert(event: dict) -> int:
    """Show an alert as a banner on every open dashboard now; return the processes reached.

    event: service, level, event ("firing" or "resolved"), current_count, threshold and
    optionally at (ISO time). Needs an app context. A banner is a courtesy on top of the
    alert's real deliveries, so a Redis failure is logged and reported as 0, never raised.
    """
    app = current_app._get_current_object()
    banner = render_alert_banner(app, event)
    return try_redis("alert banner", lambda: publish(app, ALERTS, banner), 0)


def close_sockets(app: Flask) -> None:
    """Close this process's live sockets with "restarting" (gunicorn's worker_exit hook).

    Otherwise a worker told to stop waits for its sockets' threads until gunicorn kills it,
    and the pages would only reconnect then.
    """
    app.extensions["logdash.live"].stop()


def begin_closing_sockets(app: Flask) -> None:
    """Start closing this process's live sockets with "restarting", without waiting (the
    worker's SIGTERM handler): each closes within a second."""
    app.extensions["logdash.live"].begin_stopping()


def _show_alert(app: Flask, event: dict) -> None:
    """Show an alert that alerting announced as a banner on every dashboard."""
    publish_alert(event)


def init_app(app: Flask) -> None:
    """Give the app its hub, its socket routes, the tail feed and the footer's count."""
    app.extensions["logdash.live"] = Hub(app, render_view_frame)
    app.register_blueprint(sockets_bp)
    lines_stored.connect(publish_lines, app)
    alert_changed.connect(_show_alert, app, weak=False)

    @app.context_processor
    def live_connection_count():
        """Let templates show the live connection count (asked only where shown)."""
        return {"live_connections": lambda: live_connections(app)}
