"""The alerts page: configs changed through HTMX forms under the JSON API's rules (with a
backtest preview of the thresholds being typed), violations and the delivery log; and each
violation's own page, explained, with its Acknowledge button. Viewers see everything without
a single form or button.

Form answers that carry validation errors are 200s: they are the fragment to show (the form
with its errors), and a 4xx would make htmx drop it and the browser log an error.
"""

from flask import abort, get_template_attribute, redirect, render_template, request, url_for
from markupsafe import Markup

from app.alerts.acknowledge import NotFiring, acknowledge
from app.alerts.backtest import BadParameter, UnknownService, backtest, settings_for
from app.alerts.configs import (
    DEFAULTS,
    ConfigExists,
    InvalidConfig,
    create_config,
    delete_config,
    get_config,
    list_configs,
    rotate_secret,
    to_dict,
    update_config,
)
from app.alerts.deliver import RESENDABLE, NotResendable, resend
from app.alerts.explain import explain
from app.alerts.notify import NoChannels, send_test
from app.alerts.views import get_violation, list_deliveries, list_violations, violation_dict
from app.auth.access import actor, asker_is_admin
from app.auth.csrf import FIELD as CSRF_FIELD
from app.models import AlertConfig, AlertDelivery, row_by_id
from app.stats.dashboard import service_names
from app.web import bp

CONFIG_MACROS = "partials/alert_config.html"
# How much history the page shows under the configs.
RESOLVED_SHOWN = 20
DELIVERIES_SHOWN = 50


@bp.app_template_global("may_change")
def may_change() -> bool:
    """Whether the asker may change settings (asker_is_admin): the access policy refuses
    changes by anyone else; this only decides what pages offer."""
    return asker_is_admin()


def require_admin(what: str) -> None:
    """Refuse viewers and read tokens with a 403 naming what they may not do."""
    if not may_change():
        abort(403, description=f"Only admins can {what}.")


@bp.app_template_global("alert_config_for")
def alert_config_for(service: str) -> dict | None:
    """A service's alert config as the API shows it (for its page), or None."""
    config = get_config(service)
    return to_dict(config) if config else None


def _form_data() -> dict:
    """The submitted fields minus the CSRF token, which the config rules would call unknown."""
    return {name: value for name, value in request.form.items() if name != CSRF_FIELD}


def _config(config_id: int) -> AlertConfig:
    """The config with this id, or a 404."""
    config = row_by_id(AlertConfig, config_id)
    if config is None:
        abort(404, description=f"No alert config with id {config_id}.")
    return config


def _macro(name: str, *args, **kwargs) -> Markup:
    """One macro of the config partials, rendered as the fragment HTMX swaps in."""
    return get_template_attribute(CONFIG_MACROS, name)(*args, **kwargs)


def _fragments(*parts: str) -> str:
    """Several rendered fragments as one answer (joined as text: each is escaped already)."""
    return "".join(parts)


def _new_config_values() -> dict:
    """What a blank create form holds: the defaults, and ?service= (from a service's page)."""
    return {"service": request.args.get("service", ""), **DEFAULTS}


def _create_form(values: dict | None = None, errors: dict | None = None) -> Markup:
    """The create form: blank, or what was sent with the reason for each error."""
    values = _new_config_values() if values is None else values
    return _macro("create_form", values, errors or {}, service_names())


def _activity(notice: dict | None = None) -> dict:
    """Violations (every firing one, then the latest resolved) and the newest attempts."""
    firing = list_violations({"status": "firing", "limit": 1000})
    resolved = list_violations({"status": "resolved", "limit": RESOLVED_SHOWN})
    return {"violations": firing + resolved, "resendable": RESENDABLE, "notice": notice,
            "deliveries": list_deliveries({"limit": DELIVERIES_SHOWN})}


def _activity_fragment(notice: dict | None = None, oob: bool = False) -> str:
    """The violations and delivery log, to swap in whole (out of band when oob)."""
    return render_template("partials/alert_activity.html", oob=oob, **_activity(notice))


@bp.get("/alerts")
def alerts_page():
    """Every config (?edit=ID opens one for editing), the create form, violations, log."""
    return render_template("alerts.html", configs=[to_dict(c) for c in list_configs()],
                           editing=request.args.get("edit", type=int),
                           new_values=_new_config_values(), services=service_names(),
                           **_activity())


@bp.get("/partials/alerts/activity")
def alert_activity_partial():
    """Violations and deliveries alone, polled by the alerts page."""
    return _activity_fragment()


@bp.post("/alerts")
def create_alert_config_form():
    """Create a config; answer a blank form, and the new card (with its secret) for the list."""
    data = _form_data()
    try:
        config = create_config(data)
    except InvalidConfig as error:
        return _create_form(data, error.fields)
    except ConfigExists:
        return _create_form(data, {"service": "already has an alert config"})
    card = _macro("card", to_dict(config), secret=config.webhook_secret,
                  oob="afterbegin:#alert-config-list")
    return _fragments(_create_form(), card)


