"""POST /loki/api/v1/push: real Loki client libraries, JSON and snappy protobuf, bad input."""

import gzip
import json
import logging
import time
from datetime import UTC, datetime

import cramjam
import logging_loki
import pytest
from hypothesis import strategies as st
from loki_logger_handler.loki_logger_handler import LokiLoggerHandler

from app.auth.credentials import create_token
from app.ingest.loki import parse_labels
from tests.receiver_helpers import assert_no_server_error, rollup, stored, wait_for_lines

PUSH = "/loki/api/v1/push"


def ns(seconds_ago: float = 0) -> str:
    """A Loki timestamp: nanoseconds since the epoch, as a string."""
    return str(int((time.time() - seconds_ago) * 1e9))


def push(client, streams: list, **headers):
    """POST a JSON push request."""
    return client.post(PUSH, data=json.dumps({"streams": streams}),
                       content_type="application/json", headers=headers)


@pytest.fixture
def token(app) -> str:
    """An ingest token, sent as the Basic auth password as Loki clients do."""
    return create_token("loki client", "ingest")[1]


def python_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A logger sending only to handler."""
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    return logger


def test_python_logging_loki_handler(live_server, token, client):
    """python-logging-loki's LokiHandler, unmodified, with Basic auth: lines arrive with the
    service from a label, the level from its `severity` label and the logger label."""
    handler = logging_loki.LokiHandler(url=f"{live_server.url}{PUSH}", version="1",
                                       tags={"service_name": "shop", "env": "staging"},
                                       auth=("logdash", token))
    logger = python_logger("shop.cart", handler)
    logger.info("cart 17 opened")
    logger.warning("cart 17 slow", extra={"tags": {"region": "eu"}})
    logger.error("cart 17 lost")
    handler.close()

    lines = stored("shop")
    assert [(line["level"], line["message"]) for line in lines] == [
        ("info", "cart 17 opened"), ("warning", "cart 17 slow"), ("error", "cart 17 lost")]
    assert {line["logger"] for line in lines} == {"shop.cart"}
    assert lines[0]["attributes"] == {"env": "staging"}
    assert lines[1]["attributes"] == {"env": "staging", "region": "eu"}
    assert rollup("shop") == {"info": 1, "warning": 1, "error": 1}


def test_loki_logger_handler_gzip_and_structured_metadata(live_server, token):
    """loki-logger-handler: gzip JSON, the level as a label, structured metadata."""
    handler = LokiLoggerHandler(
        url=f"{live_server.url}{PUSH}", labels={"job": "worker"}, label_keys={"level"},
        auth=("logdash", token), compressed=True, timeout=3600,
        enable_structured_loki_metadata=True, loki_metadata={"cluster": "eu-1"})
    logger = python_logger("worker.jobs", handler)
    logger.warning("job 9 retried", extra={"loki_metadata": {"attempt": "2"}})
    handler.flush_event.set()

    [line] = wait_for_lines(1, "worker")
    assert line["level"] == "warning"
    # The line is stored as sent; this library sends each record as JSON text.
    assert json.loads(line["message"])["message"] == "job 9 retried"
    assert line["attributes"] == {"cluster": "eu-1", "attempt": "2"}
    assert rollup("worker") == {"warning": 1}


def test_json_push_labels_metadata_and_times(client):
    """Labels fill service, level, logger and host; the rest and metadata are attributes."""
    when = ns(seconds_ago=90)
    response = push(client, [
        {"stream": {"service_name": "api", "job": "api-job", "level": "error",
                    "host": "web-1", "logger": "api.http", "region": "eu"},
         "values": [[when, "GET /x failed"], [ns(), "GET /y failed", {"trace": "t1"}]]},
        {"stream": {"job": "cron"}, "values": [[ns(), "tick", {"detected_level": "debug"}]]},
    ])
    assert response.status_code == 204
    assert response.data == b""
    first, second = stored("api")
    assert (first["level"], first["host"], first["logger"]) == ("error", "web-1", "api.http")
    assert first["attributes"] == {"job": "api-job", "region": "eu"}
    assert second["attributes"] == {"job": "api-job", "region": "eu", "trace": "t1"}
    assert datetime.fromisoformat(first["timestamp"]) == datetime.fromtimestamp(
        int(when) // 1000 / 1e6, UTC)
    [tick] = stored("cron")
    assert (tick["level"], tick["message"]) == ("debug", "tick")
    assert rollup("api") == {"error": 2}


def test_service_labels_are_configurable(app, client, monkeypatch):
    """LOGDASH_LOKI_SERVICE_LABELS picks the label; none present is unknown_service."""
    monkeypatch.setitem(app.config, "LOGDASH_LOKI_SERVICE_LABELS", "app, service_name")
    assert push(client, [{"stream": {"app": "a1", "service_name": "s1"},
                          "values": [[ns(), "x"]]},
                         {"stream": {"job": "j1"}, "values": [[ns(), "y"]]}]).status_code == 204
    assert [(line["service"], line["attributes"]) for line in stored()] == [
        ("a1", {"service_name": "s1"}), ("unknown_service", {"job": "j1"})]


def test_gzip_json_push(client):
    """Content-Encoding: gzip, as Promtail and Alloy may send JSON."""
    body = gzip.compress(json.dumps({"streams": [
        {"stream": {"job": "gz"}, "values": [[ns(), "zipped"]]}]}).encode())
    response = client.post(PUSH, data=body, content_type="application/json",
                           headers={"Content-Encoding": "gzip"})
    assert response.status_code == 204
    assert stored("gz")[0]["message"] == "zipped"


def varint(number: int) -> bytes:
    """Protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field: length-delimited for bytes, varint for ints."""
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def push_request(labels: str, entries: list[tuple[int, str | bytes, dict]]) -> bytes:
    """A logproto.PushRequest encoded by hand from push.proto, independent of the receiver."""
    stream = field(1, labels.encode())
    for when, line, metadata in entries:
        text = line.encode() if isinstance(line, str) else line
        entry = field(1, field(1, when // 10**9) + field(2, when % 10**9)) + field(2, text)
        for name, value in metadata.items():
            entry += field(3, field(1, name.encode()) + field(2, value.encode()))
        stream += field(2, entry)
    return field(1, stream)


def test_snappy_protobuf_push(client):
    """Promtail's and Alloy's wire format: a snappy-compressed protobuf PushRequest."""
    when = int(ns())
    body = push_request('{job="promtail", level="warn", filename="/var/log/app.log",'
                        ' note="say \\"hi\\"\\n"}',
                        [(when, "disk 91% full", {"pod": "p-1"}), (when + 1, "disk ok", {})])
    response = client.post(PUSH, data=bytes(cramjam.snappy.compress_raw(body)),
                           content_type="application/x-protobuf")
    assert response.status_code == 204, response.data
    first, second = stored("promtail")
    assert (first["level"], first["message"]) == ("warning", "disk 91% full")
    assert first["attributes"] == {"filename": "/var/log/app.log", "note": 'say "hi"\n',
                                   "pod": "p-1"}
    assert datetime.fromisoformat(first["timestamp"]) == datetime.fromtimestamp(
        when // 1000 / 1e6, UTC)
    assert second["message"] == "disk ok"


def test_a_line_that_is_not_utf8_does_not_cost_the_push(client):
    """Loki's senders do not check UTF-8 (a tailed Latin-1 file): such a line is kept with
    U+FFFD for its bad bytes, and the push's other lines with it."""
    when = int(ns())
    body = push_request('{job="latin1"}', [(when, b"caf\xe9 ouvert", {}), (when + 1, "ok", {})])
    response = client.post(PUSH, data=bytes(cramjam.snappy.compress_raw(body)),
                           content_type="application/x-protobuf")
    assert response.status_code == 204, response.data
    assert [line["message"] for line in stored("latin1")] == ["caf\ufffd ouvert", "ok"]


