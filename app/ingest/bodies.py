"""Decode an ingest request body into log objects: JSON, JSON array, NDJSON or form data."""

import ast
import json
import math
import re
import zlib
from urllib.parse import parse_qsl

import orjson


class BodyError(Exception):
    """The request body as a whole cannot be used; carries the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the status next to the message."""
        super().__init__(message)
        self.status = status


class LineError:
    """A line that could not be decoded, standing in its place in the batch."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        """Remember why the line was refused."""
        self.error = error


# Each member after the first copies the rest of the body (zlib's unused_data): a body of
# thousands of empty members would take seconds to minutes of CPU.
MAX_MEMBERS = 32


class InflateError(ValueError):
    """Compressed data that is not valid, is cut short, or grows past its limit."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        """reason: what is wrong; too_large: the data was valid but grew past the limit."""
        super().__init__(reason)
        self.too_large = too_large


def inflate(data: bytes, wbits: int, max_bytes: int) -> bytes:
    """Decompress zlib or gzip data to at most max_bytes. Gzip files joined end to end
    (`cat a.gz b.gz`) are one valid file: every member is read, up to MAX_MEMBERS. Data
    after the last stream that is not another one is refused, never silently ignored."""
    out = bytearray()
    for _ in range(MAX_MEMBERS):
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, max_bytes + 1 - len(out))
        except zlib.error as error:
            raise InflateError(str(error)) from None
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise InflateError(f"larger than {max_bytes} bytes", too_large=True)
        if not inflater.eof:
            raise InflateError("truncated stream")
        data = inflater.unused_data
        if not data:
            return bytes(out)
    raise InflateError(f"more than {MAX_MEMBERS} compressed streams joined together")


def decompress(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo Content-Encoding, refusing bodies that grow past max_bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    try:
        # wbits 47 reads both gzip and zlib headers.
        return inflate(data, 47 if encoding != "deflate" else 15, max_bytes)
    except InflateError as error:
        if error.too_large:
            raise BodyError(413, f"decompressed body is {error}") from None
        raise BodyError(400, f"body is not valid {encoding}: {error}") from None


def _finite_float(text: str) -> float | str:
    """Read a JSON number as a float, keeping its text when it is too large for one."""
    value = float(text)
    return value if math.isfinite(value) else text


def _int_or_text(text: str) -> int | str:
    """Read a JSON integer, keeping its text when it has more digits than Python converts."""
    return int(text) if len(text.removeprefix("-")) <= MAX_INT_DIGITS else text


# Python refuses to convert longer digit strings (sys.get_int_max_str_digits()).
MAX_INT_DIGITS = 4300
# One decoder for every line: json.loads with options builds a new one per call.
# NaN, Infinity and numbers like 1e400, which jsonb cannot hold, are kept as strings; so
# are integers of more digits than Python reads.
_DECODER = json.JSONDecoder(parse_constant=str, parse_float=_finite_float,
                            parse_int=_int_or_text)
# orjson reads an integer beyond 64 bits as a float, losing its exact value: 20 digits or
# more, or a minus and 19. Such a run is found by turning every digit into 0 and looking
# for the zeros, about five times quicker than a regular expression for it.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20
_MINUS_NINETEEN_DIGITS = b"-" + b"0" * 19


def loads(data: bytes):
    """Parse UTF-8 JSON text.

    orjson parses a line several times faster than the standard library, which is most of
    what decoding a batch costs. What orjson refuses (NaN, a byte order mark, a lone
    surrogate, deep nesting, bad JSON) or would round goes to the standard library, so
    every line is read as the standard decoder reads it and errors name the same problem.
    """
    zeroed = data.translate(_DIGITS_TO_ZERO)
    if _TWENTY_DIGITS not in zeroed and _MINUS_NINETEEN_DIGITS not in zeroed:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _DECODER.decode(data.decode("utf-8-sig"))


def parse_json_body(data: bytes, max_lines: int | None = None) -> list:
    """Return the objects of a JSON, JSON array or NDJSON body; bad lines become LineError.
    NDJSON of more than max_lines lines is refused (413) before any line is decoded."""
    stripped = data.strip()
    if not stripped:
        raise BodyError(400, "body is empty")
    try:
        document = loads(stripped)
    except (ValueError, RecursionError):
        if max_lines is not None:
            _check_ndjson_line_count(stripped, max_lines)
        return _parse_ndjson(stripped)
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        return [document]
    raise BodyError(400, "body must be a JSON object, an array of objects, or NDJSON")


# The start of a line holding more than blanks.
_NON_BLANK_LINE = re.compile(rb"^[ \t\r\f\v]*\S", re.M)


def _check_ndjson_line_count(data: bytes, max_lines: int) -> None:
    """413 for NDJSON of more than max_lines lines, counted without decoding any: a few KB
    of gzip can hold millions of short lines, each a Python object once decoded."""
    if data.count(b"\n") < max_lines:
        return
    for count, _ in enumerate(_NON_BLANK_LINE.finditer(data), start=1):
        if count > max_lines:
            raise BodyError(413, f"batch has more than {max_lines} lines; at most"
                                 f" {max_lines} per request")


def _parse_ndjson(data: bytes) -> list:
    """Decode one JSON object per line; lines that are not JSON are named, not fatal."""
    items = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(loads(line))
        except (ValueError, RecursionError) as error:
            items.append(LineError(f"line {number} is not valid JSON: {_short(error)}"))
    if all(isinstance(item, LineError) for item in items):
        raise BodyError(400, f"body is not JSON, a JSON array or NDJSON: {items[0].error}")
    return items


def _short(error: Exception) -> str:
    """Shorten a decoder error to something fit for a response."""
    return str(error)[:120]


# What the standard library's LogRecord carries besides user extras; not kept as attributes.
_RECORD_INTERNALS = {
    "name", "msg", "args", "levelname", "levelno", "created", "msecs", "relativeCreated",
    "exc_info", "exc_text", "stack_info", "filename", "message", "asctime",
}
_EXC_INFO = re.compile(r"^\(<class '[^']+'>, (.+), <traceback object at 0x[0-9a-f]+>\)$", re.S)
# Formatting a LogRecord's msg with its args must not build a huge string from a small
# request: it is done only when it cannot write more than this.
MAX_FORMATTED_CHARS = 1_000_000
# What one placeholder may write, at most: a value of args in its longest form (ascii() of
# a non-printable character takes 10 characters) and a float's 309 digits with a precision.
_CHARS_PER_ARGS_CHAR = 10
_MOST_FLOAT_CHARS = 410
# After a placeholder's mapping key: flags, width and precision.
_SPEC = re.compile(r"[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _formatting_is_small(msg: str, args: str) -> bool:
    """Whether msg % args writes at most MAX_FORMATTED_CHARS, judged without doing it: no
    width or precision of 100 or more (or taken from args, "*"), each placeholder at most
    its longest value, and no mapping key holding "(" (Python matches nested parentheses
    there, which would hide what follows from this reading)."""
    most = MAX_FORMATTED_CHARS // (_CHARS_PER_ARGS_CHAR * len(args) + _MOST_FLOAT_CHARS)
    placeholders, at = 0, msg.find("%")
    while at != -1:
        placeholders += 1
        if placeholders > most:
            return False
        end = at + 1
        if msg.startswith("(", end):
            end = msg.find(")", end)
            if end == -1 or "(" in msg[at + 2:end]:
                return False
            end += 1
        spec = _SPEC.match(msg, end)
        if any(part == "*" or len(part) >= 3 for part in spec.groups() if part):
            return False
        at = msg.find("%", spec.end() + 1)
    return True


def _format_message(msg: str, args: str) -> str:
    """Apply a LogRecord's args (sent as their repr) to its msg, as logging would."""
    if not args or args in ("()", "None", "{}") or "%" not in msg:
        return msg
    if not _formatting_is_small(msg, args):
        return f"{msg} {args}"
    try:
        values = ast.literal_eval(args) if len(args) <= 10_000 else None
        return msg % values if values is not None else msg
    except Exception:
        # args that are not literals or do not fit the format: keep what the program wrote.
        return f"{msg} {args}"


