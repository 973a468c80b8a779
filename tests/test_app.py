"""The app factory, configuration, probes, error answers and CLI commands."""

import os
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import text

from app import create_app
from app.config import Config, database_url_from
from app.extensions import db
from tests.conftest import make_app


def test_healthz(client):
    """The process answers."""
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_when_everything_answers(client):
    """Database and Redis both reachable."""
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json
    assert isinstance(body.pop("websockets"), int)
    assert body == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_names_an_unreachable_redis(database_url, queue_prefix):
    """A Redis that does not answer makes the app not ready, saying which part failed."""
    application = make_app(database_url, "redis://127.0.0.1:1/0", queue_prefix)
    response = application.test_client().get("/readyz")
    with application.app_context():
        db.engine.dispose()
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"] == "error: ConnectionError"
    assert response.json["websockets"] is None
    assert "127.0.0.1" not in response.get_data(as_text=True)  # public: no addresses


def test_unknown_path_is_a_json_404(client):
    """Errors are JSON, not HTML pages."""
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.is_json
    assert "error" in response.json


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_database_url_forms(given, expected):
    """Hosting platforms' postgres:// URLs are accepted."""
    assert database_url_from(given) == expected


def test_config_reads_the_environment(monkeypatch):
    """LOGDASH_* variables override defaults; a non-number is named."""
    monkeypatch.setenv("DATABASE_URL", "postgres://x@y/z")
    monkeypatch.setenv("LOGDASH_MAX_LINES_PER_REQUEST", "12")
    config = Config()
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://x@y/z"
    assert config.LOGDASH_MAX_LINES_PER_REQUEST == 12
    monkeypatch.setenv("LOGDASH_MAX_LINES_PER_REQUEST", "lots")
    with pytest.raises(ValueError, match="LOGDASH_MAX_LINES_PER_REQUEST must be an integer"):
        Config()
    monkeypatch.setenv("LOGDASH_MAX_LINES_PER_REQUEST", "12")
    # Health sees the last hour, by the minute: the silent minutes and the one before.
    for minutes in ("0", "60"):
        monkeypatch.setenv("LOGDASH_HEALTH_SILENT_MINUTES", minutes)
        with pytest.raises(ValueError, match="SILENT_MINUTES must be between 1 and 59, got"):
            Config()


def test_missing_database_url_is_explained(monkeypatch):
    """Without DATABASE_URL the factory says how to get one."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="DATABASE_URL is not set"):
        create_app()


def test_secret_key_is_generated_once_and_shared(tmp_path, database_url, redis_url,
                                                 queue_prefix, monkeypatch):
    """Without SECRET_KEY every process of one installation reads the same generated key."""
    monkeypatch.setenv("LOGDASH_INSTANCE_PATH", str(tmp_path))
    first = make_app(database_url, redis_url, queue_prefix, SECRET_KEY="")
    second = make_app(database_url, redis_url, queue_prefix, SECRET_KEY="")
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("key", ["change-me-to-a-long-random-string", "short-secret"])
def test_example_or_short_secret_keys_are_refused(key, database_url, redis_url, queue_prefix):
    """A SECRET_KEY copied from .env.example, or one short enough to guess, stops the app:
    whoever knows it could sign a session cookie as an admin."""
    with pytest.raises(RuntimeError, match="SECRET_KEY must be a random string"):
        make_app(database_url, redis_url, queue_prefix, SECRET_KEY=key)


def test_relative_instance_path_is_the_projects(tmp_path, database_url, redis_url,
                                               queue_prefix, monkeypatch):
    """A relative LOGDASH_INSTANCE_PATH (.env.example writes ./instance) names a folder of
    the project, whatever folder a command runs in, as manage.py reads it: an import's
    resume state is found again from anywhere."""
    import manage

    wanted = tmp_path / "instance"
    monkeypatch.chdir(tmp_path.parent)  # any folder but the project's
    monkeypatch.setenv("LOGDASH_INSTANCE_PATH", os.path.relpath(wanted, manage.ROOT))
    app = make_app(database_url, redis_url, queue_prefix, SECRET_KEY="")
    assert app.instance_path == str(wanted)
    assert (wanted / "secret_key").exists()
    monkeypatch.setenv("LOGDASH_INSTANCE_PATH", "")  # a line left empty: as if unset
    assert make_app(database_url, redis_url, queue_prefix).instance_path == str(
        manage.ROOT / "instance")


@pytest.mark.parametrize(("name", "value", "error"), [
    ("LOGDASH_RETAIN_HOURLY_DAYS", "1", "must be between 31 and 36500, got 1"),
    # Fewer days than the 30d window reads would shrink its counts.
    ("LOGDASH_RETAIN_HOURLY_DAYS", "30", "must be between 31 and 36500, got 30"),
    ("LOGDASH_RETAIN_RAW_DAYS", "0", "must be between 1 and 36500, got 0"),
    ("LOGDASH_ACCEPT_PAST_DAYS", "99999999", "must be between 1 and 36500"),
    # 0 refused every line stamped by its sender, and every line a listener stamped.
    ("LOGDASH_ACCEPT_PAST_DAYS", "0", "must be between 1 and 36500, got 0"),
    ("LOGDASH_MAX_MESSAGE_BYTES", "10", "must be at least 64, got 10"),
    # 0 hours: every session over by the next request.
    ("LOGDASH_SESSION_HOURS", "0", "must be at least 1, got 0"),
    ("LOGDASH_RETRY_AFTER_SECONDS", "-5", "must be at least 1"),
    # Counts and sizes that would refuse everyone: no sign-in, no request, no body.
    ("LOGDASH_LOGIN_ATTEMPTS", "0", "must be at least 1, got 0"),
    ("LOGDASH_TOKEN_RATE_PER_MINUTE", "0", "must be at least 1"),
    ("LOGDASH_MAX_BODY_BYTES", "0", "must be at least 1024"),
    # 0 is no limit at all to SQLAlchemy's pool.
    ("LOGDASH_DB_POOL_SIZE", "0", "must be at least 1"),
    # Durations: 0 stopped the live tick (a division by zero), and is no timeout.
    ("LOGDASH_LIVE_TICK_SECONDS", "0", "must be a positive number, got '0'"),
    ("LOGDASH_WEBHOOK_TIMEOUT_SECONDS", "-1", "must be a positive number"),
    ("LOGDASH_ALERT_RETRY_BASE_SECONDS", "nan", "must be a positive number"),
])
def test_retention_and_acceptance_settings_are_range_checked(monkeypatch, name, value, error):
    """A day count that would refuse every line, or overflow a date, stops the app."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name} {error}"):
        Config()


