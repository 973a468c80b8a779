"""How many services Logdash tells apart. Each is a row of every dashboard, health report
and live frame: a sender that names a new one per line (a request id as the service) would
make those pages megabytes. Lines that would add a service past the limit are refused."""

from flask import current_app
from sqlalchemy import text

from app.extensions import db

# Services that logged within the longest window count against the limit.
ACTIVE_DAYS = 30
# Where an app keeps the names it has seen in logs.services (they only ever stay there).
KNOWN_SERVICES = "logdash.known_services"
# Held by a batch that may add services, from counting them until it commits.
_LOCK_KEY = 0x6C6F7376  # "losv"


def _known() -> set[str]:
    """Names this process has seen in logs.services."""
    return current_app.extensions.setdefault(KNOWN_SERVICES, set())


def services_past_the_limit(names: set[str], limit: int) -> set[str]:
    """Of the services a batch names, those that would be new past the limit (0: none).

    A batch that may add services takes a lock that its commit releases: batches adding
    services count them in turn, so that two of them never each take the last free place.
    Names refused while the limit is already reached cost no lock (a sender naming a new
    service per batch would otherwise hold up every other)."""
    known = _known()
    unknown = names - known
    if not unknown or limit <= 0:
        return set()
    new = _new_names(unknown, known)
    if not new or _active_services() >= limit:
        return set(new)
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    # Another batch may have added some of these, or others, while this one waited.
    new = _new_names(set(new), known)
    return set(new[max(limit - _active_services(), 0):])


def _new_names(unknown: set[str], known: set[str]) -> list[str]:
    """The names logs.services does not hold, sorted; those it holds join `known`."""
    known.update(db.session.execute(text(
        "SELECT service FROM logs.services WHERE service = ANY(:names)"),
        {"names": sorted(unknown)}).scalars())
    return sorted(unknown - known)


def _active_services() -> int:
    """How many services logged within ACTIVE_DAYS."""
    return db.session.execute(text(
        "SELECT count(*) FROM logs.services WHERE last_seen >= now() - make_interval(days => :d)"
    ), {"d": ACTIVE_DAYS}).scalar_one()
