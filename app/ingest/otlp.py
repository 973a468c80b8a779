"""OTLP/HTTP logs: decode an ExportLogsServiceRequest (protobuf or OTLP/JSON) into log objects,
and encode the answers the OTLP specification asks for.

Records become the plain dicts `normalize()` takes, so they go through the same ingest path as
every other line: service from the resource's `service.name`, level from the severity number
(or text), the body as the message, the scope name as the logger, and resource and record
attributes, flattened to JSON, as attributes.
"""

import base64
import json
import math
from collections.abc import Iterator

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from app.ingest.bodies import BodyError, LineError, check_line_count
from app.ingest.levels import normalize_level, otel_level
from app.ingest.records import Limits, SharedAttributes, attribute_chars

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Refusals named in partial_success.error_message; the count covers them all.
MAX_NAMED_REFUSALS = 10
# google.rpc.Code for the HTTP statuses Logdash answers (OTLP puts a Status in every error).
RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}
RPC_INTERNAL = 13
# What SDKs name a service that was not configured ("unknown_service:<process>" too); Loki
# uses the same name for streams without one.
UNKNOWN_SERVICE = "unknown_service"
# OTLP/JSON writes these bytes fields as hex; protobuf's JSON mapping expects base64.
_HEX_ID_FIELDS = ("traceId", "spanId")
_RECORD_PATH = ("resourceLogs", "scopeLogs", "logRecords")


def parse_request(data: bytes, content_type: str, limits: Limits, max_lines: int) -> list:
    """Return one log object per record of a protobuf or JSON ExportLogsServiceRequest;
    413 for more than max_lines records, before any is built (each carries a copy of its
    resource's attributes: a small compressed body could otherwise take gigabytes)."""
    request = ExportLogsServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(data)
        except DecodeError as error:
            raise BodyError(400, f"body is not a protobuf ExportLogsServiceRequest: {error}"
                            ) from None
    else:
        _parse_json(data, request, max_lines)
    check_line_count(sum(len(scope_logs.log_records) for resource_logs in request.resource_logs
                         for scope_logs in resource_logs.scope_logs), max_lines)
    return list(_log_objects(request, limits))


def _parse_json(data: bytes, request: ExportLogsServiceRequest, max_lines: int) -> None:
    """Fill request from an OTLP/JSON body: camelCase names, hex ids, 64-bit ints as strings."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError) as error:
        raise BodyError(400, f"body is not JSON: {str(error)[:120]}") from None
    if not isinstance(document, dict):
        raise BodyError(400, "body must be a JSON ExportLogsServiceRequest object")
    records = list(_objects_along(document, _RECORD_PATH))
    check_line_count(len(records), max_lines)
    for record in records:
        for key in _HEX_ID_FIELDS:
            if isinstance(record.get(key), str):
                record[key] = _hex_to_base64(key, record[key])
    try:
        # Receivers must ignore fields they do not know (newer OTLP versions add some).
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as error:
        raise BodyError(400, f"body is not an OTLP/JSON ExportLogsServiceRequest: "
                             f"{str(error)[:200]}") from None


def _objects_along(node, path: tuple[str, ...]) -> Iterator[dict]:
    """The objects reached through lists of objects along path; odd shapes are skipped here
    and refused by the protobuf parser afterwards."""
    if not path:
        yield node
        return
    children = node.get(path[0])
    for child in children if isinstance(children, list) else ():
        if isinstance(child, dict):
            yield from _objects_along(child, path[1:])


def _hex_to_base64(key: str, value: str) -> str:
    """Re-encode a hex id for protobuf's JSON parser."""
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise BodyError(400, f"{key} {value[:40]!r} is not hex") from None


