"""Small helpers shared by tests."""

import json
import threading

from sqlalchemy import text

from app.extensions import db


def scalar(sql: str, **params):
    """Run a one-value query in the current app context."""
    return db.session.execute(text(sql), params).scalar_one()


def post_logs(client, payload, **kwargs):
    """POST a JSON payload to the ingest endpoint."""
    return client.post("/api/logs", data=json.dumps(payload), content_type="application/json",
                       **kwargs)


def ndjson(objects) -> bytes:
    """Encode objects as NDJSON."""
    return "\n".join(json.dumps(o) for o in objects).encode() + b"\n"


def authed(test_client, scope: str = "admin"):
    """Make a test client send a fresh token of the scope with every request."""
    from tests.conftest import token_headers

    test_client.environ_base["HTTP_AUTHORIZATION"] = token_headers(scope)["Authorization"]
    return test_client


def finishes_during_a_long_read(work, timeout: float = 10.0) -> bool:
    """Run `work` in a thread while another connection holds logs.entries in a read (as a
    long search does); whether it finished within `timeout` seconds."""
    with db.engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM logs.entries"))  # still in its transaction
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout)
        finished = not thread.is_alive()
        reader.rollback()
        thread.join()
    return finished


def at_once(work, count: int) -> None:
    """Run work(ready) in `count` threads and wait for them; each calls ready() once set up,
    and all go on from there together."""
    barrier = threading.Barrier(count)
    threads = [threading.Thread(target=work, args=(barrier.wait,)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
