"""Extension singletons, bound to an app in create_app."""

from datetime import UTC, datetime

import redis
from flask import Flask, g, request, session
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from sqlalchemy import MetaData, event

# Everything Logdash owns lives in the `logs` schema, so it can share a database.
db = SQLAlchemy(metadata=MetaData(schema="logs"))
mail = Mail()
sock = Sock()


def is_partition_name(name, type_, parent_names) -> bool:
    """Tell whether a table is a daily partition, which migrations do not manage."""
    return type_ == "table" and name is not None and name.startswith("entries_p")


def include_name(name, type_, parent_names) -> bool:
    """Let Alembic autogenerate compare only the tables migrations create."""
    if type_ == "schema":
        return name == "logs"
    return not is_partition_name(name, type_, parent_names)


migrate = Migrate(include_schemas=True, include_name=include_name)

# Blueprints whose GET requests only read: the JSON API and the pages.
READING_BLUEPRINTS = {"api", "web"}


def read_in_autocommit() -> None:
    """Run a GET of the API or the pages without a transaction: no BEGIN and ROLLBACK
    round trips.

    Under READ COMMITTED each statement takes its own snapshot anyway, so a read sees the
    same either way. GET handlers do not write (the access policy lets any reader call
    them); the one write on the way, a token's last use, is a single statement.
    """
    # Only a request with credentials is sure to use the database (to check them); an
    # anonymous one is refused or sent to sign in without taking a connection.
    credentials = "Authorization" in request.headers or "user_id" in session
    if (request.method in ("GET", "HEAD") and request.blueprint in READING_BLUEPRINTS
            and credentials and not db.session().in_transaction()):
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        g.read_in_autocommit = True


def end_autocommit_read(error: BaseException | None) -> None:
    """Hand the connection back, so that a session outliving the request (one app
    context for several requests) begins its next transaction as usual."""
    if g.pop("read_in_autocommit", False):
        db.session.rollback()


def init_autocommit_reads(app: Flask) -> None:
    """Register the two hooks; before any other that uses the database."""
    app.before_request(read_in_autocommit)
    app.teardown_request(end_autocommit_read)


# Session time zones that are UTC under another name.
UTC_NAMES = {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "GMT", "Etc/GMT", "Zulu", "Etc/Zulu",
             "Universal", "Etc/Universal"}


class _InUtc:
    """Mixed into psycopg's timestamptz loaders: the value they read, moved to UTC."""

    def load(self, data) -> datetime:
        """The value, moved to UTC."""
        return super().load(data).astimezone(UTC)


class UtcTimestamptzLoader(_InUtc, TimestamptzLoader):
    """timestamptz values as UTC datetimes, in text."""


class UtcTimestamptzBinaryLoader(_InUtc, TimestamptzBinaryLoader):
    """timestamptz values as UTC datetimes, in binary."""


def use_utc_times(dbapi_connection, _record) -> None:
    """Read times in UTC on a new connection, whatever the server's TimeZone.

    psycopg gives times in the session's zone, and adding an hour to one in a zone with
    summer time is wall-clock arithmetic (00:00Z + 1 h gave 02:00Z on the night the clocks
    went back). Done by the client: setting TimeZone as a startup option would be refused
    by older PgBouncers, and would replace options given in DATABASE_URL."""
    if dbapi_connection.info.parameter_status("TimeZone") in UTC_NAMES:
        return  # the usual case: psycopg's own loaders already give UTC, at no extra cost
    dbapi_connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)
    dbapi_connection.adapters.register_loader("timestamptz", UtcTimestamptzBinaryLoader)


def init_utc_times(app: Flask) -> None:
    """Register use_utc_times on the app's engine."""
    with app.app_context():
        event.listen(db.engine, "connect", use_utc_times)


def redis_client(url: str) -> redis.Redis:
    """A Redis client for requests and jobs.

    A Redis that stops answering must not hang requests that use it only for extras
    (app/redis_extras.py): short timeouts, and one retry after a connection error, which
    reconnects a pooled connection that a Redis restart closed (so no health-check PING
    before use, which would double each wait). Not after a timeout: the command may have
    run (an INCR counted twice, a job queued twice). redis-py's default, three retries
    with backoff, made each call wait about 9 s on a silent Redis even with 0.5 s
    timeouts. The RQ worker waits for jobs on a connection of its own (worker.py).
    """
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=2,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))


def init_redis(app: Flask) -> None:
    """Attach the Redis connection and the job queues to the app."""
    app.redis = redis_client(app.config["REDIS_URL"])
    prefix = app.config["LOGDASH_QUEUE_PREFIX"]
    app.task_queue = Queue(f"{prefix}-default", connection=app.redis)
    # Threshold checks and alert deliveries go first, ahead of aggregation and upkeep.
    app.alert_queue = Queue(f"{prefix}-alerts", connection=app.redis)
