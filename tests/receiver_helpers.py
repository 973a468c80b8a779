"""Shared by the tests of the OTLP, Loki and GELF receivers: what got stored, and a generated-
request check that no body makes a server error."""

import time

from hypothesis import HealthCheck, given, settings
from sqlalchemy import select, text

from app.extensions import db
from app.models import Entry
from tests.conftest import token_headers

FUZZ_EXAMPLES = 300


def stored(service: str | None = None) -> list[dict]:
    """Stored lines (of one service, if given) as the API shows them, oldest id first."""
    query = select(Entry).order_by(Entry.id)
    if service:
        query = query.where(Entry.service == service)
    db.session.expire_all()
    return [entry.to_dict() for entry in db.session.scalars(query)]


def rollup(service: str) -> dict:
    """The per-minute counts of a service by level, summed."""
    rows = db.session.execute(text(
        "SELECT level, sum(count) FROM logs.rollup_minute WHERE service = :service"
        " GROUP BY level"), {"service": service})
    return {level: int(count) for level, count in rows}


def wait_for_lines(count: int, service: str, seconds: float = 10) -> list[dict]:
    """Poll until a sender that does not wait for answers has had `count` lines stored."""
    deadline = time.monotonic() + seconds
    while True:
        db.session.remove()
        lines = stored(service)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def assert_no_server_error(client, path: str, bodies, check_error) -> None:
    """Generated bodies to one receiver: every answer is below 500, and each error is in the
    receiver's error format (check_error gets the response)."""
    headers = token_headers("ingest")

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body):
        data, extra = body
        response = client.post(path, data=data, headers={**headers, **extra})
        assert response.status_code < 500, (path, data[:200], extra, response.data[:300])
        if response.status_code >= 400:
            check_error(response)
        response.close()

    check()
