"""Parse one syslog message, RFC 5424 or RFC 3164 (BSD), into a log object for ingest.

Parsing never fails: as RFC 3164 asks of a relay, text that does not follow either format
is kept whole as the message (with priority user.notice), so nothing a sender logs is lost.
"""

import re
from datetime import UTC, datetime, timedelta

# Severity numbers 0-7 as syslog names them; app.ingest.levels maps the words to levels.
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7",
)
DEFAULT_PRIORITY = 13  # user.notice: what RFC 3164 says to assume when none is given
DEFAULT_SERVICE = "syslog"
NIL = "-"

_PRI = re.compile(rb"<(\d{1,3})>")
_COUNT_PREFIX = re.compile(rb"\A\d{1,10} (?=<\d{1,3}>)")
# VERSION 1, the only one defined, then TIMESTAMP HOSTNAME APP-NAME PROCID MSGID.
_RFC5424_HEAD = re.compile(r"1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
_BSD_TIME = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? ")
_ISO_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?) ")
# TAG[PID]: with the colon optional after a [PID] (rsyslog forwards some tags so): a
# first word without either is the message's own.
_TAG = re.compile(r"([^\s:\[\]]{1,64})(?:\[([^\]\s]{1,32})\]:? ?|: ?)")
_HOSTNAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9._:\-]{0,254}) ")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_SD_PARAM = re.compile(r' ([^= \]"]{1,32})="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r"\\([\"\\\]])")
_BOM = "\ufeff"


def parse_syslog(data: bytes, peer: str | None = None,
                 default_service: str = DEFAULT_SERVICE) -> dict:
    """Return the log object for one syslog message; `peer` is the host when none is named."""
    # An octet count in front of a datagram (logger --octet-count over UDP) is framing.
    data = _COUNT_PREFIX.sub(b"", data, count=1)
    priority, rest = _priority(data.rstrip(b"\r\n\x00"))
    text = rest.decode("utf-8", "replace")
    head = _RFC5424_HEAD.match(text)
    item = _rfc5424(head, text[head.end():]) if head else _rfc3164(text)
    facility, severity = divmod(priority, 8)
    item["level"] = SEVERITIES[severity]
    item["service"] = item.get("service") or default_service
    item["host"] = item.get("host") or peer
    item["attributes"]["facility"] = FACILITIES[facility]
    return item


def _priority(data: bytes) -> tuple[int, bytes]:
    """Split off `<PRI>`; a missing or out-of-range one counts as user.notice."""
    match = _PRI.match(data)
    if match is None or int(match.group(1)) > 191:
        return DEFAULT_PRIORITY, data
    return int(match.group(1)), data[match.end():]


def _nil(value: str) -> str | None:
    """RFC 5424's `-` means no value."""
    return None if value == NIL else value


def _rfc5424(head: re.Match, rest: str) -> dict:
    """The fields after VERSION: timestamp, host, app, procid, msgid, structured data, msg."""
    timestamp, host, app_name, procid, msgid = head.groups()
    structured, message = _structured_data(rest)
    # rsyslog's RFC 5424 template keeps the space that followed an RFC 3164 tag's colon.
    message = message.removeprefix(_BOM).removeprefix(" ")
    if not message.strip():
        # MSG is optional: an event told only by its structured data (RFC 5424's example 4)
        # is kept, with that data, or else its MSGID, as the text to show and group by.
        written = rest[:len(rest) - len(message)].strip()
        message = (written if structured else "") or _nil(msgid) or message
    attributes = {key: value for key, value in (("procid", _nil(procid)),
                                                ("msgid", _nil(msgid))) if value}
    attributes.update(structured)
    item = {"message": message, "service": _nil(app_name),
            "host": _nil(host), "attributes": attributes}
    if _nil(timestamp):
        item["timestamp"] = timestamp
    return item


def _structured_data(text: str) -> tuple[dict, str]:
    """Read `[id k="v" ...]...` (or `-`) from the start of text; return it and the message."""
    if text.startswith(NIL):
        return {}, text[2:] if text[1:2] == " " else text[1:]
    elements: dict = {}
    position = 0
    while text.startswith("[", position):
        end = _element_end(text, position)
        if end < 0:
            break  # not well-formed: keep the rest, brackets included, as the message
        _add_element(elements, text[position + 1:end])
        position = end + 1
    message = text[position:]
    return elements, message[1:] if message.startswith(" ") else message


def _element_end(text: str, start: int) -> int:
    """Index of the `]` closing the element at start, honouring quotes and escapes; or -1."""
    quoted = False
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and quoted:
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "]" and not quoted:
            return index
        index += 1
    return -1


def _add_element(elements: dict, body: str) -> None:
    """Add one SD-ELEMENT as {sd_id: {param: value}}; a repeated param becomes a list."""
    sd_id, _, params = body.partition(" ")
    target = elements.setdefault(sd_id or "sd", {})
    for name, raw in _SD_PARAM.findall(" " + params):
        value = _SD_ESCAPE.sub(r"\1", raw)
        if name in target:
            earlier = target[name]
            target[name] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            target[name] = value


def _rfc3164(text: str) -> dict:
    """`TIMESTAMP HOSTNAME TAG[PID]: MSG`, each part optional as real senders leave them out."""
    item: dict = {"attributes": {}}
    moment, rest = _bsd_timestamp(text)
    if moment is not None:
        item["timestamp"] = moment
        # Only a message with a timestamp names its host (RFC 3164 4.1.2).
        # ... unless the word there ends with ':', which makes it the tag of a sender
        # that left its hostname out.
        host = _HOSTNAME.match(rest)
        if host and not host.group(1).endswith(":"):
            item["host"], rest = host.group(1), rest[host.end():]
    tag = _TAG.match(rest)
    if tag:
        item["service"] = tag.group(1)
        if tag.group(2):
            item["attributes"]["procid"] = tag.group(2)
        rest = rest[tag.end():]
    item["message"] = rest
    return item


def _bsd_timestamp(text: str) -> tuple[str | None, str]:
    """Read `Mmm dd hh:mm:ss ` (or an RFC 3339 time) from the start of text."""
    iso = _ISO_TIME.match(text)
    if iso:
        return iso.group(1), text[iso.end():]
    match = _BSD_TIME.match(text)
    if match is None or match.group(1) not in _MONTHS:
        return None, text
    try:
        moment = _infer_year(_MONTHS[match.group(1)], *(int(g) for g in match.groups()[1:]))
    except ValueError:
        return None, text  # Feb 30, 25:00:00 ...: not a time, so part of the message
    return moment.isoformat(), text[match.end():]


def _infer_year(month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    """The BSD format has no year or zone: take this machine's zone and the latest year
    that does not put the time more than a day ahead (Dec 31 read on Jan 1 is last year)."""
    now = datetime.now(UTC)
    for year in (now.year + 1, now.year, now.year - 1):
        try:
            # A naive datetime's astimezone() reads it as this machine's local time.
            moment = datetime(year, month, day, hour, minute, second).astimezone(UTC)
        except ValueError:
            continue  # Feb 29 in a year without one
        if moment <= now + timedelta(days=1):
            return moment
    raise ValueError("no year fits")
