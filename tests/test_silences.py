"""Silences and maintenance windows: the JSON API (create, list by state, expire early,
errors naming their fields, 404s, who may change them), when a window crossing midnight in
a non-UTC zone holds (DST weekends included), and the pages' forms."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from app.alerts.silences import SilenceBook, window_occurrence
from app.extensions import db
from app.models import MaintenanceWindow
from tests.conftest import token_headers
from tests.helpers import scalar
from tests.test_web import HOSTILE, HOSTILE_SERVICE
from tests.test_web_alerts import body, person

SILENCES = "/api/logs/alerts/silences"
WINDOWS = "/api/logs/alerts/maintenance-windows"
BERLIN = ZoneInfo("Europe/Berlin")
# Allowance for the time between reading the clock in a test and the server reading it.
SLACK = timedelta(seconds=30)


def at(text_: str) -> datetime:
    """An ISO time from an answer, as a datetime."""
    return datetime.fromisoformat(text_)


def iso(moment: datetime) -> str:
    """A time as the API takes it."""
    return moment.isoformat()


def create(client, status: int = 201, **fields) -> dict:
    """POST a silence; check the status; return the answer."""
    response = client.post(SILENCES, json=fields)
    assert response.status_code == status, response.json
    return response.json


def listed(client, query: str = "") -> dict[int, str]:
    """The listed silences, as id -> state."""
    response = client.get(f"{SILENCES}{query}")
    assert response.status_code == 200, response.json
    return {s["id"]: s["state"] for s in response.json["silences"]}


def stored_silences() -> int:
    """How many silences the table holds."""
    return scalar("SELECT count(*) FROM logs.alert_silences")


# Silences through the JSON API

def test_create_for_a_duration_starts_now_and_names_its_creator(client):
    """Without starts_at a silence starts now; duration_minutes sets its end."""
    before = datetime.now(UTC)
    silence = create(client, service="checkout", level="error", duration_minutes=90,
                     comment="deploy 4.2")
    after = datetime.now(UTC)
    assert before - timedelta(seconds=1) <= at(silence["starts_at"]) <= after
    assert at(silence["ends_at"]) - at(silence["starts_at"]) == timedelta(minutes=90)
    assert silence["state"] == "active"
    assert silence["created_by"] == "token test admin"
    stored = db.session.execute(text(
        "SELECT service, level, comment, created_by FROM logs.alert_silences")).one()
    assert tuple(stored) == ("checkout", "error", "deploy 4.2", "token test admin")
    assert client.get(f"{SILENCES}/{silence['id']}").json == silence


def test_without_service_or_level_it_covers_everything(client):
    """Absent service and level mean every service, both levels: SilenceBook holds all."""
    now = datetime.now(UTC)
    silence = create(client, ends_at=iso(now + timedelta(hours=2)))
    assert (silence["service"], silence["level"]) == (None, None)
    book = SilenceBook(datetime.now(UTC))
    for service, level in (("api", "error"), ("billing", "warning")):
        hold = book.hold(service, level)
        assert (hold.kind, hold.id) == ("silence", silence["id"])
        assert hold.until == at(silence["ends_at"])


def test_list_shows_active_and_upcoming_by_default_and_ended_on_request(client):
    """Each listed silence carries its state; ended ones only with ?state=ended."""
    now = datetime.now(UTC)
    active = create(client, service="api", duration_minutes=30)["id"]
    upcoming = create(client, service="api", starts_at=iso(now + timedelta(hours=1)),
                      ends_at=iso(now + timedelta(hours=2)))["id"]
    ended = create(client, service="api", duration_minutes=30)["id"]
    assert client.post(f"{SILENCES}/{ended}/expire").status_code == 200

    assert listed(client) == {active: "active", upcoming: "upcoming"}
    assert listed(client, "?state=ended") == {ended: "ended"}
    assert listed(client, "?state=active,ended") == {active: "active", ended: "ended"}
    assert listed(client, "?state=upcoming") == {upcoming: "upcoming"}


def test_a_silence_that_started_earlier_is_active(client):
    """starts_at in the past (with any offset) is accepted and already holds."""
    start = (datetime.now(UTC) - timedelta(minutes=10)).astimezone(BERLIN)
    silence = create(client, service="api", starts_at=start.isoformat(), duration_minutes=60)
    assert at(silence["starts_at"]) == start
    assert silence["state"] == "active"
    assert SilenceBook(datetime.now(UTC)).hold("api", "warning").id == silence["id"]


def test_a_duration_that_ends_before_now_is_refused(client):
    """A past start plus a duration that is already over would be a silence that never holds."""
    start = datetime.now(UTC) - timedelta(hours=2)
    response = client.post(SILENCES, json={"starts_at": start.isoformat(),
                                           "duration_minutes": 5})
    assert response.status_code == 400
    assert "past" in response.json["fields"]["duration_minutes"]


def test_expiring_early_ends_it_now_and_stops_the_hold(client):
    """Expire sets ends_at to now and says who; SilenceBook no longer holds; twice is 409."""
    silence = create(client, service="api", level="error", duration_minutes=120)
    assert SilenceBook(datetime.now(UTC)).hold("api", "error") is not None
    before = datetime.now(UTC)
    response = client.post(f"{SILENCES}/{silence['id']}/expire")
    after = datetime.now(UTC)
    assert response.status_code == 200, response.json
    expired = response.json
    assert expired["state"] == "ended"
    assert before <= at(expired["ends_at"]) <= after
    assert at(expired["expired_at"]) == at(expired["ends_at"])
    assert expired["expired_by"] == "token test admin"
    assert SilenceBook(datetime.now(UTC)).hold("api", "error") is None

    again = client.post(f"{SILENCES}/{silence['id']}/expire")
    assert again.status_code == 409
    assert "ended already" in again.json["error"]
    assert at(client.get(f"{SILENCES}/{silence['id']}").json["ends_at"]) == at(expired["ends_at"])


def test_expiring_an_upcoming_silence_means_it_never_holds(client):
    """A silence expired before its start is ended: it holds neither now nor at its start."""
    now = datetime.now(UTC)
    start = now + timedelta(hours=1)
    silence = create(client, service="api", starts_at=iso(start), duration_minutes=60)
    assert SilenceBook(start + timedelta(minutes=1)).hold("api", "error") is not None
    expired = client.post(f"{SILENCES}/{silence['id']}/expire").json
    assert expired["state"] == "ended"
    assert SilenceBook(start + timedelta(minutes=1)).hold("api", "error") is None
    assert listed(client) == {}


@pytest.mark.parametrize(("fields", "bad"), [
    ({"service": "", "duration_minutes": 5}, "service"),
    ({"service": 42, "duration_minutes": 5}, "service"),
    ({"level": "info", "duration_minutes": 5}, "level"),
    ({"starts_at": "tomorrow", "duration_minutes": 5}, "starts_at"),
    ({"starts_at": "2026-11-27T10:00:00", "duration_minutes": 5}, "starts_at"),
    ({"starts_at": "0001-01-01T00:00:00+05:00", "duration_minutes": 5}, "starts_at"),
    ({"starts_at": "9999-12-31T23:59:59+00:00", "duration_minutes": 5}, "starts_at"),
    ({"service": "api"}, "ends_at"),
    ({"duration_minutes": 5, "ends_at": "2099-01-01T00:00:00Z"}, "duration_minutes"),
    ({"duration_minutes": 0}, "duration_minutes"),
    ({"duration_minutes": 90 * 24 * 60 + 1}, "duration_minutes"),
    ({"duration_minutes": True}, "duration_minutes"),
    ({"duration_minutes": "an hour"}, "duration_minutes"),
    ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
    ({"comment": "x" * 1001, "duration_minutes": 5}, "comment"),
    ({"comment": ["x"], "duration_minutes": 5}, "comment"),
    ({"until": "later", "duration_minutes": 5}, "until"),
])
def test_bad_fields_are_named_and_nothing_is_stored(client, fields, bad):
    """A 400 whose fields name the bad one; no silence is stored."""
    response = client.post(SILENCES, json=fields)
    assert response.status_code == 400, response.json
    assert bad in response.json["fields"], response.json
    assert bad in response.json["error"]
    assert stored_silences() == 0


def test_end_before_start_and_beyond_ninety_days_are_refused(client):
    """The end must come after the start, at most 90 days later."""
    start = datetime.now(UTC) + timedelta(hours=1)
    before_start = client.post(SILENCES, json={"starts_at": iso(start),
                                               "ends_at": iso(start - timedelta(minutes=1))})
    assert before_start.json["fields"] == {"ends_at": "must be after starts_at"}
    too_long = client.post(SILENCES, json={"starts_at": iso(start),
                                           "ends_at": iso(start + timedelta(days=90, seconds=1))})
    assert too_long.json["fields"] == {"ends_at": "must be at most 90 days after starts_at"}
    create(client, starts_at=iso(start), ends_at=iso(start + timedelta(days=90)))
    assert stored_silences() == 1


@pytest.mark.parametrize("payload", [b"[1, 2]", b"not json", b'"text"'])
def test_a_body_that_is_not_an_object_is_refused(client, payload):
    """Only a JSON object is a silence."""
    response = client.post(SILENCES, data=payload, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "body must be a JSON object"


@pytest.mark.parametrize("query", ["?state=everything", "?state=active,", "?limit=0",
                                   "?limit=many"])
def test_bad_list_filters_are_refused(client, query):
    """An unknown state or a bad limit is a 400 naming the parameter."""
    response = client.get(f"{SILENCES}{query}")
    assert response.status_code == 400
    assert set(response.json["fields"]) <= {"state", "limit"}
    assert query[1:].split("=")[0] in response.json["fields"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"{SILENCES}/{{id}}"), ("POST", f"{SILENCES}/{{id}}/expire"),
    ("PUT", f"{WINDOWS}/{{id}}"), ("DELETE", f"{WINDOWS}/{{id}}"),
])
@pytest.mark.parametrize("missing_id", [987654, 10**15])
def test_unknown_ids_are_404(client, method, path, missing_id):
    """An id that names nothing (even one too large for the column) is a JSON 404."""
    response = client.open(path.format(id=missing_id), method=method, json={"enabled": False})
    assert response.status_code == 404
    assert str(missing_id) in response.json["error"]


@pytest.mark.parametrize("scope", ["read", "ingest"])
def test_only_admin_tokens_may_change_silences(app, client, scope):
    """Read and ingest tokens cannot create, expire or change; nothing is stored."""
    silence = create(client, duration_minutes=10)
    window = client.post(WINDOWS, json={"weekdays": ["sun"], "start_time": "01:00",
                                        "end_time": "02:00"}).json
    other = app.test_client()
    headers = token_headers(scope)
    attempts = [("POST", SILENCES, {"duration_minutes": 10}),
                ("POST", f"{SILENCES}/{silence['id']}/expire", None),
                ("POST", WINDOWS, {"weekdays": [1], "start_time": "01:00", "end_time": "02:00"}),
                ("PUT", f"{WINDOWS}/{window['id']}", {"enabled": False}),
                ("DELETE", f"{WINDOWS}/{window['id']}", None)]
    for method, path, payload in attempts:
        response = other.open(path, method=method, json=payload, headers=headers)
        assert response.status_code == 403, (method, path)
    assert stored_silences() == 1
    assert client.get(f"{SILENCES}/{silence['id']}").json["state"] == "active"
    assert client.get(WINDOWS).json["windows"][0]["enabled"] is True


def test_a_read_token_may_list(app, client):
    """Reading silences and windows needs only the read scope."""
    silence = create(client, duration_minutes=10)
    reader = app.test_client()
    headers = token_headers("read")
    assert [s["id"] for s in reader.get(SILENCES, headers=headers).json["silences"]] == [
        silence["id"]]
    assert reader.get(WINDOWS, headers=headers).status_code == 200


def test_a_viewer_cannot_create_by_cookie(app):
    """A signed-in viewer (with the CSRF token) is refused; so is an admin without it."""
    viewer = person(app, "viewer")
    assert viewer.post(SILENCES, json={"duration_minutes": 10}).status_code == 403
    bare_admin = person(app, "admin", csrf=False)
    assert bare_admin.post(SILENCES, json={"duration_minutes": 10}).status_code == 403
    assert stored_silences() == 0


# Maintenance windows through the JSON API

def berlin_friday_night(client, **fields) -> dict:
    """Create the window Fri 22:00-02:00 Europe/Berlin for checkout."""
    response = client.post(WINDOWS, json={
        "service": "checkout", "weekdays": ["fri"], "start_time": "22:00", "end_time": "02:00",
        "time_zone": "Europe/Berlin", "comment": "weekly batch", **fields})
    assert response.status_code == 201, response.json
    return response.json


def test_create_a_window_with_day_names(client):
    """Weekday names become numbers; the answer says it crosses midnight."""
    window = berlin_friday_night(client, weekdays=["Friday", "sat", 6, "0"])
    assert window["weekdays"] == [0, 4, 5, 6]
    assert window["weekday_names"] == ["mon", "fri", "sat", "sun"]
    assert (window["start_time"], window["end_time"]) == ("22:00", "02:00")
    assert window["crosses_midnight"] is True
    assert window["enabled"] is True
    assert window["created_by"] == "token test admin"
    row = db.session.execute(text(
        "SELECT weekdays, start_time, end_time, time_zone FROM logs.alert_maintenance_windows"
    )).one()
    assert tuple(row) == ([0, 4, 5, 6], time(22), time(2), "Europe/Berlin")


def test_time_zone_defaults_to_utc(client):
    """No time_zone means UTC."""
    window = client.post(WINDOWS, json={"weekdays": [2], "start_time": "9:30",
                                        "end_time": "10:00"}).json
    assert (window["time_zone"], window["start_time"]) == ("UTC", "09:30")


def test_a_window_holding_now_says_so_and_one_later_says_when(client):
    """active_now with its end for a window around now; next_start for one later today."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    every_day = list(range(7))
    around = client.post(WINDOWS, json={
        "weekdays": every_day, "start_time": (now - timedelta(minutes=30)).strftime("%H:%M"),
        "end_time": (now + timedelta(minutes=30)).strftime("%H:%M")}).json
    assert around["active_now"] is True
    assert at(around["active_until"]) == now + timedelta(minutes=30)
    later_start = now + timedelta(hours=3)
    later = client.post(WINDOWS, json={
        "weekdays": every_day, "start_time": later_start.strftime("%H:%M"),
        "end_time": (later_start + timedelta(hours=1)).strftime("%H:%M")}).json
    assert later["active_now"] is False
    assert later["active_until"] is None
    assert at(later["next_start"]) == later_start


