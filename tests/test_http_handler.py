"""Python's own logging.handlers.HTTPHandler, over real HTTP, with no extra package."""

import logging
import logging.handlers
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from app.auth.credentials import create_token
from app.ingest.bodies import parse_logging_form
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
    [huge] = parse_logging_form(b"msg=%25999999999d&args=%281%2C%29&levelname=INFO&name=a", None)
    assert huge["message"] == "%999999999d"
    # The same width behind a mapping key is refused too, not built into a 1 GB message.
    [keyed] = parse_logging_form(
        b"msg=%25%28a%29999999999d&args=%7B%27a%27%3A+1%7D&levelname=INFO&name=a", None)
    assert keyed["message"] == "%(a)999999999d"
    # One value used many times would build a message of args x placeholders: not done.
    form = urlencode({"msg": "%(a)s" * 5000, "args": repr({"a": "x" * 9000}),
                      "levelname": "INFO", "name": "a"}).encode()
    [repeated] = parse_logging_form(form, None)
    assert len(repeated["message"]) < 40_000
    assert repeated["message"].startswith("%(a)s%(a)s")
    # So would many placeholders of a wide field each, whatever the args.
    wide = urlencode({"msg": "%()999d" * 100_000, "args": "{'': 1}", "levelname": "INFO",
                      "name": "a"}).encode()
    [padded] = parse_logging_form(wide, None)
    assert len(padded["message"]) < 1_000_000 and padded["message"].startswith("%()999d")


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
