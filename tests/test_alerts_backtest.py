"""The backtest: how often thresholds would have fired over the last days, checked against a
naive minute-by-minute recount of the same rollup rows."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.alerts.configs import create_config
from app.alerts.evaluate import over_runs
from app.extensions import db
from app.rollups.tiers import floor_minute
from tests.test_alerts_lifecycle import steady_minute

MINUTE = timedelta(minutes=1)
LEVELS = {"error": ("error", "critical"), "warning": ("warning",)}


def put_counts(service: str, counts: dict[tuple[datetime, str], int]) -> None:
    """Write minute rows for a service straight into the rollup, and mark it seen."""
    db.session.execute(
        text("INSERT INTO logs.rollup_minute (minute, service, level, count)"
             " VALUES (:minute, :service, :level, :count)"),
        [{"minute": minute, "service": service, "level": level, "count": count}
         for (minute, level), count in counts.items()])
    db.session.execute(text(
        "INSERT INTO logs.services (service, first_seen, last_seen) VALUES (:s, now(), now())"
        " ON CONFLICT DO NOTHING"), {"s": service})
    db.session.commit()


def varied_week(now: datetime, seed: int = 7) -> dict[tuple[datetime, str], int]:
    """Eight days of bursts of every length, counts around the thresholds, noise levels,
    gaps of one minute, and a burst still going at the current minute."""
    rng = random.Random(seed)
    current = floor_minute(now)
    counts: dict[tuple[datetime, str], int] = {}
    minute = current - timedelta(days=8)
    while minute < current - timedelta(minutes=10):
        length = rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 8, 23])
        for i in range(length):
            at = minute + MINUTE * i
            counts[(at, "error")] = rng.choice([0, 3, 5, 5, 6, 9, 40])
            counts[(at, "critical")] = rng.choice([0, 0, 1, 2])
            counts[(at, "warning")] = rng.choice([0, 2, 3, 4, 4, 10])
            counts[(at, "info")] = rng.choice([50, 500])
        minute += MINUTE * (length + rng.choice([1, 1, 2, 7, 30, 200]))
    for i in range(4):
        at = current - MINUTE * i
        counts[(at, "error")], counts[(at, "warning")] = 50, 1
    return {key: value for key, value in counts.items() if value}


def recount(service: str, since: datetime, until: datetime, level: str, threshold: int,
            for_minutes: int) -> dict:
    """Read the service's minute rows and walk every minute of [since, until) by hand."""
    rows = db.session.execute(text(
        "SELECT minute, level, count FROM logs.rollup_minute WHERE service = :s"), {"s": service})
    per_minute: dict[datetime, int] = {}
    for minute, row_level, count in rows:
        if row_level in LEVELS[level]:
            per_minute[minute] = per_minute.get(minute, 0) + count
    fired, streak, longest, over_total, firing = 0, 0, 0, 0, False
    minute = since
    while minute < until:
        if per_minute.get(minute, 0) > threshold:
            streak += 1
            over_total += 1
            if streak == for_minutes:
                fired += 1
                firing = True
            if firing:
                longest = max(longest, streak)
        else:
            streak, firing = 0, False
        minute += MINUTE
    return {"fired": fired, "longest_episode_minutes": longest, "minutes_over": over_total}


def backtest(client, service: str = "api", **params):
    """GET the backtest of a service."""
    return client.get(f"/api/logs/alerts/config/{service}/backtest", query_string=params)


def test_the_run_rule_follows_the_shared_semantics():
    """Runs shorter than `for` never fire; an episode ends at the first minute not over."""
    over = [count > 5 for count in [6, 0, 6, 6, 0, 6, 6, 6, 5, 6, 6, 6, 6]]
    assert over_runs(over, 1) == [(0, 1), (2, 4), (5, 8), (9, 13)]
    assert over_runs(over, 3) == [(5, 8), (9, 13)]
    assert over_runs(over, 4) == [(9, 13)]
    assert over_runs([False, False], 1) == []


@pytest.mark.parametrize(("error", "warning", "for_minutes", "days"), [
    (5, 3, 1, 7), (5, 3, 3, 7), (8, 4, 2, 2), (5, 3, 3, 1)])
def test_numbers_equal_a_brute_force_recount(client, error, warning, for_minutes, days):
    """Fired, longest episode and minutes over match the naive walk, for every level."""
    now = steady_minute()
    put_counts("api", varied_week(now))
    put_counts("other", {(floor_minute(now) - MINUTE * i, "error"): 999 for i in range(30)})
    answer = backtest(client, error_threshold_per_min=error,
                      warning_threshold_per_min=warning, for_minutes=for_minutes, days=days)
    assert answer.status_code == 200, answer.json
    body = answer.json
    until = floor_minute(now) + MINUTE
    since = until - timedelta(days=days)
    assert (datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])) == (
        since, until)
    for level, threshold in (("error", error), ("warning", warning)):
        expected = recount("api", since, until, level, threshold, for_minutes)
        got = body[level]
        assert {k: got[k] for k in expected} == expected, level
        assert expected["fired"] > 1
        assert len(got["episodes"]) == got["fired"]
        assert max(e["minutes"] for e in got["episodes"]) == got["longest_episode_minutes"]
        assert all(e["minutes"] >= for_minutes and e["peak"] > threshold
                   for e in got["episodes"])
    assert body["error"]["episodes"][-1]["end"] is None
    assert body["summary"] == (
        f"errors would have fired {body['error']['fired']} times, longest episode"
        f" {body['error']['longest_episode_minutes']} min; warnings would have fired"
        f" {body['warning']['fired']} times, longest episode"
        f" {body['warning']['longest_episode_minutes']} min")