def test_next_start_is_in_the_windows_zone_on_its_weekday(client):
    """The next start lands on a listed weekday, at the start time, in the window's zone."""
    window = berlin_friday_night(client)
    start = at(window["next_start"])
    local = start.astimezone(BERLIN)
    assert (local.weekday(), local.time()) == (4, time(22))
    assert datetime.now(UTC) < start <= datetime.now(UTC) + timedelta(days=7)


@pytest.mark.parametrize(("fields", "bad"), [
    ({"weekdays": []}, "weekdays"),
    ({"weekdays": [7]}, "weekdays"),
    ({"weekdays": ["funday"]}, "weekdays"),
    ({"weekdays": [True]}, "weekdays"),
    ({"weekdays": {"mon": 1}}, "weekdays"),
    ({"start_time": "24:00"}, "start_time"),
    ({"start_time": "10pm"}, "start_time"),
    ({"end_time": 2}, "end_time"),
    ({"end_time": "22:00"}, "end_time"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"time_zone": "../../etc/passwd"}, "time_zone"),
    ({"level": "critical"}, "level"),
    ({"enabled": "maybe"}, "enabled"),
    ({"color": "red"}, "color"),
])
def test_bad_window_fields_are_named(client, fields, bad):
    """A 400 naming each bad field; nothing is stored."""
    payload = {"weekdays": ["fri"], "start_time": "22:00", "end_time": "02:00", **fields}
    response = client.post(WINDOWS, json=payload)
    assert response.status_code == 400, response.json
    assert bad in response.json["fields"], response.json
    assert scalar("SELECT count(*) FROM logs.alert_maintenance_windows") == 0


