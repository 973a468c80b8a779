"""The alerts and tokens pages in headless Chromium, served by gunicorn as the Procfile says:
forms that create, edit (an error shown inline first, a backtest preview as thresholds are
typed), disable and delete an alert config; a violation's page explained and acknowledged;
a token made and revoked; a firing alert's banner appearing live on an open dashboard.

Every tab fails its test on any console error, Content-Security-Policy violations included.
LOGDASH_SCREENSHOTS=1 also saves docs/screenshots/alerts.png.
"""

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import text

from app.alerts.configs import create_config
from app.alerts.evaluate import evaluate
from app.alerts.notify import notify
from app.alerts.silences import create_silence, create_window
from app.auth.credentials import create_token, create_user
from app.extensions import db
from app.realtime import publish_alert
from app.rollups.tiers import floor_minute
from tests import test_browser
from tests.alert_fixtures import Receiver, run_jobs
from tests.conftest import make_app, with_database
from tests.test_browser import (
    CHROMIUM,
    SCREENSHOTS,
    Tab,
    Web,
    demo_lines,
    new_context,
    sign_in,
    unique,
)

# The Chromium, gunicorn and signed-in viewer fixtures of test_browser.py (module-scoped:
# this module gets a gunicorn of its own).
browser, context, signed_in, web = (test_browser.browser, test_browser.context,
                                    test_browser.signed_in, test_browser.web)

ADMIN = ("ada", "a long enough admin password")
# "Within a few seconds": the banner is pushed the moment the check opens the violation.
BANNER_MS = 3000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


def served_app(server: Web, redis_url: str):
    """An app on the database gunicorn serves, for setting things up in-process."""
    return make_app(with_database(server.admin_url, server.database), redis_url, server.prefix)


def add_admin(server: Web, redis_url: str) -> dict:
    """Create the admin person and an admin token there; return the token's headers."""
    application = served_app(server, redis_url)
    with application.app_context():
        create_user(*ADMIN, role="admin")
        headers = {"Authorization": f"Bearer {create_token('browser admin', 'admin')[1]}"}
        db.engine.dispose()
    return headers


@pytest.fixture(scope="module")
def admin_token(web, redis_url):
    """Headers with an admin token of the served installation (which has an admin person)."""
    return add_admin(web, redis_url)


@pytest.fixture
def admin_context(browser, web, admin_token):
    """A browser profile signed in as the admin through the sign-in form."""
    ctx = new_context(browser, sign_in(browser, web, ADMIN))
    yield ctx
    ctx.close()


class Api:
    """The JSON API of the served installation, with the admin token."""

    def __init__(self, web: Web, headers: dict) -> None:
        """Remember where and how to ask."""
        self.url, self.headers = web.url, headers

    def config(self, service: str) -> requests.Response:
        """GET one service's alert config."""
        return requests.get(f"{self.url}/api/logs/alerts/config/{service}",
                            headers=self.headers, timeout=10)

    def post(self, path: str, **kwargs) -> requests.Response:
        """POST to an API path."""
        return requests.post(f"{self.url}{path}", headers=self.headers, timeout=10, **kwargs)


@pytest.fixture
def api(web, admin_token):
    """The admin's JSON API."""
    return Api(web, admin_token)


def test_alert_config_lifecycle_through_the_forms(web, admin_context, api):
    """Create, edit (refused value shown inline, then saved), disable and delete."""
    service = unique("billing")
    tab = Tab(admin_context, web, "/alerts")
    create = tab.page.locator("#alert-create")
    create.locator('[name="service"]').fill(service)
    create.locator('[name="error_threshold_per_min"]').fill("20")
    create.locator('[name="alert_email"]').fill("oncall@example.com")
    create.get_by_role("button", name="Create alert config").click()
    expect(create.locator('[name="service"]')).to_have_value("")
    config_id = api.config(service).json()["id"]
    card = tab.page.locator(f"#alert-config-{config_id}")
    expect(card).to_contain_text("more than 20 a minute")
    expect(card.locator(f"#alert-secret-{config_id}")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))

    card.get_by_role("button", name="Edit").click()
    form = tab.page.locator(f"form#alert-config-{config_id}")
    form.locator('[name="error_threshold_per_min"]').fill("0")
    form.locator('[name="alert_webhook_url"]').fill("ftp://hooks.example.com/x")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(f"#alert-config-{config_id}-error_threshold_per_min-error")).to_have_text(
        "must be a whole number from 1 to 1000000000")
    expect(form.locator(f"#alert-config-{config_id}-alert_webhook_url-error")).to_have_text(
        "must be an http or https URL")
    # Focus goes to the first field in error, not back to the page's start.
    expect(form.locator('[name="error_threshold_per_min"]')).to_be_focused()
    assert api.config(service).json()["error_threshold_per_min"] == 20
    form.locator('[name="error_threshold_per_min"]').fill("35")
    form.locator('[name="alert_webhook_url"]').fill("")
    form.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("more than 35 a minute")
    assert api.config(service).json()["error_threshold_per_min"] == 35

    card.get_by_role("button", name="Disable").click()
    expect(card.locator(".badge")).to_have_text("disabled")
    assert api.config(service).json()["enabled"] is False

    card.get_by_text("Delete…").click()
    card.get_by_role("button", name=f"Delete the alert config of {service}").click()
    expect(card).to_have_count(0)
    assert api.config(service).status_code == 404
    tab.check_clean()


