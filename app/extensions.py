"""Extension singletons, bound to an app in create_app."""

import redis
from flask import Flask
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from rq import Queue
from sqlalchemy import MetaData

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


def init_redis(app: Flask) -> None:
    """Attach the Redis connection and the job queues to the app."""
    # Timeouts: a Redis that stops answering must not hang requests that only use it
    # for extras (live updates, rate limits, queueing a check).
    app.redis = redis.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=5,
                                     socket_timeout=10, health_check_interval=30)
    prefix = app.config["LOGDASH_QUEUE_PREFIX"]
    app.task_queue = Queue(f"{prefix}-default", connection=app.redis)
    # Threshold checks and alert deliveries go first, ahead of aggregation and upkeep.
    app.alert_queue = Queue(f"{prefix}-alerts", connection=app.redis)