def check_line_count(count: int, max_lines: int) -> None:
    """Refuse a request of more lines than one may hold (413), before they are built."""
    if count > max_lines:
        raise BodyError(413, f"batch has {count} lines; at most {max_lines} per request")


def parse_logging_form(data: bytes, default_service: str | None) -> list:
    """Turn the form body of logging.handlers.HTTPHandler into one log object."""
    form = dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))
    if "msg" not in form or "levelname" not in form:
        raise BodyError(400, "form body must be a logging.handlers.HTTPHandler record")
    message = _format_message(form["msg"], form.get("args", ""))
    if form.get("exc_text") in (None, "", "None"):
        # Without a formatter the traceback never becomes exc_text; exc_info's repr still
        # names the exception, which is worth keeping.
        raised = _EXC_INFO.match(form.get("exc_info", ""))
        if raised:
            message = f"{message}\n{raised.group(1)}"
    else:
        message = f"{message}\n{form['exc_text']}"
    if form.get("stack_info") not in (None, "", "None"):
        message = f"{message}\n{form['stack_info']}"
    name = form.get("name", "")
    item = {
        "service": form.get("service") or default_service or name.split(".")[0] or "python",
        "message": message,
        "level": form["levelname"],
        "logger": name or None,
    }
    if form.get("created"):
        item["timestamp"] = form["created"]
    for key, value in form.items():
        if key not in _RECORD_INTERNALS and key not in item and value != "None":
            item[key] = value
    return [item]

