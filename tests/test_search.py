"""GET /api/logs and /api/logs/<id>: filters, order, keyset pages and bad parameters."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.helpers import post_logs

BASE = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)


def at(minutes: int) -> str:
    """An ISO time `minutes` after BASE."""
    return (BASE + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def sample(client):
    """Twelve lines over three services and four levels, one minute apart."""
    lines = [
        {"service": ["api", "web", "db"][i % 3],
         "level": ["debug", "info", "warning", "error"][i % 4],
         "message": f"event {i} {'Timeout talking to upstream' if i % 5 == 0 else 'ok'}",
         "timestamp": at(i)}
        for i in range(12)
    ]
    assert post_logs(client, lines).json["accepted"] == 12
    return lines


def messages(response) -> list[str]:
    """The messages of a search answer, in order."""
    assert response.status_code == 200, response.json
    return [line["message"] for line in response.json["logs"]]


def test_newest_first(client, sample):
    """Without filters every line comes back, newest first."""
    found = messages(client.get("/api/logs"))
    assert found == [line["message"] for line in reversed(sample)]


def test_service_filter_is_repeatable(client, sample):
    """Several service parameters select several services."""
    response = client.get("/api/logs?service=api&service=db")
    assert {line["service"] for line in response.json["logs"]} == {"api", "db"}
    assert response.json["count"] == 8


def test_level_and_min_level(client, sample):
    """level is exact, min_level includes everything above; aliases are accepted."""
    assert {x["level"] for x in client.get("/api/logs?level=warn").json["logs"]} == {"warning"}
    levels = {x["level"] for x in client.get("/api/logs?min_level=warning").json["logs"]}
    assert levels == {"warning", "error"}
    both = client.get("/api/logs?level=error&min_level=warning").json
    assert {x["level"] for x in both["logs"]} == {"error"}


def test_text_query_is_case_insensitive_and_literal(client, sample):
    """q matches substrings regardless of case; % and _ are not wildcards."""
    assert messages(client.get("/api/logs?q=timeout TALKING")) == [
        "event 10 Timeout talking to upstream", "event 5 Timeout talking to upstream",
        "event 0 Timeout talking to upstream"]
    assert messages(client.get("/api/logs?q=%25")) == []
    assert messages(client.get("/api/logs?q=_")) == []


def test_time_range(client, sample):
    """since and until bound the event time, both inclusive."""
    found = messages(client.get("/api/logs", query_string={"since": at(3), "until": at(5)}))
    assert found == ["event 5 Timeout talking to upstream", "event 4 ok", "event 3 ok"]


def test_fingerprint_filter(client, sample):
    """Lines can be selected by template fingerprint."""
    db.session.execute(text("UPDATE logs.entries SET fingerprint = 'fp1' WHERE message LIKE '%ok'"))
    db.session.commit()
    response = client.get("/api/logs?fingerprint=fp1")
    assert response.json["count"] == 9
    assert all(x["fingerprint"] == "fp1" for x in response.json["logs"])


def test_keyset_pages_cover_everything_once(client, sample):
    """Following next_cursor visits every line exactly once, in order."""
    seen, cursor = [], None
    while True:
        query = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/logs", query_string=query).json
        seen += [line["id"] for line in page["logs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 12 == len(set(seen))
    all_ids = [line["id"] for line in client.get("/api/logs").json["logs"]]
    assert seen == all_ids


def test_pages_are_stable_when_lines_share_a_timestamp(client):
    """Ties on time are broken by id, so no line is skipped or repeated."""
    stamp = at(0)
    post_logs(client, [{"service": "tie", "message": f"m{i}", "timestamp": stamp}
                       for i in range(7)])
    first = client.get("/api/logs?limit=3").json
    second = client.get(f"/api/logs?limit=3&cursor={first['next_cursor']}").json
    third = client.get(f"/api/logs?limit=3&cursor={second['next_cursor']}").json
    ids = [x["id"] for page in (first, second, third) for x in page["logs"]]
    assert len(ids) == 7 == len(set(ids))
    assert third["next_cursor"] is None


def test_show_one_line(client, sample):
    """A line is fetched by its id; unknown ids are 404."""
    first = client.get("/api/logs?limit=1").json["logs"][0]
    assert client.get(f"/api/logs/{first['id']}").json == first
    missing = client.get("/api/logs/999999999")
    assert missing.status_code == 404
    assert missing.json == {"error": "no log line with id 999999999"}
    assert client.get(f"/api/logs/{2**70}").status_code == 404


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("level=loud", "level must be one of"),
        ("min_level=0", "min_level must be one of"),
        ("level=info&min_level=error", "level is below min_level"),
        ("since=yesterday", "since:"),
        ("until=2026-13-01", "until:"),
        ("since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "since is after until"),
        ("limit=0", "limit must be between 1 and 1000"),
        ("limit=1001", "limit must be between 1 and 1000"),
        ("limit=ten", "limit must be a whole number"),
        ("cursor=@@@", "cursor is not one this server gave out"),
        ("cursor=bm9wZQ", "cursor is not one this server gave out"),
        ("q=" + "x" * 501, "q is longer than 500"),
    ],
)
def test_bad_parameters_are_400(client, query, error):
    """Each bad parameter is named in a 400."""
    response = client.get(f"/api/logs?{query}")
    assert response.status_code == 400
    assert error in response.json["error"]
