"""Python's own logging.handlers.HTTPHandler, over real HTTP, with no extra package."""

import logging
import logging.handlers
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from app.auth.credentials import create_token
from app.ingest.bodies import _format_message, parse_logging_form
from tests.conftest import LiveServer
from tests.helpers import scalar


@pytest.fixture
def token(app) -> str:
    """An ingest token; HTTPHandler sends it as the Basic auth password."""
    return create_token("python logging", "ingest")[1]


def handler_for(server: LiveServer, url: str, token: str) -> logging.Handler:
    """A real HTTPHandler posting to the live server with the token."""
    return logging.handlers.HTTPHandler(f"127.0.0.1:{server.port}", url, method="POST",
                                        credentials=("logdash", token))


def emit(server: LiveServer, token: str, url: str, logger_name: str, level: int, msg: str,
         *args, **kw):
    """Send one record through a real HTTPHandler to the live server."""
    handler = handler_for(server, url, token)
    logger = logging.getLogger(logger_name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.log(level, msg, *args, **kw)
    finally:
        logger.removeHandler(handler)
        handler.close()


def only_line(search_client):
    """The single stored line, as the search API returns it."""
    lines = search_client.get("/api/logs").json["logs"]
    assert len(lines) == 1
    return lines[0]


def test_record_becomes_a_line(live_server, token, client):
    """Level, logger, formatted message, time and call site arrive as fields."""
    before = datetime.now(UTC)
    emit(live_server, token, "/api/logs?service=billing", "billing.charge", logging.WARNING,
         "card %s declined after %d tries", "4242", 3, extra={"order_id": "A-17"})
    line = only_line(client)
    assert line["service"] == "billing"
    assert line["level"] == "warning"
    assert line["logger"] == "billing.charge"
    assert line["message"] == "card 4242 declined after 3 tries"
    assert before <= datetime.fromisoformat(line["timestamp"]) <= datetime.now(UTC)
    assert line["attributes"]["order_id"] == "A-17"
    assert line["attributes"]["funcName"] == "emit"
    assert line["attributes"]["pathname"].endswith("test_http_handler.py")
    assert "levelno" not in line["attributes"]


def log_exception(server: LiveServer, token: str, formatter: bool) -> None:
    """Send logger.exception() for a raised ValueError through a real HTTPHandler."""
    handler = handler_for(server, "/api/logs", token)
    if formatter:
        # A formatter fills exc_text with the traceback before the record is sent.
        handler.mapLogRecord = lambda record: {
            **record.__dict__, "exc_text": logging.Formatter().formatException(record.exc_info)}
    logger = logging.getLogger("payments.worker")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad amount")
        except ValueError:
            logger.exception("charge failed")
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_exception_is_named_in_the_message(live_server, token, client):
    """A plain HTTPHandler sends only exc_info's repr; the exception it names is kept."""
    log_exception(live_server, token, formatter=False)
    line = only_line(client)
    assert (line["service"], line["level"]) == ("payments", "error")
    assert line["message"] == "charge failed\nValueError('bad amount')"


def test_traceback_follows_the_message_when_sent(live_server, token, client):
    """When exc_text carries the traceback, it follows the message."""
    log_exception(live_server, token, formatter=True)
    message = only_line(client)["message"]
    assert message.startswith("charge failed\nTraceback (most recent call last):")
    assert message.endswith("ValueError: bad amount")


def test_service_defaults_to_the_top_logger_name(live_server, token, client):
    """Without ?service= the first part of the logger name names the service."""
    emit(live_server, token, "/api/logs", "inventory.sync.job", logging.INFO, "synced %d items", 12)
    line = only_line(client)
    assert (line["service"], line["message"], line["level"]) == ("inventory", "synced 12 items",
                                                                 "info")


def test_unformattable_args_keep_the_raw_text(client):
    """args that do not fit msg are appended rather than lost."""
    [item] = parse_logging_form(b"msg=total+%25d&args=%28%27x%27%2C%29&levelname=INFO&name=a",
                                None)
    assert item["message"] == "total %d ('x',)"


def formatted(msg: str, args: str) -> str:
    """The message of an HTTPHandler record with this msg and args."""
    form = urlencode({"msg": msg, "args": args, "levelname": "INFO", "name": "a"}).encode()
    return parse_logging_form(form, None)[0]["message"]


@pytest.mark.parametrize(("msg", "args"), [
    ("%999999999d", "(1,)"),  # a width: a gigabyte from a few bytes
    ("%(a)999999999d", "{'a': 1}"),  # behind a mapping key
    ("%(a(b))0300000000d", "{'a(b)': 1}"),  # behind a key with parentheses of its own
    ("%.999999s", "('x',)"),  # a precision
    ("%*d", "(999999999, 1)"),  # a width taken from args
    ("%(a)s" * 5000, repr({"a": "x" * 9000})),  # one value written many times
    ("%(a)a" * 195, repr({"a": "\U000e0001" * 5000})),  # ascii() writes 10 per character
    ("%(a)99.99f" * 8900, "{'a': 1e308}"),  # a float's 309 digits, many times
])
def test_formatting_that_could_write_a_huge_message_is_not_done(msg, args):
    """A small form must not make a huge string (which would only be cut afterwards): the
    record keeps msg and args as sent."""
    assert formatted(msg, args) == f"{msg} {args}"


@pytest.mark.parametrize("msg", ["%s" * 5_000_000, "%(" + "(" * 5_000_000])
def test_judging_a_long_format_stays_quick(msg):
    """Reading placeholders stops once the budget is passed, and a key is found in C: a
    10 MB msg costs milliseconds, not seconds of a worker."""
    started = time.perf_counter()
    assert _format_message(msg, "('x',)") == f"{msg} ('x',)"
    assert time.perf_counter() - started < 0.2


def test_ordinary_formatting_is_done():
    """Positional, mapping, float precision and a literal percent sign, as logging does."""
    assert formatted("user %s logged in %d times", "('ada', 3)") == "user ada logged in 3 times"
    assert formatted("%(name)s took %(ms).1f ms", "{'name': 'sync', 'ms': 12.34}") == (
        "sync took 12.3 ms")
    assert formatted("disk %d%% full", "(93,)") == "disk 93% full"


def test_wrong_password_is_refused_and_nothing_stored(live_server, client):
    """HTTPHandler with a wrong token gets a 401 and stores nothing."""
    emit(live_server, "ld_not-a-token", "/api/logs?service=x", "x", logging.ERROR, "boom")
    assert client.get("/api/logs").json["count"] == 0


def test_form_that_is_not_a_log_record_is_400(client):
    """A form body without msg and levelname is refused."""
    response = client.post("/api/logs", data={"hello": "world"})
    assert response.status_code == 400
    assert "HTTPHandler" in response.json["error"]
    assert scalar("SELECT count(*) FROM logs.entries") == 0
