"""The alerts and API tokens pages: forms under the JSON API's rules with errors shown
inline, read-only for viewers, the CSRF token on every change, untrusted text escaped."""

import re
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import text

from app.alerts.configs import create_config, get_config
from app.auth.credentials import create_token, create_user, find_token
from app.extensions import db
from app.models import AlertConfig, ApiToken
from tests.alert_fixtures import Receiver, run_jobs
from tests.helpers import post_logs, scalar
from tests.test_access import PASSWORD, session_csrf, sign_in
from tests.test_alerts_delivery import fire, fire_and_fail
from tests.test_web import HOSTILE, HOSTILE_SERVICE, element, page

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Every field the config forms show, with a value the rules refuse.
BAD_CONFIG = {"service": " ", "error_threshold_per_min": "0", "warning_threshold_per_min": "many",
              "alert_email": "oncall", "alert_webhook_url": "ftp://hooks.example.com/x",
              "repeat_interval_minutes": "99999"}


def person(app, role: str, csrf: bool = True):
    """A cookie-keeping client signed in through the form as a new person of the role; with
    csrf it sends the session's token on every request, as app.js does for HTMX."""
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    name = f"{role}-{'csrf' if csrf else 'bare'}"
    create_user(name, PASSWORD, role)
    assert sign_in(client, name).status_code == 302
    if csrf:
        client.environ_base["HTTP_X_CSRF_TOKEN"] = session_csrf(client)
    client.environ_base["HTTP_HX_REQUEST"] = "true"
    return client


@pytest.fixture
def admin(app):
    """A signed-in admin whose changes carry the CSRF token."""
    return person(app, "admin")


@pytest.fixture
def viewer(app):
    """A signed-in viewer whose requests carry the CSRF token (refused all the same)."""
    return person(app, "viewer")


def body(response, status: int = 200) -> str:
    """The HTML of an answer, checking its status."""
    assert response.status_code == status, response.data[:500]
    return response.get_data(as_text=True)


def new_config(**fields) -> AlertConfig:
    """A config made with the API's function (for 'api' unless a service is given)."""
    return create_config({"service": "api", **fields})


def field_error(html: str, form_id: str, name: str) -> str | None:
    """The error shown under a form's field, as HTML text, or None."""
    match = re.search(rf'id="{form_id}-{name}-error">([^<]*)<', html)
    return match.group(1) if match else None


def config_row() -> dict:
    """The one stored config's settings, read straight from the table."""
    row = db.session.execute(text(
        "SELECT service, error_threshold_per_min, alert_email, enabled FROM logs.alert_configs"
    )).mappings().one()
    return dict(row)


# The alerts page

def test_alerts_page_lists_every_config_as_the_api_does(admin):
    """Each config's card shows the API's values, with the controls an admin has."""
    new_config(error_threshold_per_min=20, alert_email="oncall@example.com")
    new_config(service="web", alert_webhook_url="http://127.0.0.1:9/hook", enabled=False)
    html = page(admin, "/alerts")
    for config in admin.get("/api/logs/alerts/config").json["configs"]:
        card = element(html, f"alert-config-{config['id']}")
        assert f">{config['service']}</a></h3>" in card
        assert f"more than {config['error_threshold_per_min']} a minute" in card
        assert f"more than {config['warning_threshold_per_min']} a minute" in card
        assert str(config["alert_email"] or config["alert_webhook_url"]) in card
        state, button = ("enabled", ">Disable<") if config["enabled"] else ("disabled", ">Enable<")
        assert f'badge health-{"ok" if config["enabled"] else "silent"}">{state}<' in card
        assert button in card and ">Send test alert<" in card and ">Rotate secret<" in card
    assert 'id="alert-create"' in html
    for config in AlertConfig.query.all():
        assert config.webhook_secret not in html


