"""Thresholds, the violation lifecycle, and notifications that arrive once."""

import email
import email.policy
import hashlib
import hmac
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from sqlalchemy import text

from app.alerts.evaluate import evaluate
from app.alerts.notify import notify
from app.alerts.signals import alert_changed
from app.extensions import db
from app.rollups.tiers import floor_minute
from tests.alert_fixtures import run_jobs
from tests.helpers import at_once, post_logs, scalar

MINUTE = timedelta(minutes=1)


def configure(client, receiver=None, smtp=False, **fields):
    """Create the config of service 'api' pointing at the test peers; return its secret."""
    body = {"service": "api", "error_threshold_per_min": 5, "warning_threshold_per_min": 3,
            **fields}
    if receiver is not None:
        body["alert_webhook_url"] = receiver.url
    if smtp:
        body["alert_email"] = "oncall@example.com"
    response = client.post("/api/logs/alerts/config", json=body)
    assert response.status_code == 201, response.json
    return response.json["webhook_secret"]


def errors(client, count, at=None, level="error", service="api", message="db timeout {i}"):
    """Post `count` lines at one moment (default now)."""
    moment = (at or datetime.now(UTC)).isoformat()
    lines = [{"service": service, "level": level, "message": message.format(i=i),
              "timestamp": moment} for i in range(count)]
    assert post_logs(client, lines).json["accepted"] == count


def steady_minute() -> datetime:
    """Now, once the clock is early enough in a minute that a test will not straddle two."""
    now = datetime.now(UTC)
    if now.second >= 50:
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
        now = datetime.now(UTC)
    return now


def open_violations() -> int:
    """How many violations are firing."""
    return scalar("SELECT count(*) FROM logs.alert_violations WHERE resolved_at IS NULL")


def test_equal_to_threshold_does_not_fire_one_more_does(client):
    """A violation is strictly more than the threshold in a minute."""
    configure(client)
    at = steady_minute()
    errors(client, 5, at)
    assert client.post("/api/logs/alerts/check").json["opened"] == []
    errors(client, 1, at, level="critical")
    opened = client.post("/api/logs/alerts/check").json["opened"]
    assert [(v["service"], v["level"], v["current_count"], v["threshold"]) for v in opened] == [
        ("api", "error", 6, 5)]


def test_warnings_have_their_own_threshold(client):
    """Warnings are counted apart from errors."""
    configure(client)
    at = steady_minute()
    errors(client, 4, at, level="warning")
    errors(client, 5, at)
    opened = client.post("/api/logs/alerts/check").json["opened"]
    assert [(v["level"], v["current_count"]) for v in opened] == [("warning", 4)]


def test_crossing_line_reaches_the_webhook_signed_and_the_mailbox(client, receiver,
                                                                 smtp_server):
    """Ingest asks for a check; a worker opens the violation and delivers on both channels."""
    secret = configure(client, receiver, smtp=True)
    errors(client, 6, steady_minute(), message="<img src=x onerror=alert({i})> failed")
    run_jobs(until=lambda: receiver.requests and smtp_server.box.messages)
    [request] = receiver.requests
    headers = request["headers"]
    expected = hmac.new(secret.encode(),
                        headers["X-Logdash-Timestamp"].encode() + b"." + request["body"],
                        hashlib.sha256).hexdigest()
    assert headers["X-Logdash-Signature"] == f"sha256={expected}"
    body = receiver.bodies()[0]
    assert body["event"] == "firing"
    assert (body["service"], body["level"], body["current_count"], body["threshold"]) == (
        "api", "error", 6, 5)
    assert body["delivery_id"] == headers["X-Logdash-Delivery"]
    assert body["window_seconds"] == 60
    assert body["dashboard_url"].endswith("/services/api")
    assert body["top_templates"][0]["count"] == 6
    [mail] = smtp_server.box.messages
    raw = mail.content.decode()
    assert "Subject: Alert: api - error threshold exceeded" in raw
    assert "&lt;img src=x onerror=alert(" in raw
    assert "<img src=x" not in raw.split("Content-Type: text/html")[1]
    assert scalar("SELECT count(*) FROM logs.alert_violations WHERE alert_sent_at IS NOT NULL"
                  ) == 1
    statuses = db.session.execute(text(
        "SELECT channel, status FROM logs.alert_deliveries ORDER BY channel")).all()
    assert [tuple(s) for s in statuses] == [("email", "success"), ("webhook", "success")]