def test_a_new_window_needs_days_and_times(client):
    """weekdays, start_time and end_time are required, each named."""
    response = client.post(WINDOWS, json={"service": "api"})
    assert response.status_code == 400
    assert set(response.json["fields"]) == {"weekdays", "start_time", "end_time"}


def test_disable_change_and_delete_a_window(client):
    """enabled false stops it holding; other fields change; delete removes it."""
    window = berlin_friday_night(client)
    inside = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)
    assert SilenceBook(inside).hold("checkout", "error").id == window["id"]

    off = client.put(f"{WINDOWS}/{window['id']}", json={"enabled": False})
    assert off.status_code == 200
    assert (off.json["enabled"], off.json["active_now"], off.json["next_start"]) == (
        False, False, None)
    assert SilenceBook(inside).hold("checkout", "error") is None

    changed = client.put(f"{WINDOWS}/{window['id']}", json={"enabled": "true",
                                                            "end_time": "03:30"}).json
    assert (changed["enabled"], changed["end_time"], changed["start_time"]) == (
        True, "03:30", "22:00")
    refused = client.put(f"{WINDOWS}/{window['id']}", json={"end_time": "22:00"})
    assert refused.status_code == 400
    assert refused.json["fields"] == {"end_time": "must differ from start_time"}

    assert client.delete(f"{WINDOWS}/{window['id']}").status_code == 204
    assert client.get(WINDOWS).json["windows"] == []
    assert client.delete(f"{WINDOWS}/{window['id']}").status_code == 404


