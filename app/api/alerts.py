"""Alert JSON API: configs and their backtest, a check on demand, violations (explained,
acknowledged) and the delivery log."""

from flask import jsonify, request

from app.alerts.acknowledge import NotFiring, acknowledge
from app.alerts.backtest import BadParameter, UnknownService, backtest, settings_for
from app.alerts.configs import (
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
from app.alerts.deliver import NotResendable, resend
from app.alerts.evaluate import evaluate
from app.alerts.explain import explain
from app.alerts.notify import NoChannels, notify, send_test
from app.alerts.views import (
    delivery_dict,
    get_violation,
    list_deliveries,
    list_violations,
    violation_dict,
)
from app.api import bp
from app.auth.access import actor
from app.models import AlertDelivery, row_by_id
from app.search import BadSearch


def json_object_body() -> dict | None:
    """The request's JSON object, or None when the body is not one."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested past what the decoder follows: not a config either
        return None
    return data if isinstance(data, dict) else None


def invalid_fields(error: InvalidConfig | ValueError):
    """A 400 naming every invalid field (the error carries them in `.fields`)."""
    return jsonify(error=str(error), fields=error.fields), 400


def _config_or_404(service: str):
    """The service's config, or a 404 answer."""
    config = get_config(service)
    if config is None:
        return None, (jsonify(error=f"no alert config for service {service!r}"), 404)
    return config, None


@bp.post("/logs/alerts/config")
def create_alert_config():
    """Create a service's config; the webhook signing secret is in this answer only."""
    data = json_object_body()
    if data is None:
        return jsonify(error="body must be a JSON object"), 400
    try:
        config = create_config(data)
    except InvalidConfig as error:
        return invalid_fields(error)
    except ConfigExists:
        return jsonify(error=f"service {data['service']!r} already has an alert config"), 409
    return jsonify(to_dict(config, with_secret=True)), 201


@bp.get("/logs/alerts/config")
def list_alert_configs():
    """Every config."""
    return jsonify(configs=[to_dict(config) for config in list_configs()])


@bp.get("/logs/alerts/config/<service:service>")
def show_alert_config(service: str):
    """One service's config."""
    config, missing = _config_or_404(service)
    return missing or jsonify(to_dict(config))


@bp.put("/logs/alerts/config/<service:service>")
def update_alert_config(service: str):
    """Change the fields sent; the others stay as they are."""
    config, missing = _config_or_404(service)
    if missing:
        return missing
    data = json_object_body()
    if data is None:
        return jsonify(error="body must be a JSON object"), 400
    try:
        return jsonify(to_dict(update_config(config, data)))
    except InvalidConfig as error:
        return invalid_fields(error)


@bp.delete("/logs/alerts/config/<service:service>")
def delete_alert_config(service: str):
    """Delete a config; its firing episodes end without a notice."""
    config, missing = _config_or_404(service)
    if missing:
        return missing
    delete_config(config)
    return "", 204


@bp.post("/logs/alerts/config/<service:service>/rotate-secret")
def rotate_alert_secret(service: str):
    """Replace the webhook signing secret; the new one is in this answer only."""
    config, missing = _config_or_404(service)
    return missing or jsonify(to_dict(rotate_secret(config), with_secret=True))


@bp.post("/logs/alerts/config/<service:service>/test")
def test_alert(service: str):
    """Send a test notification on every channel of the config, once, without retries."""
    config, missing = _config_or_404(service)
    if missing:
        return missing
    try:
        deliveries = send_test(config)
    except NoChannels as error:
        return jsonify(error=str(error)), 400
    return jsonify(deliveries=[delivery_dict(d) for d in deliveries]), 202


@bp.get("/logs/alerts/config/<service:service>/backtest")
def backtest_alert_config(service: str):
    """How often the given thresholds and `for` (default: the saved ones) would have fired."""
    try:
        return jsonify(backtest(service, settings_for(service, request.args)))
    except BadParameter as error:
        return jsonify(error=str(error)), 400
    except UnknownService:
        return jsonify(error=f"service {service!r} has never sent a line"), 404


@bp.post("/logs/alerts/check")
def check_alerts_now():
    """Evaluate every threshold now; answer the violations this check opened."""
    events = evaluate()
    notify(events)
    opened = [e.violation for e in events
              if e.event == "firing" and not e.repeat and not e.after_silence]
    return jsonify(opened=[violation_dict(v) for v in opened],
                   resolved=[violation_dict(e.violation) for e in events
                             if e.event == "resolved"])


@bp.get("/logs/alerts/violations")
def alert_violations():
    """Violations, newest first, filtered by service, status and time."""
    try:
        return jsonify(violations=list_violations(request.args))
    except BadSearch as error:
        return jsonify(error=str(error)), 400


@bp.get("/logs/alerts/deliveries")
def alert_deliveries():
    """The delivery log: every attempt, newest first."""
    try:
        return jsonify(deliveries=list_deliveries(request.args))
    except BadSearch as error:
        return jsonify(error=str(error)), 400


@bp.post("/logs/alerts/deliveries/<int:delivery_id>/resend")
def resend_delivery(delivery_id: int):
    """Send a failed notification again, with the same delivery id."""
    delivery = row_by_id(AlertDelivery, delivery_id)
    if delivery is None:
        return jsonify(error=f"no delivery with id {delivery_id}"), 404
    try:
        return jsonify(delivery_dict(resend(delivery))), 202
    except NotResendable as error:
        return jsonify(error=str(error)), 409


def _violation_or_404(violation_id: int):
    """The violation, or a 404 answer."""
    violation = get_violation(violation_id)
    if violation is None:
        return None, (jsonify(error=f"no violation with id {violation_id}"), 404)
    return violation, None


@bp.get("/logs/alerts/violations/<int:violation_id>")
def alert_violation(violation_id: int):
    """One violation with its explanation: counts around it, top templates, deliveries."""
    violation, missing = _violation_or_404(violation_id)
    return missing or jsonify({**violation_dict(violation), "explanation": explain(violation)})


@bp.post("/logs/alerts/violations/<int:violation_id>/acknowledge")
def acknowledge_violation(violation_id: int):
    """Acknowledge a firing violation: no repeat notifications until it resolves."""
    violation, missing = _violation_or_404(violation_id)
    if missing:
        return missing
    try:
        return jsonify(violation_dict(acknowledge(violation, actor())))
    except NotFiring as error:
        return jsonify(error=str(error)), 409
