"""The live tail: committed lines go to Redis once, each tail socket filters and renders them."""

import itertools
import json
from collections import Counter
from datetime import datetime

from flask import Flask, render_template

from app.ingest.records import Record, truncate_bytes
from app.realtime.hub import is_watched, publish
from app.redis_extras import try_redis
from app.search import SearchFilters

TAIL = "tail"
# One message carries at most this many lines, so a huge batch never becomes a huge message.
LINES_PER_PUBLISH = 200
# Lines of one ingest batch streamed at most; the rest are counted, and search finds them.
LINES_PER_BATCH = 1000
# The tail is for reading: longer messages are cut (search shows them whole).
MESSAGE_BYTES = 4096
# Attributes longer than this as JSON are not sent to the tail (search shows them): one
# line's megabytes would be copied into every tail socket's outbox and page.
ATTRIBUTES_BYTES = 4096
# Where a message keeps its lines' lower-cased text once a socket's filter needed it.
_LOWERED = "_lowered"


def tail_line(record: Record) -> dict:
    """A stored line as the tail shows it: the JSON API's fields a Record has."""
    return {
        "timestamp": record.timestamp.isoformat(),
        "service": record.service,
        "level": record.level,
        "message": truncate_bytes(record.message, MESSAGE_BYTES),
        "fingerprint": record.fingerprint,
        "host": record.host,
        "logger": record.logger,
        "trace_id": record.trace_id,
        "attributes": (json.loads(record.attributes)
                       if len(record.attributes) <= ATTRIBUTES_BYTES else
                       {"…": f"{len(record.attributes)} characters of attributes; search"
                             " shows them"}),
    }


def tail_messages(records: list[Record]) -> list[dict]:
    """Split a batch's newest lines into bounded messages; the first says how many were left
    out, as [service, level, count] triples, so that each tail counts those it would show."""
    shown = records[-LINES_PER_BATCH:]
    left_out = Counter((r.service, r.level) for r in records[:len(records) - len(shown)])
    skipped = [[service, level, count] for (service, level), count in sorted(left_out.items())]
    return [
        {"lines": [tail_line(r) for r in shown[start:start + LINES_PER_PUBLISH]],
         "skipped": skipped if start == 0 else []}
        for start in range(0, len(shown), LINES_PER_PUBLISH)
    ]


def publish_lines(app: Flask, records: list[Record]) -> None:
    """Send a committed batch to the tail sockets of every process, if any socket tails.
    The lines are committed: failing here would make the sender retry and duplicate them,
    so a Redis failure only skips it."""
    try_redis("live tail", lambda: _publish_lines(app, records), None)


def _publish_lines(app: Flask, records: list[Record]) -> None:
    """publish_lines, raising RedisError."""
    if is_watched(app, TAIL):
        for message in tail_messages(records):
            publish(app, TAIL, message)


def line_matches(filters: SearchFilters, line: dict, lowered: str | None = None) -> bool:
    """Whether a line passes a tail's filters (the search API's meaning of each); `lowered`
    is its message in lower case, when already known."""
    if filters.services and line["service"] not in filters.services:
        return False
    if filters.levels and line["level"] not in filters.levels:
        return False
    if filters.fingerprint and line["fingerprint"] != filters.fingerprint:
        return False
    if filters.since or filters.until:
        moment = datetime.fromisoformat(line["timestamp"])
        if (filters.since and moment < filters.since) or (filters.until
                                                           and moment > filters.until):
            return False
    if not filters.q:
        return True
    # lower(), as ILIKE compares: casefold() would also find "ss" in "Straße".
    return filters.q.lower() in (line["message"].lower() if lowered is None else lowered)


def shown_lines(message: dict, filters: SearchFilters) -> dict | None:
    """What of one published message a tail shows: its lines that pass the filters, and
    how many lines of its batch that are of its services and levels were left out (`at_most`
    when its other filters could not be applied to them); None when that is nothing."""
    texts = _lowered(message) if filters.q else itertools.repeat(None)
    lines = [line for line, text in zip(message["lines"], texts, strict=False)
             if line_matches(filters, line, text)]
    skipped = sum(count for service, level, count in message["skipped"]
                  if (not filters.services or service in filters.services)
                  and (not filters.levels or level in filters.levels))
    if not lines and not skipped:
        return None
    unknown = filters.q or filters.fingerprint or filters.since or filters.until
    return {"lines": lines, "skipped": skipped, "at_most": bool(skipped and unknown)}


def _lowered(message: dict) -> list[str]:
    """Its lines' messages in lower case, worked out once: the hub hands the same decoded
    message to every tail socket of the process, one after the other."""
    texts = message.get(_LOWERED)
    if texts is None:
        texts = message[_LOWERED] = [line["message"].lower() for line in message["lines"]]
    return texts


def lines_held(message: dict) -> int:
    """How many lines a message stands for, those left out of it included."""
    return len(message["lines"]) + message["skipped"]


def render_tail_rows(message: dict, dropped: int = 0) -> str:
    """Rows of a message's lines, with notices of lines not shown: those left out of a large
    batch, and `dropped`, those of messages this socket fell too far behind to send."""
    return render_template("live/tail_rows.html", lines=message["lines"],
                           skipped=message["skipped"], at_most=message["at_most"],
                           dropped=dropped)
