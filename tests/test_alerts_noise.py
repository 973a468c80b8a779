"""Alert noise control: silences, maintenance windows, acknowledge, rate limit and digests,
`for` durations and the minimum evaluation interval.

Timelines are built from explicit instants: minute counts go straight into the minute
rollup and evaluate(now=...) is called at chosen moments. They lie in the future, so the
jobs the pipeline schedules for "when the hold ends" stay scheduled while the test runs.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from app.alerts.acknowledge import acknowledge
from app.alerts.evaluate import evaluate, firing_run, over_runs
from app.alerts.notify import create_limited, notify, send_due_digests
from app.extensions import db
from app.jobs.schedule import make_scheduler
from app.models import AlertConfig, AlertViolation, MaintenanceWindow, Silence
from app.rollups.tiers import floor_minute
from tests.alert_fixtures import Receiver, run_jobs
from tests.helpers import at_once, scalar

MINUTE = timedelta(minutes=1)
# Minute 0 of every timeline: whole minutes, well after anything a test does in real time.
BASE = floor_minute(datetime.now(UTC)) + timedelta(days=2)


def at(minute: int, seconds: int = 30) -> datetime:
    """An instant of the timeline: `seconds` into its minute `minute`."""
    return BASE + minute * MINUTE + timedelta(seconds=seconds)


def put_counts(minutes, count: int, level: str = "error", service: str = "api",
               start: datetime = BASE) -> None:
    """Store `count` lines at the level in each of the given minutes after `start`."""
    for minute in minutes:
        db.session.execute(text(
            "INSERT INTO logs.rollup_minute (minute, service, level, count)"
            " VALUES (:minute, :service, :level, :count)"),
            {"minute": floor_minute(start + minute * MINUTE), "service": service,
             "level": level, "count": count})
    db.session.commit()


def configure(client, **fields) -> None:
    """Create the config of service 'api': 5 errors or 3 warnings a minute is the limit."""
    body = {"service": "api", "error_threshold_per_min": 5, "warning_threshold_per_min": 3,
            **fields}
    response = client.post("/api/logs/alerts/config", json=body)
    assert response.status_code == 201, response.json


def step(moment: datetime) -> list:
    """Evaluate at `moment`, queue what it asks for and run the jobs; the events."""
    events = evaluate(moment)
    notify(events)
    run_jobs()
    return events


def silence(starts_at: datetime, ends_at: datetime, **fields) -> Silence:
    """Store a silence of service 'api' (both levels unless given)."""
    row = Silence(service="api", starts_at=starts_at, ends_at=ends_at, created_by="test",
                  comment="deploy", **fields)
    db.session.add(row)
    db.session.commit()
    return row


def violation() -> AlertViolation:
    """The only violation, fresh from the database."""
    [row] = db.session.scalars(
        db.select(AlertViolation).execution_options(populate_existing=True)).all()
    return row


def scheduled(func: str) -> list[datetime]:
    """When rq-scheduler will run the jobs of `func` (UTC)."""
    return sorted(moment.replace(tzinfo=UTC)
                  for job, moment in make_scheduler().get_jobs(with_times=True)
                  if job.func_name == func)


def test_silence_holds_delivery_and_its_end_sends_one_notice(app, client, receiver,
                                                            smtp_server):
    """Violations are recorded (silenced) under a silence; its end sends one notice."""
    configure(client, alert_webhook_url=receiver.url, alert_email="oncall@example.com",
              repeat_interval_minutes=1)
    put_counts(range(6), 10)
    ends = at(3, 0)
    silence(at(0, 0) - timedelta(hours=1), ends)

    events = step(at(1))
    assert [(e.event, e.silenced) for e in events] == [("firing", True)]
    step(at(2))  # a repeat is due (1 min) but held too
    assert receiver.requests == [] and smtp_server.box.messages == []
    held = violation()
    assert (held.silenced, held.notification_held, held.resolved_at) == (True, True, None)
    assert scalar("SELECT count(*) FROM logs.alert_deliveries") == 0
    assert ends in scheduled("app.jobs.alerts.evaluate_thresholds")

    step(at(3, 30))
    step(at(4, 0))  # within the repeat interval of the notice: nothing more
    [body] = receiver.bodies()
    assert (body["event"], body["after_silence"], body["silenced"]) == ("firing", True, True)
    assert body["repeat"] is False  # the first anyone hears of this episode
    assert body["violation_id"] == held.id
    base = app.config["LOGDASH_BASE_URL"].rstrip("/")
    assert body["silence_url"] == f"{base}/alerts/silences/new?service=api&level=error&minutes=60"
    assert body["violation_url"] == f"{base}/alerts/violations/{held.id}"
    assert body["acknowledge_url"] == f"{base}/alerts/violations/{held.id}#acknowledge"
    [mail] = smtp_server.box.messages
    raw = mail.content.decode()
    assert "Sent after a silence" in raw
    assert f"/alerts/violations/{held.id}#acknowledge" in raw
    assert violation().notification_held is False


@pytest.mark.parametrize("silence_ends", [5, 2], ids=["during", "before-next-check"])
def test_episode_resolved_under_a_silence_sends_nothing(client, receiver, silence_ends):
    """Nobody was told it fired, so neither its end nor the silence's end sends anything."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts(range(2), 10)
    silence(at(0, 0), at(silence_ends, 0))
    step(at(1))
    events = step(at(3))
    assert [(e.event, e.silenced) for e in events] == [("resolved", True)]
    step(at(6))
    assert receiver.requests == []
    resolved = violation()
    assert resolved.resolved_at is not None
    assert (resolved.silenced, resolved.notification_held) == (True, False)


