"""Loki push requests: JSON streams, or a snappy-compressed protobuf PushRequest, decoded
into the log objects `normalize()` takes.

The service comes from the first configured label present (LOGDASH_LOKI_SERVICE_LABELS), the
level from a `level`-like label or structured metadata entry, `logger` and `host` labels fill
those columns, and every other label and metadata entry becomes an attribute. A body whose
structure is wrong is refused whole, as Loki does; lines Logdash cannot store (bad time,
unknown level) are refused one by one.
"""

import json
import re

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from app.ingest.bodies import BodyError, LineError, check_line_count
from app.ingest.levels import normalize_level
from app.ingest.records import Limits, SharedAttributes, attribute_chars

# The names Loki itself reads a level from (its detected_level), first present wins.
LEVEL_KEYS = ("level", "detected_level", "severity", "lvl")
LOGGER_KEYS = ("logger",)
HOST_KEYS = ("host", "hostname")
# One label of a Prometheus label set: name="value", the value Go-quoted.
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)', re.S)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


# Loki's push.proto, the fields a receiver reads: (name, number, message type or None for a
# string, repeated). StreamAdapter's `hash` and newer fields are skipped as unknown fields.
# Strings are read as bytes: Loki's Go code does not check UTF-8, and protobuf's parser
# refuses a whole push for one line of Latin-1; such a line is decoded with U+FFFD instead.
_PUSH_PROTO = {
    "PushRequest": [("streams", 1, ".logproto.StreamAdapter", True)],
    "StreamAdapter": [("labels", 1, None, False), ("entries", 2, ".logproto.EntryAdapter", True)],
    "EntryAdapter": [("timestamp", 1, ".google.protobuf.Timestamp", False),
                     ("line", 2, None, False),
                     ("structuredMetadata", 3, ".logproto.LabelPairAdapter", True)],
    "LabelPairAdapter": [("name", 1, None, False), ("value", 2, None, False)],
}


def _push_request_class():
    """Build logproto.PushRequest at run time: no maintained package ships Loki's push.proto,
    and these four small messages are all of it that a receiver needs."""
    kinds = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="logdash/loki_push.proto", package="logproto", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"])
    for message_name, fields in _PUSH_PROTO.items():
        message = proto.message_type.add(name=message_name)
        for name, number, type_name, repeated in fields:
            field = message.field.add(
                name=name, number=number, type=kinds.TYPE_BYTES,
                label=kinds.LABEL_REPEATED if repeated else kinds.LABEL_OPTIONAL)
            if type_name:
                field.type, field.type_name = kinds.TYPE_MESSAGE, type_name
    # A pool of our own, so the names cannot clash with another library's copy of the proto.
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


PushRequest = _push_request_class()


def parse_push(data: bytes, protobuf: bool, service_labels: tuple[str, ...], limits: Limits,
               max_lines: int) -> list[dict | LineError]:
    """Return one log object per entry of a push request; 413 for more than max_lines
    entries, before any is built (each carries a copy of its stream's labels: a small
    compressed body could otherwise take gigabytes)."""
    streams = _protobuf_streams(data, max_lines) if protobuf else _json_streams(data, max_lines)
    items, shared = [], SharedAttributes(limits)
    for labels, entries in streams:
        if not entries:
            continue
        # Counted as a line without metadata keeps them (the labels it takes as its
        # service, level, logger and host are not attributes); sized whole, since an
        # entry's metadata can take a label's place as a column and leave it an attribute.
        count = len(_log_object(labels, (None, "", {}), service_labels)["attributes"])
        chars = 0 if shared.too_many(labels) else attribute_chars(labels)
        refusal = shared.refusal(count, chars, len(entries))
        items += ([LineError(refusal)] * len(entries) if refusal else
                  [_log_object(labels, entry, service_labels) for entry in entries])
    return items


def unsnappy(data: bytes, max_bytes: int) -> bytes:
    """Undo the snappy block compression of a protobuf push, refusing bodies that would grow
    past max_bytes (the block's header states its size, so this is checked first)."""
    try:
        size = cramjam.snappy.decompress_raw_len(data)
        if size > max_bytes:
            raise BodyError(413, f"decompressed body is larger than {max_bytes} bytes")
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as error:
        raise BodyError(400, f"body is not snappy-compressed: {error}") from None