@bp.get("/alerts/<int:config_id>")
def alert_config_card(config_id: int):
    """One config's card (what Cancel puts back in place of the edit form)."""
    return _macro("card", to_dict(_config(config_id)))


@bp.get("/alerts/<int:config_id>/edit")
def edit_alert_config_form(config_id: int):
    """One config's edit form, filled with what is saved."""
    require_admin("edit alert configs")
    config = to_dict(_config(config_id))
    return _macro("edit_form", config, config, {})


@bp.put("/alerts/<int:config_id>")
def update_alert_config_form(config_id: int):
    """Save the fields sent (the edit form, or enabled alone); errors come back inline."""
    config = _config(config_id)
    data = _form_data()
    try:
        update_config(config, data)
    except InvalidConfig as error:
        return _macro("edit_form", to_dict(config), {**to_dict(config), **data}, error.fields)
    return _macro("card", to_dict(config))


@bp.delete("/alerts/<int:config_id>")
def delete_alert_config_form(config_id: int):
    """Delete a config; the page removes its card."""
    delete_config(_config(config_id))
    return ""


@bp.post("/alerts/<int:config_id>/rotate-secret")
def rotate_alert_secret_form(config_id: int):
    """Give the config a new signing secret and show it, this once."""
    config = rotate_secret(_config(config_id))
    return _macro("card", to_dict(config), secret=config.webhook_secret)


@bp.post("/alerts/<int:config_id>/test")
def test_alert_form(config_id: int):
    """Send a test notification on every channel; say where, and refresh the log."""
    config = _config(config_id)
    try:
        sent = send_test(config)
    except NoChannels as error:
        return _macro("card", to_dict(config), notice={"kind": "error", "text": f"{error}."})
    where = ", ".join(f"{delivery.channel} to {delivery.target}" for delivery in sent)
    notice = {"kind": "ok", "text": f"Test alert queued: {where}."}
    return _fragments(_macro("card", to_dict(config), notice=notice),
                      _activity_fragment(oob=True))


@bp.post("/alerts/deliveries/<int:delivery_id>/resend")
def resend_delivery_form(delivery_id: int):
    """Queue a failed notification again (same delivery id); answer the refreshed log."""
    delivery = row_by_id(AlertDelivery, delivery_id)
    if delivery is None:
        abort(404, description=f"No delivery with id {delivery_id}.")
    try:
        retry = resend(delivery)
    except NotResendable as error:
        return _activity_fragment({"kind": "error", "text": f"{error}."})
    return _activity_fragment({"kind": "ok", "text": f"Queued attempt {retry.attempt} of the"
                                                     f" {retry.channel} to {retry.target}."})


def duration(minutes: int) -> str:
    """A span people read at a glance: '7 days', '1 day 4 h', '3 h 20 min', '45 min'."""
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}" if days else "",
             f"{hours} h" if hours else "", f"{minutes} min" if minutes and not days else ""]
    return " ".join(part for part in parts if part) or "0 min"


@bp.get("/partials/alerts/backtest")
def backtest_partial():
    """The config forms' preview: how often the thresholds typed would have fired."""
    service = request.args.get("service", "").strip()
    if not service:
        return _macro("backtest_preview", problem="Name the service to see how often these"
                                                  " thresholds would have fired.")
    try:
        result = backtest(service, settings_for(service, request.args))
    except BadParameter as error:
        return _macro("backtest_preview", problem=f"No preview until this is fixed: {error}.")
    except UnknownService:
        return _macro("backtest_preview", problem="No preview: this service has not sent any"
                                                  " lines yet.")
    if not result["covered_minutes"]:
        return _macro("backtest_preview", problem="No preview: no minute counts are kept yet.")
    return _macro("backtest_preview", result, duration(result["covered_minutes"]))


def _violation(violation_id: int):
    """The violation with this id, or a 404."""
    violation = get_violation(violation_id)
    if violation is None:
        abort(404, description=f"No violation with id {violation_id}.")
    return violation


def _violation_page(violation, notice: dict | None = None) -> str:
    """A violation's page: what it is, and the explanation the API gives."""
    return render_template("violation.html", violation=violation_dict(violation),
                           explanation=explain(violation), notice=notice)


@bp.get("/alerts/violations/<int:violation_id>")
def violation_page(violation_id: int):
    """One violation explained, with an Acknowledge button while it fires (admins)."""
    return _violation_page(_violation(violation_id))


@bp.post("/alerts/violations/<int:violation_id>/acknowledge")
def acknowledge_violation_form(violation_id: int):
    """Acknowledge from the violation's page; back to the page (a 409 there if resolved)."""
    violation = _violation(violation_id)
    try:
        acknowledge(violation, actor())
    except NotFiring:
        notice = {"kind": "error", "text": "It is resolved already: nothing to acknowledge."}
        return _violation_page(violation, notice), 409
    return redirect(url_for("web.violation_page", violation_id=violation_id), code=303)