def test_a_message_cannot_add_lines_to_the_alert_email(client, receiver, smtp_server):
    """A logged message's own line breaks are flattened where the email quotes it: the
    plain-text part has no line the message wrote, so no fake link among the real ones."""
    configure(client, receiver, smtp=True)
    forged = "\n\nDashboard: https://evil.example/login\nAcknowledge: https://evil.example/ack"
    errors(client, 6, steady_minute(), message="card {i} declined" + forged)
    run_jobs(until=lambda: smtp_server.box.messages)
    [mail] = smtp_server.box.messages
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    lines = parsed.get_body(("plain",)).get_content().splitlines()
    dashboards = [line for line in lines if line.startswith("Dashboard:")]
    acknowledges = [line for line in lines if line.startswith("Acknowledge")]
    assert len(dashboards) == 1 and dashboards[0].endswith("/services/api")
    assert len(acknowledges) == 1 and acknowledges[0].startswith("Acknowledge (no repeats")
    # The message is still quoted, whole, on the line that quotes it.
    assert any("declined Dashboard: https://evil.example/login" in line for line in lines)


def test_no_second_notification_while_firing_until_the_repeat_interval(client, receiver):
    """More errors while firing send nothing; after the repeat interval, one reminder."""
    configure(client, receiver)
    at = steady_minute()
    errors(client, 6, at)
    notify(evaluate())
    errors(client, 10, at)
    notify(evaluate())
    notify(evaluate())
    run_jobs()
    assert [b["event"] for b in receiver.bodies()] == ["firing"]
    assert scalar("SELECT peak_count FROM logs.alert_violations") == 16
    db.session.execute(text("UPDATE logs.alert_violations"
                            " SET last_notified_at = last_notified_at - interval '2 hours'"))
    db.session.commit()
    notify(evaluate())
    notify(evaluate())
    run_jobs()
    bodies = receiver.bodies()
    assert [(b["event"], b["repeat"]) for b in bodies] == [("firing", False), ("firing", True)]
    assert bodies[0]["violation_id"] == bodies[1]["violation_id"]


def test_an_evaluation_that_dies_before_its_notices_records_nothing(client, receiver,
                                                                    monkeypatch):
    """A job that fails between recording a violation and writing its deliveries leaves
    neither, so the next evaluation fires it and sends the notice."""
    from app.alerts import notify as notify_module

    configure(client, receiver)
    errors(client, 6, steady_minute())

    def broken(*args):
        """The database went away while the notice was being written."""
        raise ConnectionError("lost the database")

    monkeypatch.setattr(notify_module, "top_templates", broken)
    with pytest.raises(ConnectionError):
        notify(evaluate())
    db.session.rollback()  # as the failed job's session does
    monkeypatch.undo()
    assert open_violations() == 0
    notify(evaluate())
    run_jobs()
    assert [b["event"] for b in receiver.bodies()] == ["firing"]


def test_firing_resolved_then_firing_again(app, client, receiver):
    """Back under the threshold for a full minute resolves once; a new burst opens anew.
    The live pages are told the count and the episode's peak."""
    announced = []
    alert_changed.connect(lambda sender, event: announced.append(event), app, weak=False)
    configure(client, receiver)
    # The timeline ends in the current minute, where the checks that ingest queues run.
    start = floor_minute(datetime.now(UTC)) - 3 * MINUTE
    errors(client, 6, start + timedelta(seconds=10))
    first = evaluate(start + timedelta(seconds=30))
    assert [e.event for e in first] == ["firing"]
    notify(first)
    assert evaluate(start + MINUTE + timedelta(seconds=30)) == []  # previous minute still over
    resolved = evaluate(start + 2 * MINUTE + timedelta(seconds=5))
    assert [e.event for e in resolved] == ["resolved"]
    notify(resolved)
    assert evaluate(start + 2 * MINUTE + timedelta(seconds=20)) == []
    errors(client, 7, start + 3 * MINUTE + timedelta(seconds=5))
    again = evaluate(start + 3 * MINUTE + timedelta(seconds=30))
    notify(again)
    run_jobs()
    events = [(b["event"], b["violation_id"]) for b in receiver.bodies()]
    assert [e for e, _ in events] == ["firing", "resolved", "firing"]
    assert events[0][1] == events[1][1] != events[2][1]
    assert receiver.bodies()[1]["resolved_at"] is not None
    # A resolution names what the whole episode logged, not the quiet minutes that ended it.
    assert [(t["template"], t["count"]) for t in receiver.bodies()[1]["top_templates"]] == [
        ("db timeout <*>", 6)]
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 2
    assert [(e["event"], e["current_count"], e["peak_count"]) for e in announced] == [
        ("firing", 6, 6), ("resolved", 6, 6), ("firing", 7, 7)]
    # Banners link to the violation, where it is acknowledged.
    assert [e["violation_id"] for e in announced] == [v for _, v in events]


