"""GET /api/logs and /api/logs/<id>: filters, order, keyset pages and bad parameters."""

import re
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
        ("limit=1_0", "limit must be a whole number"),  # int() reads it as 10
        ("limit=-1", "limit must be a whole number"),
        ("cursor=@@@", "cursor is not one this server gave out"),
        ("cursor=bm9wZQ", "cursor is not one this server gave out"),
        # "2026-01-01T00:00:00|5": a time without a zone, which no cursor given out has.
        ("q=x&cursor=MjAyNi0wMS0wMVQwMDowMDowMHw1", "cursor is not one this server gave out"),
        # "2026-11-28T09:00:00+00:00|99999999999999999999": an id beyond any line's.
        ("cursor=MjAyNi0xMS0yOFQwOTowMDowMCswMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OQ",
         "cursor is not one this server gave out"),
        ("q=" + "x" * 501, "q is longer than 500"),
    ],
)
def test_bad_parameters_are_400(client, query, error):
    """Each bad parameter is named in a 400."""
    response = client.get(f"/api/logs?{query}")
    assert response.status_code == 400
    assert error in response.json["error"]


@pytest.fixture
def needles(client):
    """Lines containing "needle" at ages from minutes to a day, among lines without it."""
    now = datetime.now(UTC).replace(microsecond=0)
    ages = [timedelta(minutes=10), timedelta(hours=3), timedelta(hours=5), timedelta(hours=30)]
    lines = []
    for i, age in enumerate(ages):
        lines.append({"service": "s", "message": f"found the NEEDLE {i}",
                      "timestamp": (now - age).isoformat()})
        lines.append({"service": "s", "message": f"only hay {i}",
                      "timestamp": (now - age - timedelta(minutes=1)).isoformat()})
    assert post_logs(client, lines).json["accepted"] == 8
    return [f"found the NEEDLE {i}" for i in range(len(ages))]


def follow_pages(client, query: dict) -> list[dict]:
    """Every page of a search, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        page = client.get("/api/logs", query_string={**query, **({"cursor": cursor}
                                                                 if cursor else {})}).json
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None or len(pages) > 100:
            return pages


def test_text_search_reads_back_in_slices_of_time(client, app, monkeypatch, needles):
    """With no time budget left after each slice, a text search answers slice by slice,
    newest first, says how far back it read, and its cursors still find every match once."""
    monkeypatch.setitem(app.config, "LOGDASH_SEARCH_BUDGET_MS", 0)
    pages = follow_pages(client, {"q": "needle"})
    found = [line["message"] for page in pages for line in page["logs"]]
    assert found == needles
    stops = [datetime.fromisoformat(page["searched_since"]) for page in pages[:-1]]
    assert len(stops) >= 4 and stops == sorted(stops, reverse=True)
    assert pages[-1]["searched_since"] is None
    # Some slices hold no match: those pages are empty but still lead on.
    assert any(page["count"] == 0 and page["next_cursor"] for page in pages)
    # Each page's matches are no older than where it says it stopped.
    for page, stop in zip(pages, stops, strict=False):
        assert all(datetime.fromisoformat(x["timestamp"]) >= stop for x in page["logs"])


def test_text_search_within_its_budget_answers_in_one_page(client, needles):
    """The default budget covers a small store: one page, nothing said about stopping."""
    page = client.get("/api/logs?q=needle").json
    assert [line["message"] for line in page["logs"]] == needles
    assert page["next_cursor"] is None and page["searched_since"] is None
    limited = follow_pages(client, {"q": "needle", "limit": 3})
    assert [x["message"] for page in limited for x in page["logs"]] == needles
    assert [page["count"] for page in limited] == [3, 1]


def test_text_search_slices_stop_at_since(client, app, monkeypatch, needles):
    """Bounded by since, the slices end there: no cursor leads past it."""
    monkeypatch.setitem(app.config, "LOGDASH_SEARCH_BUDGET_MS", 0)
    since = (datetime.now(UTC) - timedelta(hours=20)).isoformat()
    pages = follow_pages(client, {"q": "needle", "since": since})
    assert [x["message"] for page in pages for x in page["logs"]] == needles[:3]
    assert pages[-1]["next_cursor"] is None


def test_search_page_says_how_far_back_it_read(client, app, monkeypatch, needles):
    """The search page tells that a text search stopped early and links to older lines."""
    monkeypatch.setitem(app.config, "LOGDASH_SEARCH_BUDGET_MS", 0)
    page = client.get("/logs?q=needle")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "found the NEEDLE 0" in html and "found the NEEDLE 1" not in html
    assert "Matches in\n    the lines back to" in html and "Search older lines" in html
    older = re.search(r'href="([^"]+)" rel="next"', html).group(1)
    html = client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert "found the NEEDLE 1" in html or "No match in" in html


def test_text_search_at_the_edges_of_the_calendar(client, needles):
    """A text search bounded near the year 1 or 9999 reads nothing there, without a fault."""
    early = client.get("/api/logs", query_string={"q": "needle", "until": "0001-01-01T00:30:00Z"})
    assert early.status_code == 200 and early.json["logs"] == []
    late = client.get("/api/logs", query_string={"q": "needle", "since": "9999-12-31T23:00:00Z"})
    assert late.status_code == 200 and late.json["logs"] == []