def test_episode_bounds_and_peaks(client):
    """An episode starts at its first over-minute and ends at the first minute not over."""
    now = steady_minute()
    start = floor_minute(now) - MINUTE * 30
    put_counts("api", {(start, "error"): 7, (start + MINUTE, "critical"): 9,
                       (start + MINUTE, "error"): 3, (start + 2 * MINUTE, "error"): 6,
                       (start + 5 * MINUTE, "error"): 6, (start + 6 * MINUTE, "error"): 6})
    body = backtest(client, error_threshold_per_min=5, for_minutes=2).json
    assert body["error"]["episodes"] == [
        {"start": start.isoformat(), "end": (start + 3 * MINUTE).isoformat(),
         "minutes": 3, "peak": 12},
        {"start": (start + 5 * MINUTE).isoformat(), "end": (start + 7 * MINUTE).isoformat(),
         "minutes": 2, "peak": 6}]
    assert body["error"]["minutes_over"] == 5
    assert backtest(client, error_threshold_per_min=5, for_minutes=4).json["error"]["fired"] == 0


def test_defaults_come_from_the_saved_config_or_the_config_defaults(client):
    """Without parameters the saved thresholds and `for` are replayed; without a config,
    the defaults every new config gets."""
    now = steady_minute()
    start = floor_minute(now) - MINUTE * 60
    put_counts("api", {(start + MINUTE * i, "error"): 20 + 100 * (i % 2) for i in range(6)})
    unsaved = backtest(client).json
    assert (unsaved["error"]["threshold"], unsaved["for_minutes"]) == (100, 1)
    assert unsaved["error"]["fired"] == 3
    create_config({"service": "api", "error_threshold_per_min": 10, "for_minutes": 3})
    saved = backtest(client).json
    assert (saved["error"]["threshold"], saved["for_minutes"]) == (10, 3)
    assert (saved["error"]["fired"], saved["error"]["longest_episode_minutes"]) == (1, 6)
    tried = backtest(client, for_minutes=1, error_threshold_per_min=50).json
    assert (tried["error"]["fired"], tried["error"]["threshold"]) == (3, 50)
    assert client.get("/api/logs/alerts/config/api").json["error_threshold_per_min"] == 10


def test_span_starts_at_the_oldest_minute_kept(client):
    """Minutes older than retention keeps are not counted as calm: the span says so."""
    now = steady_minute()
    oldest = floor_minute(now) - timedelta(days=2, minutes=17)
    put_counts("elsewhere", {(oldest, "info"): 1})
    put_counts("api", {(floor_minute(now) - MINUTE, "error"): 500})
    body = backtest(client).json
    assert datetime.fromisoformat(body["from"]) == oldest
    assert body["covered_minutes"] == 2 * 24 * 60 + 17 + 1
    assert body["error"]["fired"] == 1


@pytest.mark.parametrize(("params", "named"), [
    ({"error_threshold_per_min": "0"}, "error_threshold_per_min"),
    ({"warning_threshold_per_min": "lots"}, "warning_threshold_per_min"),
    ({"for_minutes": "0"}, "for_minutes"), ({"for_minutes": "61"}, "for_minutes"),
    ({"days": "0"}, "days"), ({"days": "8"}, "days"), ({"days": "-1"}, "days"),
    ({"days": "9" * 5000}, "days"),
    ({"error_threshold_per_min": "9" * 30}, "error_threshold_per_min")])
def test_bad_parameters_are_refused_by_name(client, params, named):
    """A 400 naming the parameter."""
    put_counts("api", {(floor_minute(datetime.now(UTC)), "error"): 1})
    answer = backtest(client, **params)
    assert answer.status_code == 400
    assert answer.json["error"].startswith(named)


def test_unknown_service_is_a_404_and_names_with_slashes_work(client):
    """A service that never sent a line is a 404; the config route is not shadowed."""
    answer = backtest(client, "never-seen")
    assert answer.status_code == 404 and "never-seen" in answer.json["error"]
    put_counts("team/api", {(floor_minute(datetime.now(UTC)), "warning"): 80})
    assert backtest(client, "team/api").json["warning"]["fired"] == 1
    create_config({"service": "team/api"})
    assert client.get("/api/logs/alerts/config/team/api").json["service"] == "team/api"


def test_read_tokens_may_backtest(anonymous_client):
    """It changes nothing, so the read scope is enough."""
    from tests.conftest import token_headers

    put_counts("api", {(floor_minute(datetime.now(UTC)), "error"): 1})
    answer = anonymous_client.get("/api/logs/alerts/config/api/backtest",
                                  headers=token_headers("read"))
    assert answer.status_code == 200 and answer.json["error"]["fired"] == 0