def test_resolution_under_a_silence_after_being_told_goes_out_when_it_ends(client,
                                                                            receiver):
    """People paged before the silence learn it is over, once, when the silence ends."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts([0], 10)
    step(at(0))
    silence(at(1, 0), at(6, 0))
    events = step(at(2))
    assert [(e.event, e.silenced) for e in events] == [("resolved", True)]
    step(at(4))
    assert [b["event"] for b in receiver.bodies()] == ["firing"]
    assert violation().notification_held is True
    # A check is due as the silence ends, not only at the next every-minute one.
    assert at(6, 0) in scheduled("app.jobs.alerts.evaluate_thresholds")
    step(at(7))
    step(at(8))
    bodies = receiver.bodies()
    assert [(b["event"], b["after_silence"]) for b in bodies] == [("firing", False),
                                                                 ("resolved", True)]
    assert violation().notification_held is False


def test_a_resolution_owed_when_the_config_goes_is_not_sent_by_its_successor(client,
                                                                              receiver):
    """A resolution held by a silence is dropped with a deleted config: a new config for
    the service does not send it when the silence ends."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts([0], 10)
    step(at(0))
    silence(at(1, 0), at(6, 0))
    step(at(2))
    assert violation().notification_held is True
    assert client.delete("/api/logs/alerts/config/api").status_code == 204
    configure(client, alert_webhook_url=receiver.url)
    step(at(7))
    assert [b["event"] for b in receiver.bodies()] == ["firing"]
    assert violation().notification_held is False


def test_an_unheard_episode_closed_with_its_config_stays_quiet(client, receiver):
    """Held by a silence, then ended by disabling its config: nobody heard it fire, so
    enabling the config after the silence sends nothing about it."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts(range(2), 10)
    silence(at(0, 0), at(3, 0))
    step(at(1))
    assert violation().notification_held is True
    assert client.put("/api/logs/alerts/config/api", json={"enabled": False}).status_code == 200
    assert client.put("/api/logs/alerts/config/api", json={"enabled": True}).status_code == 200
    # Both changes at minute 2 of the timeline, not at the real clock's now.
    db.session.execute(text("UPDATE logs.alert_configs SET updated_at = :t"), {"t": at(2)})
    db.session.execute(text("UPDATE logs.alert_violations SET resolved_at = :t"), {"t": at(2)})
    db.session.commit()
    step(at(4))
    step(at(5))
    assert receiver.requests == []
    assert (violation().resolution, violation().notification_held) == ("config disabled",
                                                                      False)


def test_acknowledged_during_a_silence_drops_the_owed_notice(client, receiver):
    """Someone already knows: the silence's end sends nothing, resolution is still sent."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts(range(5), 10)
    silence(at(0, 0), at(2, 0))
    step(at(1))
    acknowledge(violation(), "alice")
    step(at(3))
    assert receiver.requests == []
    step(at(6))
    assert [b["event"] for b in receiver.bodies()] == ["resolved"]


