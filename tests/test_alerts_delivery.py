"""Delivery: retries with one delivery id, permanent failures, test alerts, re-sends."""

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import app.alerts.notify as notify_module
from app.alerts.deliver import backoff, deliver, recover_stale
from app.alerts.evaluate import evaluate
from app.alerts.notify import notify, send_due_digests
from app.alerts.transports import one_line, subject_and_template
from app.extensions import db
from app.rollups.tiers import MINUTE, floor_minute
from tests.alert_fixtures import Receiver, run_jobs
from tests.helpers import at_once, post_logs, scalar


def fire(client, receiver, **fields):
    """Configure 'api' to post to the receiver and make it cross its error threshold."""
    response = client.post("/api/logs/alerts/config", json={
        "service": "api", "error_threshold_per_min": 1, "alert_webhook_url": receiver.url,
        **fields})
    assert response.status_code == 201
    post_logs(client, [{"service": "api", "level": "error", "message": "boom"}] * 2)
    notify(evaluate())


def fire_and_fail(client) -> Receiver:
    """fire() at a receiver that answers 404, a final failure; return the stopped receiver."""
    receiver = Receiver(statuses=(404,))
    try:
        fire(client, receiver)
        run_jobs()
    finally:
        receiver.stop()
    return receiver


def fire_minutes_ago(client, receiver) -> None:
    """As fire(), by a check three minutes ago: the next check, now, resolves it."""
    start = floor_minute(datetime.now(UTC)) - 3 * MINUTE
    response = client.post("/api/logs/alerts/config", json={
        "service": "api", "error_threshold_per_min": 1, "alert_webhook_url": receiver.url})
    assert response.status_code == 201
    post_logs(client, [{"service": "api", "level": "error", "message": "boom",
                        "timestamp": (start + timedelta(seconds=5)).isoformat()}] * 2)
    notify(evaluate(start + timedelta(seconds=30)))


def attempts() -> list[tuple]:
    """(attempt, status, response_code, delivery_id) of every attempt, in order."""
    return [tuple(r) for r in db.session.execute(text(
        "SELECT attempt, status, response_code, delivery_id FROM logs.alert_deliveries"
        " ORDER BY id"))]


def test_retry_after_503_then_success_keeps_the_delivery_id(app, client, monkeypatch):
    """A 503 is retried with backoff; the receiver sees one delivery id twice."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.5)
    receiver = Receiver(statuses=(503, 200))
    try:
        fire(client, receiver)
        run_jobs(until=lambda: len(receiver.requests) >= 2, timeout=20)
    finally:
        receiver.stop()
    rows = attempts()
    assert [(a, s, c) for a, s, c, _ in rows] == [(1, "retrying", 503), (2, "success", 200)]
    assert rows[0][3] == rows[1][3]
    ids = {r["headers"]["X-Logdash-Delivery"] for r in receiver.requests}
    assert ids == {rows[0][3]}
    assert scalar("SELECT count(*) FROM logs.alert_violations WHERE alert_sent_at IS NOT NULL"
                  ) == 1


def test_permanent_404_is_not_retried(client):
    """Client errors other than 408/429 are final: one attempt, marked failed."""
    receiver = fire_and_fail(client)
    assert [(a, s, c) for a, s, c, _ in attempts()] == [(1, "failed", 404)]
    assert len(receiver.requests) == 1
    assert scalar("SELECT alert_sent_at FROM logs.alert_violations") is None


def fire_by_email(client, service: str) -> None:
    """Configure `service` to email on-call and make it cross its error threshold."""
    response = client.post("/api/logs/alerts/config", json={
        "service": service, "error_threshold_per_min": 1, "alert_email": "oncall@example.com"})
    assert response.status_code == 201
    post_logs(client, [{"service": service, "level": "error", "message": "boom"}] * 2)
    notify(evaluate())


def test_recipients_refused_for_now_are_retried_for_good_are_not(app, client, monkeypatch,
                                                                  smtp_server):
    """A mail server's 4xx to the recipient (greylisting) is tried again; a 5xx is final."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.2)
    smtp_server.box.rcpt_replies = ["450 4.2.0 greylisted, try again later"]
    fire_by_email(client, "api")
    run_jobs(until=lambda: smtp_server.box.messages, timeout=20)
    assert [(a, s, c) for a, s, c, _ in attempts()] == [(1, "retrying", 450), (2, "success", None)]
    assert smtp_server.box.messages[0].rcpt_tos == ["oncall@example.com"]

    smtp_server.box.rcpt_replies = ["550 5.1.1 no such mailbox"]
    fire_by_email(client, "db")
    run_jobs()
    assert [(a, s, c) for a, s, c, _ in attempts()][2:] == [(1, "failed", 550)]
    assert len(smtp_server.box.messages) == 1


