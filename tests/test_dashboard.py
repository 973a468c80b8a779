"""Dashboard JSON: exact totals and rates, windows, top errors, health, services."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from app.rollups.aggregate import aggregate_hours
from app.rollups.tiers import floor_minute
from app.stats.windows import make_window
from tests.helpers import post_logs

NOW = datetime.now(UTC)
NOW_IS_CLOCK = True  # conftest sets NOW anew for each test


def at(minutes_ago: float) -> str:
    """An ISO time some minutes before now."""
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def send(client, service, level, message, count=1, minutes_ago=0.0):
    """Post `count` identical-looking lines."""
    lines = [{"service": service, "level": level, "message": message.format(i=i),
              "timestamp": at(minutes_ago)} for i in range(count)]
    assert post_logs(client, lines).json["accepted"] == count


@pytest.fixture
def traffic(client):
    """Two services over the last hour, one line from three hours ago."""
    send(client, "api", "info", "GET /users/{i} 200", 40, 5)
    send(client, "api", "error", "timeout talking to db-{i} after 3000 ms", 8, 10)
    send(client, "api", "critical", "out of memory in worker {i}", 2, 2)
    send(client, "web", "warning", "slow render of page {i}", 5, 1)
    send(client, "web", "info", "served asset {i}", 15, 30)
    send(client, "api", "error", "timeout talking to db-{i} after 3000 ms", 4, 180)


def test_totals_levels_and_error_rate_are_exact(client, traffic):
    """The 1h window counts every line of the last hour, and only those."""
    body = client.get("/api/logs/dashboard").json
    assert body["window"]["name"] == "1h"
    assert body["totals"]["total"] == 70
    assert body["totals"]["by_level"] == {"debug": 0, "info": 55, "warning": 5, "error": 8,
                                          "critical": 2}
    assert body["totals"]["error_rate"] == round(10 / 70, 6)
    services = {s["service"]: s for s in body["services"]}
    assert [s["service"] for s in body["services"]] == ["api", "web"]
    assert services["api"]["total"] == 50
    assert services["api"]["error_rate"] == 0.2
    assert services["web"]["error_rate"] == 0.0
    assert body["active_violations"] == []


def test_series_covers_every_bucket_and_sums_to_the_totals(client, traffic):
    """Sixty minute buckets for 1h, hourly buckets beyond; zeros included."""
    one_hour = client.get("/api/logs/dashboard?window=1h").json
    points = one_hour["series"]["points"]
    assert one_hour["series"]["bucket"] == "minute"
    assert len(points) == 60
    assert sum(p["error"] for p in points) == 8
    day = client.get("/api/logs/dashboard?window=24h").json
    assert day["series"]["bucket"] == "hour"
    assert len(day["series"]["points"]) == 24
    assert sum(p["error"] for p in day["series"]["points"]) == 12
    assert day["totals"]["total"] == 74


def test_windows_agree_before_and_after_aggregation(client, traffic):
    """Moving counts from minutes to hours changes no number the API shows."""
    before = {w: client.get(f"/api/logs/dashboard?window={w}").json["totals"]
              for w in ("1h", "24h", "7d", "30d")}
    aggregate_hours()
    after = {w: client.get(f"/api/logs/dashboard?window={w}").json["totals"]
             for w in ("1h", "24h", "7d", "30d")}
    assert before == after
    assert after["7d"]["total"] == after["30d"]["total"] == 74


def test_seed_time_range_names(client, traffic):
    """timeRange=1d and 1w are the 24h and 7d windows."""
    day = client.get("/api/logs/dashboard?timeRange=1d").json
    assert day["window"]["name"] == "24h"
    assert client.get("/api/logs/dashboard?timeRange=1w").json["window"]["name"] == "7d"


@pytest.mark.parametrize("path", ["/api/logs/dashboard?window=2h",
                                  "/api/logs/dashboard/top-errors?window=forever",
                                  "/api/logs/dashboard/top-errors?limit=0",
                                  "/api/logs/dashboard/top-errors?limit=abc",
                                  "/api/logs/dashboard/top-errors?limit=101",
                                  "/api/logs/services?window=1y"])
def test_bad_window_or_limit_is_400(client, path):
    """Unknown windows and bad limits are named."""
    response = client.get(path)
    assert response.status_code == 400
    assert "window" in response.json["error"] or "limit" in response.json["error"]


def test_empty_window_and_limit_mean_their_defaults(client):
    """A form's fields left blank send `window=&limit=`: the defaults, not a 400."""
    post_logs(client, [{"service": "api", "level": "error", "message": f"boom {i}"}
                       for i in range(12)])
    answer = client.get("/api/logs/dashboard/top-errors?window=&limit=&service=")
    assert answer.status_code == 200, answer.json
    assert answer.json["window"]["name"] == "1h"
    assert [error["count"] for error in answer.json["top_errors"]] == [12]
    lines = client.get("/api/logs?limit=&service=api")
    assert lines.status_code == 200 and lines.json["count"] == 12