def test_silence_of_the_other_level_does_not_hold(client, receiver):
    """A silence limited to warnings lets errors through."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts([0], 10)
    silence(at(0, 0), at(5, 0), level="warning")
    step(at(0))
    assert [(b["event"], b["silenced"]) for b in receiver.bodies()] == [("firing", False)]


def test_maintenance_window_across_midnight_in_new_york(client, receiver):
    """22:00 → 02:00 New York time on one weekday holds until 02:00 the next day."""
    zone = ZoneInfo("America/New_York")
    day = (datetime.now(zone) + timedelta(days=3)).date()
    local = lambda days, hour, minute: datetime.combine(  # noqa: E731
        day + timedelta(days=days), time(hour, minute, 30), zone).astimezone(UTC)
    configure(client, alert_webhook_url=receiver.url, repeat_interval_minutes=60)
    db.session.add(MaintenanceWindow(
        service="api", weekdays=[day.weekday()], start_time=time(22, 0),
        end_time=time(2, 0), time_zone="America/New_York", created_by="test"))
    db.session.commit()
    before, evening = local(0, 21, 30), local(0, 23, 30)
    after_midnight, after_window = local(1, 1, 30), local(1, 2, 30)
    for moment in (before, evening, after_midnight, after_window):
        put_counts([0], 10, start=moment)

    step(before)  # fires before the window opens
    step(before + 2 * MINUTE)  # and resolves
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    evening_events = step(evening)
    assert [(e.event, e.silenced) for e in evening_events] == [("firing", True)]
    window_end = datetime.combine(day + timedelta(days=1), time(2, 0), zone)
    assert evening_events[0].held_until == window_end
    assert window_end.astimezone(UTC) in scheduled("app.jobs.alerts.evaluate_thresholds")
    # After midnight the repeat that is due is still held: the window belongs to `day`.
    after_midnight_events = step(after_midnight)
    assert [(e.event, e.repeat, e.silenced) for e in after_midnight_events] == [
        ("firing", True, True)]
    assert len(receiver.requests) == 2
    step(after_window)
    bodies = receiver.bodies()
    assert [(b["event"], b["after_silence"]) for b in bodies] == [
        ("firing", False), ("resolved", False), ("firing", True)]
    assert bodies[2]["violation_id"] == evening_events[0].violation.id != bodies[0][
        "violation_id"]


def test_acknowledge_stops_repeats_but_not_the_resolution(client, receiver):
    """Repeats come every interval until acknowledged; the resolved notice still comes."""
    configure(client, alert_webhook_url=receiver.url, repeat_interval_minutes=1)
    put_counts(range(5), 10)
    step(at(0))
    step(at(1))
    assert [b["repeat"] for b in receiver.bodies()] == [False, True]
    acknowledge(violation(), "alice")
    for minute in (2, 3, 4):
        step(at(minute))
    step(at(6))
    assert [(b["event"], b["repeat"]) for b in receiver.bodies()] == [
        ("firing", False), ("firing", True), ("resolved", False)]
    assert violation().acknowledged_by == "alice"


def test_rate_limit_turns_thirty_notifications_into_ten_and_one_digest(client, receiver,
                                                                      smtp_server):
    """Per channel: 10 delivered, 20 held and logged, then one digest naming the 20."""
    configure(client, alert_webhook_url=receiver.url, alert_email="oncall@example.com",
              repeat_interval_minutes=1)
    put_counts(range(30), 10)
    for minute in range(30):
        notify(evaluate(at(minute)))
    run_jobs()
    assert len(receiver.requests) == 10 and len(smtp_server.box.messages) == 10
    held = db.session.execute(text(
        "SELECT channel, count(*), min(held_until), max(held_until) FROM logs.alert_deliveries"
        " WHERE status = 'held' GROUP BY channel ORDER BY channel")).all()
    assert [(channel, n) for channel, n, _, _ in held] == [("email", 20), ("webhook", 20)]
    window_end = held[0][2]
    assert all(first == last == window_end for _, _, first, last in held)
    # rq-scheduler keeps whole seconds: the digest runs at the first one after the window.
    due = window_end.replace(microsecond=0) + timedelta(seconds=1 if window_end.microsecond else 0)
    assert due in scheduled("app.jobs.alerts.send_digests")
    held_ids = set(db.session.execute(text(
        "SELECT delivery_id FROM logs.alert_deliveries"
        " WHERE status = 'held' AND channel = 'webhook'")).scalars())

    assert send_due_digests(window_end - timedelta(seconds=1)) == []
    digests = send_due_digests(window_end)
    assert sorted(d.channel for d in digests) == ["email", "webhook"]
    assert send_due_digests(window_end) == []  # the held rows were claimed once
    run_jobs()
    digest = receiver.bodies()[-1]
    assert len(receiver.requests) == 11
    assert (digest["event"], digest["held_count"]) == ("digest", 20)
    assert digest["summary"] == "+20 more: api error firing x20"
    assert digest["silence_url"].endswith("/alerts/silences/new?service=api&minutes=60")
    assert {n["delivery_id"] for n in digest["notifications"]} == held_ids
    assert digest["groups"] == [{"service": "api", "level": "error", "event": "firing",
                                 "count": 20}]
    assert len(smtp_server.box.messages) == 11
    raw = smtp_server.box.messages[-1].content.decode()
    assert "Subject: Logdash digest: 20 notifications held for api" in raw
    assert "/alerts/silences/new?service=api&minutes=60" in raw
    assert scalar("SELECT count(*) FROM logs.alert_deliveries WHERE status = 'digested'"
                  " AND digest_id = :d", d=digest["delivery_id"]) == 20
    # Test notifications are not limited.
    assert client.post("/api/logs/alerts/config/api/test").status_code == 202
    run_jobs()
    assert receiver.bodies()[-1]["event"] == "test"


def test_an_episode_told_is_told_it_ended_whatever_the_rate_limit(client, receiver):
    """A firing notice that went out is followed by its resolved notice, not by a digest
    line that a receiver closing incidents on "resolved" would not read; an episode whose
    firing notice was held is resolved in the digest too."""
    configure(client, alert_webhook_url=receiver.url, rate_limit_count=1,
              rate_limit_minutes=60)
    put_counts(range(2), 10)
    step(at(0))
    step(at(3))
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    put_counts(range(5, 7), 10)
    step(at(5))
    step(at(8))
    assert len(receiver.requests) == 2
    assert db.session.execute(text(
        "SELECT event, status FROM logs.alert_deliveries ORDER BY id")).all()[2:] == [
        ("firing", "held"), ("resolved", "held")]


def test_the_resolution_of_an_episode_never_told_stays_within_the_limit(client):
    """The firing notice failed for good (404): the receiver knows of no incident, so the
    resolved notice is counted and held like any other."""
    from tests.alert_fixtures import Receiver

    receiver = Receiver(statuses=(404,))
    try:
        configure(client, alert_webhook_url=receiver.url, rate_limit_count=1,
                  rate_limit_minutes=60)
        put_counts(range(2), 10)
        step(at(0))
        # Retried before it failed for good: its first attempt says 'retrying'.
        db.session.execute(text("UPDATE logs.alert_deliveries SET status = 'retrying';"
                                " INSERT INTO logs.alert_deliveries (delivery_id,"
                                " violation_id, config_id, service, channel, target, event,"
                                " attempt, status, payload) SELECT delivery_id, violation_id,"
                                " config_id, service, channel, target, event, 2, 'failed',"
                                " payload FROM logs.alert_deliveries"))
        db.session.commit()
        step(at(3))
    finally:
        receiver.stop()
    assert db.session.execute(text(
        "SELECT event, status FROM logs.alert_deliveries ORDER BY id")).all() == [
        ("firing", "retrying"), ("firing", "failed"), ("resolved", "held")]


def test_two_workers_cannot_both_take_the_last_slot(app, client):
    """Concurrent notifications of one config: exactly rate_limit_count are sent."""
    configure(client, alert_webhook_url="https://hooks.example.com/x", rate_limit_count=2)
    config_id = scalar("SELECT id FROM logs.alert_configs")

    def send(ready):
        """One worker with its own connection."""
        with app.app_context():
            config = db.session.get(AlertConfig, config_id)
            ready()
            create_limited(config, {"service": "api", "level": "error"}, "firing", None)
            db.session.remove()

    at_once(send, 6)
    statuses = db.session.execute(text(
        "SELECT status, count(*) FROM logs.alert_deliveries GROUP BY status")).all()
    assert dict(statuses) == {"pending": 2, "held": 4}
    assert scalar("SELECT sent FROM logs.alert_rate_windows") == 6


def test_disabling_the_config_still_sends_the_digest_of_what_it_held(client, receiver):
    """Held notifications are never dropped: the digest goes out after a config is disabled."""
    configure(client, alert_webhook_url=receiver.url, rate_limit_count=1)
    config = db.session.scalars(db.select(AlertConfig)).one()
    for _ in range(3):
        create_limited(config, {"service": "api", "level": "error", "current_count": 9,
                                "threshold": 5, "started_at": "-"}, "firing", None)
    assert client.put("/api/logs/alerts/config/api", json={"enabled": False}).status_code == 200
    window_end = scalar("SELECT max(held_until) FROM logs.alert_deliveries")
    assert len(send_due_digests(window_end)) == 1
    run_jobs()
    [body] = receiver.bodies()
    assert (body["event"], body["held_count"]) == ("digest", 2)


def test_disabling_the_config_keeps_a_digest_waiting_for_its_retry(app, client, monkeypatch):
    """The digest's first try failed and its retry waits when the config is disabled: the
    retry still goes out (the held rows it carries are already marked digested)."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 0.3)
    receiver = Receiver(statuses=(500, 200))
    try:
        configure(client, alert_webhook_url=receiver.url, rate_limit_count=1)
        config = db.session.scalars(db.select(AlertConfig)).one()
        for _ in range(3):
            create_limited(config, {"service": "api", "level": "error", "current_count": 9,
                                    "threshold": 5, "started_at": "-"}, "firing", None)
        window_end = scalar("SELECT max(held_until) FROM logs.alert_deliveries")
        assert len(send_due_digests(window_end)) == 1
        run_jobs(until=lambda: receiver.requests)
        assert client.put("/api/logs/alerts/config/api",
                          json={"enabled": False}).status_code == 200
        run_jobs(until=lambda: len(receiver.requests) >= 2)
    finally:
        receiver.stop()
    assert [(b["event"], b["held_count"]) for b in receiver.bodies()] == [("digest", 2)] * 2