@pytest.mark.parametrize(("text", "labels"), [
    ("{}", {}), ('{a="1"}', {"a": "1"}), ('{ a = "x,y" , b="\\\\" ,}', {"a": "x,y", "b": "\\"}),
])
def test_label_sets_are_read(text, labels):
    """Prometheus label sets, with spaces, commas in values and escapes."""
    assert parse_labels(text) == labels


def test_refused_entries_are_400_naming_them_and_the_rest_kept(client):
    """Like Loki: entries that cannot be stored make a 400 naming them; valid ones are kept."""
    response = push(client, [{"stream": {"job": "mix", "level": "info"}, "values": [
        [ns(), "fine"], ["1000000000000000000", "too old"], [ns(), ""]]}])
    assert response.status_code == 400
    assert response.json["accepted"] == 1
    assert response.json["rejected"] == 2
    assert response.json["error"].startswith("2 of 3 entries refused; the first, index 1:"
                                             " timestamp 2001-09-09")
    assert [line["message"] for line in stored("mix")] == ["fine"]


def test_a_level_label_that_names_no_severity_stays_a_label(client):
    """Loki labels an entry `detected_level="unknown"` when it cannot tell: such an entry
    is stored at info with the label kept; a later level key that names one is used."""
    response = push(client, [{"stream": {"job": "shop", "level": "unknown"}, "values": [
        [ns(), "no idea", {"detected_level": "unknown"}],
        [ns(), "told", {"detected_level": "warn"}]]}])
    assert response.status_code == 204, response.json
    lines = {line["message"]: line for line in stored("shop")}
    assert (lines["no idea"]["level"], lines["told"]["level"]) == ("info", "warning")
    assert lines["no idea"]["attributes"] == {"level": "unknown", "detected_level": "unknown"}
    assert lines["told"]["attributes"] == {"level": "unknown"}


