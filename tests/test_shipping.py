"""docs/shipping.md as written: the bodies it says Fluent Bit and Vector send to /api/logs,
and its curl examples."""

import gzip
import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import ndjson
from tests.receiver_helpers import stored


def test_fluent_bit_json_lines_with_epoch_double_date(client):
    """Fluent Bit's http output, `format json_lines`: the `date` key as epoch seconds with a
    fraction (json_date_format double, its default), the raw line under `log`."""
    when = round(time.time() - 30, 6)
    body = ndjson([{"date": when, "log": "GET /health 200", "stream": "stdout"},
                   {"date": when + 1, "log": "GET /x 500", "level": "error"}])
    response = client.post("/api/logs?service=nginx", data=gzip.compress(body),
                           headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202
    first, second = stored("nginx")
    assert first["message"] == "GET /health 200"
    assert datetime.fromisoformat(first["timestamp"]) == datetime.fromtimestamp(when, UTC)
    assert first["attributes"] == {"stream": "stdout"}
    assert second["level"] == "error"


def test_fluent_bit_json_array_with_iso8601_date(client):
    """`format json` sends an array; `json_date_format iso8601` a UTC time with a Z."""
    response = client.post("/api/logs?service=nginx", data=json.dumps(
        [{"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "log": "started"}]),
        content_type="application/json")
    assert response.json["accepted"] == 1


def test_vector_ndjson_with_nanosecond_timestamp(client):
    """Vector's http sink (codec json, newline_delimited framing): RFC 3339 `timestamp` with
    nanoseconds, `host`, `message`, and its source's own fields."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z"
    response = client.post("/api/logs?service=web", data=ndjson([{
        "host": "web-1", "message": "GET / 200", "source_type": "file",
        "file": "/var/log/app.log", "timestamp": stamp}]),
        content_type="application/x-ndjson")
    assert response.json == {"accepted": 1, "rejected": 0, "errors": []}
    [line] = stored("web")
    assert datetime.fromisoformat(line["timestamp"]) == now
    assert line["host"] == "web-1"
    assert line["attributes"] == {"source_type": "file", "file": "/var/log/app.log"}


DOC = Path(__file__).resolve().parent.parent / "docs" / "shipping.md"
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
EXPECTED = re.compile(r"^# (\d{3})\b", re.M)


def curl_snippets() -> list[tuple[str, int]]:
    """Each curl example of docs/shipping.md with the status its comment says it gets."""
    return [(block, int(EXPECTED.search(block).group(1)))
            for block in SHELL_BLOCK.findall(DOC.read_text()) if "curl " in block]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize(("snippet", "status"), curl_snippets())
def test_curl_examples_work_as_written(live_server, ingest_headers, tmp_path, snippet,
                                       status):
    """The documented commands, run by a shell against a live server, get the documented
    answer (a .curlrc makes curl print only the status)."""
    (tmp_path / ".curlrc").write_text('silent\noutput = "/dev/null"\nwrite-out = "%{http_code}"\n')
    script = re.sub(r"https://logdash\.example\.com|http://127\.0\.0\.1:8000", live_server.url,
                    snippet)
    # The token comes from the environment, not the placeholder the reader replaces.
    script = re.sub(r"^TOKEN=.*\n", "", script, flags=re.M)
    token = ingest_headers["Authorization"].removeprefix("Bearer ")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "CURL_HOME": str(tmp_path), "TOKEN": token})
    assert result.stdout == str(status), (script, result.stdout, result.stderr)