def test_deleting_the_config_cancels_its_held_notifications(app, client):
    """Held notifications of a deleted config have nowhere to go: cancelled, not stuck."""
    configure(client, alert_webhook_url="https://hooks.example.com/x", rate_limit_count=1)
    config = db.session.scalars(db.select(AlertConfig)).one()
    for _ in range(3):
        create_limited(config, {"service": "api", "level": "error"}, "firing", None)
    assert client.delete("/api/logs/alerts/config/api").status_code == 204
    statuses = db.session.execute(text(
        "SELECT status, count(*) FROM logs.alert_deliveries GROUP BY status")).all()
    assert dict(statuses) == {"cancelled": 3}


def test_for_three_minutes_needs_three_consecutive_minutes(client, receiver):
    """Two over-minutes, a gap, then three: only the third of those three fires."""
    configure(client, alert_webhook_url=receiver.url, for_minutes=3)
    put_counts([0, 1, 3, 4, 5], 10)
    for minute in (0, 1, 2, 3, 4):
        assert evaluate(at(minute)) == [], minute
    [event] = evaluate(at(5))
    assert (event.event, event.violation.current_count) == ("firing", 10)
    # The episode began with the first of the three minutes, not when it fired.
    assert event.violation.timestamp == at(3, 0)
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 1