@pytest.mark.parametrize(("data", "content_type", "error"), [
    (b"{nope", "application/json", "body is not JSON"),
    (b'{"streams": {}}', "application/json", 'body must be a JSON object {"streams": [...]}'),
    (b'{"streams": [{"stream": {"job": 1}, "values": []}]}', "application/json",
     "stream 0 must be"),
    (b'{"streams": [{"stream": {"job": "a"}, "values": [["1", "ok"], ["2"]]}]}',
     "application/json", "stream 0: each value must be"),
    (b'{"streams": [{"stream": {"job": "a"}, "values": [["1", "ok", {"k": 1}]]}]}',
     "application/json", "stream 0: each value must be"),
    (b"not snappy at all", "application/x-protobuf", "not snappy-compressed"),
    (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), "application/x-protobuf",
     "not a protobuf PushRequest"),
    (bytes(cramjam.snappy.compress_raw(push_request("job=x", [(1, "a", {})]))),
     "application/x-protobuf", "not a {name=\"value\"} label set"),
    (b"\xff\xff\xff\xff\x0f", "application/x-protobuf", "larger than"),
])
def test_malformed_pushes_are_400_and_store_nothing(client, data, content_type, error):
    """A push whose structure is wrong is refused whole, with a JSON error naming why."""
    response = client.post(PUSH, data=data, content_type=content_type)
    assert response.status_code in (400, 413)
    assert error in response.json["error"]
    assert stored() == []


def test_push_needs_an_ingest_token(app):
    """Without a token the push is 401; with a read token 403."""
    body = json.dumps({"streams": [{"stream": {"job": "a"}, "values": [[ns(), "x"]]}]})
    assert app.test_client().post(PUSH, data=body).status_code == 401
    reader = create_token("reader", "read")[1]
    response = app.test_client().post(PUSH, data=body,
                                      headers={"Authorization": f"Bearer {reader}"})
    assert response.status_code == 403
    assert stored() == []


LABELS = st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3)
VALUE = st.lists(st.one_of(st.text(max_size=20), st.integers(), st.just(ns()), LABELS),
                 max_size=4)


@st.composite
def loki_bodies(draw):
    """JSON pushes with odd shapes, snappy protobuf with odd label sets, or random bytes."""
    kind = draw(st.sampled_from(["json", "protobuf", "bytes"]))
    if kind == "json":
        streams = draw(st.lists(st.fixed_dictionaries({}, optional={
            "stream": LABELS, "values": st.lists(VALUE, max_size=3)}), max_size=3))
        return json.dumps({"streams": streams}).encode(), {"Content-Type": "application/json"}
    if kind == "protobuf":
        labels = draw(st.text(max_size=30) | st.builds(
            lambda d: "{" + ",".join(f'{k}="{v}"' for k, v in d.items()) + "}",
            st.dictionaries(st.from_regex(r"[a-z_]{1,6}", fullmatch=True),
                            st.text(max_size=8), max_size=3)))
        body = push_request(labels, [(draw(st.integers(0, 2**63)), draw(st.text(max_size=10)),
                                      draw(st.dictionaries(st.text(max_size=5),
                                                           st.text(max_size=5), max_size=2)))])
        return bytes(cramjam.snappy.compress_raw(body)), {
            "Content-Type": "application/x-protobuf"}
    return draw(st.binary(max_size=100)), {
        "Content-Type": draw(st.sampled_from(["application/json", "application/x-protobuf"]))}


