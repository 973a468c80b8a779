"""Silences and maintenance windows JSON API: create, list, expire early; change, delete."""

from flask import jsonify, request

from app.alerts.silences import (
    AlreadyEnded,
    InvalidSilence,
    create_silence,
    create_window,
    delete_window,
    expire_silence,
    get_silence,
    get_window,
    list_silences,
    list_windows,
    silence_dict,
    update_window,
    window_dict,
)
from app.api import bp
from app.api.alerts import invalid_fields, json_object_body
from app.auth.access import actor

NOT_AN_OBJECT = "body must be a JSON object"


def _missing(kind: str, item_id: int):
    """A 404 naming what was not found."""
    return jsonify(error=f"no {kind} with id {item_id}"), 404


@bp.post("/logs/alerts/silences")
def create_alert_silence():
    """Silence a service (or all) and optionally one level, for a duration or until a time."""
    data = json_object_body()
    if data is None:
        return jsonify(error=NOT_AN_OBJECT), 400
    try:
        return jsonify(silence_dict(create_silence(data, actor()))), 201
    except InvalidSilence as error:
        return invalid_fields(error)


@bp.get("/logs/alerts/silences")
def list_alert_silences():
    """Silences by state (?state=active,upcoming,ended; active and upcoming by default)."""
    try:
        return jsonify(silences=list_silences(request.args))
    except InvalidSilence as error:
        return invalid_fields(error)


@bp.get("/logs/alerts/silences/<int:silence_id>")
def show_alert_silence(silence_id: int):
    """One silence, with its state now."""
    silence = get_silence(silence_id)
    return jsonify(silence_dict(silence)) if silence else _missing("silence", silence_id)


@bp.post("/logs/alerts/silences/<int:silence_id>/expire")
def expire_alert_silence(silence_id: int):
    """End a silence now; 409 if it has ended already."""
    silence = get_silence(silence_id)
    if silence is None:
        return _missing("silence", silence_id)
    try:
        return jsonify(silence_dict(expire_silence(silence, actor())))
    except AlreadyEnded as error:
        return jsonify(error=str(error)), 409


@bp.post("/logs/alerts/maintenance-windows")
def create_maintenance_window():
    """A recurring silence: weekdays and a time range in a time zone."""
    data = json_object_body()
    if data is None:
        return jsonify(error=NOT_AN_OBJECT), 400
    try:
        return jsonify(window_dict(create_window(data, actor()))), 201
    except InvalidSilence as error:
        return invalid_fields(error)


@bp.get("/logs/alerts/maintenance-windows")
def list_maintenance_windows():
    """Every maintenance window, whether it holds now, and when it next starts."""
    return jsonify(windows=list_windows())


@bp.put("/logs/alerts/maintenance-windows/<int:window_id>")
def update_maintenance_window(window_id: int):
    """Change the fields sent (e.g. {"enabled": false}); the others stay."""
    window = get_window(window_id)
    if window is None:
        return _missing("maintenance window", window_id)
    data = json_object_body()
    if data is None:
        return jsonify(error=NOT_AN_OBJECT), 400
    try:
        return jsonify(window_dict(update_window(window, data)))
    except InvalidSilence as error:
        return invalid_fields(error)


@bp.delete("/logs/alerts/maintenance-windows/<int:window_id>")
def delete_maintenance_window(window_id: int):
    """Delete a maintenance window."""
    window = get_window(window_id)
    if window is None:
        return _missing("maintenance window", window_id)
    delete_window(window)
    return "", 204