def test_secret_is_gone_after_a_reload(web, admin_context, api):
    """The secret shown once does not come back on the next visit; rotating shows a new one."""
    service = unique("hooks")
    secret = api.post("/api/logs/alerts/config", json={"service": service}).json()[
        "webhook_secret"]
    tab = Tab(admin_context, web, "/alerts")
    card = tab.page.locator(".alert-config", has=tab.page.get_by_text(service, exact=True))
    expect(card).to_be_visible()
    expect(tab.page.locator("main")).not_to_contain_text(secret)
    card.get_by_role("button", name="Rotate secret").click()
    rotated = card.locator("[id^=alert-secret-]")
    expect(rotated).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    assert rotated.inner_text() != secret
    tab.check_clean()


def test_token_is_created_and_revoked(web, admin_context):
    """The value is shown once and works; once revoked, it is refused at once."""
    name = unique("grafana")
    tab = Tab(admin_context, web, "/settings/tokens")
    tab.page.fill("#token-name", name)
    tab.page.select_option("#token-scope", "read")
    tab.page.get_by_role("button", name="Create token").click()
    value = tab.page.locator("#new-token-value").inner_text()
    assert value.startswith("ld_")
    bearer = {"Authorization": f"Bearer {value}"}
    assert requests.get(f"{web.url}/api/logs", headers=bearer, timeout=10).status_code == 200
    row = tab.page.locator("#token-rows tr", has_text=name)
    expect(row).to_contain_text("read")
    row.locator("summary", has_text="Revoke…").click()  # a second click revokes
    assert requests.get(f"{web.url}/api/logs", headers=bearer, timeout=10).status_code == 200
    row.get_by_role("button", name="Revoke this token").click()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button")).to_have_count(0)
    assert requests.get(f"{web.url}/api/logs", headers=bearer, timeout=10).status_code == 401
    tab.check_clean()


def test_viewer_sees_alerts_read_only(web, context, api):
    """The viewer sees the configs and no control at all."""
    service = unique("readonly")
    assert api.post("/api/logs/alerts/config", json={"service": service}).status_code == 201
    tab = Tab(context, web, "/alerts")
    expect(tab.page.locator("#alert-config-list")).to_contain_text(service)
    expect(tab.page.locator("main button, main form")).to_have_count(0)
    tab.check_clean()


@pytest.mark.parametrize("path", ["/alerts", "/alerts/silences/new", "/settings/tokens"])
def test_admin_pages_fit_a_phone(web, browser, admin_token, api, path):
    """At 375 px the pages with cards and forms need no sideways scroll."""
    api.post("/api/logs/alerts/config", json={"service": unique("phone")})
    ctx = new_context(browser, sign_in(browser, web, ADMIN), width=375)
    try:
        tab = Tab(ctx, web, path)
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide"
        tab.check_clean()
    finally:
        ctx.close()