def test_viewers_see_alerts_without_any_control(client, viewer):
    """Configs, violations and deliveries are all there; no form, no button, no change."""
    fire_and_fail(client)
    html = page(viewer, "/alerts")
    assert ">api</a></h3>" in html
    assert "receiver answered 404" in element(html, "alert-deliveries")
    assert ">firing<" in element(html, "alert-violations")
    main = html.split("<main", 1)[1].split("</main>")[0]
    assert "<form" not in main and "<button" not in main
    assert not re.search(r"hx-(post|put|delete)=", main)
    assert ">Tokens</a>" not in html
    config_id = get_config("api").id
    assert page(viewer, f"/alerts/{config_id}/edit", 403)
    for method, path in [("post", "/alerts"), ("put", f"/alerts/{config_id}"),
                         ("delete", f"/alerts/{config_id}"), ("post", f"/alerts/{config_id}/test"),
                         ("post", f"/alerts/{config_id}/rotate-secret"),
                         ("post", "/alerts/deliveries/1/resend"),
                         ("post", "/alerts/violations/1/acknowledge")]:
        refused = getattr(viewer, method)(path, data={"service": "x", "enabled": "false"})
        assert refused.status_code == 403, path
        assert refused.json["error"] == "only admins can change this"
    assert config_row()["enabled"] is True
    assert scalar("SELECT count(*) FROM logs.alert_configs") == 1


def test_create_config_through_the_form(admin):
    """A new config is saved with what was typed; its secret is shown in this answer only."""
    sent = {"service": "billing", "error_threshold_per_min": "20",
            "warning_threshold_per_min": "80", "alert_email": "a@example.com, b@example.com",
            "alert_webhook_url": "http://127.0.0.1:9/hook", "repeat_interval_minutes": "15",
            "csrf_token": "ignored: the header carries it"}
    html = body(admin.post("/alerts", data=sent))
    saved = admin.get("/api/logs/alerts/config/billing").json
    assert (saved["error_threshold_per_min"], saved["warning_threshold_per_min"],
            saved["alert_email"], saved["alert_webhook_url"], saved["repeat_interval_minutes"],
            saved["enabled"]) == (20, 80, "a@example.com, b@example.com",
                                  "http://127.0.0.1:9/hook", 15, True)
    blank_form, new_card = html.split('<div hx-swap-oob="afterbegin:#alert-config-list">')
    assert 'id="alert-create-service" name="service" value=""' in blank_form
    secret = get_config("billing").webhook_secret
    assert f'<code id="alert-secret-{saved["id"]}">{secret}</code>' in new_card
    assert "shown only now" in new_card
    assert secret not in page(admin, "/alerts")


def test_create_form_shows_the_api_reasons_next_to_each_field(admin, client):
    """The same refused values give the JSON API's reasons, each under its own field."""
    reasons = client.post("/api/logs/alerts/config", json=BAD_CONFIG).json["fields"]
    assert set(reasons) == set(BAD_CONFIG)
    html = body(admin.post("/alerts", data=BAD_CONFIG))
    for name, reason in reasons.items():
        assert field_error(html, "alert-create", name) == escape(reason)
        assert f'id="alert-create-{name}" name="{name}" value="{escape(BAD_CONFIG[name])}"' in html
        assert f'aria-describedby="alert-create-{name}-error"' in html
    assert scalar("SELECT count(*) FROM logs.alert_configs") == 0


def test_create_for_a_service_that_has_a_config_is_an_inline_error(admin):
    """A second config for one service is refused at the service field."""
    new_config()
    html = body(admin.post("/alerts", data={"service": "api"}))
    assert field_error(html, "alert-create", "service") == "already has an alert config"
    assert scalar("SELECT count(*) FROM logs.alert_configs") == 1


def test_unknown_fields_are_named_above_the_form(admin):
    """A field the form does not have (sent by hand) is refused with its name."""
    html = body(admin.post("/alerts", data={"service": "api", "colour": "red"}))
    assert "colour: is not a field of an alert config" in html
    assert scalar("SELECT count(*) FROM logs.alert_configs") == 0