def test_window_buckets_end_now():
    """A window is its N most recent buckets, the current one included."""
    now = datetime(2026, 11, 27, 10, 42, 17, tzinfo=UTC)
    window = make_window("24h", now)
    assert window.buckets()[0] == datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert window.buckets()[-1] == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert make_window("1h", now).buckets()[-1] == datetime(2026, 11, 27, 10, 42, tzinfo=UTC)


def test_top_errors_group_templates_and_sort_by_count(client, traffic):
    """Variable parts are masked; error and critical only; most frequent first."""
    body = client.get("/api/logs/dashboard/top-errors?window=24h").json
    top = body["top_errors"]
    assert [t["count"] for t in top] == [12, 2]
    first = top[0]
    assert first["service"] == "api"
    assert first["level"] == "error"
    assert "<*>" in first["template"]
    assert first["sample"].startswith("timeout talking to db-")
    assert sum(first["series"]) == 12
    assert len(first["series"]) == 24
    assert datetime.fromisoformat(first["first_seen"]) < datetime.fromisoformat(
        first["last_seen"])
    assert {t["level"] for t in top} == {"error", "critical"}
    limited = client.get("/api/logs/dashboard/top-errors?window=24h&limit=1").json["top_errors"]
    assert limited == top[:1]
    assert client.get("/api/logs/dashboard/top-errors?service=web").json["top_errors"] == []
    unknown = client.get("/api/logs/dashboard/top-errors?service=nope")
    assert unknown.status_code == 404 and "nope" in unknown.json["error"]


def test_top_error_links_to_its_lines(client, traffic):
    """A template's fingerprint finds exactly its lines in search."""
    first = client.get("/api/logs/dashboard/top-errors?window=24h").json["top_errors"][0]
    found = client.get(f"/api/logs?fingerprint={first['fingerprint']}").json
    assert found["count"] == 12


