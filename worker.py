"""RQ worker entry point: `python worker.py` runs jobs from Logdash's queue."""

import logging
import time

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, Worker

from app import create_app
from app.extensions import db


def main() -> None:
    """Work the alert queue, then the default one, inside an app context until stopped."""
    app = create_app()
    with app.app_context():
        # RQ forks per job: drop any pooled connection so a child never shares the parent's.
        db.engine.dispose()
        # The worker's own connection: RQ lengthens its read timeout for its blocking
        # waits for jobs, which on app.redis would leave the jobs' own calls (queueing,
        # live banners) without the short timeout they need when Redis hangs.
        connection = redis.Redis.from_url(app.config["REDIS_URL"])
        queues = [Queue(queue.name, connection=connection)
                  for queue in (app.alert_queue, app.task_queue)]
        # RQ gives up when Redis drops mid-job; start again once it is back, since jobs
        # are safe to re-run (they recompute or claim their work).
        while True:
            try:
                Worker(queues, connection=connection).work(with_scheduler=False)
                return
            except RedisConnectionError as error:
                logging.getLogger("worker").warning("Redis unavailable (%s); retrying", error)
                time.sleep(2)


if __name__ == "__main__":
    main()