def test_edit_shows_a_bad_value_inline_then_saves_a_good_one(admin):
    """The edit form is filled from the config; a refused value changes nothing."""
    config = new_config(error_threshold_per_min=20)
    form = body(admin.get(f"/alerts/{config.id}/edit"))
    assert form.startswith(f'<form id="alert-config-{config.id}"')
    assert 'name="error_threshold_per_min" value="20"' in form
    assert f'hx-put="/alerts/{config.id}"' in form
    refused = body(admin.put(f"/alerts/{config.id}", data={"error_threshold_per_min": "-3",
                                                           "alert_email": "ops@example.com"}))
    assert field_error(refused, f"alert-config-{config.id}", "error_threshold_per_min") == (
        "must be a whole number from 1 to 1000000000")
    assert 'value="-3"' in refused and 'value="ops@example.com"' in refused
    assert config_row()["error_threshold_per_min"] == 20
    assert config_row()["alert_email"] is None
    saved = body(admin.put(f"/alerts/{config.id}", data={"error_threshold_per_min": "35",
                                                         "alert_email": "ops@example.com"}))
    assert saved.startswith(f'<article id="alert-config-{config.id}"')
    assert "more than 35 a minute" in saved and "ops@example.com" in saved
    assert admin.get("/api/logs/alerts/config/api").json["error_threshold_per_min"] == 35


def test_config_forms_ask_for_a_backtest_preview_as_values_change(admin):
    """Each form has a preview box that asks again as inputs change, sending the form's
    service and thresholds; the edit form, which has no service field, sends its service."""
    config = new_config(service=HOSTILE_SERVICE)
    edit_form = body(admin.get(f"/alerts/{config.id}/edit"))
    for html, form_id in [(edit_form, f"alert-config-{config.id}"),
                          (page(admin, "/alerts"), "alert-create")]:
        box = element(html, f"{form_id}-backtest")
        assert 'hx-get="/partials/alerts/backtest" hx-target="this" hx-swap="innerHTML"' in box
        assert f'hx-trigger="load, input changed delay:400ms from:#{form_id}"' in box
        included = re.search(r'hx-include="([^"]+)"', box).group(1).split(", ")
        names = [sel.removeprefix(f"#{form_id}-") for sel in included]
        assert names == ["service", "error_threshold_per_min", "warning_threshold_per_min",
                         "for_minutes"]
        present = [name for name in names if f'id="{form_id}-{name}"' in html]
        assert present == (names if form_id == "alert-create" else names[1:])
    edit_box = element(edit_form, f"alert-config-{config.id}-backtest")
    assert "hx-vals='{\"service\": \"\\u003cscript\\u003ealert(\\u0027svc\\u0027)" in edit_box


def test_cancel_puts_the_card_back_and_edit_links_open_the_form(admin):
    """GET /alerts/ID is the card; /alerts?edit=ID opens that config's form on the page."""
    config = new_config()
    assert body(admin.get(f"/alerts/{config.id}")).startswith(
        f'<article id="alert-config-{config.id}"')
    html = page(admin, f"/alerts?edit={config.id}")
    assert f'<form id="alert-config-{config.id}" class="alert-config is-editing"' in html


def test_disable_and_enable(admin):
    """Disabling ends the service's firing episodes (as the API does); enabling restores."""
    config = new_config()
    db.session.execute(text(
        "INSERT INTO logs.alert_violations (config_id, service, level, current_count,"
        " threshold_value) VALUES (:id, 'api', 'error', 500, 100)"), {"id": config.id})
    db.session.commit()
    card = body(admin.put(f"/alerts/{config.id}", data={"enabled": "false"}))
    assert "health-silent\">disabled<" in card and ">Enable<" in card
    assert 'hx-vals=\'{"enabled": true}\'' in card
    assert config_row()["enabled"] is False
    assert scalar("SELECT resolution FROM logs.alert_violations") == "config disabled"
    card = body(admin.put(f"/alerts/{config.id}", data={"enabled": "true"}))
    assert ">Disable<" in card and config_row()["enabled"] is True


