"""Silences and maintenance windows on the alerts page, and the page a "silence for 1 h" link
opens. Forms follow the JSON API's rules (app/alerts/silences.py); every change answers the
whole section, re-rendered, for HTMX to swap in. As on the rest of the alerts page, answers
carrying validation errors are 200s: they are the fragment (or page) to show.
"""

from flask import abort, redirect, render_template, request, url_for

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
)
from app.auth.access import actor
from app.auth.csrf import FIELD as CSRF_FIELD
from app.models import MaintenanceWindow
from app.stats.dashboard import service_names
from app.web import bp
from app.web.filters import clock

SECTION = "partials/alert_silences.html"
NEW_SILENCE = {"duration_minutes": 60}
NEW_WINDOW = {"time_zone": "UTC"}


@bp.app_template_global("silences_panel")
def silences_panel(**shown) -> dict:
    """What the section shows: live silences, every window, blank forms (unless `shown`)."""
    return {"silences": list_silences({}), "windows": list_windows(),
            "services": service_names(), "notice": None,
            "silence_values": NEW_SILENCE, "silence_errors": {},
            "window_values": NEW_WINDOW, "window_errors": {}, **shown}


def _section(**shown) -> str:
    """The whole section, as the fragment every change answers with."""
    return render_template(SECTION, panel=silences_panel(**shown))


def _notice(kind: str, text: str) -> dict:
    """A line for the top of the section."""
    return {"kind": kind, "text": text}


def _form_data() -> dict:
    """The fields filled in: no CSRF token, and blanks left out (a blank means the default);
    the weekday boxes as a list."""
    data = {name: value for name, value in request.form.items()
            if name not in (CSRF_FIELD, "weekdays") and value.strip()}
    if request.form.getlist("weekdays"):
        data["weekdays"] = request.form.getlist("weekdays")
    return data


def _window(window_id: int) -> MaintenanceWindow:
    """The maintenance window with this id, or a 404."""
    window = get_window(window_id)
    if window is None:
        abort(404, description=f"No maintenance window with id {window_id}.")
    return window


def _covers(rule: dict) -> str:
    """Whom a silence or window covers, in words."""
    service = rule["service"] if rule["service"] is not None else "all services"
    return f"{service} ({rule['level'] + 's' if rule['level'] else 'both levels'})"


@bp.get("/alerts/silences/new")
def new_silence_page():
    """The form, prefilled from ?service=&level=&minutes= (the link in alert notifications)."""
    values = {"service": request.args.get("service", ""),
              "level": request.args.get("level", ""),
              "duration_minutes": request.args.get("minutes", NEW_SILENCE["duration_minutes"])}
    return render_template("silence_new.html", macros_only=True, values=values, errors={},
                           services=service_names())


@bp.post("/alerts/silences/new")
def create_silence_page():
    """Create the silence and show it; errors come back in the form."""
    data = _form_data()
    try:
        silence = create_silence(data, actor())
    except InvalidSilence as error:
        return render_template("silence_new.html", macros_only=True, values=data,
                               errors=error.fields, services=service_names())
    return redirect(url_for("web.silence_page", silence_id=silence.id), 303)


@bp.get("/alerts/silences/<int:silence_id>")
def silence_page(silence_id: int):
    """One silence: what it covers, until when, by whom."""
    silence = get_silence(silence_id)
    if silence is None:
        abort(404, description=f"No silence with id {silence_id}.")
    return render_template("silence_new.html", macros_only=True, silence=silence_dict(silence))


@bp.post("/alerts/silences")
def create_silence_form():
    """Create a silence from the alerts page; errors come back in its form."""
    data = _form_data()
    try:
        silence = silence_dict(create_silence(data, actor()))
    except InvalidSilence as error:
        return _section(silence_values=data, silence_errors=error.fields)
    return _section(notice=_notice("ok", f"Silenced {_covers(silence)} until"
                                         f" {clock(silence['ends_at'])} UTC."))


@bp.post("/alerts/silences/<int:silence_id>/expire")
def expire_silence_form(silence_id: int):
    """End a silence now: from the alerts page's list (htmx), or from its own page, which
    then shows it ended."""
    silence = get_silence(silence_id)
    if silence is None:
        abort(404, description=f"No silence with id {silence_id}.")
    try:
        expire_silence(silence, actor())
        notice = _notice("ok", f"Silence of {_covers(silence_dict(silence))} expired.")
    except AlreadyEnded as error:
        notice = _notice("error", f"{str(error).capitalize()}.")
    if "HX-Request" not in request.headers:  # its own page's form: that page says it ended
        return redirect(url_for("web.silence_page", silence_id=silence_id), 303)
    return _section(notice=notice)


@bp.post("/alerts/maintenance-windows")
def create_window_form():
    """Create a maintenance window from the alerts page; errors come back in its form."""
    data = _form_data()
    try:
        create_window(data, actor())
    except InvalidSilence as error:
        return _section(window_values=data, window_errors=error.fields)
    return _section(notice=_notice("ok", "Maintenance window created."))


@bp.put("/alerts/maintenance-windows/<int:window_id>")
def update_window_form(window_id: int):
    """Switch a window on or off (or change the fields sent)."""
    try:
        window = update_window(_window(window_id), _form_data())
    except InvalidSilence as error:
        return _section(notice=_notice("error", "; ".join(
            f"{name}: {reason}" for name, reason in sorted(error.fields.items()))))
    state = "enabled" if window.enabled else "disabled"
    return _section(notice=_notice("ok", f"Maintenance window {state}."))


@bp.delete("/alerts/maintenance-windows/<int:window_id>")
def delete_window_form(window_id: int):
    """Delete a maintenance window."""
    delete_window(_window(window_id))
    return _section(notice=_notice("ok", "Maintenance window deleted."))
