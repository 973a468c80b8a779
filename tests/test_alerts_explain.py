"""Every violation explains itself (counts per minute around it against the threshold, the
templates that drove it, its deliveries) and can be acknowledged by API and on its page."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import AlertViolation, Silence
from app.rollups.tiers import floor_hour, floor_minute
from tests.alert_fixtures import Receiver, run_jobs
from tests.conftest import token_headers
from tests.helpers import scalar
from tests.test_alerts_backtest import put_counts
from tests.test_alerts_delivery import fire
from tests.test_alerts_lifecycle import steady_minute
from tests.test_web import HOSTILE, element, page
from tests.test_web_alerts import body, person

MINUTE = timedelta(minutes=1)
# Lines per template per minute offset from the violation's start; error and critical.
BURST = {"a" * 16: (4, "db timeout after <n> ms"), "b" * 16: (2, HOSTILE),
         "c" * 16: (1, "cache miss for <key>")}


def violation(service: str = "api", level: str = "error", started: datetime | None = None,
              resolved: datetime | None = None, threshold: int = 5) -> int:
    """Record a violation as the evaluator would have; return its id."""
    row = AlertViolation(service=service, level=level, current_count=9, peak_count=9,
                         threshold_value=threshold, timestamp=started or datetime.now(UTC),
                         resolved_at=resolved, resolution="recovered" if resolved else None)
    db.session.add(row)
    db.session.commit()
    return row.id


def put_templates(table: str, bucket: str, service: str, rows: dict) -> None:
    """Template counts ({(bucket, level, fingerprint): n}) and the templates they name."""
    db.session.execute(
        text(f"INSERT INTO logs.{table} ({bucket}, service, level, fingerprint, count)"
             " VALUES (:at, :service, :level, :fp, :n)"),
        [{"at": at, "service": service, "level": level, "fp": fp, "n": n}
         for (at, level, fp), n in rows.items()])
    db.session.execute(
        text("INSERT INTO logs.templates (service, level, fingerprint, template, sample,"
             " first_seen, last_seen) VALUES (:service, :level, :fp, :t, :t, now(), now())"
             " ON CONFLICT DO NOTHING"),
        [{"service": service, "level": level, "fp": fp, "t": BURST[fp][1]}
         for (_, level, fp) in rows])
    db.session.commit()


def burst(started: datetime) -> tuple[dict, dict]:
    """Minute counts (calm, 6 minutes over with a dip at or under, calm) and the template
    counts behind them, around a violation opening at `started`."""
    counts, templates = {}, {}
    plan = {-12: 1, -3: 2, -1: 6, 0: 11, 1: 7, 2: 5, 3: 14, 4: 3, 8: 40}
    for offset, n in plan.items():
        at = started + MINUTE * offset
        counts[(at, "error")], counts[(at, "critical")] = n - n // 3, n // 3
        counts[(at, "warning")] = 100
        if n > 5:
            for fp, (share, _) in BURST.items():
                templates[(at, "error", fp)] = share * n
    return counts, templates


def explained(client, violation_id: int) -> dict:
    """The API's answer for one violation."""
    answer = client.get(f"/api/logs/alerts/violations/{violation_id}")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_counts_around_a_resolved_violation(client):
    """From ten minutes before it started to its resolution: counts, threshold, over/under."""
    started = floor_minute(steady_minute()) - MINUTE * 30
    counts, templates = burst(started)
    put_counts("api", counts)
    put_templates("template_minute", "minute", "api", templates)
    vid = violation(started=started + timedelta(seconds=20),
                    resolved=started + timedelta(minutes=5, seconds=10))
    answer = explained(client, vid)
    assert (answer["id"], answer["status"], answer["acknowledged_at"]) == (vid, "resolved", None)
    why = answer["explanation"]
    assert why["threshold"] == 5 and why["levels_counted"] == ["error", "critical"]
    minutes = why["minutes"]
    assert [datetime.fromisoformat(m["minute"]) for m in (minutes[0], minutes[-1])] == [
        started - 10 * MINUTE, started + 5 * MINUTE]
    assert len(minutes) == 16 and why["truncated"] is False
    by_offset = {(datetime.fromisoformat(m["minute"]) - started) // MINUTE: m for m in minutes}
    expected = {offset: counts.get((started + MINUTE * offset, "error"), 0)
                + counts.get((started + MINUTE * offset, "critical"), 0)
                for offset in range(-10, 6)}
    assert {o: m["count"] for o, m in by_offset.items()} == expected
    assert [o for o, m in by_offset.items() if m["over"]] == [-1, 0, 1, 3]
    top = why["top_templates"]
    assert top["per"] == "minute"
    # Summed over the minutes from the first to the last over-minute (-1 .. 3).
    over_lines = sum(n for n in (6, 11, 7, 14))
    assert [(t["template"], t["count"]) for t in top["templates"]] == [
        (BURST["a" * 16][1], 4 * over_lines), (HOSTILE, 2 * over_lines),
        (BURST["c" * 16][1], over_lines)]
    assert why["deliveries"] == [] and why["held_by"] is None


def test_top_templates_are_those_of_the_episode_over_minutes_only(client):
    """An earlier burst shown in the calm before, and a minute under the threshold inside
    the episode, do not count among the templates that drove it."""
    started = floor_minute(steady_minute()) - MINUTE * 30
    a, b, c = (f * 16 for f in "abc")
    counts = {(started - 5 * MINUTE, "error"): 9, (started, "error"): 8,
              (started + MINUTE, "error"): 3, (started + 2 * MINUTE, "error"): 7}
    put_counts("api", counts)
    put_templates("template_minute", "minute", "api", {
        (started - 5 * MINUTE, "error", b): 9, (started, "error", a): 8,
        (started + MINUTE, "error", c): 3, (started + 2 * MINUTE, "error", a): 7})
    vid = violation(started=started + timedelta(seconds=20),
                    resolved=started + timedelta(minutes=4, seconds=5))
    top = explained(client, vid)["explanation"]["top_templates"]
    assert [(t["template"], t["count"]) for t in top["templates"]] == [(BURST[a][1], 15)]


def meter_region(tag: str) -> str:
    """Which region a <meter> puts its value in, by the HTML standard's rules (what decides
    its colour): optimum, suboptimal or even less good."""
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', tag))
    low_end, high_end = float(attributes.get("min", 0)), float(attributes.get("max", 1))
    value = float(attributes["value"])
    low = float(attributes.get("low", low_end))
    high = float(attributes.get("high", high_end))
    optimum = float(attributes.get("optimum", (low_end + high_end) / 2))
    if optimum < low:
        return "optimum" if value <= low else "suboptimal" if value <= high else "even less good"
    if optimum > high:
        return "optimum" if value >= high else "suboptimal" if value >= low else "even less good"
    return "optimum" if low <= value <= high else "suboptimal"


def test_the_page_colours_minutes_over_the_threshold_as_bad(app, client):
    """Each minute's bar: over the threshold in the worst colour, at or under it the best."""
    started = floor_minute(steady_minute()) - MINUTE * 30
    counts, _ = burst(started)
    put_counts("api", counts)
    vid = violation(started=started, resolved=started + 5 * MINUTE)
    html = page(person(app, "admin"), f"/alerts/violations/{vid}")
    regions = {int(count.replace(",", "")): meter_region(tag) for tag, count in re.findall(
        r'(<meter [^>]*>)([\d,]+)</meter>', html)}
    assert regions == {0: "optimum", 2: "optimum", 3: "optimum", 5: "optimum", 6: "even less good",
                       7: "even less good", 11: "even less good", 14: "even less good"}


def test_firing_violation_runs_to_now_capped_at_three_hours(client):
    """A firing episode is shown up to the current minute, at most 180 minutes of it."""
    now = steady_minute()
    recent = violation(started=now - timedelta(minutes=7))
    assert len(explained(client, recent)["explanation"]["minutes"]) == 10 + 7 + 1
    put_counts("api", {(floor_minute(now) - timedelta(hours=5), "info"): 1})
    long_id = violation(service="web", started=now - timedelta(hours=5))
    why = explained(client, long_id)["explanation"]
    assert len(why["minutes"]) == 180 and why["truncated"] is True
    assert datetime.fromisoformat(why["minutes"][0]["minute"]) == (
        floor_minute(now) - timedelta(hours=5) - 10 * MINUTE)


def test_minutes_no_longer_kept_are_unknown_and_templates_come_from_hours(client):
    """Before the oldest minute row counts are None, not 0; templates fall back to hours."""
    started = floor_minute(datetime.now(UTC)) - timedelta(days=5)
    put_counts("api", {(started + 2 * MINUTE, "error"): 9})
    hour = floor_hour(started + 2 * MINUTE)
    put_templates("template_hourly", "hour", "api", {
        (hour, "critical", "c" * 16): 30, (hour, "error", "a" * 16): 12,
        (hour - timedelta(hours=2), "error", "b" * 16): 99,
        (hour, "warning", "b" * 16): 500})
    vid = violation(started=started, resolved=started + 4 * MINUTE)
    why = explained(client, vid)["explanation"]
    assert [m["count"] for m in why["minutes"]][:12] == [None] * 12
    assert [m["count"] for m in why["minutes"]][12:] == [9, 0, 0]
    assert why["top_templates"]["per"] == "hour"
    assert [(t["fingerprint"], t["count"]) for t in why["top_templates"]["templates"]] == [
        ("c" * 16, 30), ("a" * 16, 12)]


def test_deliveries_and_the_silence_holding_it(client):
    """The real deliveries of a fired violation, and the silence holding it now."""
    receiver = Receiver(statuses=(200,))
    try:
        fire(client, receiver)
        run_jobs()
    finally:
        receiver.stop()
    vid = scalar("SELECT id FROM logs.alert_violations")
    now = datetime.now(UTC)
    db.session.add(Silence(service="api", level=None, starts_at=now - MINUTE,
                           ends_at=now + timedelta(hours=1), created_by="ops", comment="deploy"))
    db.session.commit()
    why = explained(client, vid)["explanation"]
    assert [(d["channel"], d["event"], d["status"], d["response_code"])
            for d in why["deliveries"]] == [("webhook", "firing", "success", 200)]
    assert why["held_by"]["kind"] == "silence"
    assert why["top_templates"]["templates"][0]["template"] == "boom"


def test_acknowledge_by_api(client, anonymous_client):
    """Firing: acknowledged once, by the token; resolved: 409; unknown: 404; read: 403."""
    firing = violation(started=datetime.now(UTC))
    resolved = violation(service="web", started=datetime.now(UTC) - timedelta(hours=1),
                         resolved=datetime.now(UTC))
    read = anonymous_client.post(f"/api/logs/alerts/violations/{firing}/acknowledge",
                                 headers=token_headers("read"))
    assert read.status_code == 403
    first = client.post(f"/api/logs/alerts/violations/{firing}/acknowledge")
    assert first.status_code == 200, first.json
    assert first.json["acknowledged_by"] == "token test admin"
    again = client.post(f"/api/logs/alerts/violations/{firing}/acknowledge",
                        headers=token_headers())
    assert again.json["acknowledged_at"] == first.json["acknowledged_at"]
    listed = client.get("/api/logs/alerts/violations?status=firing").json["violations"]
    assert [(v["id"], v["acknowledged_by"], v["silenced"]) for v in listed] == [
        (firing, "token test admin", False)]
    gone = client.post(f"/api/logs/alerts/violations/{resolved}/acknowledge")
    assert gone.status_code == 409 and "resolved" in gone.json["error"]
    assert scalar("SELECT count(*) FROM logs.alert_violations WHERE acknowledged_at IS NOT NULL"
                  ) == 1
    for path in ("/api/logs/alerts/violations/999999", "/api/logs/alerts/violations/"
                 + "9" * 20):
        assert client.get(path).status_code == 404
        assert client.post(path + "/acknowledge").status_code == 404


def test_acknowledge_on_the_page_needs_the_csrf_token(app):
    """The page's form carries the token and works; the same POST without it is refused."""
    admin = person(app, "admin")
    vid = violation(started=datetime.now(UTC))
    html = page(admin, f"/alerts/violations/{vid}")
    form = element(html, "acknowledge")
    assert f'action="/alerts/violations/{vid}/acknowledge"' in form
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    forger = person(app, "admin", csrf=False)
    refused = forger.post(f"/alerts/violations/{vid}/acknowledge")
    assert refused.status_code == 403 and "CSRF" in refused.json["error"]
    # Another session's token is no good either.
    stolen = forger.post(f"/alerts/violations/{vid}/acknowledge", data={"csrf_token": token})
    assert stolen.status_code == 403
    assert scalar("SELECT count(*) FROM logs.alert_violations WHERE acknowledged_at IS NOT NULL"
                  ) == 0
    own = re.search(r'name="csrf_token" value="([^"]+)"',
                    element(page(forger, f"/alerts/violations/{vid}"), "acknowledge")).group(1)
    done = forger.post(f"/alerts/violations/{vid}/acknowledge", data={"csrf_token": own})
    assert done.status_code == 303 and done.location.endswith(f"/alerts/violations/{vid}")
    after = page(forger, f"/alerts/violations/{vid}")
    assert "<form id=\"acknowledge\"" not in after
    assert "Acknowledged by admin-bare at" in element(after, "acknowledge")
    table = element(page(forger, "/alerts"), "alert-violations")
    row = element(table, f"violation-{vid}")
    assert ">acknowledged</span>" in row and f'href="/alerts/violations/{vid}"' in row


def test_viewers_and_resolved_violations_get_no_button(app):
    """Viewers read the explanation without a form; a resolved one cannot be acknowledged."""
    vid = violation(started=datetime.now(UTC))
    viewer = person(app, "viewer")
    html = page(viewer, f"/alerts/violations/{vid}")
    assert 'id="violation-minutes"' in html and "<form id=\"acknowledge\"" not in html
    done = violation(service="web", started=datetime.now(UTC) - timedelta(hours=1),
                     resolved=datetime.now(UTC))
    admin = person(app, "admin")
    assert "<form id=\"acknowledge\"" not in page(admin, f"/alerts/violations/{done}")
    late = admin.post(f"/alerts/violations/{done}/acknowledge")
    assert late.status_code == 409 and "resolved already" in late.get_data(as_text=True)
    assert page(admin, "/alerts/violations/999999", 404)


def test_hostile_template_text_on_the_page_is_text(app, client):
    """Templates and samples are shown escaped."""
    started = floor_minute(steady_minute()) - MINUTE * 30
    counts, templates = burst(started)
    put_counts("api", counts)
    put_templates("template_minute", "minute", "api", templates)
    vid = violation(started=started, resolved=started + 5 * MINUTE)
    html = page(person(app, "viewer"), f"/alerts/violations/{vid}")
    section = element(html, "violation-templates")
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in section
    assert ">db timeout after &lt;n&gt; ms<" in section


@pytest.mark.parametrize("level", ["error", "warning"])
def test_preview_partial_says_how_often_it_would_have_fired(app, level):
    """The form's preview renders the backtest's numbers per level."""
    now = steady_minute()
    start = floor_minute(now) - MINUTE * 90
    put_counts("api", {(start + MINUTE * i, level): 30 for i in (0, 1, 2, 10, 20, 21)})
    admin = person(app, "admin")
    asked = {"service": "api", f"{level}_threshold_per_min": "10"}
    short = body(admin.get("/partials/alerts/backtest", query_string=asked))
    assert "fired 3 times in the last 1 h 31 min," in element(short, f"backtest-{level}")
    put_counts("elsewhere", {(start - timedelta(days=8), "info"): 1})
    html = body(admin.get("/partials/alerts/backtest", query_string={
        "service": "api", "error_threshold_per_min": "10", "warning_threshold_per_min": "10",
        "for_minutes": "1"}))
    assert ("Would have fired 3 times in the last 7 days, longest episode 3 min"
            in element(html, f"backtest-{level}"))
    other = "warning" if level == "error" else "error"
    assert "Would not have fired" in element(html, f"backtest-{other}")
    fewer = body(admin.get("/partials/alerts/backtest", query_string={
        "service": "api", "error_threshold_per_min": "10", "warning_threshold_per_min": "10",
        "for_minutes": "2"}))
    assert "Would have fired 2 times in the last 7 days, longest episode 3 min" in element(
        fewer, f"backtest-{level}")
    bad = body(admin.get("/partials/alerts/backtest", query_string={
        "service": "api", "error_threshold_per_min": "0"}))
    assert "No preview until this is fixed: error_threshold_per_min must be" in bad
    assert "not sent any lines" in body(admin.get("/partials/alerts/backtest?service=nope"))