def test_delete_removes_the_config(admin):
    """A deleted config is gone from the API and the page; deleting twice is a 404."""
    config = new_config()
    assert body(admin.delete(f"/alerts/{config.id}")) == ""
    assert admin.get("/api/logs/alerts/config/api").status_code == 404
    assert f'id="alert-config-{config.id}"' not in page(admin, "/alerts")
    assert admin.delete(f"/alerts/{config.id}").status_code == 404


def test_rotate_secret_shows_the_new_one_once(admin):
    """The card answering a rotation holds the new secret, which is the stored one."""
    config = new_config()
    old = config.webhook_secret
    card = body(admin.post(f"/alerts/{config.id}/rotate-secret"))
    db.session.expire_all()
    new = get_config("api").webhook_secret
    assert new != old
    assert f'<code id="alert-secret-{config.id}">{new}</code>' in card
    assert new not in page(admin, "/alerts")


def test_send_test_alert_queues_one_per_channel(admin, receiver):
    """The button sends what POST .../test sends, and the delivery log shows it at once."""
    config = new_config(alert_webhook_url=receiver.url)
    html = body(admin.post(f"/alerts/{config.id}/test"))
    assert f"Test alert queued: webhook to {receiver.url}." in html
    log = html.split('<div id="alert-activity"', 1)[1]
    assert 'hx-swap-oob="true"' in log.split(">", 1)[0]
    assert ">test</td>" in log and ">pending<" in log
    run_jobs(until=lambda: receiver.requests)
    assert [b["event"] for b in receiver.bodies()] == ["test"]
    assert receiver.bodies()[0]["service"] == "api"


def test_send_test_alert_without_channels_says_why(admin, client):
    """Nowhere to send: the card says so in the API's words, and nothing is queued."""
    config = new_config()
    api_error = client.post("/api/logs/alerts/config/api/test").json["error"]
    html = body(admin.post(f"/alerts/{config.id}/test"))
    assert f'<p class="notice-error" role="status">{api_error}.</p>' in html
    assert scalar("SELECT count(*) FROM logs.alert_deliveries") == 0


def test_violations_list_firing_first_then_resolved(admin):
    """Firing violations come first, then resolved ones, each group newest first."""
    db.session.execute(text(
        "INSERT INTO logs.alert_violations (service, level, current_count, threshold_value,"
        " timestamp, resolved_at, resolution) VALUES"
        " ('old-resolved', 'error', 150, 100, now() - interval '3 hours',"
        "  now() - interval '2 hours', 'recovered'),"
        " ('firing', 'warning', 90, 50, now() - interval '4 hours', NULL, NULL),"
        " ('new-resolved', 'error', 120, 100, now() - interval '1 hour', now(), 'recovered')"))
    db.session.commit()
    table = element(page(admin, "/alerts"), "alert-violations")
    shown = re.findall(r'<a class="strong" href="/services/([^"]+)">', table)
    assert shown == ["firing", "new-resolved", "old-resolved"]
    assert table.count(">firing</span>") == 1 and table.count(">resolved</span>") == 2
    assert "recovered" in table and ">90</td>" in table
    assert re.findall(r'href="/alerts/violations/\d+">(\w+)</a></td>', table) == [
        "Acknowledge", "Details", "Details"]


