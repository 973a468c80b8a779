"""POST /api/logs against the real PostgreSQL: every body form, limits and bad input."""

import gzip
import json
import re
import time
import zlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.grouping import fingerprint, template_of
from app.models import Entry
from tests import test_browser
from tests.helpers import finishes_during_a_long_read, ndjson, post_logs, scalar


def stored(service=None):
    """Return stored lines (optionally of one service) as dicts, oldest id first."""
    query = select(Entry).order_by(Entry.id)
    if service:
        query = query.where(Entry.service == service)
    return [e.to_dict() for e in db.session.scalars(query)]


def test_single_object_is_stored_with_its_fields(client):
    """One JSON object becomes one row with columns and attributes filled."""
    utc = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    local = utc.astimezone(timezone(timedelta(hours=1)))
    response = post_logs(client, {
        "service": "billing", "message": "charged card 4242", "level": "warn",
        "timestamp": local.isoformat(), "host": "web-1", "logger": "billing.charge",
        "trace_id": "4bf92f3577b34da6", "amount": 12.5, "customer": {"id": 7},
    })
    assert response.status_code == 202
    assert response.json == {"accepted": 1, "rejected": 0, "errors": []}
    [row] = stored()
    assert row["service"] == "billing"
    assert row["level"] == "warning"
    assert row["message"] == "charged card 4242"
    assert row["timestamp"] == utc.isoformat()
    assert (row["host"], row["logger"], row["trace_id"]) == (
        "web-1", "billing.charge", "4bf92f3577b34da6")
    assert row["attributes"] == {"amount": 12.5, "customer": {"id": 7}}
    assert row["fingerprint"] == fingerprint(template_of("charged card 9999"))


def test_json_array_is_stored(client):
    """An array of objects stores each one."""
    lines = [{"service": "api", "message": f"request {i}"} for i in range(5)]
    assert post_logs(client, lines).json["accepted"] == 5
    assert [r["message"] for r in stored("api")] == [f"request {i}" for i in range(5)]


@pytest.mark.parametrize("body", [
    '[{"service": "arr", "message": "a"},]',  # a trailing comma
    '[{"service": "arr", "message": "a"], {"service": "arr", "message": "b"}]',
    '[{"service": "arr", "message": "a", "x": ' + "[" * 3000 + "]" * 3000 + "}]",  # too deep
])
def test_a_json_array_that_cannot_be_decoded_is_refused_whole(client, body):
    """An array is one document: if it does not decode, no line of it is stored."""
    response = client.post("/api/logs", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json["error"]
    assert stored("arr") == []


def test_ndjson_whose_first_line_is_an_array_keeps_its_object_lines(client):
    """A body that is not one document is read line by line, even when its first line
    happens to start with '[': the objects are kept, the other lines named."""
    body = '[1]\n{"service": "arr", "message": "kept"}\n'
    response = client.post("/api/logs", data=body, content_type="application/x-ndjson")
    assert (response.json["accepted"], response.json["rejected"]) == (1, 1), response.json
    assert [r["message"] for r in stored("arr")] == ["kept"]


def test_an_integer_longer_than_python_reads_is_kept_as_text(client):
    """Python converts at most 4300 digits: a longer integer is kept as its digits, as 1e400
    is, rather than refusing the whole body."""
    digits = "7" * 5001
    body = ('[{"service": "long", "message": "a"},'
            f' {{"service": "long", "message": "b", "n": {digits}}}]')
    response = client.post("/api/logs", data=body, content_type="application/json")
    assert response.json["accepted"] == 2, response.json
    assert [r["attributes"].get("n") for r in stored("long")] == [None, digits]
    # 4300 digits after a minus are still a number Python reads.
    negative = "-" + "7" * 4300
    post_logs(client, {"service": "neg", "message": "c", "n": int(negative)})
    assert stored("neg")[0]["attributes"]["n"] == int(negative)


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "text/plain", None])
def test_ndjson_is_stored_whatever_the_content_type(client, content_type):
    """One object per line works with the NDJSON type, a text type, or none."""
    body = ndjson({"service": "worker", "message": f"job {i}", "level": "E"} for i in range(3))
    response = client.post("/api/logs", data=body, content_type=content_type)
    assert response.status_code == 202, response.json
    assert response.json["accepted"] == 3
    assert {r["level"] for r in stored("worker")} == {"error"}


