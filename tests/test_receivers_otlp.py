"""POST /v1/logs: OTLP/HTTP logs from the OpenTelemetry SDK, OTLP/JSON, and bad input."""

import gzip
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from app.extensions import db
from tests.conftest import make_app, token_headers
from tests.helpers import authed
from tests.receiver_helpers import assert_no_server_error, rollup, stored

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def now_ns(minutes_ago: int = 0) -> str:
    """A time as OTLP/JSON writes it: nanoseconds since the epoch, as a string."""
    return str(int((time.time() - minutes_ago * 60) * 1e9))


def otlp_json(records: list[dict], resource: dict | None = None) -> dict:
    """An ExportLogsServiceRequest in OTLP/JSON with one resource and one scope."""
    if resource is None:
        resource = {"service.name": "checkout"}
    attributes = [{"key": k, "value": {"stringValue": v}} for k, v in resource.items()]
    return {"resourceLogs": [{
        "resource": {"attributes": attributes},
        "scopeLogs": [{"scope": {"name": "checkout.payments", "version": "1.2"},
                       "logRecords": records}],
    }]}


def post(client, body, content_type=JSON, **headers):
    """POST a body (a dict is sent as JSON) to the OTLP receiver."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return client.post("/v1/logs", data=data, content_type=content_type, headers=headers)


@pytest.fixture
def otel_logger(live_server, app):
    """A Python logger wired to the OpenTelemetry SDK, exporting to the live server with an
    ingest token; yields the logger and a tracer for records inside a span."""
    resource = Resource.create({"service.name": "checkout", "host.name": "pod-7",
                                "deployment.environment": "test"})
    exporter = OTLPLogExporter(endpoint=f"{live_server.url}/v1/logs",
                               headers=token_headers("ingest"), compression=Compression.Gzip)
    provider = LoggerProvider(resource=resource)
    # The simple processor exports on emit, so the test needs no sleep or flush timing.
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("checkout.payments")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(logger_provider=provider, log_code_attributes=True)
    logger.addHandler(handler)
    yield logger, TracerProvider(resource=resource).get_tracer("test")
    logger.removeHandler(handler)
    provider.shutdown()


def test_sdk_records_arrive_with_service_level_message_and_attributes(otel_logger, client):
    """The real SDK exporter (protobuf, gzip, bearer token) stores every record, counted."""
    logger, tracer = otel_logger
    logger.info("payment %s accepted", "P-1", extra={"order_id": 42, "amount": 9.5})
    with tracer.start_as_current_span("charge") as span:
        logger.warning("card declined", extra={"tags": ["retry", "3ds"]})
        trace_id = format(span.get_span_context().trace_id, "032x")
    try:
        raise ValueError("gateway timeout")
    except ValueError:
        logger.exception("charge failed")
    logger.critical("ledger out of balance")

    lines = stored("checkout")
    assert [(line["level"], line["message"]) for line in lines] == [
        ("info", "payment P-1 accepted"), ("warning", "card declined"),
        ("error", "charge failed"), ("critical", "ledger out of balance")]
    info, warning, error, _ = lines
    assert info["logger"] == "checkout.payments"
    assert info["host"] == "pod-7"
    assert info["attributes"]["order_id"] == 42
    assert info["attributes"]["amount"] == 9.5
    assert info["attributes"]["deployment.environment"] == "test"
    assert info["attributes"]["code.function.name"] == (
        "test_sdk_records_arrive_with_service_level_message_and_attributes")
    assert info["trace_id"] is None
    assert warning["trace_id"] == trace_id
    assert len(warning["attributes"]["span_id"]) == 16
    assert warning["attributes"]["tags"] == ["retry", "3ds"]
    assert error["attributes"]["exception.type"] == "ValueError"
    assert "gateway timeout" in error["attributes"]["exception.stacktrace"]
    assert abs(datetime.fromisoformat(info["timestamp"]) - datetime.now(UTC)) < timedelta(
        minutes=1)
    assert rollup("checkout") == {"info": 1, "warning": 1, "error": 1, "critical": 1}


def test_json_mapping_fields_ids_and_any_values(client):
    """OTLP/JSON: hex ids, string nanoseconds, severity numbers and every AnyValue kind."""
    when = now_ns(minutes_ago=5)
    body = otlp_json([{
        "timeUnixNano": when, "severityNumber": 17, "severityText": "ERROR",
        "traceId": TRACE_ID, "spanId": SPAN_ID,
        "body": {"kvlistValue": {"values": [
            {"key": "event", "value": {"stringValue": "refund"}},
            {"key": "cents", "value": {"intValue": "1250"}}]}},
        "attributes": [
            {"key": "retry", "value": {"boolValue": True}},
            {"key": "ratio", "value": {"doubleValue": 0.25}},
            {"key": "odd", "value": {"doubleValue": "NaN"}},
            {"key": "raw", "value": {"bytesValue": "AAEC"}},
            {"key": "ids", "value": {"arrayValue": {"values": [{"intValue": 1},
                                                               {"stringValue": "b"}]}}},
            {"key": "empty", "value": {}},
        ],
    }], resource={"service.name": "billing", "host.name": "db-2"})
    response = post(client, body)
    assert response.status_code == 200
    assert response.mimetype == JSON
    assert response.json == {}
    [line] = stored("billing")
    assert line["level"] == "error"
    assert json.loads(line["message"]) == {"event": "refund", "cents": 1250}
    assert line["trace_id"] == TRACE_ID
    assert line["host"] == "db-2"
    assert line["logger"] == "checkout.payments"
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp == datetime.fromtimestamp(int(when) // 1000 / 1e6, UTC)
    assert line["attributes"] == {
        "host.name": "db-2", "otel.scope.version": "1.2", "span_id": SPAN_ID, "retry": True,
        "ratio": 0.25, "odd": "NaN", "raw": "AAEC", "ids": [1, "b"], "empty": None}
    assert rollup("billing") == {"error": 1}


@pytest.mark.parametrize(("severity", "level"), [
    ({"severityNumber": 1}, "debug"), ({"severityNumber": 9}, "info"),
    ({"severityNumber": 13}, "warning"), ({"severityNumber": 24}, "critical"),
    # INFO2 and ERROR4: numbers that mean other levels in pino's scale, not here.
    ({"severityNumber": 10}, "info"), ({"severityNumber": 20}, "error"),
    ({"severityText": "WARN"}, "warning"), ({}, "info"),
])
def test_level_from_severity_number_or_text(client, severity, level):
    """The number wins; with it unset, the text; with neither, info."""
    response = post(client, otlp_json([{"body": {"stringValue": "x"}, **severity}]))
    assert response.status_code == 200
    assert stored("checkout")[0]["level"] == level


def test_all_zero_ids_mean_no_trace(client):
    """Some SDKs send zero-filled ids outside a trace; they are not stored as ids."""
    response = post(client, otlp_json([{"body": {"stringValue": "x"}, "traceId": "0" * 32,
                                        "spanId": "0" * 16}]))
    assert response.status_code == 200
    [line] = stored()
    assert (line["trace_id"], line["attributes"]) == (None, {"otel.scope.version": "1.2"})


def test_partial_success_names_refused_records_and_keeps_the_rest(client):
    """Records Logdash cannot store are counted in partial_success; the others are stored."""
    body = otlp_json([
        {"body": {"stringValue": "kept"}, "severityNumber": 9},
        {"severityNumber": 9},
        {"body": {"stringValue": "ancient"}, "timeUnixNano": "1000000000000000000"},
    ])
    response = post(client, body)
    assert response.status_code == 200
    partial = response.json["partialSuccess"]
    assert int(partial["rejectedLogRecords"]) == 2
    message = partial["errorMessage"]
    assert "record 1: log record has no body, event name or attributes" in message
    assert "record 2: timestamp 2001-09-09" in message
    assert [line["message"] for line in stored()] == ["kept"]


def test_records_the_spec_allows_are_kept(client):
    """The body is optional (an event may be its name, or its attributes, alone), and the
    severity text free-form: such records are stored, at info when the severity names no
    level, with what was sent kept as attributes."""
    events = [{"eventName": "cart.checkout", "severityNumber": 9,
               "attributes": [{"key": "items", "value": {"intValue": "3"}}]},
              {"body": {"stringValue": ""}, "attributes": [
                  {"key": "user", "value": {"stringValue": "ada"}}]},
              {"body": {"stringValue": "odd level"}, "severityText": "LOUD"},
              {"body": {"stringValue": "beyond"}, "severityNumber": 25}]
    response = post(client, otlp_json(events))
    assert response.status_code == 200
    assert "partialSuccess" not in response.json
    lines = {line["message"]: line for line in stored("checkout")}
    assert set(lines) == {"cart.checkout", '{"user": "ada"}', "odd level", "beyond"}
    assert lines["cart.checkout"]["attributes"]["event.name"] == "cart.checkout"
    assert lines["cart.checkout"]["attributes"]["items"] == 3
    assert [lines[m]["level"] for m in ("odd level", "beyond")] == ["info", "info"]
    assert lines["odd level"]["attributes"]["severity_text"] == "LOUD"
    assert lines["beyond"]["attributes"]["severity_number"] == 25


def test_protobuf_request_gets_a_protobuf_answer(client):
    """A protobuf request is answered with a protobuf ExportLogsServiceResponse."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "api"
    records = resource_logs.scope_logs.add().log_records
    records.add(time_unix_nano=int(now_ns()), severity_number=13).body.string_value = "slow"
    records.add(time_unix_nano=int(now_ns()))
    response = post(client, request.SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert response.mimetype == PROTOBUF
    answer = ExportLogsServiceResponse.FromString(response.data)
    assert answer.partial_success.rejected_log_records == 1
    assert [(line["level"], line["message"]) for line in stored("api")] == [("warning", "slow")]


def test_gzip_json_and_unknown_fields(client):
    """A gzip body is read; fields newer than our OTLP version are ignored, not refused."""
    body = otlp_json([{"body": {"stringValue": "zipped"}, "futureField": 1}])
    body["futureTopLevel"] = True
    response = post(client, gzip.compress(json.dumps(body).encode()),
                    **{"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert stored("checkout")[0]["message"] == "zipped"


def test_missing_service_name_is_unknown_service_or_the_query_default(client):
    """Without service.name the service is OTel's unknown_service, or ?service= if given."""
    body = otlp_json([{"body": {"stringValue": "who am i"}}], resource={})
    assert post(client, body).status_code == 200
    assert client.post("/v1/logs?service=named", data=json.dumps(body),
                       content_type=JSON).status_code == 200
    assert [line["service"] for line in stored()] == ["unknown_service", "named"]


def test_pinned_token_refuses_other_services(app):
    """A token pinned to a service stores its records and refuses other services'."""
    client = app.test_client()
    headers = token_headers("ingest", service="checkout")
    mixed = otlp_json([{"body": {"stringValue": "mine"}}])
    mixed["resourceLogs"] += otlp_json([{"body": {"stringValue": "theirs"}}],
                                       {"service.name": "billing"})["resourceLogs"]
    response = post(client, mixed, **headers)
    assert response.status_code == 200
    assert "only sends logs for service 'checkout'" in response.json["partialSuccess"][
        "errorMessage"]
    assert [(line["service"], line["message"]) for line in stored()] == [("checkout", "mine")]


def test_sdk_default_service_name_gives_way_to_the_pinned_service(app):
    """An SDK left unconfigured says unknown_service; a pinned token's service applies."""
    client = app.test_client()
    body = otlp_json([{"body": {"stringValue": "x"}}], {"service.name": "unknown_service:python"})
    response = post(client, body, **token_headers("ingest", service="checkout"))
    assert response.json == {}
    assert stored()[0]["service"] == "checkout"


def test_idempotency_key_stores_a_retried_export_once(client):
    """The same Idempotency-Key sent twice stores the records once; the retry is marked."""
    body = otlp_json([{"body": {"stringValue": "once"}}])
    first, again = (post(client, body, **{"Idempotency-Key": "export-1"}) for _ in range(2))
    assert (first.status_code, again.status_code) == (200, 200)
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stored()) == 1


@pytest.mark.parametrize(("data", "content_type", "error"), [
    (b"\xff\xff\xff\xff", PROTOBUF, "not a protobuf ExportLogsServiceRequest"),
    (b"\x0a\x05\x12\x03\x0a\x01", PROTOBUF, "not a protobuf ExportLogsServiceRequest"),
    (b"{not json", JSON, "body is not JSON"),
    (b"[]", JSON, "must be a JSON ExportLogsServiceRequest object"),
    (b'{"resourceLogs": "x"}', JSON, "not an OTLP/JSON ExportLogsServiceRequest"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
     JSON, "not an OTLP/JSON ExportLogsServiceRequest"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": 5}},'
     b' {"body": {"stringValue": "ok"}}]}]}]}', JSON, "not an OTLP/JSON"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}', JSON,
     "traceId 'xyz' is not hex"),
    (b"", JSON, "body is not JSON"),
])
def test_malformed_bodies_are_400_status_and_store_nothing(client, data, content_type, error):
    """Unparseable requests get a google.rpc.Status (INVALID_ARGUMENT) in the request's
    encoding, and nothing of them is stored."""
    response = post(client, data, content_type)
    assert response.status_code == 400
    assert response.mimetype == content_type
    status = (Status.FromString(response.data) if content_type == PROTOBUF
              else Status(**response.json))
    assert status.code == 3
    assert error in status.message
    assert stored() == []


def test_unsupported_content_type_is_415(client):
    """Only protobuf and JSON are OTLP/HTTP encodings."""
    response = post(client, b"hello", "text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf" in response.json["message"]


def test_access_policy_answers_in_status(app):
    """No token is 401, a read token 403, both as OTLP Status bodies; nothing is stored."""
    body = otlp_json([{"body": {"stringValue": "x"}}])
    anonymous = post(app.test_client(), body)
    assert anonymous.status_code == 401
    assert anonymous.json["code"] == 16
    reader = post(app.test_client(), body, **token_headers("read"))
    assert reader.status_code == 403
    assert reader.json["code"] == 7
    assert stored() == []


def test_body_over_the_limit_is_413(client):
    """A body that inflates past the limit is refused with RESOURCE_EXHAUSTED."""
    bomb = gzip.compress(b"\x00" * (11 * 1024 * 1024))
    response = post(client, bomb, PROTOBUF, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert Status.FromString(response.data).code == 8


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_too_many_records_are_refused_before_any_is_built(app, client, monkeypatch,
                                                          content_type):
    """Each record carries a copy of its resource's attributes: counting first keeps a
    small compressed export of millions of records from taking gigabytes before its 413."""
    from app.ingest import otlp

    built = []
    monkeypatch.setattr(otlp, "_log_object", lambda *args: built.append(args))
    monkeypatch.setitem(app.config, "LOGDASH_MAX_LINES_PER_REQUEST", 10)
    body = otlp_json([{"body": {"stringValue": "x"}}] * 11,
                     {f"attribute.{i}": "v" * 20 for i in range(30)})
    if content_type == PROTOBUF:
        request = ExportLogsServiceRequest()
        json_format.ParseDict(body, request)
        body = request.SerializeToString()
    response = post(client, body, content_type)
    assert response.status_code == 413
    message = (Status.FromString(response.data).message if content_type == PROTOBUF
               else response.json["message"])
    assert "batch has 11 lines; at most 10 per request" in message
    assert built == []
    assert stored() == []


@pytest.mark.parametrize(("resource", "error"), [
    # with the scope's version, 151
    ({f"attribute.{i}": "v" for i in range(150)}, "151 attributes are shared by every line"),
    ({"service.name": "checkout", "blob": "x" * 70_000},
     "the attributes shared by every line here are 70"),
])
def test_resource_attributes_over_a_lines_limits_refuse_its_records_uncopied(
        client, monkeypatch, resource, error):
    """Resource and scope attributes past a line's limits (count, or size as JSON) refuse
    every record of that scope, decided once: never copied into thousands of records."""
    from app.ingest import otlp

    built = []
    monkeypatch.setattr(otlp, "_log_object", lambda *args: built.append(args))
    records = [{"body": {"stringValue": f"line {i}"}} for i in range(3)]
    response = post(client, otlp_json(records, resource))
    assert response.status_code == 200
    partial = response.json["partialSuccess"]
    assert int(partial["rejectedLogRecords"]) == 3 and error in partial["errorMessage"]
    assert built == [] and stored() == []


def test_a_resources_attributes_are_sized_once_and_never_for_empty_scopes(client,
                                                                          monkeypatch):
    """Hundreds of empty scopes under one large resource cost nothing: an empty scope is two
    bytes of the body, and sizing the resource again for each would take seconds."""
    from app.ingest import otlp

    sized = []
    real = otlp.attribute_chars
    monkeypatch.setattr(otlp, "attribute_chars", lambda attributes: sized.append(
        len(attributes)) or real(attributes))
    body = otlp_json([{"body": {"stringValue": "kept"}}],
                     {"service.name": "checkout", "build": "x" * 1000})
    body["resourceLogs"][0]["scopeLogs"] += [{"scope": {"name": f"empty {i}"}}
                                             for i in range(300)]
    response = post(client, body)
    assert response.status_code == 200 and "partialSuccess" not in response.json
    assert [line["message"] for line in stored("checkout")] == ["kept"]
    assert sized == [1, 1]  # the resource (its build), then the one scope's version


def test_scope_attributes_that_repeat_the_resources_count_once(client):
    """A line keeps one value per key: 60 resource attributes that the scope repeats are
    60 attributes, within the limit of 100."""
    body = otlp_json([{"body": {"stringValue": "kept"}}],
                     {"service.name": "checkout", **{f"a{i}": "r" for i in range(60)}})
    body["resourceLogs"][0]["scopeLogs"][0]["scope"]["attributes"] = [
        {"key": f"a{i}", "value": {"stringValue": "s"}} for i in range(60)]
    response = post(client, body)
    assert response.status_code == 200 and "partialSuccess" not in response.json
    [line] = stored("checkout")
    assert line["attributes"]["a0"] == "s" and len(line["attributes"]) == 61


def test_a_request_whose_shared_attributes_would_be_copied_too_often_is_413(client,
                                                                         monkeypatch):
    """Within a line's limits, shared attributes times the records that carry them are
    bounded per request too: a 1 KB gzipped export cannot become gigabytes of copies."""
    from app.ingest import records

    monkeypatch.setattr(records, "MAX_COPIED_ATTRIBUTE_CHARS", 10_000)
    body = otlp_json([{"body": {"stringValue": f"line {i}"}} for i in range(30)],
                     {"service.name": "checkout", "build": "x" * 500})
    response = post(client, body)
    assert response.status_code == 413
    assert "more than 10000 characters once copied into each" in response.json["message"]
    assert stored() == []
    fewer = otlp_json([{"body": {"stringValue": f"line {i}"}} for i in range(10)],
                      {"service.name": "checkout", "build": "x" * 500})
    assert post(client, fewer).status_code == 200
    assert len(stored()) == 10


@pytest.mark.parametrize(("path", "body", "content_type"), [
    ("/v1/logs", json.dumps(otlp_json([{"body": {"stringValue": "x"}}])), JSON),
    ("/loki/api/v1/push", json.dumps({"streams": [{"stream": {"job": "a"},
                                                   "values": [[now_ns(), "x"]]}]}), JSON),
    ("/gelf", json.dumps({"version": "1.1", "host": "h", "short_message": "x"}), JSON),
])
def test_database_outage_is_503_with_retry_after(database_url, redis_url, queue_prefix,
                                                 path, body, content_type):
    """With no database connection to be had, every receiver answers 503 + Retry-After."""
    application = make_app(database_url, redis_url, queue_prefix, SQLALCHEMY_ENGINE_OPTIONS={
        "pool_size": 1, "max_overflow": 0, "pool_timeout": 1})
    with application.app_context():
        client = authed(application.test_client(), "ingest")
        db.session.remove()
        held = db.engine.connect()
        try:
            response = client.post(path, data=body, content_type=content_type)
        finally:
            held.close()
            db.engine.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    if path == "/v1/logs":
        assert response.json == {"code": 14, "message": "database unavailable, try again later"}


ANY_VALUE = st.recursive(
    st.one_of(st.builds(lambda s: {"stringValue": s}, st.text(max_size=20)),
              st.builds(lambda i: {"intValue": i}, st.integers() | st.text(max_size=5)),
              st.builds(lambda f: {"doubleValue": f}, st.floats() | st.text(max_size=5)),
              st.builds(lambda b: {"boolValue": b}, st.booleans() | st.integers()),
              st.builds(lambda b: {"bytesValue": b}, st.text(max_size=8)), st.just({})),
    lambda inner: st.builds(lambda v: {"arrayValue": {"values": v}}, st.lists(inner, max_size=3))
    | st.builds(lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v}
                                                       for k, v in kv.items()]}},
                st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
RECORD = st.fixed_dictionaries({}, optional={
    "body": ANY_VALUE, "severityNumber": st.integers(-5, 40) | st.text(max_size=4),
    "severityText": st.text(max_size=8), "timeUnixNano": st.sampled_from(
        [now_ns(), "0", "-1", "9" * 25, "x", 1.5]), "traceId": st.text("0123456789abcdefg",
                                                                        max_size=34),
    "attributes": st.lists(st.fixed_dictionaries({"key": st.text(max_size=8),
                                                  "value": ANY_VALUE}), max_size=3),
})


@st.composite
def otlp_bodies(draw):
    """OTLP/JSON documents with odd values, their protobuf form, or mangled bytes."""
    document = otlp_json(draw(st.lists(RECORD, max_size=4)),
                         draw(st.dictionaries(st.text(max_size=12), st.text(max_size=12),
                                              max_size=3)))
    data = json.dumps(document).encode()
    kind = draw(st.sampled_from(["json", "protobuf", "mangled", "bytes"]))
    if kind == "json":
        return data, {"Content-Type": JSON}
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add(
        severity_number=draw(st.integers(0, 30)), time_unix_nano=draw(st.integers(0, 2**64 - 1)),
        trace_id=draw(st.binary(max_size=20))).body.string_value = draw(st.text(max_size=20))
    data = request.SerializeToString()
    if kind == "mangled":
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:position] + draw(st.binary(max_size=6)) + data[position + 1:]
    if kind == "bytes":
        data = draw(st.binary(max_size=100))
    return data, {"Content-Type": draw(st.sampled_from([PROTOBUF, JSON]))}


def test_generated_bodies_never_make_a_server_error(anonymous_client):
    """Random OTLP-ish bodies: always below 500, errors always a Status."""
    def is_status(response):
        if response.mimetype == PROTOBUF:
            assert Status.FromString(response.data).message
        else:
            assert response.json["message"], response.data

    assert_no_server_error(anonymous_client, "/v1/logs", otlp_bodies(), is_status)