def test_for_fires_on_a_run_ending_at_the_previous_minute(client):
    """A run that ended as the minute turned still fires, as max(previous, current) does."""
    configure(client, for_minutes=2)
    put_counts([0, 1], 10, level="warning")
    assert [e.violation.level for e in evaluate(at(2, 5))] == ["warning"]


def test_over_runs_follow_the_shared_semantics():
    """Runs shorter than N are not episodes; a run ends at the first minute not over."""
    over = [True, True, False, True, True, True, False, True]
    assert over_runs(over, 1) == [(0, 2), (3, 6), (7, 8)]
    assert over_runs(over, 3) == [(3, 6)]
    assert over_runs([], 1) == []
    assert firing_run([False, True, True, True], 3) == (1, 4)
    assert firing_run([True, True, True, False], 3) == (0, 3)
    assert firing_run([True, True, False, False], 2) is None
    assert firing_run([False, True, True, False], 3) is None


def test_minimum_interval_skips_a_second_evaluation(client):
    """A config evaluated 60 s ago is skipped at a 120 s minimum; later it runs again."""
    configure(client, min_evaluation_interval_seconds=120)
    put_counts([1, 2], 10)
    assert evaluate(at(0, 10)) == []
    assert evaluate(at(1, 10)) == []  # over the threshold, but skipped
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 0
    assert scalar("SELECT last_evaluated_at FROM logs.alert_configs") == at(0, 10)
    assert [e.event for e in evaluate(at(2, 15))] == ["firing"]