# When a maintenance window holds

def window(days, start: str, end: str, zone: str = "Europe/Berlin") -> MaintenanceWindow:
    """A window as the table would hold it (not stored)."""
    return MaintenanceWindow(weekdays=days, start_time=time.fromisoformat(start),
                             end_time=time.fromisoformat(end), time_zone=zone, enabled=True)


def berlin(*args) -> datetime:
    """A wall-clock time in Berlin, as the UTC instant evaluation passes in."""
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


FRIDAY_NIGHT = window([4], "22:00", "02:00")


@pytest.mark.parametrize(("moment", "until"), [
    (berlin(2026, 11, 27, 22, 0), berlin(2026, 11, 28, 2, 0)),    # Fri 22:00: starts
    (berlin(2026, 11, 27, 23, 59), berlin(2026, 11, 28, 2, 0)),
    (berlin(2026, 11, 28, 1, 30), berlin(2026, 11, 28, 2, 0)),    # Sat 01:30: still Friday's
    (berlin(2026, 11, 28, 1, 59, 59), berlin(2026, 11, 28, 2, 0)),
    (berlin(2026, 11, 28, 2, 0), None),                           # Sat 02:00: over
    (berlin(2026, 11, 28, 2, 30), None),
    (berlin(2026, 11, 27, 21, 59), None),                         # Fri 21:59: not yet
    (berlin(2026, 11, 26, 23, 0), None),                          # Thursday night
    (berlin(2026, 11, 28, 22, 30), None),                         # Saturday night
    (berlin(2026, 11, 29, 1, 0), None),                           # Sunday morning
])
def test_friday_night_in_berlin(moment, until):
    """Fri 22:00-02:00 Berlin holds from Friday 22:00 to Saturday 02:00, local time."""
    assert window_occurrence(FRIDAY_NIGHT, moment) == until