def test_a_firing_alert_shows_its_banner_live(web, context, api, redis_url):
    """An open dashboard shows the banner within seconds of the check, without a reload;
    its resolution's banner then takes its place."""
    service = unique("paging")
    created = api.post("/api/logs/alerts/config",
                       json={"service": service, "error_threshold_per_min": 3})
    assert created.status_code == 201
    dashboard = Tab(context, web, "/")
    web.ingest([{"service": service, "level": "error", "message": f"boom {i}"}
                for i in range(5)])
    check = api.post("/api/logs/alerts/check")
    assert service in [v["service"] for v in check.json()["opened"]]
    banner = dashboard.page.locator("#alert-banners .banner-firing", has_text=service)
    expect(banner).to_be_visible(timeout=BANNER_MS)
    expect(banner).to_contain_text("threshold 3")
    with served_app(web, redis_url).app_context():
        publish_alert({"service": service, "level": "error", "event": "resolved",
                       "current_count": 5, "peak_count": 5, "threshold": 3})
        db.engine.dispose()
    resolved = dashboard.page.locator("#alert-banners .banner-resolved", has_text=service)
    expect(resolved).to_be_visible(timeout=BANNER_MS)
    expect(banner).to_have_count(0)
    dashboard.check_clean()


def seed(web: Web, redis_url: str, sql: str, rows: list[dict]) -> None:
    """Run one statement per row on the served installation's database."""
    application = served_app(web, redis_url)
    with application.app_context():
        db.session.execute(text(sql), rows)
        db.session.commit()
        db.engine.dispose()


def test_edit_form_previews_how_often_a_threshold_would_have_fired(web, redis_url,
                                                                   admin_context, api):
    """Typing a threshold shows, before saving, how often it would have fired."""
    service = unique("preview")
    now = floor_minute(datetime.now(UTC))
    counts = {now - timedelta(days=8): 1, **{now - timedelta(hours=3, minutes=i): 15
                                             for i in range(4)},
              **{now - timedelta(days=2, minutes=i): 40 for i in range(9)}}
    seed(web, redis_url, "INSERT INTO logs.rollup_minute (minute, service, level, count)"
         " VALUES (:minute, :service, 'error', :count)",
         [{"minute": m, "service": service, "count": n} for m, n in counts.items()])
    seed(web, redis_url, "INSERT INTO logs.services (service, first_seen, last_seen)"
         " VALUES (:service, now(), now())", [{"service": service}])
    config_id = api.post("/api/logs/alerts/config", json={
        "service": service, "error_threshold_per_min": 100}).json()["id"]
    tab = Tab(admin_context, web, f"/alerts?edit={config_id}")
    preview = tab.page.locator(f"#alert-config-{config_id}-backtest #backtest-error")
    expect(preview).to_have_text("Would not have fired in the last 7 days")
    tab.page.locator(f"#alert-config-{config_id}-error_threshold_per_min").fill("10")
    expect(preview).to_have_text("Would have fired 2 times in the last 7 days,"
                                 " longest episode 9 min")
    tab.page.locator(f"#alert-config-{config_id}-for_minutes").fill("5")
    expect(preview).to_have_text("Would have fired once in the last 7 days,"
                                 " longest episode 9 min")
    assert api.config(service).json()["error_threshold_per_min"] == 100
    tab.check_clean()


def test_violation_page_shows_hostile_templates_as_text_and_acknowledges(web, redis_url,
                                                                         admin_context, api):
    """Template text is shown literally (no dialog, no console error); Acknowledge works."""
    service = unique("explained")
    started = floor_minute(datetime.now(UTC)) - timedelta(minutes=20)
    hostile = "<img src=x onerror=alert(1)> payment failed"
    seed(web, redis_url, "INSERT INTO logs.rollup_minute (minute, service, level, count)"
         " VALUES (:minute, :service, 'error', 9)",
         [{"minute": started + timedelta(minutes=i), "service": service} for i in range(3)])
    seed(web, redis_url, "INSERT INTO logs.template_minute (minute, service, level, fingerprint,"
         " count) VALUES (:minute, :service, 'error', 'f00d', 9)",
         [{"minute": started + timedelta(minutes=i), "service": service} for i in range(3)])
    seed(web, redis_url, "INSERT INTO logs.templates (service, level, fingerprint, template,"
         " sample, first_seen, last_seen) VALUES (:service, 'error', 'f00d', :t, :t, now(),"
         " now())", [{"service": service, "t": hostile}])
    seed(web, redis_url, "INSERT INTO logs.alert_violations (service, level, current_count,"
         " peak_count, threshold_value, timestamp) VALUES (:service, 'error', 9, 9, 5, :at)",
         [{"service": service, "at": started}])
    violation = requests.get(f"{api.url}/api/logs/alerts/violations?service={service}",
                             headers=api.headers, timeout=10).json()["violations"][0]
    tab = Tab(admin_context, web, f"/alerts/violations/{violation['id']}")
    templates = tab.page.locator("#violation-templates tbody tr").first
    expect(templates).to_contain_text(hostile)
    expect(templates).to_contain_text("27")
    expect(tab.page.locator("#violation-templates img")).to_have_count(0)
    tab.page.get_by_role("button", name="Acknowledge").click()
    expect(tab.page.locator("#acknowledge")).to_contain_text(f"Acknowledged by {ADMIN[0]}")
    assert requests.get(f"{api.url}/api/logs/alerts/violations/{violation['id']}",
                        headers=api.headers, timeout=10).json()["acknowledged_by"] == ADMIN[0]
    assert tab.dialogs == [] and tab.errors == []


