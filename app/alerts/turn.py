"""The evaluation turn: one evaluation at a time, and changes that end episodes wait for it."""

from sqlalchemy import text

from app.extensions import db

# pg_advisory_xact_lock key of evaluations (next to the rollup jobs' in app/rollups).
EVALUATION_LOCK = 0x6C6F6803


def take_evaluation_turn() -> None:
    """Wait for the running evaluation, if any, and hold the turn until this transaction ends.

    One evaluation at a time, each from the minute counts and violations as the one before
    committed them: else one that read the counts of a minute ago could find the episode
    another had just resolved gone, and open it again. Disabling or deleting a config takes
    the turn too, so that it sees every violation an evaluation opened.
    """
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVALUATION_LOCK})
