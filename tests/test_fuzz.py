"""Generated requests against every endpoint of the OpenAPI description, the shippers'
receivers included: no input makes a 5xx, and every error names the problem."""

import gzip
import json
import re
import zlib
from urllib.parse import quote

from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.openapi import SPEC
from tests.conftest import token_headers

REQUESTS = 5000
OPERATIONS = sorted((path, method.upper()) for path, item in SPEC["paths"].items()
                    for method in item if method != "parameters")
QUERY_NAMES = sorted({p["name"] for item in SPEC["paths"].values() for op in item.values()
                      if isinstance(op, dict) for p in op.get("parameters", [])
                      if isinstance(p, dict) and p.get("in") == "query"})
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
WEIRD_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", "0", "-1", "1h", "24h", "7d", "error", "warn", "api", "null",
                     "9" * 30, "2026-11-27T00:00:00Z", "1764201600000", "%", "_", "\x00",
                     "<img src=x onerror=alert(1)>", "../../etc/passwd", "' OR 1=1 --"]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WEIRD_TEXT, inner, max_size=5),
    max_leaves=15,
)
LOG_LIKE = st.fixed_dictionaries(
    {"message": WEIRD_TEXT},
    optional={"service": WEIRD_TEXT, "level": st.one_of(WEIRD_TEXT, st.integers()),
              "timestamp": st.one_of(WEIRD_TEXT, st.integers(), st.floats()),
              "attributes": JSON_VALUES, "host": JSON_VALUES,
              "error_threshold_per_min": st.one_of(st.integers(), WEIRD_TEXT),
              "alert_webhook_url": WEIRD_TEXT, "alert_email": WEIRD_TEXT,
              "enabled": JSON_VALUES, "name": WEIRD_TEXT, "scope": WEIRD_TEXT},
)


@st.composite
def bodies(draw):
    """A body and the headers describing it: JSON, NDJSON, form, compressed or garbage."""
    kind = draw(st.sampled_from(["json", "log", "ndjson", "bytes", "form", "gzip", "none"]))
    if kind == "none":
        return b"", {}
    if kind == "bytes":
        return draw(st.binary(max_size=200)), {"Content-Type": draw(HEADER_TEXT)}
    if kind == "form":
        pairs = draw(st.dictionaries(WEIRD_TEXT, WEIRD_TEXT, max_size=5))
        data = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs.items())
        return data.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if kind == "ndjson":
        lines = draw(st.lists(st.one_of(LOG_LIKE, JSON_VALUES), max_size=5))
        return "\n".join(json.dumps(x) for x in lines).encode(), {
            "Content-Type": "application/x-ndjson"}
    value = draw(LOG_LIKE if kind in ("log", "gzip") else JSON_VALUES)
    data = json.dumps(value).encode()
    headers = {"Content-Type": "application/json"}
    if kind == "gzip":
        encoding = draw(st.sampled_from(["gzip", "deflate", "br", "gzip, deflate"]))
        data = gzip.compress(data) if encoding == "gzip" else zlib.compress(data)
        headers["Content-Encoding"] = encoding
    return data, headers


@st.composite
def requests_(draw):
    """One request to a described operation, or now and then a wrong method."""
    path, method = draw(st.sampled_from(OPERATIONS))
    if draw(st.integers(0, 19)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    url = re.sub(r"\{(\w+)\}", lambda m: quote(draw(
        st.one_of(WEIRD_TEXT, st.integers().map(str))), safe="") or "x", path)
    query = draw(st.dictionaries(st.one_of(st.sampled_from(QUERY_NAMES), WEIRD_TEXT),
                                 WEIRD_TEXT, max_size=4))
    data, headers = draw(bodies())
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(HEADER_TEXT)
    auth = draw(st.sampled_from(["admin", "admin", "admin", "none", "garbage", "basic"]))
    return method, url, query, data, headers, auth


def error_named(url: str, response) -> str:
    """The problem an error answer names: JSON {"error": ...}, or from the OTLP receiver a
    google.rpc.Status in the request's encoding."""
    if url.startswith("/v1/logs") and response.mimetype == "application/x-protobuf":
        return Status.FromString(response.data).message
    if not response.is_json:
        return ""
    if url.startswith("/v1/logs") and "code" in response.json:  # a Status, as JSON
        return response.json.get("message")
    return response.json.get("error")


def test_no_request_makes_a_server_error(app, client):
    """Thousands of generated requests: every answer is below 500; errors are JSON."""
    admin = token_headers("admin")["Authorization"]
    seen = set()

    @settings(max_examples=REQUESTS, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(requests_())
    def check(request):
        method, url, query, data, headers, auth = request
        headers = dict(headers)
        headers["Authorization"] = {"admin": admin, "none": "", "garbage": "Bearer \x7fnope",
                                    "basic": "Basic bG9nZGFzaDpub3BlIQ=="}[auth]
        response = client.open(url, method=method, query_string=query, data=data,
                               headers={k: v for k, v in headers.items() if v},
                               environ_base={"HTTP_AUTHORIZATION": headers["Authorization"]})
        seen.add((url.split("?")[0] if "{" not in url else url, method))
        assert response.status_code < 500, (method, url, query, data[:200], response.data)
        if response.status_code >= 400:
            assert error_named(url, response), (method, url, response.status_code,
                                                response.data[:200])
        response.close()

    check()
    assert len(seen) > len(OPERATIONS)
