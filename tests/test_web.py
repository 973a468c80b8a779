"""Pages and partials: what they show, that it is what the JSON API says, and escaping."""

import json
import re
from datetime import UTC, datetime, timedelta
from html import escape, unescape
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from sqlalchemy import text

from app.extensions import db
from app.web.filters import ago, percent, sparkline
from tests.helpers import post_logs

HTML = {"Accept": "text/html"}
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_SERVICE = "<script>alert('svc')</script>"


def page(client, path: str, status: int = 200) -> str:
    """GET a page as a browser would and return its HTML, checking the status."""
    response = client.get(path, headers=HTML)
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def element(html: str, element_id: str) -> str:
    """The markup of the element with that id, up to its closing tag of the same name."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}".*?</\1>', html, re.S)
    assert match, f"no element #{element_id}"
    return match.group(0)


def data_value(html: str, attribute: str) -> str:
    """The text of the element carrying a data- attribute (the cards' numbers)."""
    match = re.search(rf"<[^>]*\s{re.escape(attribute)}(?=[\s>])[^>]*>([^<]*)<", html)
    assert match, f"no element with {attribute}"
    return match.group(1)


def send(client, lines: list[dict]) -> None:
    """Ingest lines through the API, every one accepted."""
    response = post_logs(client, lines)
    assert response.json["accepted"] == len(lines), response.json


def minutes_ago(minutes: float) -> str:
    """An ISO time some minutes back."""
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def traffic(client):
    """Two services in the last hour, one error template, one line three hours back."""
    send(client, [{"service": "api", "level": "info", "message": f"GET /users/{i} 200",
                   "timestamp": minutes_ago(5)} for i in range(7)])
    send(client, [{"service": "api", "level": "error", "message": f"timeout talking to db-{i}",
                   "timestamp": minutes_ago(3)} for i in range(3)])
    send(client, [{"service": "web", "level": "warning", "message": "slow render",
                   "timestamp": minutes_ago(2)}])
    send(client, [{"service": "web", "level": "critical", "message": "disk full",
                   "timestamp": minutes_ago(180)}])


def test_dashboard_shows_the_api_numbers(client, traffic):
    """Totals, per-level counts and error rate are the dashboard API's, window 1h."""
    api = client.get("/api/logs/dashboard").json
    html = page(client, "/")
    assert data_value(html, "data-total") == str(api["totals"]["total"]) == "11"
    for level, count in api["totals"]["by_level"].items():
        assert data_value(html, f'data-level="{level}"') == str(count)
    assert data_value(html, "data-error-rate") == "27.3%"
    services = element(html, "services")
    assert 'href="/services/api?window=1h"' in services
    assert "web" in services
    # A high error rate on few lines beside "ok": the badge says why.
    assert ('class="badge health-ok" title="3 errors and 0 warnings in the last hour">ok<'
            in services)
    assert "No logs yet" not in html


def test_dashboard_chart_data_is_the_series(client, traffic):
    """The chart draws the API's series (sent compactly): same buckets, same counts."""
    html = page(client, "/?window=24h")
    chart = json.loads(unescape(re.search(r"data-series='([^']*)'", html).group(1)))
    api_points = client.get("/api/logs/dashboard?window=24h").json["series"]["points"]
    assert len(api_points) == 24 and chart["step"] == 3600
    for index, point in enumerate(api_points):
        start = datetime.fromtimestamp(chart["start"] + index * chart["step"], UTC)
        assert start == datetime.fromisoformat(point["t"])
        assert {level: counts[index] for level, counts in chart["levels"].items()} == {
            level: point[level] for level in chart["levels"]}
    assert sum(chart["levels"]["critical"]) == 1


def test_top_errors_link_to_their_lines(client, traffic):
    """Each top error links to the search for its template over the same window, which
    finds as many lines as it counts."""
    send(client, [{"service": "api", "level": "error", "message": "timeout talking to db-9",
                   "timestamp": minutes_ago(120)}])  # the same template, before the window
    dashboard = client.get("/api/logs/dashboard").json
    top = dashboard["top_errors"][0]
    html = page(client, "/")
    section = element(html, "top-errors")
    link = (f"/logs?fingerprint={top['fingerprint']}&amp;service=api&amp;level=error"
            f"&amp;since={quote(dashboard['window']['start'], safe=':')}")
    assert link in section
    assert ">3</td>" in section
    found = page(client, unescape(link))
    assert found.count('class="log-row') == 3


def test_window_partial_swaps_numbers_without_the_page(client, traffic):
    """The 24h partial is the view alone, counting the line from three hours ago."""
    html = page(client, "/partials/dashboard?window=24h")
    assert not html.lstrip().startswith("<!doctype")
    assert html.lstrip().startswith('<div id="view"')
    assert 'ws-connect="/ws/logs/dashboard?window=24h"' in html
    assert data_value(html, "data-total") == "12"
    assert 'aria-current="true">24h<' in html
    full = page(client, "/?window=24h")
    assert data_value(full, "data-total") == "12"


def test_window_links_push_the_page_url(client, traffic):
    """Each window link fetches the partial and pushes the full page's URL."""
    html = page(client, "/")
    assert ('href="/?window=7d" hx-get="/partials/dashboard?window=7d"' in html
            and 'hx-push-url="/?window=7d"' in html)


def test_unknown_window_is_a_400_page(client):
    """A window that does not exist is named in an HTML error page."""
    html = page(client, "/?window=2h", 400)
    assert "window must be one of" in html


def test_empty_dashboard_explains_how_to_send_a_line(client):
    """With nothing stored: a copyable curl line for this server, zero totals."""
    html = page(client, "/")
    assert "No logs yet" in html
    curl = element(html, "curl-example")
    assert "curl -X POST http://localhost/api/logs" in unescape(curl)
    assert 'data-copy="curl-example"' in html
    assert data_value(html, "data-total") == "0"
    assert "No lines in this window." in html
    assert "No active alerts." in html


def test_active_alerts_are_listed(client, traffic):
    """Unresolved violations show on the dashboard and on their service's page."""
    db.session.execute(text(
        "INSERT INTO logs.alert_violations (service, level, current_count, threshold_value)"
        " VALUES ('api', 'error', 140, 100)"))
    db.session.commit()
    alerts = element(page(client, "/"), "active-alerts")
    assert "140/min, threshold 100" in alerts
    assert "api" in alerts
    assert "140/min" not in element(page(client, "/services/web"), "active-alerts")
    # Where to acknowledge it: the violation's own page.
    violation = db.session.execute(text("SELECT id FROM logs.alert_violations")).scalar_one()
    link = f'<a href="/alerts/violations/{violation}">Details and acknowledge</a>'
    assert link in alerts
    db.session.execute(text("UPDATE logs.alert_violations SET acknowledged_at = now(),"
                            " acknowledged_by = 'ana'"))
    db.session.commit()
    assert f'<a href="/alerts/violations/{violation}">Details</a>' in element(
        page(client, "/"), "active-alerts")


def test_service_page_shows_its_numbers_templates_and_recent_lines(client, traffic):
    """One service: its totals, its templates of every level and its newest lines."""
    api = client.get("/api/logs/dashboard/service/api").json
    html = page(client, "/services/api")
    assert data_value(html, "data-total") == str(api["totals"]["total"]) == "10"
    assert "timeout talking to db-" in element(html, "top-errors")
    templates = element(html, "top-templates")
    assert "GET &lt;*&gt;</a>" in templates
    recent = element(html, "recent-lines")
    assert recent.count('class="log-row') == 10
    assert "slow render" not in recent
    assert 'ws-connect="/ws/logs/dashboard?window=1h&amp;service=api"' in html


@pytest.mark.parametrize("name", ["/usr/sbin/cron", "billing/eu", "a b", "../../api/logs"])
def test_service_names_with_slashes_have_their_pages(client, name):
    """Syslog can name a service by its program's path: the dashboard links to its page
    and its API answers, leading slash included. The name is one part of each URL, so no
    browser resolves "../" in it into another page."""
    send(client, [{"service": name, "level": "error", "message": "job failed"}])
    link = re.search(r'href="(/services/[^"?]*)\?window=1h"', element(page(client, "/"),
                                                                      "services")).group(1)
    assert unescape(link) == "/services/" + quote(name, safe="")
    html = page(client, unescape(link))
    partials = re.findall(r'hx-get="(/partials/services/[^"?]*)\?', html)
    assert partials and all(unescape(p) == "/partials/services/" + quote(name, safe="")
                            for p in partials)
    assert data_value(html, "data-total") == "1"
    assert f"<h1>{escape(name)}" in html or escape(name) in html
    answer = client.get(f"/api/logs/dashboard/service/{quote(name, safe='/')}")
    assert answer.status_code == 200 and answer.json["totals"]["total"] == 1
    assert client.get(f"/api/logs/alerts/config/{quote(name, safe='/')}").status_code == 404


def test_service_partial_for_another_window(client, traffic):
    """The service partial counts the older line in 24h."""
    html = page(client, "/partials/services/web?window=24h")
    assert data_value(html, "data-total") == "2"


@pytest.mark.parametrize("path", ["/services/nobody", "/partials/services/nobody"])
def test_unknown_service_is_a_404_page(client, path):
    """A service that never logged is a 404 page, naming it."""
    html = page(client, path, 404)
    assert "No service named “nobody” has sent logs." in html


def test_unknown_paths_are_pages_for_browsers_and_json_for_scripts(client):
    """Browsers get a page, API clients and curl keep getting JSON."""
    assert "Not found" in page(client, "/no-such-page", 404)
    assert client.get("/no-such-page").is_json
    assert client.get("/api/nothing", headers=HTML).is_json


def test_health_page_gives_status_and_reason(client):
    """Every service with its status, the numbers and the reason, as the API says."""
    send(client, [{"service": "api", "level": "error", "message": f"boom {i}"}
                  for i in range(12)])
    send(client, [{"service": "web", "level": "info", "message": "fine"}])
    api = client.get("/api/logs/dashboard/health").json
    html = page(client, "/health")
    table = element(html, "health-table")
    assert api["services"][0]["reason"] in table
    assert "12 errors in the last hour (more than 10)" in table
    assert 'class="badge health-warning">warning<' in table
    assert 'class="badge health-ok">ok<' in table
    assert 'hx-trigger="every 10s"' in table
    assert "errors &gt; 50 in the last hour" in html
    assert element(page(client, "/partials/health"), "health-table") == table


def test_health_page_without_services(client):
    """Nothing logged in the last day: said plainly."""
    assert "No service has logged in the last day." in page(client, "/health")


@pytest.fixture
def searchable(client):
    """Five lines of two services, spread over five minutes."""
    send(client, [{"service": "api" if i % 2 else "web", "level": ("info", "error")[i % 2],
                   "message": f"Request {i} done", "timestamp": minutes_ago(5 - i)}
                  for i in range(5)])


def test_logs_page_lists_what_the_api_finds(client, searchable):
    """Same filters, same lines, same order as GET /api/logs."""
    query = "service=api&min_level=error&q=REQUEST"
    api = client.get(f"/api/logs?{query}").json["logs"]
    html = page(client, f"/logs?{query}")
    shown = re.findall(r'<span class="msg">([^<]*)</span>', html)
    assert shown == [line["message"] for line in api] == ["Request 3 done", "Request 1 done"]
    assert 'value="REQUEST"' in html
    assert '<option selected>error</option>' in html


def test_logs_page_follows_the_cursor(client, searchable):
    """Two lines a page: newest first, then the next two, then the last one."""
    seen = []
    path = "/logs?limit=2"
    while path:
        html = page(client, path)
        seen += re.findall(r'<span class="msg">([^<]*)</span>', html)
        older = re.search(r'href="([^"]*)" rel="next"', html)
        path = unescape(older.group(1)) if older else None
        if path:
            assert "limit=2" in path and "cursor=" in path
    assert seen == [f"Request {i} done" for i in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize("extra", ["endpoint=x", "_anchor=x", "_external=1", "_method=POST"])
def test_pages_ignore_parameters_that_are_not_filters(client, searchable, extra):
    """Parameters the pages do not know are left out of the links they build, whatever
    the names: never a server error."""
    older = re.search(r'href="([^"]*)" rel="next"', page(client, f"/logs?limit=2&{extra}"))
    assert unescape(older.group(1)).startswith("/logs?limit=2&cursor=")
    socket = re.search(r'ws-connect="([^"]*)"', page(client, f"/tail?q=boom&{extra}"))
    assert unescape(socket.group(1)) == "/ws/logs/tail?q=boom"


@pytest.mark.parametrize(("query", "message"), [
    ("level=loud", "level must be one of"),
    ("since=yesterday", "since:"),
    ("cursor=zzz", "cursor is not one this server gave out"),
])
def test_logs_page_names_bad_filters(client, query, message):
    """Bad parameters are a 400 page with the API's message and the form kept."""
    html = page(client, f"/logs?{query}", 400)
    assert message in element(html, "results") or message in html
    assert 'class="form-error"' in html


def test_logs_page_without_matches(client):
    """An empty result says so."""
    assert "No lines match these filters." in page(client, "/logs?q=nothing")


def test_log_line_details_show_attributes_escaped(client):
    """Host, logger, trace id and attributes are shown, all as text."""
    send(client, [{"service": "api", "message": "hello", "host": "h1", "logger": "app.x",
                   "trace_id": "t-1", "user": HOSTILE}])
    html = page(client, "/logs")
    assert "<dd>h1</dd>" in html and "<dd>app.x</dd>" in html and "<dd>t-1</dd>" in html
    assert "&#34;user&#34;: &#34;&lt;img src=x onerror=alert(1)&gt;&#34;" in html
    assert HOSTILE not in html


def test_tail_page_connects_with_its_filters(client):
    """The tail socket carries the page's filters; the form shows them."""
    html = page(client, "/tail?service=api&min_level=warning&q=boom")
    socket = re.search(r'ws-connect="([^"]*)"', html).group(1)
    assert unescape(socket) == "/ws/logs/tail?service=api&min_level=warning&q=boom"
    assert 'id="tail-toggle"' in html
    assert "Waiting for new lines" in html


class FilterForm(HTMLParser):
    """What the filter form would submit as it stands: (name, value) of every field."""

    def __init__(self) -> None:
        """Nothing read yet."""
        super().__init__()
        self.fields, self.select, self.inside, self.selected = [], None, False, False

    def handle_starttag(self, tag, attrs) -> None:
        """Note inputs with a value and selected options, inside the filter form only."""
        attrs = dict(attrs)
        if tag == "form" and "filters" in attrs.get("class", ""):
            self.inside = True
        elif self.inside and tag == "input" and attrs.get("value"):
            self.fields.append((attrs["name"], attrs["value"]))
        elif self.inside and tag == "select":
            self.select = attrs["name"]
        elif self.inside and tag == "option" and "selected" in attrs:
            self.selected = True

    def handle_data(self, data) -> None:
        """A selected option's text is its value."""
        if self.selected:
            self.fields.append((self.select, data))
            self.selected = False

    def handle_endtag(self, tag) -> None:
        """The filter form ends."""
        if tag == "form":
            self.inside = False


@pytest.mark.parametrize("path", [
    "/logs?service=web&service=billing&limit=2&level=error&q=boom",
    "/tail?service=web&service=billing&level=error&q=boom",
])
def test_filter_forms_keep_every_filter_of_the_url(client, path):
    """Pressing Search or Apply without changing anything asks for what the URL asked:
    every service of a repeated one, the limit, and the level on the tail too."""
    form = FilterForm()
    form.feed(page(client, path))
    asked = [tuple(pair.split("=")) for pair in path.partition("?")[2].split("&")]
    assert sorted(form.fields) == sorted(asked)


def test_a_nul_in_the_url_is_a_page_for_browsers_and_json_for_scripts(client):
    """Refused before anything reads it, in the form the asker reads."""
    assert "NUL character" in page(client, "/logs?q=%00", 400)
    answer = client.get("/api/logs?q=%00")
    assert (answer.status_code, answer.json) == (400, {"error": "the URL contains a NUL"
                                                                " character"})


def test_tail_page_refuses_bad_filters(client):
    """A bad level is a 400 page without a socket."""
    html = page(client, "/tail?min_level=loud", 400)
    assert "min_level must be one of" in html
    assert "ws-connect" not in html


@pytest.mark.parametrize("path", ["/", "/?window=24h", "/services/api", "/logs", "/logs?q=img",
                                  "/health", "/partials/dashboard", "/partials/services/api"])
def test_hostile_text_is_escaped_everywhere(client, path):
    """A message, service name and template built to inject markup show as text."""
    send(client, [{"service": "api", "level": "error", "message": HOSTILE},
                  {"service": HOSTILE_SERVICE, "level": "critical", "message": HOSTILE}])
    html = page(client, path)
    assert HOSTILE not in html
    assert "<script>alert" not in html
    assert "&lt;img src=" in html or "&lt;script&gt;" in html


def test_hostile_service_page_is_escaped(client):
    """The page of a service named like a script tag shows the name as text."""
    send(client, [{"service": HOSTILE_SERVICE, "level": "error", "message": HOSTILE}])
    html = page(client, "/services/%3Cscript%3Ealert('svc')%3C%2Fscript%3E")
    assert "<script>alert" not in html
    assert "<h1>&lt;script&gt;alert(&#39;svc&#39;)&lt;/script&gt;</h1>" in html


def test_pages_use_only_their_own_scripts(client):
    """No inline scripts or handlers: only the vendored files and app.js are loaded."""
    html = page(client, "/")
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all('src="/static/' in attributes for attributes in scripts)
    assert not re.search(r"\son[a-z]+=", html)
    for name in ("vendor/htmx-2.0.11.min.js", "vendor/htmx-ext-ws-2.0.4.min.js",
                 "vendor/uplot-1.6.32.min.js", "app.js", "app.css"):
        with client.get(f"/static/{name}") as response:
            assert response.status_code == 200


def test_footer_shows_the_live_connection_count(client):
    """Every page's footer carries the cluster-wide socket count."""
    assert re.search(r'<span id="ws-count">\d+ live connections?</span>', page(client, "/logs"))


def test_api_gives_each_service_a_series(client, traffic):
    """The services' sparklines come from the API: lines per bucket, summing to the total."""
    for service in client.get("/api/logs/dashboard?window=24h").json["services"]:
        assert len(service["series"]) == 24
        assert sum(service["series"]) == service["total"]


def test_readyz_counts_live_connections(client):
    """readyz reports open sockets next to its checks, without changing them."""
    body = client.get("/readyz").json
    assert isinstance(body["websockets"], int)
    assert body["status"] == "ready"


def test_filters_format_numbers_for_people():
    """Rates, ages and sparklines read right at their edges."""
    assert percent(0) == "0%"
    assert percent(0.0004) == "<0.1%"
    assert percent(0.1234) == "12.3%"
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert ago("2026-11-27T11:59:30+00:00", now) == "just now"
    assert ago("2026-11-27T09:00:00+00:00", now) == "3 h ago"
    assert ago(None, now) == "never"
    assert sparkline([0, 5, 10]) == "0.0,23.0 60.0,12.0 120.0,1.0"
    assert sparkline([0, 0]) == "0.0,23.0 120.0,23.0"
    assert sparkline([]) == ""
    # 720 hourly buckets become 60 of 12 hours each, keeping every line.
    merged = sparkline([1] * 720).split()
    assert len(merged) == 60 and merged[0] == "0.0,1.0"


def test_api_docs_page_lists_every_operation(client):
    """The docs page shows each operation of the OpenAPI description, escaped."""
    from app.api.openapi import SPEC

    page = client.get("/docs/api").get_data(as_text=True)
    for path in SPEC["paths"]:
        assert f"<code>{path}</code>" in page
    assert "/api/openapi.json" in page
    assert "Authorization: Bearer &lt;token&gt;" in page


def test_example_times_in_forms_are_near_now(client):
    """The times forms show as examples move with the clock: the search's is an hour
    back, the silence's start ahead (an example in the past would be refused)."""
    since = re.search(r'name="since"[^>]*placeholder="([^"]+)"', page(client, "/logs")).group(1)
    now = datetime.now(UTC)
    assert now - timedelta(hours=2) < datetime.fromisoformat(since) <= now
    hint = re.search(r"e\.g\. (\S+); empty: now", page(client, "/alerts/silences/new")).group(1)
    assert datetime.fromisoformat(hint) > now
