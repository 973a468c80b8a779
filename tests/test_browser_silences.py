"""Silences in headless Chromium, served by gunicorn: the "silence for 1 h" link of an alert
email opens a prefilled form whose button creates the silence; the alerts page lists it and
expires it. A hostile comment is shown as text; no tab sees a dialog or a console error.
"""

import re
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import expect

from tests import test_browser, test_browser_alerts
from tests.test_browser import CHROMIUM, Tab, unique

# The Chromium, gunicorn and admin fixtures of the other browser modules (module-scoped:
# this module gets a gunicorn of its own).
browser, signed_in, context, web = (test_browser.browser, test_browser.signed_in,
                                    test_browser.context, test_browser.web)
admin_token, admin_context, api = (test_browser_alerts.admin_token,
                                   test_browser_alerts.admin_context, test_browser_alerts.api)

HOSTILE_COMMENT = "<script>alert(1)</script>"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


def silence(api, silence_id: int) -> dict:
    """One silence as the JSON API shows it."""
    response = requests.get(f"{api.url}/api/logs/alerts/silences/{silence_id}",
                            headers=api.headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_silence_from_the_email_link_then_expire_it_on_the_alerts_page(web, admin_context, api):
    """The link's page is prefilled; its form creates the silence; /alerts expires it."""
    service = unique("checkout")
    link = "/alerts/silences/new?" + urlencode({"service": service, "level": "error",
                                                 "minutes": 60})
    tab = Tab(admin_context, web, link)
    form = tab.page.locator("form#silence-new")
    expect(form.locator('[name="service"]')).to_have_value(service)
    expect(form.locator('[name="level"]')).to_have_value("error")
    expect(form.locator('[name="duration_minutes"]')).to_have_value("60")
    form.locator('[name="comment"]').fill(HOSTILE_COMMENT)
    form.get_by_role("button", name="Create silence").click()

    expect(tab.page).to_have_url(re.compile(rf"^{re.escape(web.url)}/alerts/silences/\d+$"))
    page = tab.page.locator("#silence-page")
    expect(page.locator(".silence-comment")).to_have_text(HOSTILE_COMMENT)
    silence_id = int(tab.page.url.rsplit("/", 1)[1])
    made = silence(api, silence_id)
    assert (made["service"], made["level"], made["state"]) == (service, "error", "active")
    assert (made["comment"], made["created_by"]) == (HOSTILE_COMMENT, "ada")
    span = datetime.fromisoformat(made["ends_at"]) - datetime.fromisoformat(made["starts_at"])
    assert span == timedelta(hours=1)
    assert (tab.dialogs, tab.errors) == ([], [])

    alerts = Tab(admin_context, web, "/alerts")
    row = alerts.page.locator(f"#silence-{silence_id}")
    expect(row).to_contain_text(service)
    expect(row.locator(".silence-comment")).to_have_text(HOSTILE_COMMENT)
    row.get_by_role("button", name="Expire now").click()
    expect(row).to_have_count(0)
    expect(alerts.page.locator("#alert-silences [role=status]")).to_contain_text("expired")
    ended = silence(api, silence_id)
    assert (ended["state"], ended["expired_by"]) == ("ended", "ada")
    alerts.check_clean()


def test_a_silence_is_expired_from_its_own_page(web, admin_context, api):
    """The page an email's link leads to ends the silence it shows."""
    service = unique("payments")
    made = requests.post(f"{api.url}/api/logs/alerts/silences", headers=api.headers, timeout=10,
                         json={"service": service, "duration_minutes": 30})
    assert made.status_code == 201, made.text
    tab = Tab(admin_context, web, f"/alerts/silences/{made.json()['id']}")
    tab.page.get_by_role("button", name="Expire now").click()
    expect(tab.page.locator("#silence-page [role=status]")).to_have_text(
        "This silence has ended.")
    expect(tab.page.get_by_role("button", name="Expire now")).to_have_count(0)
    ended = silence(api, made.json()["id"])
    assert (ended["state"], ended["expired_by"]) == ("ended", "ada")
    assert (tab.dialogs, tab.errors) == ([], [])