def test_a_recipient_refused_beside_others_taken_is_recorded(client, smtp_server):
    """The server takes one address and refuses the other for now: the email went, to one
    of them; the attempt says which was refused rather than reading as a plain success."""
    smtp_server.box.rcpt_replies = ["451 4.7.1 greylisted, try again later"]
    response = client.post("/api/logs/alerts/config", json={
        "service": "api", "error_threshold_per_min": 1,
        "alert_email": "grey@example.com, oncall@example.com"})
    assert response.status_code == 201
    post_logs(client, [{"service": "api", "level": "error", "message": "boom"}] * 2)
    notify(evaluate())
    run_jobs(until=lambda: smtp_server.box.messages)
    assert [(a, s, c) for a, s, c, _ in attempts()] == [(1, "success", None)]
    # Flask-Mail names the recipients in no set order: the first named was refused.
    [taken] = smtp_server.box.messages[0].rcpt_tos
    [refused] = {"grey@example.com", "oncall@example.com"} - {taken}
    error = scalar("SELECT error FROM logs.alert_deliveries")
    assert error.startswith(f"{refused} refused: 451") and "greylisted" in error


def test_a_server_slow_to_take_the_message_or_say_goodbye_is_not_sent_it_twice(
        app, client, monkeypatch, smtp_server):
    """A mail server that scans a message before taking it answers DATA later than other
    commands, and one may not answer QUIT at all in time: the message was taken either
    way, and a retry would send it a second time."""
    monkeypatch.setitem(app.config, "LOGDASH_SMTP_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.2)
    smtp_server.box.data_delay = 1.5
    smtp_server.box.quit_delay = 20  # past the SMTP timeout: given up on, not waited for
    fire_by_email(client, "api")
    started = time.monotonic()
    run_jobs(until=lambda: smtp_server.box.messages)
    assert time.monotonic() - started < 10
    time.sleep(1)  # a retry, if any, would be due by now
    run_jobs()
    assert [(a, s) for a, s, _, _ in attempts()] == [(1, "success")]
    assert len(smtp_server.box.messages) == 1


@pytest.fixture
def silent_smtp(app):
    """A mail server that takes connections and never says a word, the app pointed at it."""
    from app.extensions import mail

    listener = socket.create_server(("127.0.0.1", 0))
    saved = {k: app.config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_SUPPRESS_SEND")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=listener.getsockname()[1],
                      MAIL_SUPPRESS_SEND=False)
    mail.init_app(app)
    yield
    app.config.update(saved)
    mail.init_app(app)
    listener.close()


def test_a_mail_server_that_never_answers_fails_the_attempt_in_time(app, client, monkeypatch,
                                                                    silent_smtp):
    """Each wait on the mail server is bounded: the attempt fails and is retried instead of
    holding the worker (and every alert behind it) until the job's timeout."""
    monkeypatch.setitem(app.config, "LOGDASH_SMTP_TIMEOUT_SECONDS", 0.5)
    fire_by_email(client, "api")
    started = time.monotonic()
    run_jobs()
    assert time.monotonic() - started < 10
    assert attempts()[0][:2] == (1, "retrying")
    assert "timed out" in scalar("SELECT error FROM logs.alert_deliveries WHERE attempt = 1")


def test_a_resolved_notice_waits_for_the_firing_one_being_retried(app, client, monkeypatch):
    """The episode ends while its firing notice waits for a retry: the receiver still hears
    "firing" before "resolved"."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 1)
    receiver = Receiver(statuses=(503, 200))
    try:
        fire_minutes_ago(client, receiver)
        run_jobs(until=lambda: receiver.requests)  # the first try: 503, retried in ~1 s
        notify(evaluate())  # now, minutes later: resolved (unless a queued check did it)
        assert scalar("SELECT count(*) FROM logs.alert_deliveries WHERE event = 'resolved'") == 1
        run_jobs(until=lambda: len(receiver.requests) >= 3, timeout=20)
    finally:
        receiver.stop()
    assert [b["event"] for b in receiver.bodies()] == ["firing", "firing", "resolved"]


def test_a_resolved_notice_waits_for_the_digest_carrying_its_firing(app, client):
    """The firing notice was held for the rate window's digest; the episode ends in the
    next window: "resolved" still reaches the receiver after the digest with "firing"."""
    receiver = Receiver(statuses=(200,))
    try:
        fire_minutes_ago(client, receiver)
        # As the rate limit would have left it: held until its window ends, a second on.
        db.session.execute(text("UPDATE logs.alert_deliveries SET status = 'held',"
                                " held_until = now() + interval '1 second'"))
        db.session.commit()
        notify(evaluate())  # now, minutes later: resolved
        run_jobs()
        assert receiver.requests == []  # the resolved notice waits
        time.sleep(1.2)
        assert len(send_due_digests()) == 1
        run_jobs(until=lambda: len(receiver.requests) >= 2, timeout=20)
    finally:
        receiver.stop()
    assert [b["event"] for b in receiver.bodies()] == ["digest", "resolved"]


def add_repeat(delivery_id: str, status: str, started_ago: str | None = None) -> int:
    """A repeat of the episode's firing notice on its channel, in `status`, begun `started_ago`
    (an interval) if sending; its id."""
    repeat = scalar(
        "INSERT INTO logs.alert_deliveries (delivery_id, violation_id, config_id, service,"
        " channel, target, event, attempt, status, payload, started_at)"
        " SELECT :delivery_id, violation_id, config_id, service, channel, target, event, 1,"
        " :status, payload || '{\"repeat\": true}', now() - CAST(:ago AS interval)"
        " FROM logs.alert_deliveries WHERE event = 'firing' AND attempt = 1 LIMIT 1"
        " RETURNING id", delivery_id=delivery_id, status=status, ago=started_ago)
    db.session.commit()
    return repeat


def fired_and_told(client, receiver) -> None:
    """fire_minutes_ago, its firing notice delivered, and nothing else queued (the check
    ingest queued would resolve the episode)."""
    fire_minutes_ago(client, receiver)
    current_app.alert_queue.empty()
    assert deliver(scalar("SELECT id FROM logs.alert_deliveries")) == "success"


def test_a_resolved_notice_waits_for_a_repeat_being_sent(client):
    """A repeat a worker is sending right now would reach the receiver after "resolved"
    and reopen the incident: the resolved notice is tried again shortly."""
    receiver = Receiver(statuses=(200,))
    try:
        fired_and_told(client, receiver)
        add_repeat("in-flight", "sending", "1 second")
        notify(evaluate())  # now, minutes later: resolved
        resolved = scalar("SELECT id FROM logs.alert_deliveries WHERE event = 'resolved'")
        assert deliver(resolved) == "postponed"
        due = scalar("SELECT next_attempt_at - now() FROM logs.alert_deliveries"
                     " WHERE id = :id", id=resolved)
        assert due < timedelta(seconds=5)
    finally:
        receiver.stop()
    assert len(receiver.requests) == 1


def test_a_resolved_notice_waits_for_a_digest_carrying_a_repeat(client):
    """The firing notice went out, a repeat went into a digest that is being retried: the
    receiver hears the digest before "resolved", which would otherwise be reopened."""
    receiver = Receiver(statuses=(200,))
    try:
        fired_and_told(client, receiver)
        add_repeat("digested-repeat", "digested")
        db.session.execute(text(
            "UPDATE logs.alert_deliveries SET digest_id = 'the-digest'"
            " WHERE delivery_id = 'digested-repeat';"
            " INSERT INTO logs.alert_deliveries (delivery_id, config_id, service, channel,"
            " target, event, attempt, status, payload, next_attempt_at)"
            " SELECT 'the-digest', config_id, service, channel, target, 'digest', 2,"
            " 'pending', '{}', now() + interval '30 seconds' FROM logs.alert_deliveries"
            " WHERE attempt = 1 LIMIT 1"))
        db.session.commit()
        notify(evaluate())  # now, minutes later: resolved
        resolved = scalar("SELECT id FROM logs.alert_deliveries WHERE event = 'resolved'")
        assert deliver(resolved) == "postponed"
        assert scalar("SELECT next_attempt_at - now() FROM logs.alert_deliveries"
                      " WHERE id = :id", id=resolved) > timedelta(seconds=30)
    finally:
        receiver.stop()
    assert len(receiver.requests) == 1


def test_a_repeat_lost_mid_send_neither_delays_the_resolution_nor_follows_it(app, client,
                                                                            monkeypatch):
    """The firing notice reached the receiver; a later repeat's worker died mid-send. The
    resolved notice goes at once (the receiver knows the episode), and the repeat's retry,
    once the lost send is taken up, is not sent after the resolution."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.2)
    receiver = Receiver(statuses=(200,))
    try:
        fired_and_told(client, receiver)
        add_repeat("lost-repeat", "sending", "5 minutes")  # past any send, not yet taken up
        notify(evaluate())  # now, minutes later: resolved
        run_jobs(until=lambda: len(receiver.requests) >= 2, timeout=10)
        assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
        db.session.execute(text("UPDATE logs.alert_deliveries SET started_at = now()"
                                " - interval '1 hour' WHERE status = 'sending'"))
        db.session.commit()
        assert recover_stale()["worker_lost"] == 1
        run_jobs(until=lambda: scalar("SELECT status FROM logs.alert_deliveries WHERE"
                                      " delivery_id = 'lost-repeat' AND attempt = 2")
                 == "cancelled")
    finally:
        receiver.stop()
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    assert scalar("SELECT error FROM logs.alert_deliveries WHERE delivery_id = 'lost-repeat'"
                  " AND attempt = 2") == "the episode's resolution was delivered already"


def test_a_held_repeat_of_a_resolved_episode_is_left_out_of_the_digest(client):
    """The resolved notice went out past the limit; the repeat held for the digest would
    follow it with a count that no longer holds: it is cancelled, and no digest is sent."""
    receiver = Receiver(statuses=(200,))
    try:
        fired_and_told(client, receiver)
        repeat = add_repeat("held-repeat", "held")
        db.session.execute(text("UPDATE logs.alert_deliveries SET held_until = now()"
                                " WHERE id = :id"), {"id": repeat})
        db.session.commit()
        notify(evaluate())  # now, minutes later: resolved
        run_jobs(until=lambda: len(receiver.requests) >= 2, timeout=10)
        assert send_due_digests() == []
        run_jobs()
    finally:
        receiver.stop()
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    assert scalar("SELECT status || ': ' || error FROM logs.alert_deliveries WHERE id = :id",
                  id=repeat) == "cancelled: the episode resolved before this repeat went out"


def test_an_episode_cannot_resolve_while_a_digest_carrying_its_repeat_is_made(app, client,
                                                                            monkeypatch):
    """Until the digest that claimed a repeat is committed, its episode's resolution waits:
    a resolved notice sent meanwhile would not see the repeat the digest then carries."""
    receiver = Receiver(statuses=(200,))
    try:
        fired_and_told(client, receiver)
        add_repeat("held-repeat", "held")
        db.session.execute(text("UPDATE logs.alert_deliveries SET held_until = now()"
                                " WHERE status = 'held'"))
        db.session.commit()
        claimed, release = threading.Event(), threading.Event()
        make_body = notify_module._digest_body

        def body_once_claimed(config, held):
            """The digest's rows are claimed; hold its transaction open a moment."""
            claimed.set()
            release.wait(10)
            return make_body(config, held)

        monkeypatch.setattr(notify_module, "_digest_body", body_once_claimed)

        def digest():
            """Make the digest in a worker of its own."""
            with app.app_context():
                send_due_digests()
                db.session.remove()

        worker = threading.Thread(target=digest)
        worker.start()
        try:
            assert claimed.wait(10)
            with db.engine.connect() as evaluator:
                evaluator.execute(text("SET lock_timeout = '300ms'"))
                with pytest.raises(OperationalError, match="lock timeout"):
                    evaluator.execute(text("UPDATE logs.alert_violations SET resolved_at = now()"))
        finally:
            release.set()
            worker.join()
    finally:
        receiver.stop()
    assert scalar("SELECT count(*) FROM logs.alert_deliveries WHERE event = 'digest'") == 1


def test_a_repeat_due_after_its_episode_ended_is_not_sent(client):
    """A repeat's count no longer holds once the episode has resolved: it is cancelled, and
    says why, rather than sent late."""
    receiver = Receiver(statuses=(200,))
    try:
        fired_and_told(client, receiver)
        repeat = add_repeat("late-repeat", "pending")
        notify(evaluate())  # resolved; its notice not sent yet
        assert deliver(repeat) == "cancelled"
    finally:
        receiver.stop()
    assert len(receiver.requests) == 1
    assert scalar("SELECT error FROM logs.alert_deliveries WHERE id = :id", id=repeat) == \
        "the episode resolved before this repeat went out"


def test_a_repeat_waits_while_the_first_notice_is_retried(app, client, monkeypatch):
    """The first notice failed and waits for its retry when a repeat comes due: "still
    firing" would reach the receiver before "alert". The repeat is cancelled, saying why."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 600)
    receiver = Receiver(statuses=(503, 200))
    try:
        fire(client, receiver)
        run_jobs(until=lambda: receiver.requests)
        db.session.execute(text("UPDATE logs.alert_violations"
                                " SET last_notified_at = last_notified_at - interval '2 hours'"))
        db.session.commit()
        notify(evaluate())
        repeat = scalar("SELECT id FROM logs.alert_deliveries WHERE (payload->>'repeat')::bool")
        assert deliver(repeat) == "cancelled"
    finally:
        receiver.stop()
    assert len(receiver.requests) == 1
    assert scalar("SELECT error FROM logs.alert_deliveries WHERE id = :id", id=repeat) == \
        "the episode's first notice has not reached this channel yet"


def test_a_repeat_waits_while_the_digest_carrying_the_first_notice_is_retried(client):
    """The first notice was held and went into a digest that waits for its retry: a repeat
    now would reach the receiver before the digest that says "alert"."""
    receiver = Receiver(statuses=(200,))
    try:
        fire(client, receiver)
        current_app.alert_queue.empty()
        db.session.execute(text(
            "UPDATE logs.alert_deliveries SET status = 'digested', digest_id = 'the-digest';"
            " INSERT INTO logs.alert_deliveries (delivery_id, config_id, service, channel,"
            " target, event, attempt, status, payload, next_attempt_at)"
            " SELECT 'the-digest', config_id, service, channel, target, 'digest', 2,"
            " 'pending', '{}', now() + interval '30 minutes' FROM logs.alert_deliveries"
            " WHERE attempt = 1 LIMIT 1"))
        db.session.commit()
        repeat = add_repeat("the-repeat", "pending")
        assert deliver(repeat) == "cancelled"
    finally:
        receiver.stop()
    assert receiver.requests == []


def test_unreachable_receiver_is_retried_until_the_horizon(app, client, monkeypatch):
    """Connection errors are retried; past the horizon the delivery gives up, saying so."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.2)
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_HORIZON_HOURS", 1.5 / 3600)
    receiver = Receiver()
    receiver.stop()  # nothing listens on its port any more
    fire(client, receiver)
    run_jobs(until=lambda: scalar("SELECT count(*) FROM logs.alert_deliveries"
                                  " WHERE status = 'failed'") > 0, timeout=20)
    rows = attempts()
    assert len(rows) >= 2
    assert rows[-1][1] == "failed"
    assert all(status == "retrying" for _, status, _, _ in rows[:-1])
    last_error = scalar("SELECT error FROM logs.alert_deliveries ORDER BY id DESC LIMIT 1")
    assert "connection failed" in last_error and "gave up after" in last_error


def test_retry_after_header_is_honoured(app, monkeypatch):
    """A receiver's Retry-After lengthens the wait; backoff grows and is capped."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 30)
    assert 24 <= backoff(1, None) <= 36
    assert 96 <= backoff(3, None) <= 144
    assert backoff(20, None) <= 3600 * 1.2
    assert backoff(1, 300) >= 300


def test_test_alert_goes_to_every_channel_once(client, smtp_server):
    """The test action sends on each channel without retrying a failure."""
    receiver = Receiver(statuses=(500,))
    try:
        client.post("/api/logs/alerts/config", json={
            "service": "api", "alert_webhook_url": receiver.url,
            "alert_email": "oncall@example.com"})
        post_logs(client, [{"service": "api", "level": "error", "message": "real trouble"}])
        response = client.post("/api/logs/alerts/config/api/test")
        assert response.status_code == 202
        assert {d["channel"] for d in response.json["deliveries"]} == {"email", "webhook"}
        run_jobs()
    finally:
        receiver.stop()
    assert [b["event"] for b in receiver.bodies()] == ["test"]
    [mail] = smtp_server.box.messages
    raw = mail.content.decode()
    assert "Subject: Test alert from Logdash for api: nothing is wrong" in raw
    assert "TEST: this is a test alert" in raw and "threshold exceeded" not in raw
    assert "Top messages" not in raw  # the service's real messages would read as a cause
    statuses = dict(db.session.execute(text(
        "SELECT channel, status FROM logs.alert_deliveries")).all())
    assert statuses == {"email": "success", "webhook": "failed"}


def test_test_alert_needs_a_channel(client):
    """A config with nowhere to send cannot be tested."""
    client.post("/api/logs/alerts/config", json={"service": "api"})
    response = client.post("/api/logs/alerts/config/api/test")
    assert response.status_code == 400


def test_failed_delivery_can_be_resent(client):
    """A re-send is a new attempt of the same notification; only failed ones qualify."""
    receiver = Receiver(statuses=(404, 200))
    try:
        fire(client, receiver)
        run_jobs()
        failed_id = scalar("SELECT id FROM logs.alert_deliveries")
        response = client.post(f"/api/logs/alerts/deliveries/{failed_id}/resend")
        assert response.status_code == 202
        assert response.json["attempt"] == 2
        run_jobs()
    finally:
        receiver.stop()
    rows = attempts()
    assert [(a, s) for a, s, _, _ in rows] == [(1, "failed"), (2, "success")]
    assert rows[0][3] == rows[1][3]
    succeeded = scalar("SELECT id FROM logs.alert_deliveries WHERE status = 'success'")
    again = client.post(f"/api/logs/alerts/deliveries/{succeeded}/resend")
    assert again.status_code == 409
    assert client.post("/api/logs/alerts/deliveries/999999/resend").status_code == 404
    # The failed attempt was sent again already: a second click does not send it twice.
    twice = client.post(f"/api/logs/alerts/deliveries/{failed_id}/resend")
    assert twice.status_code == 409 and "attempt 2" in twice.json["error"]
    assert len(attempts()) == 2


def test_a_delivery_of_a_disabled_config_is_not_resent(client):
    """Sent again, it would be cancelled at once: the re-send is refused, saying why."""
    fire_and_fail(client)
    failed_id = scalar("SELECT id FROM logs.alert_deliveries")
    assert client.put("/api/logs/alerts/config/api", json={"enabled": False}).status_code == 200
    response = client.post(f"/api/logs/alerts/deliveries/{failed_id}/resend")
    assert response.status_code == 409
    assert response.json["error"] == (f"delivery {failed_id} cannot be sent: alert config"
                                      " disabled")
    assert len(attempts()) == 1


def test_retries_go_where_the_config_sends_now(app, client, monkeypatch):
    """Once the config's webhook URL changed (the old one failing, leaked or retired), the
    waiting retry goes to the new one, with the same delivery id; the old receiver gets
    only its first attempt."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.5)
    old, new = Receiver(statuses=(503,)), Receiver()
    try:
        fire(client, old)
        run_jobs(until=lambda: len(old.requests) >= 1, timeout=10)
        assert client.put("/api/logs/alerts/config/api",
                          json={"alert_webhook_url": new.url}).status_code == 200
        run_jobs(until=lambda: len(new.requests) >= 1, timeout=10)
    finally:
        old.stop()
        new.stop()
    assert len(old.requests) == 1 and len(new.requests) == 1
    assert (new.requests[0]["headers"]["X-Logdash-Delivery"]
            == old.requests[0]["headers"]["X-Logdash-Delivery"])
    rows = db.session.execute(text("SELECT attempt, status, target FROM logs.alert_deliveries"
                                   " ORDER BY attempt")).all()
    assert [tuple(row) for row in rows] == [(1, "retrying", old.url), (2, "success", new.url)]


def test_nothing_is_sent_by_a_channel_taken_out(client):
    """With its webhook removed, a config's failed notice cannot be re-sent by webhook."""
    fire_and_fail(client)
    failed_id = scalar("SELECT id FROM logs.alert_deliveries")
    assert client.put("/api/logs/alerts/config/api", json={
        "alert_webhook_url": None, "alert_email": "oncall@example.com"}).status_code == 200
    response = client.post(f"/api/logs/alerts/deliveries/{failed_id}/resend")
    assert response.status_code == 409
    assert response.json["error"] == (f"delivery {failed_id} cannot be sent: alert config no"
                                      " longer sends by webhook")
    assert len(attempts()) == 1


def test_the_delivery_log_names_a_status_it_does_not_know(client):
    """A misspelt status is a 400 listing the statuses, not an empty log."""
    response = client.get("/api/logs/alerts/deliveries?status=bogus")
    assert response.status_code == 400
    assert "retrying" in response.json["error"]
    assert client.get("/api/logs/alerts/deliveries?status=held").status_code == 200


def test_a_repeat_email_says_the_alert_is_still_firing():
    """An inbox tells a repeat from a new alert by its subject."""
    first = {"event": "firing", "repeat": False, "service": "api", "level": "error"}
    assert subject_and_template(first)[0] == "Alert: api - error threshold exceeded"
    assert subject_and_template({**first, "repeat": True})[0] == (
        "Still firing: api - error threshold exceeded")


def test_a_digest_of_one_says_notification():
    """A digest can carry a single held notice; its subject counts it in the singular."""
    digest = {"event": "digest", "held_count": 1, "service": "api"}
    assert subject_and_template(digest)[0] == "Logdash digest: 1 notification held for api"


def test_a_failed_firing_notice_is_not_resent_after_its_resolution_went_out(client):
    """The receiver was told the episode resolved: "firing" sent now would reopen it."""
    receiver = Receiver(statuses=(404, 200))
    try:
        fire_minutes_ago(client, receiver)
        run_jobs()  # the firing notice: 404, final
        notify(evaluate())  # now, minutes later: resolved, and delivered
        run_jobs(until=lambda: len(receiver.requests) >= 2)
    finally:
        receiver.stop()
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    failed = scalar("SELECT id FROM logs.alert_deliveries WHERE status = 'failed'")
    refused = client.post(f"/api/logs/alerts/deliveries/{failed}/resend")
    assert refused.status_code == 409 and "would reopen it" in refused.json["error"]
    assert len(attempts()) == 2


def test_two_resends_at_once_send_one_attempt(app, client):
    """Two people resending the same failed notice at the same moment queue one attempt."""
    fire_and_fail(client)
    failed_id = scalar("SELECT id FROM logs.alert_deliveries")
    statuses = []

    def resend(ready):
        """One admin's click."""
        ready()
        statuses.append(client.post(f"/api/logs/alerts/deliveries/{failed_id}/resend")
                        .status_code)

    at_once(resend, 4)
    assert sorted(statuses) == [202, 409, 409, 409]
    assert len(attempts()) == 2


def test_deliveries_api_lists_every_attempt(client):
    """The delivery log filters by status and violation."""
    fire_and_fail(client)
    listed = client.get("/api/logs/alerts/deliveries?status=failed").json["deliveries"]
    assert [(d["channel"], d["status"], d["response_code"]) for d in listed] == [
        ("webhook", "failed", 404)]
    violation = listed[0]["violation_id"]
    assert client.get(f"/api/logs/alerts/deliveries?violation_id={violation}").json[
        "deliveries"] == listed
    assert client.get("/api/logs/alerts/deliveries?violation_id=x").status_code == 400


def test_lost_jobs_and_workers_are_recovered(client):
    """A pending attempt whose job vanished is queued again; a send cut short is retried."""
    receiver = Receiver()
    try:
        fire(client, receiver)
        old = datetime.now(UTC) - timedelta(minutes=20)
        db.session.execute(text("UPDATE logs.alert_deliveries SET created_at = :old"),
                           {"old": old})
        db.session.commit()
        current_app.alert_queue.empty()  # the job is lost
        assert recover_stale() == {"requeued": 1, "worker_lost": 0}
        run_jobs()
        assert len(receiver.requests) == 1
        # Within the longest a send may run (its job's timeout), the worker may still be
        # sending; past it, the worker was lost, and the attempt is retried: minutes, not
        # ten of them.
        for ago, lost in ((timedelta(seconds=200), 0), (timedelta(minutes=4), 1)):
            db.session.execute(text("UPDATE logs.alert_deliveries SET status = 'sending',"
                                    " started_at = now() - :ago"), {"ago": ago})
            db.session.commit()
            assert recover_stale()["worker_lost"] == lost
    finally:
        receiver.stop()
    assert scalar("SELECT count(*) FROM logs.alert_deliveries WHERE status = 'pending'") == 1


def test_two_checks_at_once_retry_a_lost_send_once(client):
    """While another check holds the attempt a worker lost mid-send, this one leaves it
    alone, rather than scheduling a second retry of the same notification."""
    receiver = Receiver()
    try:
        fire(client, receiver)
        run_jobs()
    finally:
        receiver.stop()
    db.session.execute(text("UPDATE logs.alert_deliveries SET status = 'sending',"
                            " started_at = :old"), {"old": datetime.now(UTC) - timedelta(hours=1)})
    db.session.commit()
    with db.engine.connect() as other:
        other.execute(text("SELECT id FROM logs.alert_deliveries FOR UPDATE"))
        # Were the row waited for, this would fail rather than hang.
        db.session.execute(text("SET LOCAL lock_timeout = '3s'"))
        assert recover_stale()["worker_lost"] == 0
        other.execute(text("UPDATE logs.alert_deliveries SET status = 'retrying'"))
        other.commit()
    assert recover_stale()["worker_lost"] == 0
    assert scalar("SELECT count(*) FROM logs.alert_deliveries") == 1


def test_header_values_cannot_carry_line_breaks():
    """Whatever text reaches a mail header is folded onto one line."""
    assert one_line("api\r\nBcc: victim@example.com") == "api Bcc: victim@example.com"
