"""RQ worker entry point: `python worker.py` runs jobs from Logdash's queue."""

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
        Worker(queues, connection=app.redis).work(with_scheduler=False)


if __name__ == "__main__":
    main()