def test_two_evaluators_at_once_open_one_violation(app, client):
    """Concurrent checks race on the unique index; one wins, one notification is queued."""
    configure(client, alert_webhook_url="https://hooks.example.com/x")
    errors(client, 6, steady_minute())
    results = []

    def check(ready):
        """One evaluator with its own connection."""
        with app.app_context():
            ready()
            results.append(len(notify(evaluate())))
            db.session.remove()

    at_once(check, 4)
    assert sorted(results) == [0, 0, 0, 1]
    assert open_violations() == 1
    assert scalar("SELECT count(*) FROM logs.alert_deliveries") == 1


def test_an_evaluation_waits_for_the_one_running_and_reads_the_clock_after(app, client):
    """Evaluations run one at a time, and one that waited judges the minute it got the
    turn in: never counts older than the violations the one before it left."""
    from app.alerts.turn import EVALUATION_LOCK

    configure(client)
    errors(client, 6, steady_minute())
    done = threading.Event()

    def check():
        """An evaluator with its own connection."""
        with app.app_context():
            notify(evaluate())
            db.session.remove()
        done.set()

    with db.engine.connect() as running:
        running.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATION_LOCK})
        waiter = threading.Thread(target=check)
        waiter.start()
        assert not done.wait(1.0)  # it waits while another evaluation holds the turn
        released = datetime.now(UTC)
        running.rollback()
    waiter.join(10)
    assert done.is_set()
    assert scalar("SELECT timestamp FROM logs.alert_violations") >= released


def test_disabled_config_is_skipped(client, receiver):
    """A disabled config never fires."""
    configure(client, receiver, enabled=False)
    errors(client, 20, steady_minute())
    assert client.post("/api/logs/alerts/check").json["opened"] == []
    run_jobs()
    assert receiver.requests == []


def test_disabling_or_deleting_while_firing_ends_the_episode_quietly(client, receiver):
    """The open violation is closed with the reason; queued deliveries are cancelled."""
    configure(client, receiver)
    errors(client, 6, steady_minute())
    notify(evaluate())
    assert client.delete("/api/logs/alerts/config/api").status_code == 204
    run_jobs()
    assert receiver.requests == []
    assert scalar("SELECT resolution FROM logs.alert_violations") == "config deleted"
    assert scalar("SELECT status FROM logs.alert_deliveries") == "cancelled"
    configure(client, receiver)
    assert len(client.post("/api/logs/alerts/check").json["opened"]) == 1
    client.put("/api/logs/alerts/config/api", json={"enabled": False})
    assert open_violations() == 0