@pytest.mark.parametrize(("value", "expected"), [
    ("True", True), (" yes ", True), ("on", True), ("0", False), ("false", False),
    ("OFF", False), ("", True)])
def test_switches_take_the_usual_words(monkeypatch, value, expected):
    """On/off settings read 1/true/yes/on and 0/false/no/off in any case; unset (or
    empty) keeps the default, here on."""
    monkeypatch.setenv("LOGDASH_SECURE_COOKIES", value)
    assert Config().SESSION_COOKIE_SECURE is expected


def test_a_switch_that_is_neither_on_nor_off_is_refused(monkeypatch):
    """A typo is not silently taken as off (MAIL_USE_TLS=ture would mail in plain text)."""
    monkeypatch.setenv("MAIL_USE_TLS", "ture")
    with pytest.raises(ValueError, match="MAIL_USE_TLS must be on or off"):
        Config()


def test_sessions_use_utc_whatever_the_servers_zone(app, database_url):
    """Times come back in UTC even where the server (here the database) defaults to a
    zone with summer time, in which adding an hour to 00:00 UTC on 2026-10-25 gave 02:00.
    The session's own setting is left alone (PgBouncer may refuse to change it)."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        name = admin.info.dbname
        admin.execute(f"ALTER DATABASE {name} SET timezone = 'Europe/Berlin'")
        try:
            db.engine.dispose()
            zone, moment = db.session.execute(text(
                "SELECT current_setting('TimeZone'), timestamptz '2026-10-25 00:00:00+00'"
                " + interval '1 hour' * 0"  # computed by the server, not a constant
            )).one()
            db.session.remove()
        finally:
            admin.execute(f"ALTER DATABASE {name} RESET timezone")
            db.engine.dispose()
    assert zone == "Europe/Berlin"  # the session keeps the server's zone
    assert (moment + timedelta(hours=1)).isoformat() == "2026-10-25T01:00:00+00:00"


def test_partitions_command(app):
    """`flask partitions` creates and lists today's and the next days' partitions."""
    result = app.test_cli_runner().invoke(args=["partitions", "--days-ahead", "1"])
    assert result.exit_code == 0
    assert len(result.output.split()) == 2
    assert all(name.startswith("entries_p") for name in result.output.split())
    for days in ("-3", "100000"):  # nothing at all, or a year of minutes' work
        refused = app.test_cli_runner().invoke(args=["partitions", "--days-ahead", days])
        assert refused.exit_code == 2 and "--days-ahead" in refused.output


def test_an_empty_base_url_is_the_default(monkeypatch):
    """LOGDASH_BASE_URL= left empty (a .env line) means unset, not links relative to
    nothing."""
    monkeypatch.setenv("LOGDASH_BASE_URL", "")
    assert Config().LOGDASH_BASE_URL == "http://127.0.0.1:8000"


def test_commands_say_in_a_line_when_postgresql_is_away(database_url, redis_url, queue_prefix):
    """A command run with PostgreSQL not started (or a wrong DATABASE_URL) ends with one
    line naming it, not a traceback."""
    away = database_url.rsplit("@", 1)[0] + "@127.0.0.1:9/nowhere"
    app = make_app(database_url, redis_url, queue_prefix, SQLALCHEMY_DATABASE_URI=away)
    for command in (["tokens", "list"], ["users", "ensure-admin"], ["partitions"]):
        with app.app_context():  # as the flask command gives every one of them
            result = app.test_cli_runner().invoke(args=command)
        assert result.exit_code == 1, (command, result.output)
        assert "cannot reach PostgreSQL: connection failed" in result.output, command
        assert "Traceback" not in result.output