def test_service_dashboard(client, traffic):
    """One service's numbers, with its top templates of every level; unknown is 404."""
    body = client.get("/api/logs/dashboard/service/web").json
    assert body["service"] == "web"
    assert body["totals"]["total"] == 20
    assert [s["service"] for s in body["services"]] == ["web"]
    assert {t["level"] for t in body["top_templates"]} == {"info", "warning"}
    missing = client.get("/api/logs/dashboard/service/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json["error"]


def test_services_list(client, traffic):
    """Known services with first and last seen and their 24h volume."""
    services = {s["service"]: s for s in client.get("/api/logs/services").json["services"]}
    assert services["api"]["volume"] == 54
    assert services["web"]["volume"] == 20
    assert datetime.fromisoformat(services["api"]["first_seen"]) < datetime.fromisoformat(
        services["api"]["last_seen"])
    # The seed's timeRange picks the window here too: 1h leaves out the line of 3 h ago.
    hour = client.get("/api/logs/services?timeRange=1h").json
    assert hour["window"]["name"] == "1h"
    assert {s["service"]: s["volume"] for s in hour["services"]} == {"api": 50, "web": 20}


def health_of(client) -> dict:
    """The health endpoint's per-service entries by name."""
    body = client.get("/api/logs/dashboard/health").json
    return {entry["service"]: entry for entry in body["services"]} | {"_": body}


def test_health_states(client):
    """ok, warning by errors, warning by warnings, error, and silent."""
    send(client, "calm", "info", "fine {i}", 5, 1)
    send(client, "errory", "error", "broken {i}", 11, 3)
    send(client, "warny", "warning", "careful {i}", 51, 3)
    send(client, "failing", "critical", "down {i}", 51, 3)
    send(client, "quiet", "info", "last words {i}", 1, 20)
    send(client, "gone", "info", "hello {i}", 1, 60 * 30)
    health = health_of(client)
    assert health["calm"]["status"] == "ok"
    assert health["errory"]["status"] == "warning"
    assert health["errory"]["reason"] == "11 errors in the last hour (more than 10)"
    assert health["warny"]["status"] == "warning"
    assert health["warny"]["warnings"] == 51
    assert health["failing"]["status"] == "error"
    assert health["failing"]["errors"] == 51
    assert health["quiet"]["status"] == "silent"
    assert health["quiet"]["reason"] == "no lines in the last 15 minutes"
    assert "gone" not in health
    assert health["_"]["status"] == "error"
    assert "errors > 50" in health["_"]["rules"]["error"]


def test_lines_stamped_ahead_count_only_once_their_minute_comes(client):
    """A sender's clock hours ahead (a local time sent without its zone): its lines are
    kept, but the last hour is the last hour, health included, and totals equal series."""
    send(client, "skewed", "info", "heartbeat {i}", 1, 20)
    send(client, "skewed", "error", "payment failed {i}", 60, -180)
    for window in ("1h", "24h"):
        service = client.get(f"/api/logs/dashboard/service/skewed?window={window}").json
        assert service["totals"]["total"] == 1
        assert service["totals"]["by_level"]["error"] == 0
        assert sum(point[level] for point in service["series"]["points"]
                   for level in ("info", "error")) == 1
    assert health_of(client)["skewed"]["status"] == "silent"
    assert client.get("/api/logs?service=skewed").json["count"] == 61


def test_a_service_that_logged_within_the_silent_minutes_is_not_silent(client):
    """A line 14 minutes and some seconds ago falls in the minute before the last 15 minute
    buckets, but within the last 15 minutes: the service is not silent."""
    if datetime.now(UTC).second > 55:  # the line and the check in one minute
        time.sleep(5)
    line_at = floor_minute(datetime.now(UTC)) - timedelta(minutes=14, milliseconds=1)
    assert post_logs(client, {"service": "edge", "message": "still here",
                              "timestamp": line_at.isoformat()}).json["accepted"] == 1
    assert health_of(client)["edge"]["status"] == "ok"


def test_a_line_stamped_ahead_does_not_hide_a_recent_one(client):
    """A service's last time is a line stamped hours ahead: a line 14 minutes and some
    seconds ago still keeps it from being silent."""
    if datetime.now(UTC).second > 55:  # the line and the check in one minute
        time.sleep(5)
    line_at = floor_minute(datetime.now(UTC)) - timedelta(minutes=14, milliseconds=1)
    ahead = datetime.now(UTC) + timedelta(hours=3)
    assert post_logs(client, [
        {"service": "edge", "message": "still here", "timestamp": line_at.isoformat()},
        {"service": "edge", "message": "from the future", "timestamp": ahead.isoformat()},
    ]).json["accepted"] == 2
    assert health_of(client)["edge"]["status"] == "ok"


def test_a_line_just_over_the_silent_minutes_ago_is_silent(client):
    """The minute before the last 15 buckets is read too; a line in it that is more than 15
    minutes old does not count as recent."""
    if not 5 <= datetime.now(UTC).second <= 55:  # its minute is then the one before them
        time.sleep(10)
    line_at = datetime.now(UTC) - timedelta(minutes=15, seconds=2)
    assert post_logs(client, {"service": "edge", "message": "last words",
                              "timestamp": line_at.isoformat()}).json["accepted"] == 1
    assert health_of(client)["edge"]["status"] == "silent"


def test_an_empty_window_on_services_is_the_default_24h(client):
    """?window= with no value is the endpoint's default, as no window at all."""
    assert client.get("/api/logs/services?window=").json["window"]["name"] == "24h"


def test_health_boundaries_are_strict(client):
    """Exactly at a threshold is not over it."""
    send(client, "edge", "error", "e {i}", 10, 1)
    send(client, "edge", "warning", "w {i}", 50, 1)
    assert health_of(client)["edge"]["status"] == "ok"


def test_dashboard_health_matches_health_endpoint(client, traffic):
    """The dashboard embeds the same health the health endpoint reports."""
    dashboard = client.get("/api/logs/dashboard").json
    health = client.get("/api/logs/dashboard/health").json
    assert dashboard["health"]["services"] == health["services"]
    assert {s["service"]: (s["health"], s["health_reason"]) for s in dashboard["services"]} == {
        s["service"]: (s["status"], s["reason"]) for s in health["services"]}


def test_a_service_quiet_for_a_day_is_ok_in_a_long_window(client):
    """A service whose lines are all older than a day has no health of its own: "ok", with
    the reason, in a window that still counts its lines."""
    old = datetime.now(UTC) - timedelta(days=3)
    assert post_logs(client, {"service": "retired", "level": "error", "message": "gone",
                              "timestamp": old.isoformat()}).json["accepted"] == 1
    (row,) = client.get("/api/logs/dashboard?window=7d").json["services"]
    assert (row["service"], row["error_rate"]) == ("retired", 1.0)
    assert (row["health"], row["health_reason"]) == ("ok", "no lines in the last day")


def test_empty_dashboard(client):
    """With no logs every number is zero, not an error."""
    body = client.get("/api/logs/dashboard?window=30d").json
    assert body["totals"] == {"total": 0, "by_level": {"debug": 0, "info": 0, "warning": 0,
                                                       "error": 0, "critical": 0},
                              "error_rate": 0.0}
    assert body["services"] == [] and body["top_errors"] == []
    assert body["health"] == {"status": "ok", "services": []}
