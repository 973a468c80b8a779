"""Search stored lines: filters read from a query string, newest first, keyset pages."""

import base64
import binascii
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import func, select, tuple_

from app.extensions import db
from app.ingest.levels import normalize_level
from app.ingest.timestamps import parse_timestamp
from app.models import LEVELS, Entry
from app.numbers import whole_number

DEFAULT_LIMIT = 100
MAX_QUERY_CHARS = 500
MAX_ID = 2**63 - 1
# A text search reads the newest hour first, then twice as much each time, up to a day.
FIRST_SLICE = timedelta(hours=1)
LONGEST_SLICE = timedelta(days=1)


class BadSearch(ValueError):
    """A search parameter that cannot be used; its message names it."""


@dataclass
class SearchFilters:
    """What to look for, validated."""

    services: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    fingerprint: str | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, int] | None = None


def _level(value: str, name: str) -> str:
    """Normalise a level parameter or refuse it."""
    level = normalize_level(value)
    if level is None:
        raise BadSearch(f"{name} must be one of {', '.join(LEVELS)}")
    return level


def parse_time(value: str, name: str) -> datetime:
    """Parse a time parameter or refuse it."""
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise BadSearch(f"{name}: {error}") from None


def parse_limit(args, max_limit: int, default: int = DEFAULT_LIMIT) -> int:
    """The `limit` argument: a whole number from 1 to max_limit; empty (a form's field
    left blank) means the default, as it does for the filters."""
    if not args.get("limit"):
        return default
    limit = whole_number(str(args["limit"]))  # pages pass their own as a number
    if limit is None:
        raise BadSearch("limit must be a whole number")
    if not 1 <= limit <= max_limit:
        raise BadSearch(f"limit must be between 1 and {max_limit}")
    return limit


def encode_cursor(timestamp: datetime, entry_id: int) -> str:
    """Make an opaque cursor pointing just after a line."""
    raw = f"{timestamp.isoformat()}|{entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Read a cursor made by encode_cursor, or refuse it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, entry_id = raw.rsplit("|", 1)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:  # every cursor given out names its zone
            raise ValueError(stamp)
        entry = int(entry_id)
        if not 0 <= entry <= MAX_ID:  # ids are a bigint
            raise ValueError(entry_id)
        return moment, entry
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadSearch("cursor is not one this server gave out") from None


# The query parameters filters_from_args reads.
FILTER_ARGS = ("service", "level", "min_level", "q", "since", "until", "fingerprint", "limit",
               "cursor")


def filters_from_args(args, max_limit: int) -> SearchFilters:
    """Build filters from request arguments, raising BadSearch on the first bad one."""
    filters = SearchFilters(services=[s for s in args.getlist("service") if s])
    levels = set(LEVELS)
    if args.get("level"):
        levels &= {_level(args["level"], "level")}
    if args.get("min_level"):
        levels &= set(LEVELS[LEVELS.index(_level(args["min_level"], "min_level")) :])
    if not levels:
        raise BadSearch("level is below min_level")
    if len(levels) < len(LEVELS):
        filters.levels = sorted(levels, key=LEVELS.index)
    if args.get("q"):
        if len(args["q"]) > MAX_QUERY_CHARS:
            raise BadSearch(f"q is longer than {MAX_QUERY_CHARS} characters")
        filters.q = args["q"]
    if args.get("since"):
        filters.since = parse_time(args["since"], "since")
    if args.get("until"):
        filters.until = parse_time(args["until"], "until")
    if filters.since and filters.until and filters.since > filters.until:
        raise BadSearch("since is after until")
    filters.fingerprint = args.get("fingerprint") or None
    filters.limit = parse_limit(args, max_limit)
    if args.get("cursor"):
        filters.after = decode_cursor(args["cursor"])
    return filters


def _like_pattern(text: str) -> str:
    """Escape LIKE wildcards so q matches literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchPage(NamedTuple):
    """One page of lines, the cursor for the next, and, when a text search stopped on its
    time budget before reaching its oldest line, the oldest time it read back to."""

    entries: list[Entry]
    next_cursor: str | None
    searched_since: datetime | None = None


def _query(filters: SearchFilters):
    """The lines matching the filters, newest first."""
    query = select(Entry)
    if filters.services:
        query = query.where(Entry.service.in_(filters.services))
    if filters.levels:
        query = query.where(Entry.level.in_(filters.levels))
    if filters.q:
        query = query.where(Entry.message.ilike(_like_pattern(filters.q), escape="\\"))
    if filters.since:
        query = query.where(Entry.timestamp >= filters.since)
    if filters.until:
        query = query.where(Entry.timestamp <= filters.until)
    if filters.fingerprint:
        query = query.where(Entry.fingerprint == filters.fingerprint)
    if filters.after:
        query = query.where(tuple_(Entry.timestamp, Entry.id) < filters.after)
    return query.order_by(Entry.timestamp.desc(), Entry.id.desc())


def _page(rows: list[Entry], limit: int) -> SearchPage:
    """A page of at most `limit` rows out of limit + 1, with a cursor if there were more."""
    if len(rows) <= limit:
        return SearchPage(rows, None)
    last = rows[limit - 1]
    return SearchPage(rows[:limit], encode_cursor(last.timestamp, last.id))


def search_entries(filters: SearchFilters, budget_seconds: float | None = None) -> SearchPage:
    """Return one page of matching lines, newest first, and the cursor for the next page.

    Every filter but `q` has an index. A text search reads the stored lines in slices of
    time, newest first, and stops after the slice that used up `budget_seconds` (None: no
    budget), so that a rare word does not read every kept line in one request; the page
    then says how far back it read, and its cursor goes on from there.
    """
    if not filters.q:
        return _page(list(db.session.scalars(_query(filters).limit(filters.limit + 1))),
                     filters.limit)
    oldest = db.session.scalar(select(func.min(Entry.timestamp)))
    if oldest is None:
        return SearchPage([], None)
    if filters.since:
        oldest = max(oldest, filters.since)
    newest = min(t for t in (filters.until, filters.after and filters.after[0],
                             datetime.now(UTC)) if t)
    started = time.monotonic()
    rows: list[Entry] = []
    upper, span = None, FIRST_SLICE
    while True:
        top = newest if upper is None else upper
        # Compared before subtracting: a time near the year 1 has no hour before it.
        lower = top - span if top - oldest > span else oldest
        query = _query(filters).where(Entry.timestamp >= lower)
        if upper is not None:
            query = query.where(Entry.timestamp < upper)
        rows += db.session.scalars(query.limit(filters.limit + 1 - len(rows)))
        if len(rows) > filters.limit or lower <= oldest:
            return _page(rows, filters.limit)
        if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
            # Nothing is older than `lower` yet: the next page starts just before it.
            return SearchPage(rows, encode_cursor(lower, 0), lower)
        upper, span = lower, min(span * 2, LONGEST_SLICE)


def search_budget() -> float:
    """The configured time budget of a text search, in seconds."""
    return current_app.config["LOGDASH_SEARCH_BUDGET_MS"] / 1000


def get_entry(entry_id: int) -> Entry | None:
    """Return one line by id, or None."""
    if entry_id > MAX_ID:
        return None
    return db.session.scalars(select(Entry).where(Entry.id == entry_id)).first()