def test_the_same_hours_in_utc_are_an_hour_apart():
    """The zone matters: Sat 01:30 Berlin (00:30 UTC) is outside the UTC window's night."""
    utc_window = window([4], "22:00", "02:00", "UTC")
    assert window_occurrence(utc_window, datetime(2026, 11, 28, 1, 30, tzinfo=UTC)) is not None
    assert window_occurrence(utc_window, datetime(2026, 11, 27, 21, 30, tzinfo=UTC)) is None
    assert window_occurrence(FRIDAY_NIGHT, datetime(2026, 11, 27, 21, 30, tzinfo=UTC)) is not None


SATURDAY_NIGHT = window([5], "22:00", "04:00")


@pytest.mark.parametrize(("moment", "until"), [
    # Clocks go back on Sunday 25 October 2026 at 03:00 CEST (01:00 UTC): the night is 7 h.
    (datetime(2026, 10, 24, 19, 55, tzinfo=UTC), None),           # 21:55 CEST
    (datetime(2026, 10, 24, 20, 5, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, tzinfo=UTC)),
    (datetime(2026, 10, 25, 2, 30, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, tzinfo=UTC)),
    (datetime(2026, 10, 25, 3, 5, tzinfo=UTC), None),             # 04:05 CET
    # Clocks go forward on Sunday 29 March 2026 at 02:00 CET (01:00 UTC): the night is 5 h.
    (datetime(2026, 3, 28, 21, 5, tzinfo=UTC), datetime(2026, 3, 29, 2, 0, tzinfo=UTC)),
    (datetime(2026, 3, 29, 1, 45, tzinfo=UTC), datetime(2026, 3, 29, 2, 0, tzinfo=UTC)),
    (datetime(2026, 3, 29, 2, 30, tzinfo=UTC), None),             # 04:30 CEST
])
def test_a_night_over_a_dst_change_follows_the_wall_clock(moment, until):
    """Saturday 22:00 to 04:00 local is 7 h long in October and 5 h in March."""
    assert window_occurrence(SATURDAY_NIGHT, moment) == until


