"""The evaluation turn: one evaluation at a time, and changes that end episodes wait for it."""

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import ServiceUnavailable

from app.extensions import db

# pg_advisory_xact_lock key of evaluations (next to the rollup jobs' in app/rollups).
EVALUATION_LOCK = 0x6C6F6803


def take_evaluation_turn(patience_seconds: int | None = None) -> None:
    """Wait for the running evaluation, if any, and hold the turn until this transaction ends.

    One evaluation at a time, each from the minute counts and violations as the one before
    committed them: else one that read the counts of a minute ago could find the episode
    another had just resolved gone, and open it again. Disabling or deleting a config takes
    the turn too, so that it sees every violation an evaluation opened; a person's change
    waits `patience_seconds` at most, then is refused with a 503 (ServiceUnavailable).
    """
    if patience_seconds is None:
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATION_LOCK})
        return
    try:
        # In a savepoint, so that a wait that times out leaves the transaction usable; the
        # rest of the transaction waits for its locks as it would have.
        with db.session.begin_nested():
            db.session.execute(text(f"SET LOCAL lock_timeout = '{int(patience_seconds)}s'"))
            db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATION_LOCK})
            db.session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    except OperationalError as error:
        if not isinstance(error.orig, psycopg.errors.LockNotAvailable):
            raise
        raise ServiceUnavailable("an alert check is running and holds this change; try again"
                                 " in a moment", retry_after=5) from None