def test_ndjson_with_crlf_and_blank_lines(client):
    """Windows line ends and blank lines do not count as lines."""
    body = b'{"service":"w","message":"a"}\r\n\r\n{"service":"w","message":"b"}\r\n'
    response = client.post("/api/logs", data=body, content_type="application/x-ndjson")
    assert response.json == {"accepted": 2, "rejected": 0, "errors": []}


def test_curl_style_form_content_type_with_json_body(client):
    """`curl -d '{...}'` labels JSON as a form; it is still read as JSON."""
    response = client.post("/api/logs", data=b'{"service":"curl","message":"hi"}',
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202
    assert stored("curl")[0]["message"] == "hi"


def test_gzip_body_is_accepted(client):
    """Content-Encoding: gzip is decompressed before parsing."""
    body = gzip.compress(ndjson({"service": "gz", "message": f"m{i}"} for i in range(10)))
    response = client.post("/api/logs", data=body, content_type="application/x-ndjson",
                           headers={"Content-Encoding": "gzip"})
    assert response.json["accepted"] == 10
    assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'gz'") == 10


def test_deflate_body_is_accepted(client):
    """Content-Encoding: deflate (zlib) works too."""
    body = zlib.compress(b'{"service":"df","message":"m"}')
    response = client.post("/api/logs", data=body, headers={"Content-Encoding": "deflate"})
    assert response.json["accepted"] == 1


def test_mixed_batch_keeps_valid_lines_and_names_invalid_ones(client):
    """Valid lines are stored, invalid ones are listed by index with the reason."""
    body = b"\n".join([
        b'{"service":"mix","message":"ok 1"}',
        b'{"service":"mix","message":"bad level","level":"loud"}',
        b"{not json",
        b'{"message":"no service"}',
        b'{"service":"mix","message":"ok 2","level":"debug"}',
        b'["array", "line"]',
    ])
    response = client.post("/api/logs", data=body, content_type="application/x-ndjson")
    assert response.status_code == 202
    assert response.json["accepted"] == 2
    assert response.json["rejected"] == 4
    errors = {e["index"]: e["error"] for e in response.json["errors"]}
    assert errors[1] == "unknown level 'loud'"
    assert errors[2].startswith("line 3 is not valid JSON")
    assert errors[3].startswith("service is required")
    assert errors[5] == "each log line must be a JSON object"
    assert [r["message"] for r in stored("mix")] == ["ok 1", "ok 2"]


def test_a_line_that_breaks_the_code_costs_only_itself(client, monkeypatch, caplog):
    """An unforeseen fault normalising one line refuses that line and keeps the others."""
    from app.ingest import batch

    normalize = batch.normalize

    def fragile(raw, *args):
        """Normalise, except for one line that makes the code fail."""
        if raw.get("message") == "breaks":
            raise OverflowError("a fault no rule foresaw")
        return normalize(raw, *args)

    monkeypatch.setattr(batch, "normalize", fragile)
    response = post_logs(client, [{"service": "frail", "message": m}
                                  for m in ("before", "breaks", "after")])
    assert response.status_code == 202
    assert (response.json["accepted"], response.json["rejected"]) == (2, 1)
    assert response.json["errors"][0]["index"] == 1
    assert "server fault" in response.json["errors"][0]["error"]
    assert [r["message"] for r in stored("frail")] == ["before", "after"]
    assert "OverflowError: a fault no rule foresaw" in caplog.text


def test_errors_list_is_capped_at_100(client):
    """A batch of 150 bad lines reports them all in the count but lists 100."""
    response = post_logs(client, [{"service": "cap"} for _ in range(150)])
    assert response.json["rejected"] == 150
    assert len(response.json["errors"]) == 100
    assert response.json["errors"][-1]["index"] == 99


def test_service_from_query_string_is_a_default(client):
    """?service= names lines that do not name themselves; a line's own field wins."""
    response = client.post("/api/logs?service=from-url",
                           data=ndjson([{"message": "a"}, {"message": "b", "service": "own"}]),
                           content_type="application/x-ndjson")
    assert response.json["accepted"] == 2
    assert [r["service"] for r in stored()] == ["from-url", "own"]


YESTERDAY_10 = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=0, second=0,
                                                                microsecond=0)
EPOCH = int(YESTERDAY_10.timestamp())