def test_delivery_log_and_resend(admin, client):
    """Each attempt shows status, code, error and attempt; only failed ones can be re-sent."""
    receiver = Receiver(statuses=(404, 200))
    try:
        fire(client, receiver)
        run_jobs()
        failed = scalar("SELECT id FROM logs.alert_deliveries")
        log = element(page(admin, "/alerts"), "alert-deliveries")
        row = element(log, f"delivery-{failed}")
        assert ">failed<" in row and ">404</td>" in row and "receiver answered 404" in row
        assert ">firing</td>" in row and f'hx-post="/alerts/deliveries/{failed}/resend"' in row
        html = body(admin.post(f"/alerts/deliveries/{failed}/resend"))
        assert html.startswith('<div id="alert-activity"')
        assert f"Queued attempt 2 of the webhook to {receiver.url}." in html
        assert ">pending<" in element(html, "alert-deliveries")
        run_jobs()
    finally:
        receiver.stop()
    rows = db.session.execute(text(
        "SELECT attempt, status, delivery_id FROM logs.alert_deliveries ORDER BY id")).all()
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "success")]
    assert rows[0].delivery_id == rows[1].delivery_id
    log = element(page(admin, "/alerts"), "alert-deliveries")
    assert log.count(">Re-send<") == 0  # the failed attempt was sent again, successfully
    succeeded = scalar("SELECT id FROM logs.alert_deliveries WHERE status = 'success'")
    again = body(admin.post(f"/alerts/deliveries/{succeeded}/resend"))
    assert f"delivery {succeeded} is success, not failed." in again
    assert admin.post("/alerts/deliveries/999999/resend").status_code == 404


def test_activity_partial_is_the_page_section(admin):
    """The poll answers the same section the page holds, polling itself."""
    partial = body(admin.get("/partials/alerts/activity"))
    assert partial.startswith('<div id="alert-activity" hx-get="/partials/alerts/activity"'
                              ' hx-trigger="every 10s"')
    assert element(partial, "alert-deliveries") == element(page(admin, "/alerts"),
                                                           "alert-deliveries")


@pytest.mark.parametrize("path", ["/alerts/999", "/alerts/999/edit"])
def test_unknown_config_is_a_404(admin, path):
    """A config id that does not exist is a 404."""
    assert admin.get(path).status_code == 404
    assert admin.put("/alerts/999", data={"enabled": "true"}).status_code == 404
    assert admin.post("/alerts/999/test").status_code == 404


def test_service_page_shows_its_alert_config(app, admin, client):
    """A service's page shows its config and, for admins, a link that opens its form."""
    post_logs(client, [{"service": "api", "message": "hi"},
                                        {"service": "web", "message": "hi"}])
    config = new_config(error_threshold_per_min=7)
    section = element(page(admin, "/services/api"), "service-alert-config")
    assert "more than 7 a minute" in section
    assert f'href="/alerts?edit={config.id}#alert-config-{config.id}"' in section
    assert "hx-put" not in section
    bare = element(page(admin, "/services/web"), "service-alert-config")
    assert "has no alert config" in bare and 'href="/alerts?service=web#alert-create"' in bare
    assert 'id="alert-create-service" name="service" value="web"' in page(
        admin, "/alerts?service=web")
    viewer = person(app, "viewer")
    seen = element(page(viewer, "/services/api"), "service-alert-config")
    assert "more than 7 a minute" in seen and "/alerts?edit=" not in seen


# API tokens

def test_tokens_page_lists_every_token_without_values(admin, anonymous_client):
    """Name, prefix, scope, pin, created, last used and revoked; a button for live ones."""
    pinned, plain = create_token("vector on web-1", "ingest", "web")
    revoked, _ = create_token("old script", "read")
    admin.delete(f"/settings/tokens/{revoked.id}")
    anonymous_client.get("/api/logs", headers={"Authorization": f"Bearer {plain}"})
    html = page(admin, "/settings/tokens")
    listed = {t["id"]: t for t in admin.get("/api/tokens").json["tokens"]}
    row = element(html, f"token-{pinned.id}")
    assert ">vector on web-1<" in row and f">{listed[pinned.id]['prefix']}…<" in row
    assert ">ingest<" in row and ">web<" in row and ">Revoke this token<" in row
    assert "just now" in row and plain not in html
    gone = element(html, f"token-{revoked.id}")
    assert "revoked just now" in gone and "Revoke<" not in gone and ">never<" in gone


def test_tokens_page_is_for_admins_only(app, viewer, anonymous_client):
    """Viewers and read tokens get a 403, though they may read every other page."""
    assert "Only admins can see and change API tokens." in page(viewer, "/settings/tokens", 403)
    read = {"Authorization": f"Bearer {create_token('reader', 'read')[1]}", "Accept": "text/html"}
    assert anonymous_client.get("/settings/tokens", headers=read).status_code == 403
    token, _ = create_token("keep", "ingest")
    assert viewer.post("/settings/tokens", data={"name": "mine"}).status_code == 403
    assert viewer.delete(f"/settings/tokens/{token.id}").status_code == 403
    assert scalar("SELECT count(*) FROM logs.api_tokens WHERE revoked_at IS NULL") == 2