def test_the_repeated_hour_never_gives_an_end_in_the_past():
    """02:00-03:00 happens twice when clocks go back; the end returned is never behind now."""
    ends_in_repeated_hour = window([5], "22:00", "02:30")
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    for minutes in range(0, 240, 5):
        moment = start + timedelta(minutes=minutes)
        until = window_occurrence(ends_in_repeated_hour, moment)
        assert until is None or until > moment, moment


def test_a_stored_window_holds_through_silence_book(client):
    """Created through the API, the Berlin window holds Saturday 00:30 UTC, not 01:30 UTC."""
    created = berlin_friday_night(client)
    hold = SilenceBook(berlin(2026, 11, 28, 1, 30)).hold("checkout", "warning")
    assert (hold.kind, hold.id, hold.until) == ("maintenance", created["id"],
                                                berlin(2026, 11, 28, 2, 0))
    assert SilenceBook(berlin(2026, 11, 28, 2, 30)).hold("checkout", "warning") is None
    assert SilenceBook(berlin(2026, 11, 28, 1, 30)).hold("billing", "warning") is None


# The pages

@pytest.fixture
def admin(app):
    """A signed-in admin whose HTMX requests carry the CSRF token."""
    return person(app, "admin")


def test_the_link_page_is_prefilled_and_escaped(admin):
    """GET /alerts/silences/new fills the form from the link, escapes it, and stores nothing."""
    html = body(admin.get("/alerts/silences/new", query_string={
        "service": HOSTILE_SERVICE, "level": "warning", "minutes": "60"}))
    assert HOSTILE_SERVICE not in html
    assert 'value="&lt;script&gt;alert(&#39;svc&#39;)&lt;/script&gt;"' in html
    assert '<option value="warning" selected>' in html
    assert 'id="silence-new-duration_minutes" name="duration_minutes" value="60"' in html
    assert stored_silences() == 0