@pytest.mark.parametrize(
    ("key", "value"),
    [("timestamp", YESTERDAY_10.isoformat().replace("+00:00", "Z")), ("ts", EPOCH),
     ("time", EPOCH * 1000), ("@timestamp", YESTERDAY_10.strftime("%Y-%m-%dT%H:%M:%S.000Z")),
     ("date", float(EPOCH)), ("timestamp", str(EPOCH * 10**9))],
)
def test_timestamp_aliases(client, key, value):
    """Shippers' date keys (Fluent Bit's epoch `date`, Logstash's @timestamp) are read."""
    post_logs(client, {"service": "t", "message": "m", key: value})
    assert stored("t")[0]["timestamp"] == YESTERDAY_10.isoformat()


def test_missing_timestamp_is_the_receive_time(client):
    """A line without a time gets the time it arrived."""
    before = datetime.now(UTC)
    post_logs(client, {"service": "t", "message": "m"})
    stamp = datetime.fromisoformat(stored("t")[0]["timestamp"])
    assert before <= stamp <= datetime.now(UTC)


def test_line_from_weeks_ago_gets_its_own_partition(client):
    """An old timestamp creates the partition it needs on demand."""
    when = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    assert post_logs(client, {"service": "old", "message": "m",
                              "timestamp": when.isoformat()}).json["accepted"] == 1
    name = f"entries_p{when:%Y%m%d}"
    assert scalar("SELECT count(*) FROM pg_class WHERE relname = :n", n=name) == 1
    assert scalar(f"SELECT count(*) FROM logs.{name}") == 1


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"", 400, "body is empty"),
        (b"   \n  ", 400, "body is empty"),
        (b"hello world", 400, "not JSON"),
        (b"42", 400, "must be a JSON object"),
        (b'"text"', 400, "must be a JSON object"),
        (b"\xff\xfe\x00garbage", 400, "not JSON"),
        (b"[" * 100000, 400, "not JSON"),
    ],
)
def test_unusable_bodies_are_400(client, body, status, error):
    """A body with nothing parseable is a 400 naming the problem."""
    response = client.post("/api/logs", data=body, content_type="application/json")
    assert response.status_code == status
    assert error in response.json["error"]


NDJSON = "application/x-ndjson"