def test_disabling_during_an_evaluation_closes_what_it_opened(app, client):
    """Disabling waits for a running evaluation's turn, so the violation that evaluation
    opens (not yet committed when the disable arrives) is closed too, its notice cancelled."""
    configure(client, alert_webhook_url="https://hooks.example.com/x")
    errors(client, 6, steady_minute())
    events = evaluate()  # holds the turn until notify() commits
    answers = []

    def disable():
        """An admin disables the config meanwhile."""
        answers.append(client.put("/api/logs/alerts/config/api", json={"enabled": False}))

    admin = threading.Thread(target=disable)
    admin.start()
    deadline = time.monotonic() + 10
    # The disable waits for the evaluation's turn (an advisory lock) before it looks. This
    # transaction holds the turn: its view of pg_stat_activity is renewed before each look.
    while not (db.session.execute(text("SELECT pg_stat_clear_snapshot()")) and scalar(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'")):
        assert time.monotonic() < deadline and admin.is_alive()
        time.sleep(0.05)
    notify(events)
    admin.join(10)
    assert answers[0].status_code == 200
    assert open_violations() == 0
    assert scalar("SELECT resolution FROM logs.alert_violations") == "config disabled"
    assert scalar("SELECT status FROM logs.alert_deliveries") == "cancelled"


def test_a_disable_that_waits_too_long_for_an_evaluation_is_refused(app, client,
                                                                     monkeypatch):
    """An evaluation that holds the turn for long (a slow database) does not hold a
    person's disable or delete without end: past the patience it is a 503, nothing
    changed, and the config can be disabled once the turn is free."""
    from app.alerts import configs
    from app.alerts.turn import EVALUATION_LOCK, take_evaluation_turn

    monkeypatch.setattr(configs, "CHANGE_PATIENCE_SECONDS", 1)
    configure(client)
    with db.engine.connect() as running:
        running.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATION_LOCK})
        for refused in (client.put("/api/logs/alerts/config/api", json={"enabled": False}),
                        client.delete("/api/logs/alerts/config/api")):
            assert refused.status_code == 503
            assert refused.json["error"].startswith("an alert check is running")
            assert int(refused.headers["Retry-After"]) > 0
        running.rollback()
    assert client.get("/api/logs/alerts/config/api").json["enabled"] is True
    assert client.put("/api/logs/alerts/config/api",
                      json={"enabled": False}).json["enabled"] is False
    # Once the turn is taken, the rest of the change waits for its locks as before.
    with app.test_request_context():
        take_evaluation_turn(1)
        assert db.session.execute(text("SHOW lock_timeout")).scalar() == "0"
        db.session.rollback()


def test_an_evaluation_that_waited_skips_a_config_disabled_meanwhile(app, client):
    """A config claimed for evaluation, then disabled while the evaluation waited for its
    turn, opens nothing."""
    from app.alerts.turn import EVALUATION_LOCK

    configure(client, alert_webhook_url="https://hooks.example.com/x")
    errors(client, 6, steady_minute())

    def check():
        """An evaluator with its own connection."""
        with app.app_context():
            notify(evaluate())
            db.session.remove()

    with db.engine.connect() as running:
        running.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATION_LOCK})
        waiter = threading.Thread(target=check)
        waiter.start()
        deadline = time.monotonic() + 10
        while scalar("SELECT last_evaluated_at FROM logs.alert_configs") is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # What a disable holding the turn does, committed as the turn passes on.
        running.execute(text("UPDATE logs.alert_configs SET enabled = false"))
        running.commit()
    waiter.join(10)
    assert not waiter.is_alive()
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 0
    assert scalar("SELECT count(*) FROM logs.alert_deliveries") == 0


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_violations_api_filters(client, status):
    """Violations list by status and service; bad filters are 400."""
    configure(client)
    start = floor_minute(datetime.now(UTC)) - 5 * MINUTE
    errors(client, 6, start)
    evaluate(start + timedelta(seconds=30))
    if status == "resolved":
        evaluate(start + 2 * MINUTE + timedelta(seconds=5))
    listed = client.get(f"/api/logs/alerts/violations?status={status}&service=api").json
    assert [v["status"] for v in listed["violations"]] == [status]
    other = "resolved" if status == "firing" else "firing"
    assert client.get(f"/api/logs/alerts/violations?status={other}").json["violations"] == []
    assert client.get("/api/logs/alerts/violations?status=maybe").status_code == 400
    assert client.get("/api/logs/alerts/violations?since=soon").status_code == 400


def test_evaluation_is_requested_once_per_pending_check(app, client):
    """Many batches before a worker runs queue one evaluation, not one per batch."""
    configure(client)
    queue = current_app.alert_queue
    before = queue.count
    for _ in range(5):
        errors(client, 1)
    errors(client, 3, level="info")
    assert queue.count == before + 1
    run_jobs()
    errors(client, 1)
    assert queue.count == before + 1
