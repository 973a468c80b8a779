"""RQ worker entry point: `python worker.py` runs jobs from Logdash's queue."""

import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Worker

from app import create_app
from app.extensions import db


def main() -> None:
    """Work the alert queue, then the default one, inside an app context until stopped."""
    app = create_app()
    with app.app_context():
        # RQ forks per job: drop any pooled connection so a child never shares the parent's.
        db.engine.dispose()
        queues = [app.alert_queue, app.task_queue]
        # RQ gives up when Redis drops mid-job; start again once it is back, since jobs
        # are safe to re-run (they recompute or claim their work).
        while True:
            try:
                Worker(queues, connection=app.redis).work(with_scheduler=False)
                return
            except RedisConnectionError as error:
                logging.getLogger("worker").warning("Redis unavailable (%s); retrying", error)
                time.sleep(2)


if __name__ == "__main__":
    main()
