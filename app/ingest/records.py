"""Normalise one decoded log object into a row ready for COPY, or say why it is invalid."""

import json
import re
from datetime import datetime, timedelta
from typing import NamedTuple

import orjson

from app.grouping import fingerprint, template_of
from app.ingest.bodies import BodyError
from app.ingest.levels import normalize_level
from app.ingest.timestamps import parse_timestamp

# The first key present wins; the others are kept as attributes.
MESSAGE_KEYS = ("message", "msg", "log")
TIMESTAMP_KEYS = ("timestamp", "ts", "time", "@timestamp", "date")
LEVEL_KEYS = ("level", "severity", "levelname")
HOST_KEYS = ("host", "hostname")

MAX_SERVICE_CHARS = 100
MAX_FIELD_CHARS = 255
# Objects and arrays in a text field (a structured message) are written as JSON; nested
# deeper than this they are refused, well before the encoder's recursion limit.
MAX_TEXT_NESTING = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# An escaped NUL (\u0000) that is not itself behind an escaped backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class Record(NamedTuple):
    """A normalised line: the COPY columns in order, then its template text."""

    timestamp: datetime
    service: str
    level: str
    message: str
    host: str | None
    logger: str | None
    trace_id: str | None
    attributes: str
    fingerprint: str
    template: str


# The leading fields of Record, which are the columns COPY writes.
COPY_COLUMNS = Record._fields[:9]


class Limits(NamedTuple):
    """What one line may hold, from the app's configuration."""

    max_message_bytes: int
    oldest: datetime
    newest: datetime
    max_attributes: int = 100
    max_attribute_depth: int = 8
    max_attribute_chars: int = 64 * 1024

    @classmethod
    def from_config(cls, config, now: datetime) -> "Limits":
        """Build the limits that apply to lines received at `now`."""
        # A day's count is recomputed from its hours, so lines older than the hourly
        # tier keeps could not be counted exactly: they are refused.
        past_days = min(
            config["LOGDASH_ACCEPT_PAST_DAYS"], config["LOGDASH_RETAIN_HOURLY_DAYS"] - 1
        )
        return cls(
            max_message_bytes=config["LOGDASH_MAX_MESSAGE_BYTES"],
            oldest=now - timedelta(days=past_days),
            newest=now + timedelta(hours=config["LOGDASH_ACCEPT_FUTURE_HOURS"]),
            max_attributes=config["LOGDASH_MAX_ATTRIBUTES"],
            max_attribute_depth=config["LOGDASH_MAX_ATTRIBUTE_DEPTH"],
            max_attribute_chars=config["LOGDASH_MAX_ATTRIBUTE_CHARS"],
        )


class InvalidLine(ValueError):
    """A line that cannot be stored; its message names the problem."""


def clean_text(text: str) -> str:
    """Make text storable in PostgreSQL: NUL and lone surrogates become U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.isascii():  # known without a scan: no surrogates to look for
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def truncate_bytes(text: str, limit: int) -> str:
    """Cut text to at most `limit` UTF-8 bytes, marking how many of its bytes were dropped."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    # The marker's own length depends on the number it holds: sized for the largest
    # count (all of data), it leaves room for any smaller one.
    room = max(limit - len(f"… [truncated {len(data)} bytes]".encode()), 0)
    kept = data[:room].decode("utf-8", "ignore")
    return f"{kept}… [truncated {len(data) - len(kept.encode('utf-8'))} bytes]"


def first_present(raw: dict, keys: tuple[str, ...]) -> tuple[str | None, object]:
    """Return the first of `keys` present in raw, and its value."""
    for key in keys:
        if key in raw:
            return key, raw[key]
    return None, None


def _json_text(value: dict | list, field: str) -> str:
    """An object or array given for a text field, as JSON text."""
    if _too_deep(value, MAX_TEXT_NESTING):
        raise InvalidLine(f"{field} is nested deeper than {MAX_TEXT_NESTING} levels")
    return json.dumps(value, ensure_ascii=False)