def _protobuf_streams(data: bytes, max_lines: int) -> list[tuple[dict, list]]:
    """(labels, entries) of each stream of a protobuf PushRequest."""
    request = PushRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as error:
        raise BodyError(400, f"body is not a protobuf PushRequest: {error}") from None
    check_line_count(sum(len(stream.entries) for stream in request.streams), max_lines)
    return [(parse_labels(_text(stream.labels)), [
        (entry.timestamp.seconds * 1_000_000_000 + entry.timestamp.nanos, _text(entry.line),
         {_text(pair.name): _text(pair.value) for pair in entry.structuredMetadata})
        for entry in stream.entries]) for stream in request.streams]


def _text(data: bytes) -> str:
    """A protobuf string field's bytes as text; bytes that are not UTF-8 become U+FFFD."""
    return data.decode("utf-8", "replace")


def parse_labels(text: str) -> dict:
    """Read a Prometheus label set such as {job="api", level="error"}."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise BodyError(400, f"labels {text[:60]!r} are not a {{name=\"value\"}} label set")
    inner, labels, position = inner[1:-1], {}, 0
    # Measured once: testing what is left by slicing it copied the rest for every label.
    end = len(inner.rstrip())
    while position < end:
        match = _LABEL.match(inner, position)
        if match is None:
            raise BodyError(400, f"labels {text[:60]!r} are not a {{name=\"value\"}} label set")
        labels[match.group(1)] = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]),
                                        match.group(2))
        position = match.end()
    return labels


def _json_streams(data: bytes, max_lines: int) -> list[tuple[dict, list]]:
    """(labels, entries) of each stream of a JSON push: {"streams": [{"stream", "values"}]}."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError) as error:
        raise BodyError(400, f"body is not JSON: {str(error)[:120]}") from None
    streams = document.get("streams") if isinstance(document, dict) else None
    if not isinstance(streams, list):
        raise BodyError(400, 'body must be a JSON object {"streams": [...]}')
    check_line_count(sum(len(stream["values"]) for stream in streams if isinstance(stream, dict)
                         and isinstance(stream.get("values"), list)), max_lines)
    return [_json_stream(number, stream) for number, stream in enumerate(streams)]


def _json_stream(number: int, stream) -> tuple[dict, list]:
    """Check one JSON stream's shape: an object of string labels, and a list of values."""
    labels = stream.get("stream") if isinstance(stream, dict) else None
    values = stream.get("values") if isinstance(stream, dict) else None
    if not _string_map(labels) or not isinstance(values, list):
        raise BodyError(400, f'stream {number} must be {{"stream": {{labels}}, "values": [...]}}'
                             " with string label values")
    return labels, [_json_entry(number, value) for value in values]


def _json_entry(number: int, value) -> tuple:
    """(time, line, metadata) of one ["<unix ns>", "<line>", {metadata}?] value."""
    shaped = isinstance(value, list) and len(value) in (2, 3)
    metadata = value[2] if shaped and len(value) == 3 else {}
    if not (shaped and isinstance(value[0], str | int) and isinstance(value[1], str)
            and _string_map(metadata)):
        raise BodyError(400, f"stream {number}: each value must be"
                             ' ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]')
    return value[0], value[1], metadata


def _string_map(value) -> bool:
    """Whether value is an object of string values."""
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _log_object(labels: dict, entry: tuple, service_labels: tuple[str, ...]) -> dict:
    """One entry as the dict normalize() takes; its metadata overrides its stream's labels."""
    when, line, metadata = entry
    fields = {**labels, **metadata}
    return {
        "service": take_first(fields, service_labels),
        # A level label that names no severity ("unknown" is Loki's own word when it cannot
        # tell) stays a label, and the entry is stored at the default level.
        "level": take_first(fields, LEVEL_KEYS, usable=normalize_level),
        "logger": take_first(fields, LOGGER_KEYS),
        "host": take_first(fields, HOST_KEYS),
        "message": line,
        "timestamp": when,
        "attributes": fields,
    }


def take_first(fields: dict, keys: tuple[str, ...], usable=bool):
    """Remove and return the first non-empty value among keys (Loki drops empty labels)
    that `usable` accepts."""
    for key in keys:
        if fields.get(key) not in (None, "") and usable(fields[key]):
            return fields.pop(key)
    return None