def test_a_firing_episode_shows_its_latest_count(client):
    """While firing, each check notes the latest count over the threshold, not only the
    peak: the alerts panel's rate is the current one."""
    configure(client)
    put_counts([0], 6)
    put_counts([1], 12)
    put_counts([2], 8)
    step(at(0))
    step(at(1))
    assert (violation().current_count, violation().peak_count) == (12, 12)
    step(at(2))
    assert (violation().current_count, violation().peak_count) == (12, 12)  # max(prev, now)
    step(at(3))
    assert (violation().current_count, violation().peak_count) == (8, 12)


def test_an_episode_no_check_saw_is_told_late_firing_then_resolved(client, receiver):
    """Errors over the threshold for three minutes while no check ran (a stopped worker):
    the next check records the episode, resolved, and tells it once, firing first."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts([2, 3], 10)
    put_counts([4], 12)
    assert [e.event for e in step(at(10))] == ["firing", "resolved"]
    assert step(at(11)) == []
    row = violation()
    assert (row.timestamp, row.resolved_at, row.resolution) == (
        at(2, 0), at(5, 0), "recovered before a check saw it")
    assert (row.current_count, row.peak_count, row.threshold_value) == (10, 12, 5)
    assert [(b["event"], b["violation_id"], b["started_at"], b["resolved_at"])
            for b in receiver.bodies()] == [
        ("firing", row.id, at(2, 0).isoformat(), at(5, 0).isoformat()),
        ("resolved", row.id, at(2, 0).isoformat(), at(5, 0).isoformat())]


def test_late_checks_leave_seen_episodes_and_old_settings_alone(client, receiver):
    """An episode a check saw is not told again, however its minutes look later; minutes
    before the config last changed, or runs shorter than `for`, tell nothing."""
    configure(client, alert_webhook_url=receiver.url, for_minutes=2)
    put_counts([0, 1, 2], 10)
    assert [e.event for e in step(at(2))] == ["firing"]
    put_counts([4], 10)  # one minute over: shorter than `for`
    put_counts([6, 7], 10, level="warning")
    db.session.execute(text("UPDATE logs.alert_configs SET updated_at = :t"), {"t": at(8)})
    db.session.commit()
    assert [e.event for e in step(at(12))] == ["resolved"]
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 1


@pytest.mark.parametrize("held", [(0, 3), (5, 20)], ids=["when it began", "now"])
def test_an_episode_under_a_silence_is_recorded_quietly(client, receiver, held):
    """Held when it began (even if the hold ended since), or held now: recorded as
    silenced, nothing sent."""
    configure(client, alert_webhook_url=receiver.url)
    silence(at(held[0], 0), at(held[1], 0))
    put_counts([1, 2, 3], 10)
    assert step(at(8)) == []
    assert receiver.requests == []
    assert (violation().silenced, violation().resolution) == (True,
                                                              "recovered before a check saw it")


def test_an_episode_a_check_fired_on_as_it_ended_is_not_told_again(client, receiver):
    """A check just after the only over-minute opens the episode at its own time, in the
    next minute; later checks know that episode, and tell nothing more."""
    configure(client, alert_webhook_url=receiver.url)
    put_counts([2], 10)
    assert [e.event for e in step(at(3, 1))] == ["firing"]
    assert [e.event for e in step(at(4, 30))] == ["resolved"]
    assert step(at(8)) == []
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]


def test_noise_fields_are_validated_and_shown(client):
    """Defaults appear in the config; out-of-range values are named."""
    configure(client)
    shown = client.get("/api/logs/alerts/config/api").json
    assert {k: shown[k] for k in ("for_minutes", "min_evaluation_interval_seconds",
                                  "rate_limit_count", "rate_limit_minutes")} == {
        "for_minutes": 1, "min_evaluation_interval_seconds": 0, "rate_limit_count": 10,
        "rate_limit_minutes": 10}
    bad = client.put("/api/logs/alerts/config/api", json={
        "for_minutes": 61, "min_evaluation_interval_seconds": -1, "rate_limit_count": 0,
        "rate_limit_minutes": "often"})
    assert bad.status_code == 400
    assert bad.json["fields"] == {
        "for_minutes": "must be a whole number from 1 to 60",
        "min_evaluation_interval_seconds": "must be a whole number from 0 to 3600",
        "rate_limit_count": "must be a whole number from 1 to 1000",
        "rate_limit_minutes": "must be a whole number from 1 to 1440"}
    good = client.put("/api/logs/alerts/config/api", json={"min_evaluation_interval_seconds": 0,
                                                          "for_minutes": "3"})
    assert (good.json["min_evaluation_interval_seconds"], good.json["for_minutes"]) == (0, 3)


def test_digest_and_links_escape_the_service_name(app, client, smtp_server):
    """A hostile service name is escaped in the digest's HTML and quoted in the links."""
    service = "<img src=x onerror=alert(1)>&co"
    configure(client, service=service, alert_email="oncall@example.com",
              repeat_interval_minutes=1, rate_limit_count=1)
    put_counts(range(2), 10, service=service)
    for minute in range(2):
        notify(evaluate(at(minute)))
    [digest] = send_due_digests(datetime.now(UTC) + timedelta(minutes=11))
    run_jobs()
    first, last = smtp_server.box.messages
    alert_html = first.content.decode().split("Content-Type: text/html")[1]
    base = app.config["LOGDASH_BASE_URL"].rstrip("/")
    quoted = "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%26co"
    assert f"{base}/alerts/silences/new?service={quoted}&amp;level=error&amp;minutes=60" in (
        alert_html)
    text_part, html_part = last.content.decode().split("Content-Type: text/html")
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;co" in html_part
    assert "<img" not in html_part
    assert f"+1 more: {service} error firing x1" in text_part
    assert digest.payload["summary"] == f"+1 more: {service} error firing x1"