def test_gzip_of_several_members_is_read_whole(client):
    """Gzip files joined end to end (cat a.gz b.gz) are one valid body: every member is
    read, not just the first; data after the end of a deflate stream is refused, and so are
    bodies of more streams than any sender joins (each would copy the rest of the body)."""
    first = ndjson({"service": "gz", "message": f"first {i}"} for i in range(3))
    second = ndjson({"service": "gz", "message": f"second {i}"} for i in range(4))
    response = client.post("/api/logs", data=gzip.compress(first) + gzip.compress(second),
                           content_type=NDJSON, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202 and response.json["accepted"] == 7
    trailing = client.post("/api/logs", data=zlib.compress(first) + b"garbage",
                           content_type=NDJSON, headers={"Content-Encoding": "deflate"})
    assert trailing.status_code == 400 and "not valid deflate" in trailing.json["error"]
    many = client.post("/api/logs", data=zlib.compress(b"") * 100_000 + zlib.compress(first),
                       content_type=NDJSON, headers={"Content-Encoding": "deflate"})
    assert many.status_code == 400 and "more than 32 compressed streams" in many.json["error"]
    too_big = gzip.compress(first) + gzip.compress(b" " * 20_000_000)
    bomb = client.post("/api/logs", data=too_big, content_type=NDJSON,
                       headers={"Content-Encoding": "gzip"})
    assert bomb.status_code == 413


def test_broken_gzip_is_400(client):
    """A body that claims gzip but is not is refused clearly."""
    response = client.post("/api/logs", data=b"not gzip at all",
                           headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "not valid gzip" in response.json["error"]


def test_unknown_content_encoding_is_415(client):
    """Encodings we cannot read are named."""
    response = client.post("/api/logs", data=b"{}", headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert "br" in response.json["error"]


def test_body_over_the_size_limit_is_413(app, client, monkeypatch):
    """A raw body over the limit is refused before parsing."""
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1000)
    monkeypatch.setitem(app.config, "LOGDASH_MAX_BODY_BYTES", 1000)
    response = client.post("/api/logs", data=b'{"service":"a","message":"' + b"x" * 2000 + b'"}')
    assert response.status_code == 413
    assert "error" in response.json
    assert scalar("SELECT count(*) FROM logs.entries") == 0


@pytest.mark.parametrize("path", ["/api/logs", "/gelf", "/loki/api/v1/push", "/v1/logs"])
def test_a_chunked_body_over_the_size_limit_is_413_not_cut(app, live_server, ingest_headers,
                                                            monkeypatch, path):
    """Sent without a Content-Length, a body over the limit is refused whole: none of its
    lines are stored, as none of those past the limit could be."""
    import requests

    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 2000)
    monkeypatch.setitem(app.config, "LOGDASH_MAX_BODY_BYTES", 2000)
    body = ndjson({"service": "chunked", "message": f"line {i:05d}"} for i in range(100))

    def chunks():
        """The body in pieces, so that requests sends it chunked."""
        yield from (body[at:at + 500] for at in range(0, len(body), 500))

    answer = requests.post(f"{live_server.url}{path}", data=chunks(), timeout=10,
                           headers={**ingest_headers, "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert scalar("SELECT count(*) FROM logs.entries") == 0


def test_a_chunked_body_of_exactly_the_limit_is_taken(app, live_server, ingest_headers,
                                                      monkeypatch):
    """The limit itself is allowed, chunked or not."""
    import requests

    body = ndjson({"service": "chunked", "message": f"line {i:05d}"} for i in range(50))
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", len(body))
    monkeypatch.setitem(app.config, "LOGDASH_MAX_BODY_BYTES", len(body))
    answer = requests.post(f"{live_server.url}/api/logs", data=iter([body[:700], body[700:]]),
                           timeout=10,
                           headers={**ingest_headers, "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 202 and answer.json()["accepted"] == 50


def test_gzip_bomb_is_413(app, client, monkeypatch):
    """The decompressed size counts: a small gzip that inflates past the limit is refused."""
    monkeypatch.setitem(app.config, "LOGDASH_MAX_BODY_BYTES", 100_000)
    bomb = gzip.compress(b'{"service":"a","message":"' + b"x" * 1_000_000 + b'"}')
    assert len(bomb) < 100_000
    response = client.post("/api/logs", data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json["error"] == "decompressed body is larger than 100000 bytes"


def test_too_many_lines_is_413(app, client, monkeypatch):
    """More lines than a request may carry is refused as a whole, with the numbers."""
    monkeypatch.setitem(app.config, "LOGDASH_MAX_LINES_PER_REQUEST", 10)
    response = post_logs(client, [{"service": "a", "message": "m"}] * 11)
    assert response.status_code == 413
    assert response.json["error"] == "batch has 11 lines; at most 10 per request"
    assert scalar("SELECT count(*) FROM logs.entries") == 0


@pytest.mark.parametrize("path", ["/api/logs", "/gelf"])
def test_ndjson_of_too_many_lines_is_413_before_decoding_them(app, client, monkeypatch, path):
    """A few KB of gzip can hold millions of short lines: they are counted, not decoded,
    before the 413 (the body is tried once as a whole document first)."""
    import app.ingest.bodies as bodies

    monkeypatch.setitem(app.config, "LOGDASH_MAX_LINES_PER_REQUEST", 10)
    decoded, decode = [], bodies.loads
    monkeypatch.setattr(bodies, "loads", lambda data: decoded.append(data) or decode(data))
    body = gzip.compress(b'{"service": "a", "short_message": "m", "message": "m"}\n\n' * 11)
    response = client.post(path, data=body, headers={"Content-Encoding": "gzip",
                                                     "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json["error"] == "batch has more than 10 lines; at most 10 per request"
    assert len(decoded) == 1
    assert scalar("SELECT count(*) FROM logs.entries") == 0


def test_large_bodies_take_turns(app, client, monkeypatch):
    """Decoded, a body takes many times its size: large ones are decoded a few at a time
    per process, a 503 with Retry-After when no turn comes in time; small ones never wait,
    and a turn is given back however the request ends."""
    from app.api import ingest as ingest_api

    monkeypatch.setattr(ingest_api, "LARGE_BODY_BYTES", 200)
    monkeypatch.setattr(ingest_api, "TURN_WAIT_SECONDS", 0.2)
    large = {"service": "big", "message": "x" * 300}
    turns = ingest_api.LARGE_BODY_TURNS
    held = [turns.acquire(blocking=False) for _ in range(2)]
    try:
        busy = post_logs(client, large)
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0
        assert "large requests" in busy.json["error"]
        assert client.post("/v1/logs", json={"resourceLogs": [], "pad": "x" * 300}
                           ).status_code == 503
        assert post_logs(client, {"service": "small", "message": "m"}).status_code == 202
    finally:
        for _ in held:
            turns.release()
    assert client.post("/api/logs", data=b"[" + b"x" * 300).status_code == 400
    assert post_logs(client, large).status_code == 202
    assert [turns.acquire(blocking=False) for _ in range(2)] == [True, True]  # all given back
    turns.release()
    turns.release()
    assert scalar("SELECT string_agg(service, ',' ORDER BY service) FROM logs.entries") == \
        "big,small"


def test_a_request_waiting_for_its_turn_holds_no_transaction(app, live_server,
                                                            ingest_headers, monkeypatch):
    """Waiting for a turn must not keep a pooled connection in a transaction: thirty such
    requests would leave small ones and pages without a connection."""
    import threading

    import requests

    from app.api import ingest as ingest_api

    monkeypatch.setattr(ingest_api, "LARGE_BODY_BYTES", 200)
    monkeypatch.setattr(ingest_api, "TURN_WAIT_SECONDS", 3)
    # The token's last use is now fresh: checking it again writes nothing and commits not.
    assert requests.post(f"{live_server.url}/api/logs", json={"service": "a", "message": "m"},
                         headers=ingest_headers, timeout=10).status_code == 202
    turns = ingest_api.LARGE_BODY_TURNS
    held = [turns.acquire(blocking=False) for _ in range(2)]
    answers = []
    sender = threading.Thread(target=lambda: answers.append(requests.post(
        f"{live_server.url}/api/logs", json={"service": "big", "message": "x" * 300},
        headers=ingest_headers, timeout=10)))
    try:
        sender.start()
        time.sleep(1)  # the request is waiting for a turn
        waiting_in_transaction = scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle in transaction' AND pid <> pg_backend_pid()")
    finally:
        for _ in held:
            turns.release()
        sender.join()
    assert waiting_in_transaction == 0
    assert answers[0].status_code == 202


def test_attributes_larger_than_the_limit_refuse_their_line(app, client, monkeypatch):
    """A line's attributes are bounded in size as JSON, as its message is."""
    monkeypatch.setitem(app.config, "LOGDASH_MAX_ATTRIBUTE_CHARS", 200)
    response = post_logs(client, [{"service": "a", "message": "big", "blob": "x" * 300},
                                  {"service": "a", "message": "small", "blob": "x" * 100}])
    assert response.json["accepted"] == 1
    assert response.json["errors"][0]["error"] == ("attributes are 311 characters as JSON;"
                                                   " at most 200 are kept per line")
    assert scalar("SELECT message FROM logs.entries") == "small"


def test_lines_that_would_add_a_service_past_the_limit_are_refused(app, client, monkeypatch):
    """Services are rows of every page: past LOGDASH_MAX_SERVICES, a line naming a new one
    is refused, naming the setting; lines of known services, in the same batch too, are
    kept, and a service that logged before stays welcome."""
    monkeypatch.setitem(app.config, "LOGDASH_MAX_SERVICES", 3)
    first = post_logs(client, [{"service": name, "message": "hello"}
                               for name in ("a", "b", "c", "d")])
    assert (first.json["accepted"], first.json["rejected"]) == (3, 1)
    assert first.json["errors"] == [{"index": 3, "error": "service 'd' would be new, and 3"
                                                          " services already log here"
                                                          " (LOGDASH_MAX_SERVICES)"}]
    again = post_logs(client, [{"service": "e", "message": "new"},
                               {"service": "a", "message": "known"}])
    assert (again.json["accepted"], again.json["errors"][0]["index"]) == (1, 0)
    assert scalar("SELECT count(*) FROM logs.services") == 3
    monkeypatch.setitem(app.config, "LOGDASH_MAX_SERVICES", 0)  # no limit
    assert post_logs(client, {"service": "e", "message": "new"}).json["accepted"] == 1


def test_batches_adding_services_at_once_stay_within_the_limit(app, client, live_server,
                                                              ingest_headers, monkeypatch):
    """Two batches, each naming a new service, with one place left: held before they commit
    (the hourly job's lock here), one takes the place and the other is refused."""
    import threading

    import requests

    from app.rollups.aggregate import LOCKS

    monkeypatch.setitem(app.config, "LOGDASH_MAX_SERVICES", 2)
    post_logs(client, {"service": "old", "message": "hello"})
    answers = []

    def send(service):
        """Post one line of a new service."""
        answers.append(requests.post(f"{live_server.url}/api/logs", timeout=30,
                                     json={"service": service, "message": "hi"},
                                     headers=ingest_headers).json())

    def waiting(count):
        """Wait until `count` sessions wait for an advisory lock."""
        deadline = time.monotonic() + 10
        while scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                     " AND NOT granted") < count:
            assert time.monotonic() < deadline, "the batches never reached their locks"
            time.sleep(0.02)

    threads = [threading.Thread(target=send, args=(name,)) for name in ("new-a", "new-b")]
    with db.engine.connect() as job:
        job.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCKS["hourly"]})
        for count, thread in enumerate(threads, start=1):
            thread.start()
            waiting(count)
        job.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCKS["hourly"]})
        job.commit()
    for thread in threads:
        thread.join()
    assert sorted(answer["accepted"] for answer in answers) == [0, 1]
    assert scalar("SELECT count(*) FROM logs.services") == 2


def test_a_new_service_past_the_limit_is_refused_without_waiting(app, client, live_server,
                                                                 ingest_headers, monkeypatch):
    """With the limit reached, a batch naming a new service (a sender naming one per batch)
    is refused at once, not after the batches adding services ahead of it."""
    import requests

    from app.ingest.services import _LOCK_KEY

    monkeypatch.setitem(app.config, "LOGDASH_MAX_SERVICES", 1)
    post_logs(client, {"service": "old", "message": "hello"})
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        try:
            answer = requests.post(f"{live_server.url}/api/logs", timeout=5,
                                   json={"service": "new", "message": "hi"},
                                   headers=ingest_headers)
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
            other.commit()
    assert answer.json()["rejected"] == 1


def test_long_message_is_truncated_with_a_marker(app, client, monkeypatch):
    """Messages over the configured length are cut and say so."""
    monkeypatch.setitem(app.config, "LOGDASH_MAX_MESSAGE_BYTES", 1000)
    post_logs(client, {"service": "long", "message": "y" * 5000})
    message = stored("long")[0]["message"]
    assert len(message.encode()) <= 1000
    kept, marker = message.split("…")
    # The marker counts the bytes that are gone: with those kept, the whole message.
    assert marker == f" [truncated {5000 - len(kept)} bytes]" and set(kept) == {"y"}


def test_hostile_text_is_stored_not_refused(client):
    """NUL bytes, lone surrogates, NaN and control characters never cause a 5xx."""
    body = (b'{"service":"evil","message":"nul\\u0000here \\ud800 end","level":"info",'
            b'"attr":"\\u0000","n":NaN,"inf":-Infinity,"deep":' + b"[" * 6 + b"]" * 6 + b"}")
    response = client.post("/api/logs", data=body, content_type="application/json")
    assert response.status_code == 202, response.json
    assert response.json["accepted"] == 1
    [row] = stored("evil")
    assert row["message"] == "nul\ufffdhere \ufffd end"
    assert row["attributes"]["attr"] == "\ufffd"
    assert row["attributes"]["n"] == "NaN"
    assert row["attributes"]["inf"] == "-Infinity"
    deep = post_logs(client, {"service": "evil", "message": "m", "d": [[[[[[[[[[]]]]]]]]]]})
    assert deep.json["rejected"] == 1
    assert "nested deeper than 8 levels" in deep.json["errors"][0]["error"]


def test_numbers_keep_their_exact_value(client):
    """Integers beyond 64 bits stay exact; a number too large for a float is kept as text."""
    body = (b'{"service":"nums","message":"m","big":123456789012345678901234567890,'
            b'"u64":18446744073709551615,"neg":-9223372036854775808,"f":0.1,"huge":1e400}')
    response = client.post("/api/logs", data=body, content_type="application/json")
    assert response.status_code == 202, response.json
    [row] = stored("nums")
    assert row["attributes"]["big"] == 123456789012345678901234567890
    assert row["attributes"]["u64"] == 18446744073709551615
    assert row["attributes"]["neg"] == -9223372036854775808
    # Alone on its line: no longer number sends the whole line to the json module.
    below = b'{"service":"nums2","message":"m","below":-9223372036854775809}'
    assert client.post("/api/logs", data=below, content_type="application/json").status_code == 202
    assert stored("nums2")[0]["attributes"]["below"] == -9223372036854775809
    assert row["attributes"]["f"] == 0.1
    assert row["attributes"]["huge"] == "1e400"


def test_empty_array_accepts_nothing(client):
    """An empty batch is not an error."""
    response = post_logs(client, [])
    assert response.status_code == 202
    assert response.json == {"accepted": 0, "rejected": 0, "errors": []}


def test_ingest_is_one_transaction_with_its_rollup(client):
    """Rows and minute counts land together."""
    post_logs(client, [{"service": "tx", "message": "m", "level": "error"}] * 7)
    assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'tx'") == 7
    assert scalar("SELECT sum(count) FROM logs.rollup_minute WHERE service = 'tx'") == 7


def test_get_method_on_ingest_is_a_json_405(client):
    """Wrong methods answer in JSON too."""
    response = client.put("/api/logs", data=json.dumps({}))
    assert response.status_code == 405
    assert "error" in response.json


def test_partition_dropped_behind_our_back_is_recreated(client):
    """If retention drops a partition this process believed existed, ingest recreates it."""
    when = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    line = {"service": "late", "message": "m", "timestamp": when.isoformat()}
    assert post_logs(client, line).json["accepted"] == 1
    db.session.execute(text(f"DROP TABLE logs.entries_p{when:%Y%m%d}"))
    db.session.commit()
    response = post_logs(client, line)
    assert response.status_code == 202
    assert response.json["accepted"] == 1
    assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'late'") == 1


def test_a_batch_retried_for_a_dropped_partition_counts_services_again(app, client,
                                                                      monkeypatch):
    """The retry after a partition was dropped under a batch runs the service limit again:
    the rollback released its lock, and another batch may have taken the last place."""
    import app.ingest.store as store

    monkeypatch.setitem(app.config, "LOGDASH_MAX_SERVICES", 2)
    when = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    assert post_logs(client, {"service": "old", "message": "m",
                              "timestamp": when.isoformat()}).json["accepted"] == 1
    db.session.execute(text(f"DROP TABLE logs.entries_p{when:%Y%m%d}"))
    db.session.commit()
    forget = store.forget_partitions

    def another_batch_meanwhile():
        """As the batch rolls back, another one adds a service."""
        forget()
        with db.engine.begin() as other:
            other.execute(text("INSERT INTO logs.services (service, first_seen, last_seen)"
                               " VALUES ('other', now(), now())"))

    monkeypatch.setattr(store, "forget_partitions", another_batch_meanwhile)
    response = post_logs(client, {"service": "new", "message": "m",
                                  "timestamp": when.isoformat()})
    assert (response.json["accepted"], response.json["rejected"]) == (0, 1)
    assert scalar("SELECT count(*) FROM logs.services") == 2


def test_a_new_partition_waits_only_briefly_for_a_long_read(app, client):
    """Creating a partition locks all of logs.entries, and other batches queue behind it:
    while a long read holds the table, a line needing a new partition gets a 503 soon,
    and is stored once the read is over."""
    when = (datetime.now(UTC) - timedelta(days=25)).replace(microsecond=0)
    line = {"service": "late", "message": "m", "timestamp": when.isoformat()}
    answers = []

    def send():
        """Post the line from a thread, so that a wait without end fails the test."""
        answers.append(post_logs(client, line))

    try:
        assert finishes_during_a_long_read(send)
        assert answers[0].status_code == 503 and answers[0].headers["Retry-After"]
        assert post_logs(client, line).json["accepted"] == 1
        assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'late'") == 1
    finally:
        # Other modules count on which old partitions exist.
        db.session.rollback()
        db.session.execute(text(f"DROP TABLE IF EXISTS logs.entries_p{when:%Y%m%d}"))
        db.session.commit()


def test_lines_stored_signal_carries_the_committed_records(app, client):
    """Later stages learn of new lines through a signal sent after the commit."""
    from app.ingest.signals import lines_stored

    seen = []

    def receiver(sender, records):
        """Note what was sent and whether it is already visible in the database."""
        seen.append(([r.message for r in records],
                     scalar("SELECT count(*) FROM logs.entries WHERE service = 'sig'")))

    with lines_stored.connected_to(receiver, app):
        post_logs(client, [{"service": "sig", "message": "one"}, {"service": "sig"},
                           {"service": "sig", "message": "two"}])
        post_logs(client, [{"service": "sig"}])
    assert seen == [(["one", "two"], 2)]


def test_idempotency_key_stores_a_retried_batch_once(client):
    """A batch retried with the same key after a lost answer is stored once, same answer."""
    lines = [{"service": "idem", "message": f"m{i}"} for i in range(3)] + [{"service": "idem"}]
    headers = {"Idempotency-Key": "batch-0001"}
    first = post_logs(client, lines, headers=headers)
    again = post_logs(client, lines, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json == first.json == {"accepted": 3, "rejected": 1, "errors": [
        {"index": 3, "error": "message is required (also accepted as msg or log)"}]}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'idem'") == 3
    assert scalar("SELECT sum(count) FROM logs.rollup_minute WHERE service = 'idem'") == 3
    other = post_logs(client, lines, headers={"Idempotency-Key": "batch-0002"})
    assert "Idempotent-Replayed" not in other.headers
    assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'idem'") == 6


def test_concurrent_retries_with_one_key_store_once(live_server, ingest_headers):
    """Two copies of a request in flight at once: one stores, the other replays."""
    import threading

    import requests

    body = ndjson({"service": "race", "message": f"m{i}"} for i in range(500))
    answers = []

    def send():
        """Post the batch with the shared key."""
        answers.append(requests.post(f"{live_server.url}/api/logs", data=body, timeout=30,
                                     headers={"Idempotency-Key": "same", **ingest_headers,
                                              "Content-Type": "application/x-ndjson"}))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 4
    assert sorted(a.headers.get("Idempotent-Replayed", "no") for a in answers) == [
        "no", "true", "true", "true"]
    assert scalar("SELECT count(*) FROM logs.entries WHERE service = 'race'") == 500


def test_overlong_idempotency_key_is_400(client):
    """Keys are bounded."""
    response = post_logs(client, {"service": "a", "message": "m"},
                         headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json["error"]


# The Procfile's web process (gunicorn), whose request bodies are what the socket gave:
# test_browser.py's, module-scoped, on a database of its own.
web = test_browser.web


def post_head(server, length: int) -> bytes:
    """The head of an NDJSON POST to /api/logs announcing `length` body bytes."""
    return (b"POST /api/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
            + server.sender["Authorization"].encode()
            + b"\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % length)


def read_answer(sock) -> bytes:
    """An HTTP answer read off a socket whole: its head, then as many bytes as its
    Content-Length says (they may come in separate reads)."""
    answer = b""
    while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_body_cut_short_is_refused_whole(web):
    """A sender that stops half-way gets a 400 and nothing of its body is stored: its
    retry of the whole must not store the first half twice."""
    import socket

    body = b"".join(b'{"service":"cut","message":"line %d"}\n' % i for i in range(100))
    port = int(web.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post_head(web, len(body)) + body[:len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"Content-Length announced; nothing was stored" in answer
    assert web.totals()["total"] == 0
    web.ingest([json.loads(line) for line in body.splitlines()])
    assert web.totals()["total"] == 100


def test_a_slow_body_holds_no_database_connection(web):
    """While a sender trickles its body, no pooled connection waits in a transaction for
    it: sixty such senders would leave every page and batch without one."""
    import socket

    import psycopg

    body = b'{"service":"slow","message":"at last"}\n'
    port = int(web.url.rsplit(":", 1)[1])
    # The token's last use is now fresh: checking it again writes (and commits) nothing,
    # so its lookup's transaction is what the slow request would hold.
    web.ingest([{"service": "slow", "message": "first"}])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post_head(web, len(body)) + body[:10])
        time.sleep(1)  # the request has been read up to its body and waits for the rest
        with psycopg.connect(web.admin_url, autocommit=True) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND state = 'idle in transaction'", (web.database,)).fetchone()[0]
        sock.sendall(body[10:])
        answer = read_answer(sock)
    assert waiting == 0
    assert answer.startswith(b"HTTP/1.1 202"), answer
