"""GELF (Graylog Extended Log Format) messages over HTTP, decoded into the log objects
`normalize()` takes.

A body holds one GELF JSON message or several, one per line; it may be gzip- or
zlib-compressed. Service from `_service`, `_app` or `facility`, else the sender's default
(its token's service or ?service=), else the host; the syslog level (0-7) mapped to
Logdash's levels; `_`-prefixed additional fields and the rest become attributes.
"""

from app.ingest.bodies import LineError, parse_json_body
from app.ingest.loki import take_first
from app.ingest.records import InvalidLine
from app.numbers import whole_number

# Syslog severities 0-7: emergency, alert, critical, error, warning, notice, info, debug.
SYSLOG_LEVELS = ("critical", "critical", "critical", "error", "warning", "info", "info", "debug")
SERVICE_FIELDS = ("_service", "_app", "facility")
# Docker's gelf log driver sends none of those: when neither the token's pin nor
# ?service= names one either, its container's name is closer to a service than the
# Docker host's name.
CONTAINER_FIELDS = ("_container_name",)
LOGGER_FIELDS = ("_logger", "_logger_name")
# Protocol bookkeeping, not part of the event.
DROPPED_FIELDS = ("version",)
_GZIP_MAGIC = b"\x1f\x8b"


def content_encoding(data: bytes) -> str:
    """Tell compression from the bytes: senders label it loosely (graypy sends zlib data as
    `Content-Encoding: gzip,deflate`), while a JSON body never starts like gzip or zlib."""
    if data[:2] == _GZIP_MAGIC:
        return "gzip"
    # A zlib header: deflate method (low nibble 8) and a check value making it divisible by 31.
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        return "deflate"
    return ""


def parse_messages(data: bytes, default_service: str | None = None,
                   max_lines: int | None = None) -> list:
    """Return one log object per GELF message; undecodable ones become LineError. Messages
    that name no service get default_service, else their host's name. More than max_lines
    messages in NDJSON are refused (413) before they are decoded."""
    return [_log_object(message, default_service)
            for message in parse_json_body(data, max_lines)]


def _log_object(message, default_service: str | None):
    """One GELF message as the dict normalize() takes (other values are left for it to refuse)."""
    if not isinstance(message, dict):
        return message
    fields = dict(message)
    try:
        text = _message(fields.pop("short_message", None), fields.pop("full_message", None))
        level = _level(fields.pop("level", None))
    except InvalidLine as error:
        return LineError(str(error))
    host = fields.pop("host", None)
    facility = fields.get("facility")
    logger = take_first(fields, LOGGER_FIELDS) or facility
    service = (take_first(fields, SERVICE_FIELDS) or default_service
               or take_first(fields, CONTAINER_FIELDS) or host)
    for name in DROPPED_FIELDS:
        fields.pop(name, None)
    return {
        "service": service,
        "message": text,
        "level": level,
        "timestamp": fields.pop("timestamp", None),
        "host": host,
        "logger": logger,
        "trace_id": fields.pop("_trace_id", None),
        # Graylog stores additional fields without their underscore; so does Logdash.
        "attributes": {key.removeprefix("_"): value for key, value in fields.items()},
    }


def _message(short, full):
    """short_message, with full_message (often a traceback) after it unless it repeats it."""
    if short is None and full is None:
        raise InvalidLine("short_message is required")
    if not (isinstance(short, str) and isinstance(full, str)):
        return short if short is not None else full
    return full if full.startswith(short) else f"{short}\n{full}"


def _level(value):
    """Map a syslog level number to a Logdash level; words are left to normalize()."""
    if isinstance(value, str) and (number := whole_number(value)) is not None:
        value = number
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    if not 0 <= value < len(SYSLOG_LEVELS):
        raise InvalidLine(f"level {value} is not a syslog level (0-7)")
    return SYSLOG_LEVELS[value]
