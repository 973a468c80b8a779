"""POST /gelf: graypy's GELF HTTP handler, GELF messages in every accepted form, bad input."""

import gzip
import json
import logging
import time
import zlib
from datetime import datetime

import graypy
import pytest
from hypothesis import strategies as st

from app.auth.credentials import create_token
from tests.receiver_helpers import assert_no_server_error, rollup, stored, wait_for_lines


def gelf(client, data, **headers):
    """POST a GELF body (a dict or list is sent as one JSON message per line)."""
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list):
        data = "\n".join(json.dumps(message) for message in data).encode()
    return client.post("/gelf", data=data, content_type="application/json", headers=headers)


def message(**fields) -> dict:
    """A GELF 1.1 message with the required fields, plus any given."""
    return {"version": "1.1", "host": "web-3", "short_message": "hello", **fields}


@pytest.fixture
def graypy_logger(live_server, app):
    """A logger sending through graypy's GELFHTTPHandler to the live server.

    graypy sends no credentials of its own, but it posts its `headers` dict as is, so the
    ingest token is added there; the handler itself is not changed."""
    handler = graypy.GELFHTTPHandler("127.0.0.1", port=live_server.port, path="/gelf",
                                     facility="billing")
    handler.headers["Authorization"] = f"Bearer {create_token('graypy', 'ingest')[1]}"
    logger = logging.getLogger("billing.invoices")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    yield logger
    handler.close()


# graypy's HTTP handler sends and never reads the answer nor closes its connection; the socket
# is dropped on return, which Python reports as a ResourceWarning (pytest turns it into an
# error). That is graypy's own behaviour, so it is allowed here.
GRAYPY_LEAKS_SOCKETS = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")


@GRAYPY_LEAKS_SOCKETS
def test_graypy_records_arrive(graypy_logger):
    """graypy (zlib-compressed, labelled `gzip,deflate`) delivers level, logger, facility as
    the service, debugging and extra fields as attributes, and tracebacks in the message."""
    before = time.time()
    graypy_logger.debug("invoice %d drafted", 7)
    graypy_logger.warning("invoice 7 overdue", extra={"customer": "c-9", "days": 3})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        graypy_logger.exception("invoice 7 failed")
    graypy_logger.critical("ledger locked")

    # graypy does not wait for answers, so requests may be stored out of order.
    lines = sorted(wait_for_lines(4, "billing"), key=lambda line: line["timestamp"])
    assert [(line["level"], line["message"].splitlines()[0]) for line in lines] == [
        ("debug", "invoice 7 drafted"), ("warning", "invoice 7 overdue"),
        ("error", "invoice 7 failed"), ("critical", "ledger locked")]
    debug, warning, error, _ = lines
    assert debug["logger"] == "billing.invoices"
    assert debug["host"]
    assert debug["attributes"]["function"] == "test_graypy_records_arrive"
    assert {"pid", "thread_name", "file", "line"} <= set(debug["attributes"])
    assert (warning["attributes"]["customer"], warning["attributes"]["days"]) == ("c-9", 3)
    assert "ZeroDivisionError: division by zero" in error["message"]
    assert before <= datetime.fromisoformat(debug["timestamp"]).timestamp() <= time.time()
    assert rollup("billing") == {"debug": 1, "warning": 1, "error": 1, "critical": 1}


@pytest.mark.parametrize(("level", "expected"), [
    (0, "critical"), (1, "critical"), (2, "critical"), (3, "error"), (4, "warning"),
    (5, "info"), (6, "info"), (7, "debug"), ("3", "error"), ("warn", "warning"), (None, "info"),
])
def test_syslog_levels_map_to_logdash_levels(client, level, expected):
    """0-2 critical, 3 error, 4 warning, 5-6 info, 7 debug; no level is info."""
    fields = {} if level is None else {"level": level}
    assert gelf(client, message(**fields)).status_code == 202
    assert stored()[0]["level"] == expected


def test_fields_columns_and_attributes(client):
    """GELF fields fill the columns; additional fields lose their underscore."""
    response = gelf(client, message(
        short_message="payment failed", full_message="payment failed\n  at charge()",
        timestamp=int(time.time()) - 60 + 0.25, level=3,
        _service="payments", _logger="pay.core", _trace_id="abc123", _user_id=17,
        _app="legacy-name", facility="pay"))
    assert response.status_code == 202
    assert response.data == b""
    [line] = stored("payments")
    assert line["message"] == "payment failed\n  at charge()"
    assert (line["host"], line["logger"], line["trace_id"]) == ("web-3", "pay.core", "abc123")
    assert line["timestamp"].endswith(".250000+00:00")
    assert line["attributes"] == {"user_id": 17, "app": "legacy-name", "facility": "pay"}


@pytest.mark.parametrize(("fields", "service"), [
    ({"_service": "s", "_app": "a", "facility": "f"}, "s"), ({"_app": "a", "facility": "f"}, "a"),
    ({"facility": "f"}, "f"), ({}, "web-3"),
    # What Docker's gelf log driver sends: its container's name, no facility.
    ({"_container_name": "shop_web_1", "_image_name": "shop:1.2"}, "shop_web_1"),
    ({"facility": "f", "_container_name": "c"}, "f"),
])
def test_service_from_service_app_facility_then_host(client, fields, service):
    """The first of _service, _app, facility and _container_name, else the host, names
    the service."""
    assert gelf(client, message(**fields)).status_code == 202
    assert stored()[0]["service"] == service