def test_create_token_through_the_form(admin, anonymous_client):
    """The value is shown once and works at once; a bad name is refused in the form."""
    html = body(admin.post("/settings/tokens", data={"name": "grafana", "scope": "read",
                                                     "service": " "}))
    plain = re.search(r'<code id="new-token-value">(ld_[^<]+)</code>', html).group(1)
    assert "New read token “grafana”" in html
    assert anonymous_client.get("/api/logs",
                                headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    made = db.session.scalars(db.select(ApiToken).where(ApiToken.name == "grafana")).one()
    assert made.scope == "read" and made.service is None
    assert f'id="token-{made.id}"' in html
    assert plain not in page(admin, "/settings/tokens")
    refused = body(admin.post("/settings/tokens", data={"name": "", "scope": "root"}))
    assert "name must be 1 to 100 printable characters" in refused
    assert "new-token-value" not in refused
    assert scalar("SELECT count(*) FROM logs.api_tokens WHERE name = ''") == 0


def test_revoke_token_through_the_form(admin, anonymous_client):
    """Revoked at once: the row says so and the token is refused."""
    token, plain = create_token("ci", "read")
    row = body(admin.delete(f"/settings/tokens/{token.id}"))
    assert row.startswith(f'<tr id="token-{token.id}" class="is-revoked">')
    assert "revoked just now" in row
    assert find_token(plain) is None
    assert anonymous_client.get("/api/logs",
                                headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    assert admin.delete("/settings/tokens/999999").status_code == 404


# Access, CSRF, escaping, no inline code

def test_navigation_links(app, admin):
    """Everyone gets Alerts; only admins get Tokens."""
    html = page(admin, "/")
    assert '<a href="/alerts">Alerts</a>' in html
    assert '<a href="/settings/tokens">Tokens</a>' in html
    assert '<a href="/settings/tokens">' not in page(person(app, "viewer"), "/")


def test_every_change_without_the_csrf_token_is_refused(app):
    """An admin's cookie alone changes nothing: each form route answers 403."""
    config = new_config()
    token, _ = create_token("keep", "read")
    forger = person(app, "admin", csrf=False)
    for method, path, data in [
        ("post", "/alerts", {"service": "new"}),
        ("put", f"/alerts/{config.id}", {"enabled": "false"}),
        ("delete", f"/alerts/{config.id}", {}),
        ("post", f"/alerts/{config.id}/test", {}),
        ("post", f"/alerts/{config.id}/rotate-secret", {}),
        ("post", "/alerts/deliveries/1/resend", {}),
        ("post", "/alerts/violations/1/acknowledge", {}),
        ("post", "/settings/tokens", {"name": "forged"}),
        ("delete", f"/settings/tokens/{token.id}", {}),
    ]:
        refused = getattr(forger, method)(path, data=data)
        assert refused.status_code == 403, path
        assert "CSRF" in refused.json["error"]
    db.session.expire_all()
    assert config_row() == {"service": "api", "error_threshold_per_min": 100,
                            "alert_email": None, "enabled": True}
    assert get_config("api").webhook_secret == config.webhook_secret
    assert scalar("SELECT count(*) FROM logs.api_tokens WHERE revoked_at IS NULL") == 1
    assert scalar("SELECT count(*) FROM logs.api_tokens WHERE name = 'forged'") == 0
    wrong = forger.put(f"/alerts/{config.id}", data={"enabled": "false"},
                       headers={"X-CSRF-Token": "guessed"})
    assert wrong.status_code == 403


def test_hostile_text_is_escaped_on_the_alert_and_token_pages(admin, client):
    """Service names, URLs, receivers' errors, token names and echoed input stay text."""
    post_logs(client, [{"service": HOSTILE_SERVICE, "message": "x"}])
    config = new_config(service=HOSTILE_SERVICE,
                        alert_webhook_url="http://127.0.0.1:9/<script>alert(1)</script>")
    db.session.execute(text(
        "INSERT INTO logs.alert_violations (service, level, current_count, threshold_value)"
        " VALUES (:s, 'error', 5, 1)"), {"s": HOSTILE_SERVICE})
    db.session.execute(text(
        "INSERT INTO logs.alert_deliveries (delivery_id, config_id, service, channel, target,"
        " event, attempt, status, response_code, error, payload) VALUES ('d1', :c, :s, 'webhook',"
        " :t, 'firing', 1, 'failed', 400, :e, '{}')"),
        {"c": config.id, "s": HOSTILE_SERVICE, "t": config.alert_webhook_url, "e": HOSTILE})
    db.session.commit()
    create_token(HOSTILE, "ingest", HOSTILE_SERVICE)
    answers = [page(admin, "/alerts"), page(admin, "/settings/tokens"),
               body(admin.get(f"/alerts/{config.id}/edit")),
               body(admin.get("/partials/alerts/activity")),
               page(admin, "/services/%3Cscript%3Ealert('svc')%3C%2Fscript%3E"),
               body(admin.post("/alerts", data={"service": HOSTILE_SERVICE,
                                                "alert_email": "<script>x</script>@a.b"})),
               body(admin.post("/settings/tokens", data={"name": HOSTILE,
                                                         "service": HOSTILE_SERVICE}))]
    for html in answers:
        assert "<script>alert" not in html and "<script>x" not in html
        assert HOSTILE not in html
        assert "&lt;script&gt;" in html or "&lt;img" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in element(answers[0], "alert-deliveries")


@pytest.mark.parametrize("path", ["/alerts", "/settings/tokens", "/services/api",
                                  "/alerts?edit={id}", "/alerts/{id}/edit"])
def test_pages_have_no_inline_script_or_style(admin, client, path):
    """The CSP forbids inline code: only the app's own script files, no style attributes."""
    post_logs(client, [{"service": "api", "message": "x"}])
    config = new_config(alert_email="a@example.com")
    html = body(admin.get(path.format(id=config.id), headers={"Accept": "text/html"}))
    assert all('src="/static/' in tag for tag in re.findall(r"<script([^>]*)>", html))
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=|javascript:", html)


def test_no_template_marks_text_safe():
    """Nothing rendered bypasses autoescaping: no |safe and no Markup in any template."""
    for template in TEMPLATES.rglob("*.html"):
        source = template.read_text()
        assert "|safe" not in source.replace(" ", ""), template
        assert "Markup" not in source and "autoescape false" not in source, template


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/alerts/{id}"), ("GET", "/alerts/{id}/edit"), ("PUT", "/alerts/{id}"),
    ("DELETE", "/alerts/{id}"), ("POST", "/alerts/{id}/test"),
    ("POST", "/alerts/deliveries/{id}/resend"), ("DELETE", "/settings/tokens/{id}"),
    ("POST", "/api/logs/alerts/deliveries/{id}/resend"), ("DELETE", "/api/tokens/{id}"),
    ("GET", "/alerts/violations/{id}"),
])
@pytest.mark.parametrize("missing_id", [987654, 10**15, 10**20])
def test_ids_that_name_nothing_are_404(admin, method, path, missing_id):
    """An id no row has, even one too large for its column, is not found (not a 400 about
    a value PostgreSQL cannot store)."""
    response = admin.open(path.format(id=missing_id), method=method)
    assert response.status_code == 404, response.data[:300]


def test_deliveries_of_a_violation_id_too_large_are_none(client):
    """Filtering the delivery log by an id no violation can have finds nothing."""
    answer = client.get("/api/logs/alerts/deliveries?violation_id=99999999999999999999")
    assert answer.status_code == 200 and answer.json["deliveries"] == []