def _optional_text(value, field: str, limit: int = MAX_FIELD_CHARS) -> str | None:
    """Render an optional scalar field as clean, bounded text."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = _json_text(value, field) if isinstance(value, dict | list) else str(value)
    value = clean_text(value.strip())
    return value[:limit] or None


def service_name(value) -> str:
    """Validate a service name: non-empty text without control characters."""
    if value is None:
        raise InvalidLine("service is required (a field, or ?service= on the URL)")
    if not isinstance(value, str):
        raise InvalidLine("service must be a string")
    name = value.strip()
    if not name:
        raise InvalidLine("service is empty")
    if len(name) > MAX_SERVICE_CHARS:
        raise InvalidLine(f"service is longer than {MAX_SERVICE_CHARS} characters")
    if _CONTROL.search(name):
        raise InvalidLine("service contains control characters")
    if name in (".", ".."):  # as a part of a page's URL it would mean another page
        raise InvalidLine(f"service cannot be {name!r}")
    return clean_text(name)


def _message(value, limit: int) -> str:
    """Return the message as bounded text; structured messages are kept as JSON."""
    if value is None:
        raise InvalidLine("message is required (also accepted as msg or log)")
    if not isinstance(value, str):
        value = (_json_text(value, "message") if isinstance(value, dict | list)
                 else json.dumps(value, ensure_ascii=False))
    if not value.strip():
        raise InvalidLine("message is empty")
    return truncate_bytes(clean_text(value), limit)


def _timestamp(value, limits: Limits) -> datetime:
    """Parse the event time and check it falls in the accepted range."""
    try:
        moment = parse_timestamp(value)
    except ValueError as error:
        raise InvalidLine(str(error)) from None
    if moment < limits.oldest:
        raise InvalidLine(f"timestamp {moment.isoformat()} is older than the accepted range")
    if moment > limits.newest:
        raise InvalidLine(f"timestamp {moment.isoformat()} is too far in the future")
    return moment


def _too_deep(container: dict | list, depth: int) -> bool:
    """Whether objects and arrays nested in `container` go `depth` levels deeper or more."""
    # Scalars, most attribute values, are passed over without a call.
    for child in container.values() if isinstance(container, dict) else container:
        if isinstance(child, (dict, list)) and (depth <= 1 or _too_deep(child, depth - 1)):
            return True
    return False


def _attributes_json(attributes: dict) -> str:
    """Render attributes as JSON text; NUL and lone surrogates become U+FFFD."""
    try:
        # Several times faster than json.dumps; it refuses what the fallback handles: lone
        # surrogates and integers beyond 64 bits. (A non-finite float, which no decoded
        # JSON holds here, it writes as null, where json.dumps wrote what jsonb refuses.)
        return orjson.dumps(attributes, default=str).decode()
    except TypeError:
        return clean_text(json.dumps(attributes, ensure_ascii=False, default=str))


def _attributes(raw: dict, used: set, limits: Limits) -> str:
    """Collect every key not used by a column into a JSON object, made safe for jsonb."""
    nested = raw.get("attributes")
    attributes = dict(nested) if isinstance(nested, dict) else {}
    for key, value in raw.items():
        if key not in used and not (key == "attributes" and isinstance(value, dict)):
            attributes[key] = value
    if not attributes:
        return "{}"
    if len(attributes) > limits.max_attributes:
        raise InvalidLine(f"line has {len(attributes)} attributes; at most"
                          f" {limits.max_attributes} are kept per line")
    if _too_deep(attributes, limits.max_attribute_depth):
        raise InvalidLine(f"attributes are nested deeper than {limits.max_attribute_depth}"
                          " levels")
    text = _attributes_json(attributes)
    if len(text) > limits.max_attribute_chars:
        raise InvalidLine(f"attributes are {len(text)} characters as JSON; at most"
                          f" {limits.max_attribute_chars} are kept per line")
    if "\\u0000" not in text:
        return text
    # jsonb refuses the \u0000 escape; the message column already gets the same treatment.
    return _ESCAPED_NUL.sub(r"\1\\ufffd", text)


# The attributes an OTLP scope or a Loki stream shares are copied into each of its lines,
# and stored with each: a few KB sent once could become gigabytes. One request may make at
# most this many characters of such copies.
MAX_COPIED_ATTRIBUTE_CHARS = 64 * 1024 * 1024


def attribute_chars(attributes: dict) -> int:
    """The size of attributes as JSON, as a line stores them."""
    return len(_attributes_json(attributes)) if attributes else 0


class SharedAttributes:
    """Checks, once each, the attributes many lines of one request will each carry."""

    def __init__(self, limits: Limits) -> None:
        """Nothing copied yet."""
        self.limits = limits
        self.copied = 0

    def too_many(self, attributes: dict) -> bool:
        """Whether these attributes are more than a line may keep (then not worth sizing)."""
        return len(attributes) > self.limits.max_attributes

    def refusal(self, count: int, chars: int, lines: int) -> str | None:
        """Why the `lines` lines that would each carry `count` shared attributes, `chars`
        characters of JSON, are refused, if they are; BodyError (413) once the request's
        copies would pass MAX_COPIED_ATTRIBUTE_CHARS."""
        if count > self.limits.max_attributes:
            return (f"{count} attributes are shared by every line here; at most"
                    f" {self.limits.max_attributes} are kept per line")
        if chars > self.limits.max_attribute_chars:
            return (f"the attributes shared by every line here are {chars} characters as"
                    f" JSON; at most {self.limits.max_attribute_chars} are kept per line")
        self.copied += chars * lines
        if self.copied > MAX_COPIED_ATTRIBUTE_CHARS:
            raise BodyError(413, "the attributes shared by many lines of this request would"
                                 f" be more than {MAX_COPIED_ATTRIBUTE_CHARS} characters once"
                                 " copied into each; send fewer lines per request")
        return None


def normalize(raw, default_service: str | None, limits: Limits, received: datetime) -> Record:
    """Turn one decoded object into a Record, or raise InvalidLine naming the problem."""
    if not isinstance(raw, dict):
        raise InvalidLine("each log line must be a JSON object")
    message_key, message = first_present(raw, MESSAGE_KEYS)
    time_key, when = first_present(raw, TIMESTAMP_KEYS)
    level_key, level_value = first_present(raw, LEVEL_KEYS)
    host_key, host = first_present(raw, HOST_KEYS)
    level = "info" if level_value is None else normalize_level(level_value)
    if level is None:
        raise InvalidLine(f"unknown level {str(level_value)[:40]!r}")
    used = {"service", "logger", "trace_id", message_key, time_key, level_key, host_key}
    text = _message(message, limits.max_message_bytes)
    template = template_of(text)
    return Record(
        timestamp=received if when is None else _timestamp(when, limits),
        service=service_name(default_service if raw.get("service") is None else raw["service"]),
        level=level,
        message=text,
        host=_optional_text(host, host_key),
        logger=_optional_text(raw.get("logger"), "logger"),
        trace_id=_optional_text(raw.get("trace_id"), "trace_id", 128),
        attributes=_attributes(raw, used, limits),
        fingerprint=fingerprint(template),
        template=template,
    )