def test_the_link_page_form_creates_and_shows_the_silence(admin):
    """Posting the page's form creates the silence and redirects to it."""
    response = admin.post("/alerts/silences/new", data={
        "service": HOSTILE_SERVICE, "level": "error", "duration_minutes": "60",
        "starts_at": "", "comment": HOSTILE})
    assert response.status_code == 303
    html = body(admin.get(response.headers["Location"]))
    assert HOSTILE not in html and HOSTILE_SERVICE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    row = db.session.execute(text(
        "SELECT service, level, comment, ends_at - starts_at FROM logs.alert_silences")).one()
    assert tuple(row) == (HOSTILE_SERVICE, "error", HOSTILE, timedelta(hours=1))


def test_the_link_page_shows_errors_in_the_form(admin):
    """A refused value comes back beside its field."""
    html = body(admin.post("/alerts/silences/new", data={"duration_minutes": "0"}))
    assert 'id="silence-new-duration_minutes-error">must be a whole number' in html
    assert stored_silences() == 0


def test_a_viewer_sees_the_link_page_without_a_form(app):
    """Viewers may open the link but get no form; posting is refused."""
    viewer = person(app, "viewer")
    html = body(viewer.get("/alerts/silences/new?service=api"))
    assert "Only admins can create silences" in html
    assert 'id="silence-new"' not in html
    assert viewer.post("/alerts/silences/new", data={"duration_minutes": "60"}).status_code == 403
    assert stored_silences() == 0


def test_the_alerts_page_lists_silences_and_windows(admin, client):
    """The section shows the live silences and every window, escaped."""
    silence = create(client, service=HOSTILE_SERVICE, duration_minutes=30, comment=HOSTILE)
    window = berlin_friday_night(client)
    html = body(admin.get("/alerts"))
    assert f'id="silence-{silence["id"]}"' in html
    assert f'id="window-{window["id"]}"' in html
    assert HOSTILE not in html and HOSTILE_SERVICE not in html
    assert "Expire now" in html and "Fri" in html and "Europe/Berlin" in html


def test_section_forms_create_expire_toggle_and_delete(admin):
    """Each HTMX form answers the section, changed; errors show beside their field."""
    refused = body(admin.post("/alerts/silences", data={"duration_minutes": "many"}))
    assert 'id="silence-create-duration_minutes-error"' in refused
    created = body(admin.post("/alerts/silences", data={"service": "api", "level": "",
                                                       "duration_minutes": "45"}))
    silence_id = scalar("SELECT id FROM logs.alert_silences")
    assert f'id="silence-{silence_id}"' in created and "Silenced api (both levels)" in created
    expired = body(admin.post(f"/alerts/silences/{silence_id}/expire"))
    assert f'id="silence-{silence_id}"' not in expired and "expired" in expired
    assert scalar("SELECT expired_by FROM logs.alert_silences") == "admin-csrf"
    again = body(admin.post(f"/alerts/silences/{silence_id}/expire"))
    assert "has ended already" in again

    bad_window = body(admin.post("/alerts/maintenance-windows", data={
        "start_time": "22:00", "end_time": "02:00", "time_zone": "Nowhere/Else"}))
    assert 'id="window-create-weekdays-error"' in bad_window
    assert 'id="window-create-time_zone-error"' in bad_window
    body(admin.post("/alerts/maintenance-windows", data={
        "weekdays": ["4", "5"], "start_time": "22:00", "end_time": "02:00",
        "time_zone": "Europe/Berlin", "service": ""}))
    window_id, days, service = db.session.execute(text(
        "SELECT id, weekdays, service FROM logs.alert_maintenance_windows")).one()
    assert (days, service) == ([4, 5], None)
    off = body(admin.put(f"/alerts/maintenance-windows/{window_id}", data={"enabled": "false"}))
    assert "Maintenance window disabled." in off
    assert scalar("SELECT enabled FROM logs.alert_maintenance_windows") is False
    gone = body(admin.delete(f"/alerts/maintenance-windows/{window_id}"))
    assert f'id="window-{window_id}"' not in gone
    assert scalar("SELECT count(*) FROM logs.alert_maintenance_windows") == 0
