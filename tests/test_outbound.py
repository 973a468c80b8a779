"""Webhooks cannot reach private, loopback, link-local or metadata addresses unless allowed."""

import pytest

from app.alerts.evaluate import evaluate
from app.alerts.notify import notify
from app.security.outbound import Allowlist, BlockedAddress, check_address, guarded_session
from tests.alert_fixtures import run_jobs
from tests.helpers import post_logs, scalar


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
                                     "fd00:ec2::254", "fe80::1", "::ffff:127.0.0.1",
                                     "224.0.0.1",
                                     # IPv6 forms carrying a private IPv4 address: NAT64,
                                     # 6to4, IPv4-compatible, IPv4-translated; and
                                     # local-use NAT64, whatever it carries.
                                     "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::127.0.0.1",
                                     "::ffff:0:a00:1", "64:ff9b:1::a00:5",
                                     "64:ff9b:1:a00:5:0:5db8:d822",
                                     # deprecated site-local, which Python counts as global
                                     "fec0::1"])
def test_non_public_addresses_are_refused(address):
    """Every special-purpose range is refused without an allowlist entry."""
    with pytest.raises(BlockedAddress, match="LOGDASH_WEBHOOK_ALLOW"):
        check_address("host.example", address, Allowlist(""))


def test_public_addresses_and_allowlisted_ones_pass():
    """Public addresses pass; CIDRs and host names in the allowlist open others."""
    check_address("hooks.example", "93.184.216.34", Allowlist(""))
    check_address("hooks.example", "2606:4700::1111", Allowlist(""))
    check_address("hooks.example", "64:ff9b::5db8:d822", Allowlist(""))  # NAT64 of a public one
    check_address("x", "10.1.2.3", Allowlist("10.0.0.0/8"))
    check_address("hooks.internal", "192.168.1.9", Allowlist(" hooks.internal. , 1.2.3.4"))
    with pytest.raises(BlockedAddress):
        check_address("other.internal", "192.168.1.9", Allowlist("hooks.internal"))


def test_guarded_session_refuses_before_connecting():
    """The check happens at connect time, by resolved address, names included."""
    with guarded_session("") as session:
        for url in ("http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/"):
            with pytest.raises(BlockedAddress):
                session.post(url, data=b"{}", timeout=2)


def test_config_with_a_private_webhook_is_refused(app, client, monkeypatch):
    """Saving a webhook that resolves to a private address names the setting to change."""
    monkeypatch.setitem(app.config, "LOGDASH_WEBHOOK_ALLOW", "")
    response = client.post("/api/logs/alerts/config", json={
        "service": "api", "alert_webhook_url": "http://localhost:8080/hook"})
    assert response.status_code == 400
    assert "LOGDASH_WEBHOOK_ALLOW" in response.json["fields"]["alert_webhook_url"]
    response = client.post("/api/logs/alerts/config", json={
        "service": "api", "alert_webhook_url": "http://169.254.169.254/latest/meta-data"})
    assert response.status_code == 400


def test_allowlist_removed_after_saving_blocks_at_send_time(app, client, receiver,
                                                            monkeypatch):
    """A destination allowed when saved but refused when sending is not contacted."""
    client.post("/api/logs/alerts/config", json={
        "service": "api", "error_threshold_per_min": 1, "alert_webhook_url": receiver.url})
    monkeypatch.setitem(app.config, "LOGDASH_WEBHOOK_ALLOW", "")
    post_logs(client, [{"service": "api", "level": "error", "message": "x"}] * 2)
    notify(evaluate())
    run_jobs()
    assert receiver.requests == []
    assert scalar("SELECT status FROM logs.alert_deliveries") == "failed"
    assert scalar("SELECT error FROM logs.alert_deliveries").startswith("refused:")


def test_redirects_are_not_followed(client, receiver):
    """A 3xx answer is recorded as a failure, never followed."""
    receiver.statuses = [302]
    receiver.headers_to_send = {"Location": "http://169.254.169.254/latest/meta-data"}
    client.post("/api/logs/alerts/config", json={
        "service": "api", "error_threshold_per_min": 1, "alert_webhook_url": receiver.url})
    post_logs(client, [{"service": "api", "level": "error", "message": "x"}] * 2)
    notify(evaluate())
    run_jobs()
    assert len(receiver.requests) == 1
    assert scalar("SELECT response_code FROM logs.alert_deliveries") == 302
    assert scalar("SELECT status FROM logs.alert_deliveries") == "failed"