@pytest.mark.skipif(os.environ.get("LOGDASH_SCREENSHOTS") != "1",
                    reason="set LOGDASH_SCREENSHOTS=1 to refresh docs/screenshots/")
def test_save_alerts_screenshots(postgres_admin_url, redis_url, queue_prefix, browser, tmp_path):
    """/alerts as an admin sees it: configs, a firing alert, and a log with a failed send."""
    demo = Web(postgres_admin_url, redis_url, f"{queue_prefix}-alert-shots", tmp_path / "web.log")
    receivers = [Receiver(), Receiver(statuses=(410,))]
    try:
        demo.ingest(demo_lines())
        demo.ingest([{"service": "billing", "level": "error",
                      "message": f"payment {i:08x} declined: card expired"} for i in range(14)]
                    + [{"service": "checkout", "level": "warning",
                        "message": "slow query took 2100ms"} for _ in range(9)])
        add_admin(demo, redis_url)
        application = served_app(demo, redis_url)
        with application.app_context():
            for fields in [
                {"service": "billing", "error_threshold_per_min": 10,
                 "alert_email": "payments-oncall@example.com",
                 "alert_webhook_url": receivers[0].url},
                {"service": "checkout", "warning_threshold_per_min": 5,
                 "alert_webhook_url": receivers[1].url, "repeat_interval_minutes": 30},
                {"service": "search", "alert_email": "search-team@example.com",
                 "enabled": False},
            ]:
                create_config(fields)
            notify(evaluate())
            run_jobs()
            create_silence({"service": "checkout", "duration_minutes": 120,
                            "comment": "deploying checkout 4.2"}, ADMIN[0])
            create_window({"weekdays": ["sat"], "start_time": "22:00", "end_time": "02:00",
                           "time_zone": "Europe/Berlin", "comment": "database upkeep"},
                          ADMIN[0])
            violation_id = db.session.scalars(text(
                "SELECT id FROM logs.alert_violations WHERE service = 'billing'")).first()
            db.session.remove()
            db.engine.dispose()
        ctx = new_context(browser, sign_in(browser, demo, ADMIN))
        tab = Tab(ctx, demo, "/alerts")
        expect(tab.page.locator("#alert-deliveries .badge", has_text="failed")).to_have_count(1)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.page.screenshot(path=SCREENSHOTS / "alerts.png", full_page=True)
        tab.check_clean()
        tab = Tab(ctx, demo, f"/alerts/violations/{violation_id}")
        tab.page.screenshot(path=SCREENSHOTS / "alert-violation.png", full_page=True)
        tab.check_clean()
        ctx.close()
    finally:
        for receiver in receivers:
            receiver.stop()
        demo.stop()


@pytest.mark.parametrize("width", [390, 1024])
def test_wide_tables_fit_the_screen_whatever_people_typed(web, browser, admin_token, api,
                                                          width):
    """Long unbroken names and comments wrap, and narrow screens stack each row: no table
    scrolls sideways, so every row's buttons stay in view."""
    unbroken = "x" * 100
    assert api.post("/api/tokens", json={"name": unbroken, "scope": "read"}).status_code == 201
    assert api.post("/api/logs/alerts/silences", json={
        "service": unique("quiet"), "duration_minutes": 30, "comment": unbroken * 3,
    }).status_code == 201
    ctx = new_context(browser, sign_in(browser, web, ADMIN), width=width)
    try:
        for path in ("/docs/api", "/settings/tokens", "/alerts"):
            tab = Tab(ctx, web, path)
            overflowing = tab.page.evaluate(
                "[...document.querySelectorAll('.table-wrap')]"
                ".filter(w => w.scrollWidth > w.clientWidth + 1)"
                ".map(w => w.querySelector('table').className)")
            assert overflowing == [], path
            tab.check_clean()
    finally:
        ctx.close()