def test_pinned_token_or_query_service_comes_before_the_host(app, client):
    """A message naming no service takes the token's service, or ?service=, not the host
    nor a Docker container's name."""
    pinned = {"Authorization": f"Bearer {create_token('p', 'ingest', 'billing')[1]}"}
    docker = message(_container_name="billing_web_1")
    assert gelf(app.test_client(), docker, **pinned).status_code == 202
    assert client.post("/gelf?service=named", data=json.dumps(docker)).status_code == 202
    assert [line["service"] for line in stored()] == ["billing", "named"]


def test_short_message_and_unrelated_full_message_are_joined(client):
    """A full_message that does not repeat the short one follows it."""
    gelf(client, message(short_message="boom", full_message="Traceback: ..."))
    assert stored()[0]["message"] == "boom\nTraceback: ..."


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip,deflate", None])
def test_compressed_bodies_whatever_the_label(client, compress, encoding):
    """gzip and zlib bodies are read whichever Content-Encoding (if any) labels them."""
    body = compress(json.dumps(message(short_message="packed")).encode())
    headers = {"Content-Encoding": encoding} if encoding else {}
    assert gelf(client, body, **headers).status_code == 202
    assert stored()[0]["message"] == "packed"


def test_several_messages_one_per_line(client):
    """Newline-separated messages are each stored."""
    response = gelf(client, [message(short_message=f"m{i}", level=6) for i in range(3)])
    assert response.status_code == 202
    assert [line["message"] for line in stored("web-3")] == ["m0", "m1", "m2"]
    assert rollup("web-3") == {"info": 3}


def test_mixed_batch_is_202_naming_refused_messages(client):
    """Valid messages of a batch are kept; the answer lists the others."""
    response = gelf(client, [message(short_message="ok"), message(level=9),
                             {"host": "h", "version": "1.1"}])
    assert response.status_code == 202
    assert response.json["accepted"] == 1
    assert response.json["errors"] == [
        {"index": 1, "error": "level 9 is not a syslog level (0-7)"},
        {"index": 2, "error": "short_message is required"}]


@pytest.mark.parametrize(("data", "error"), [
    (b"{nope", "body is not JSON"),
    (b"", "body is empty"),
    (message(level=12), "level 12 is not a syslog level (0-7)"),
    (message(short_message=""), "message is empty"),
    ({"host": "h"}, "short_message is required"),
    (message(timestamp="yesterday"), "timestamp 'yesterday' is not ISO 8601"),
    (message(_service="x\ny"), "service contains control characters"),
    (b"\x1f\x8bnot really gzip", "body is not valid gzip"),
    (b"[1, 2]", "each log line must be a JSON object"),
])
def test_malformed_messages_are_400_and_store_nothing(client, data, error):
    """A body or message that cannot be stored is a 400 naming why; nothing is kept."""
    response = gelf(client, data)
    assert response.status_code == 400
    assert error in response.json["error"]
    assert stored() == []


def test_gelf_needs_an_ingest_token(app):
    """Without a token the answer is 401 and nothing is stored."""
    response = gelf(app.test_client(), message())
    assert response.status_code == 401
    assert stored() == []


@GRAYPY_LEAKS_SOCKETS
def test_open_ingest_accepts_graypy_without_credentials(app, monkeypatch, live_server):
    """Where LOGDASH_OPEN_INGEST is set, graypy works with no header at all."""
    monkeypatch.setitem(app.config, "LOGDASH_OPEN_INGEST", True)
    handler = graypy.GELFHTTPHandler("127.0.0.1", port=live_server.port, compress=False)
    logger = logging.getLogger("open.sender")
    logger.propagate = False
    logger.handlers = [handler]
    logger.error("no token needed")
    handler.close()
    [line] = wait_for_lines(1, "open.sender")
    assert (line["level"], line["message"]) == ("error", "no token needed")


FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=12), st.lists(st.integers(), max_size=2))
GELF_MESSAGES = st.fixed_dictionaries({}, optional={
    "version": FIELD_VALUES, "host": FIELD_VALUES, "short_message": FIELD_VALUES,
    "full_message": FIELD_VALUES, "timestamp": FIELD_VALUES | st.just(time.time()),
    "level": FIELD_VALUES | st.integers(-2, 10), "facility": FIELD_VALUES,
    "_service": FIELD_VALUES, "_extra": FIELD_VALUES, "_": FIELD_VALUES,
})


@st.composite
def gelf_bodies(draw):
    """GELF-ish messages, one or many, plain or compressed, or random bytes."""
    kind = draw(st.sampled_from(["one", "lines", "gzip", "zlib", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=100)), {}
    messages = draw(st.lists(GELF_MESSAGES, min_size=1, max_size=3))
    data = "\n".join(json.dumps(m) for m in (messages[:1] if kind == "one" else messages))
    data = data.encode()
    if kind in ("gzip", "zlib"):
        data = (gzip.compress if kind == "gzip" else zlib.compress)(data)
        return data, {"Content-Encoding": draw(st.sampled_from(["gzip", "deflate", "br"]))}
    return data, {"Content-Type": "application/json"}


def test_generated_bodies_never_make_a_server_error(anonymous_client):
    """Random GELF-ish bodies: always below 500, errors always JSON naming the problem."""
    def is_json_error(response):
        assert response.json["error"], response.data

    assert_no_server_error(anonymous_client, "/gelf", gelf_bodies(), is_json_error)