def _log_objects(request: ExportLogsServiceRequest,
                 limits: Limits) -> Iterator[dict | LineError]:
    """Flatten resources, scopes and records into one log object per record."""
    shared = SharedAttributes(limits)
    for resource_logs in request.resource_logs:
        # A resource's attributes are shared by all its scopes: sized once, here, and only
        # for scopes with records (an empty one costs two bytes of the body).
        scopes = [scope_logs for scope_logs in resource_logs.scope_logs
                  if scope_logs.log_records]
        if not scopes:
            continue
        resource = _key_values(resource_logs.resource.attributes)
        service = resource.pop("service.name", None)
        if isinstance(service, str) and service.startswith(UNKNOWN_SERVICE):
            # The SDKs' stand-in for "not configured": the sender's default applies instead.
            service = None
        resource_chars = 0 if shared.too_many(resource) else attribute_chars(resource)
        for scope_logs in scopes:
            scope = scope_logs.scope
            own = _key_values(scope.attributes)
            if scope.version:
                own["otel.scope.version"] = scope.version
            refusal = shared.refusal(len(resource.keys() | own.keys()),
                                     resource_chars + attribute_chars(own),
                                     len(scope_logs.log_records))
            context = {} if refusal else {**resource, **own}
            for record in scope_logs.log_records:
                yield LineError(refusal) if refusal else _log_object(
                    record, service, scope.name or None, context)


def _log_object(record, service, logger, context: dict) -> dict | LineError:
    """One LogRecord as the dict normalize() takes."""
    own = _key_values(record.attributes)
    # The body is optional: an event may be only its name and attributes.
    message = _value(record.body)
    if message in (None, ""):
        message = record.event_name or (json.dumps(own, sort_keys=True) if own else None)
    if message is None:
        return LineError("log record has no body, event name or attributes")
    attributes = {**context, **own}
    if any(record.span_id):
        attributes["span_id"] = record.span_id.hex()
    if record.event_name:
        attributes["event.name"] = record.event_name
    return {
        "service": service,
        "message": message,
        "level": _level(record, attributes),
        "timestamp": record.time_unix_nano or record.observed_time_unix_nano or None,
        "host": context.get("host.name"),
        "logger": logger,
        # All zeros is OTLP's "no trace", which some SDKs send rather than leaving it out.
        "trace_id": record.trace_id.hex() if any(record.trace_id) else None,
        "attributes": attributes,
    }


def _level(record, attributes: dict) -> str | None:
    """The level of the record's severity number, else its text when it names a level.
    Number 0 is "unspecified" and the text is free-form: a severity that names no level is
    kept as an attribute, and the record stored at the default level rather than refused."""
    if 1 <= record.severity_number <= 24:
        return otel_level(record.severity_number)
    if normalize_level(record.severity_text) is not None:
        return record.severity_text
    if record.severity_number:
        attributes["severity_number"] = record.severity_number
    if record.severity_text:
        attributes["severity_text"] = record.severity_text
    return None


def _key_values(pairs) -> dict:
    """KeyValue pairs as a JSON object (a repeated key keeps its last value)."""
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(any_value):
    """An AnyValue as plain JSON: arrays become lists, kvlists objects, bytes base64."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return _key_values(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    value = getattr(any_value, kind)
    if kind == "double_value" and not math.isfinite(value):
        # jsonb has no NaN or Infinity; kept as their JSON names, as /api/logs does.
        return json.dumps(value)
    return value


def export_response(answer: dict, content_type: str) -> bytes:
    """The ExportLogsServiceResponse for an ingest answer, with partial_success if any record
    was refused."""
    response = ExportLogsServiceResponse()
    if answer["rejected"]:
        response.partial_success.rejected_log_records = answer["rejected"]
        response.partial_success.error_message = _refusals(answer)
    return _encode(response, content_type)


def _refusals(answer: dict) -> str:
    """Say how many records were refused, and why for the first few."""
    named = "; ".join(f"record {e['index']}: {e['error']}"
                      for e in answer["errors"][:MAX_NAMED_REFUSALS])
    return f"{answer['rejected']} log records refused: {named}"


def status(http_status: int, message: str, content_type: str) -> bytes:
    """A google.rpc.Status describing an error, as OTLP asks of every 4xx and 5xx answer."""
    return _encode(Status(code=RPC_CODES.get(http_status, RPC_INTERNAL), message=message),
                   content_type)


def _encode(message, content_type: str) -> bytes:
    """Serialise in the request's encoding: protobuf, or OTLP/JSON (camelCase names)."""
    if content_type == PROTOBUF:
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message)).encode()
