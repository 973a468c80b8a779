"""Alert configs over the JSON API: create, list, show, partial update, delete, errors."""

import pytest


def create(client, **fields):
    """POST a config for service 'api' with the given fields."""
    return client.post("/api/logs/alerts/config", json={"service": "api", **fields})


def test_create_applies_defaults_and_shows_the_secret_once(client):
    """201 with the seed's defaults; the signing secret appears only in this answer."""
    response = create(client, alert_webhook_url="https://hooks.example.com/x")
    assert response.status_code == 201
    body = response.json
    assert body["service"] == "api"
    assert body["error_threshold_per_min"] == 100
    assert body["warning_threshold_per_min"] == 50
    assert body["enabled"] is True
    assert body["repeat_interval_minutes"] == 60
    assert len(body["webhook_secret"]) == 64
    shown = client.get("/api/logs/alerts/config/api").json
    assert "webhook_secret" not in shown
    assert "webhook_secret" not in client.get("/api/logs/alerts/config").json["configs"][0]


def test_duplicate_service_is_409(client):
    """A service has at most one config."""
    assert create(client).status_code == 201
    response = create(client)
    assert response.status_code == 409
    assert "already has an alert config" in response.json["error"]


def test_invalid_fields_are_each_named(client):
    """Every bad field is listed with its reason."""
    response = client.post("/api/logs/alerts/config", json={
        "service": "", "error_threshold_per_min": 0, "warning_threshold_per_min": "many",
        "alert_email": "not-an-email", "alert_webhook_url": "ftp://example.com/x",
        "enabled": "perhaps", "colour": "red"})
    assert response.status_code == 400
    fields = response.json["fields"]
    assert set(fields) == {"service", "error_threshold_per_min", "warning_threshold_per_min",
                           "alert_email", "alert_webhook_url", "enabled", "colour"}
    assert fields["error_threshold_per_min"] == "must be a whole number from 1 to 1000000000"
    assert "not a valid email address" in fields["alert_email"]
    assert fields["alert_webhook_url"] == "must be an http or https URL"


@pytest.mark.parametrize("url", ["https://a..com/hook", "https://%zz/hook",
                                 f"https://{'x' * 64}.example.com/hook", "http://-a.com/"])
def test_a_webhook_host_dns_cannot_hold_is_refused_by_name(client, url):
    """An empty label, one over 63 characters, a percent sign or a leading hyphen: no
    request could ever reach such a host, and the reason says which part is wrong."""
    response = client.post("/api/logs/alerts/config",
                           json={"service": "api", "alert_webhook_url": url})
    assert response.status_code == 400
    assert response.json["fields"]["alert_webhook_url"].startswith("has an invalid host name")


@pytest.mark.parametrize("body", [None, "[1, 2]", "plain text"])
def test_body_that_is_not_an_object_is_400(client, body):
    """Only a JSON object can be a config."""
    response = client.post("/api/logs/alerts/config", data=body,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "body must be a JSON object"


def test_partial_update_keeps_other_fields(client):
    """PUT changes only what it sends."""
    create(client, alert_email="oncall@example.com", error_threshold_per_min=20)
    response = client.put("/api/logs/alerts/config/api", json={"warning_threshold_per_min": 7})
    assert response.status_code == 200
    assert response.json["warning_threshold_per_min"] == 7
    assert response.json["error_threshold_per_min"] == 20
    assert response.json["alert_email"] == "oncall@example.com"
    bad = client.put("/api/logs/alerts/config/api", json={"error_threshold_per_min": -1})
    assert bad.status_code == 400
    assert client.get("/api/logs/alerts/config/api").json["error_threshold_per_min"] == 20


def test_an_update_that_changes_nothing_keeps_updated_at(client):
    """updated_at moves only when a value does: it bounds how far back a check looks for
    episodes it missed, which a PUT of the same settings must not cut short."""
    made = create(client, alert_email="oncall@example.com", for_minutes=2).json
    same = client.put("/api/logs/alerts/config/api", json={
        "alert_email": "oncall@example.com", "for_minutes": 2, "enabled": True})
    assert same.status_code == 200
    assert same.json["updated_at"] == made["updated_at"]
    changed = client.put("/api/logs/alerts/config/api", json={"for_minutes": 3})
    assert changed.json["updated_at"] > made["updated_at"]


def test_several_emails_and_clearing_a_channel(client):
    """Comma-separated recipients are accepted; an empty value removes the channel."""
    create(client, alert_email="a@example.com,b@example.org")
    assert client.get("/api/logs/alerts/config/api").json["alert_email"] == (
        "a@example.com, b@example.org")
    cleared = client.put("/api/logs/alerts/config/api", json={"alert_email": ""}).json
    assert cleared["alert_email"] is None


def test_unknown_service_is_404_everywhere(client):
    """Show, update, delete, test and rotate all 404 for a service without a config."""
    for method, path in [("get", ""), ("put", ""), ("delete", ""), ("post", "/test"),
                         ("post", "/rotate-secret")]:
        response = getattr(client, method)(f"/api/logs/alerts/config/ghost{path}", json={})
        assert response.status_code == 404, (method, path)
        assert "ghost" in response.json["error"]


def test_delete_and_rotate(client):
    """Rotation gives a new secret; deletion removes the config."""
    first = create(client).json["webhook_secret"]
    second = client.post("/api/logs/alerts/config/api/rotate-secret").json["webhook_secret"]
    assert second != first
    assert client.delete("/api/logs/alerts/config/api").status_code == 204
    assert client.get("/api/logs/alerts/config/api").status_code == 404
    assert client.get("/api/logs/alerts/config").json == {"configs": []}