def test_generated_bodies_never_make_a_server_error(anonymous_client):
    """Random Loki-ish bodies: always below 500, errors always JSON naming the problem."""
    def is_json_error(response):
        assert response.json["error"], response.data

    assert_no_server_error(anonymous_client, PUSH, loki_bodies(), is_json_error)


@pytest.mark.parametrize("protobuf", [True, False], ids=["protobuf", "json"])
def test_too_many_entries_are_refused_before_any_is_built(app, client, monkeypatch, protobuf):
    """Each entry carries a copy of its stream's labels: counting first keeps a small
    compressed push of millions of entries from taking gigabytes before its 413."""
    from app.ingest import loki

    built = []
    monkeypatch.setattr(loki, "_log_object", lambda *args: built.append(args))
    monkeypatch.setitem(app.config, "LOGDASH_MAX_LINES_PER_REQUEST", 10)
    labels = {f"label{i}": "v" * 20 for i in range(30)}
    entries = [(int(ns()), "x", {})] * 11
    if protobuf:
        label_text = "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        response = client.post(PUSH, content_type="application/x-protobuf", data=bytes(
            cramjam.snappy.compress_raw(push_request(label_text, entries))))
    else:
        response = push(client, [{"stream": labels, "values": [[str(w), line]
                                                              for w, line, _ in entries]}])
    assert response.status_code == 413
    assert response.json["error"] == "batch has 11 lines; at most 10 per request"
    assert built == []
    assert stored() == []


def test_stream_labels_over_a_lines_limits_refuse_its_entries(client):
    """A stream with more labels than a line may keep refuses its entries, named, without
    copying its labels into each; other streams of the push are kept."""
    labels = {"job": "wide", **{f"label{i}": "v" for i in range(150)}}
    response = push(client, [{"stream": labels, "values": [[ns(), "a"], [ns(), "b"]]},
                             {"stream": {"job": "narrow"}, "values": [[ns(), "kept"]]}])
    assert response.status_code == 400
    assert (response.json["accepted"], response.json["rejected"]) == (1, 2)
    assert "150 attributes are shared by every line here" in response.json["error"]
    assert [line["message"] for line in stored()] == ["kept"]


def test_labels_that_become_columns_do_not_count_as_shared_attributes(client):
    """service_name and level become the line's service and level: with 99 other labels
    the line keeps 99 attributes, within the limit of 100."""
    labels = {"service_name": "shop", "level": "warn",
              **{f"label{i}": "v" for i in range(99)}}
    response = push(client, [{"stream": labels, "values": [[ns(), "kept"]]}])
    assert response.status_code == 204, response.json
    [line] = stored("shop")
    assert line["level"] == "warning" and len(line["attributes"]) == 99


@pytest.mark.parametrize("labels", [
    {"job": "api", "app": "x" * 60_000},  # a second service label stays an attribute
    {"job": "api", "level": "z" * 60_000},  # so does a level that names no level
])
def test_labels_that_stay_attributes_count_in_the_copies(client, monkeypatch, labels):
    """Only the labels a line takes as its columns are left out of the shared attributes'
    count; every label counts in their size, and so in the request's budget of copies:
    each of these would be copied into every entry."""
    from app.ingest import records

    monkeypatch.setattr(records, "MAX_COPIED_ATTRIBUTE_CHARS", 100_000)
    response = push(client, [{"stream": labels, "values": [[ns(), "a"], [ns(), "b"]]}])
    assert response.status_code == 413
    assert "once copied into each" in response.json["error"]
    assert stored() == []
