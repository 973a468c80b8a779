"""Syslog (RFC 5424 / 3164) and GELF over UDP and TCP: real senders (util-linux `logger`,
logging.handlers.SysLogHandler, graypy) against the listener, stored through ingest."""

import asyncio
import gzip
import json
import logging
import logging.handlers
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import graypy
import psycopg
import pytest
from sqlalchemy import text

from app.extensions import db
from app.ingest.batch import ingest_items
from app.listeners import batcher as batcher_module
from app.listeners.batcher import Batcher
from app.listeners.framing import StreamFramer
from app.listeners.gelf import ChunkAssembler, GelfError, decompress
from app.listeners.server import (
    Listener,
    gelf_udp_handler,
    stream_server,
    syslog_framer,
    syslog_handler,
)
from app.listeners.settings import MAX_FRAME_BYTES, ListenerSettings, listener_settings
from app.listeners.syslog import parse_syslog

ROOT = Path(__file__).resolve().parent.parent
LOGGER = shutil.which("logger")
needs_logger = pytest.mark.skipif(LOGGER is None, reason="util-linux logger is not installed")
HOSTNAME = socket.gethostname()


# ---- parsing, framing and chunking (no network) --------------------------------------

def test_rfc5424_fields_become_service_level_host_and_attributes():
    """APP-NAME, severity, HOSTNAME, PROCID, MSGID and structured data are all kept."""
    item = parse_syslog(b'<11>1 2026-01-02T03:04:05.678Z web1 billing 42 ID47'
                        b' [origin ip="10.0.0.1"][meta a="x\\]y" a="2"] \xef\xbb\xbfcard declined',
                        "192.0.2.9")
    assert item["service"] == "billing" and item["level"] == "err" and item["host"] == "web1"
    assert item["message"] == "card declined"
    assert item["timestamp"] == "2026-01-02T03:04:05.678Z"
    assert item["attributes"] == {"procid": "42", "msgid": "ID47", "facility": "user",
                                  "origin": {"ip": "10.0.0.1"}, "meta": {"a": ["x]y", "2"]}}


def test_rfc5424_as_rsyslog_relays_a_bsd_message_has_no_leading_space():
    """rsyslog's RFC 5424 template keeps the space after a BSD tag's colon in MSG: the
    same event reads the same however it was forwarded."""
    item = parse_syslog(b"<155>1 2026-11-28T08:20:00+00:00 vm x - - -  hello")
    assert (item["service"], item["message"]) == ("x", "hello")


def test_rfc5424_events_without_a_message_are_kept():
    """MSG is optional (RFC 5424 section 6.5, example 4): the structured data, or else the
    MSGID, stands for it, rather than the line being refused as empty."""
    data = (b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47'
            b' [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            b'[examplePriority@32473 class="high"]')
    item = parse_syslog(data, "192.0.2.9")
    assert item["message"] == ('[exampleSDID@32473 iut="3" eventSource="Application"'
                               ' eventID="1011"][examplePriority@32473 class="high"]')
    assert item["attributes"]["exampleSDID@32473"]["eventID"] == "1011"
    assert parse_syslog(b"<165>1 - host app - ID47 -", None)["message"] == "ID47"
    assert parse_syslog(b"<165>1 - host app - - -", None)["message"] == ""


def test_rfc5424_nil_values_fall_back_to_defaults():
    """`-` fields: the peer is the host, the default service, no timestamp (arrival time)."""
    item = parse_syslog(b"<165>1 - - - - - - hello", "192.0.2.9")
    assert item == {"message": "hello", "service": "syslog", "host": "192.0.2.9",
                    "attributes": {"facility": "local4"}, "level": "notice"}


@pytest.mark.parametrize(("data", "service", "host", "message"), [
    (b"<34>Oct 11 22:14:15 mymachine su[231]: 'su root' failed", "su", "mymachine",
     "'su root' failed"),
    (b"<34>Oct 11 22:14:15 su: no hostname here", "su", "192.0.2.9", "no hostname here"),
    (b"<11>Nov 28 06:45:08 vm app[14805] as rsyslog forwards it", "app", "vm",
     "as rsyslog forwards it"),
    (b"<11>Nov 28 06:45:08 vm Connection refused", "syslog", "vm", "Connection refused"),
    # logger --octet-count over UDP: the count is framing, even in a datagram.
    (b"18 <11>app: counted one", "app", "192.0.2.9", "counted one"),
    (b"<11>payments: card declined\x00", "payments", "192.0.2.9", "card declined"),
    (b"<11>just a message\n", "syslog", "192.0.2.9", "just a message"),
    (b"<13>2026-01-02T03:04:05Z host7 app: iso time", "app", "host7", "iso time"),
    (b"no priority at all", "syslog", "192.0.2.9", "no priority at all"),
    (b"<13>Feb 30 10:00:00 not a date", "syslog", "192.0.2.9", "Feb 30 10:00:00 not a date"),
])
def test_rfc3164_and_loose_forms(data, service, host, message):
    """BSD syslog with and without its optional parts, as real senders write it."""
    item = parse_syslog(data, "192.0.2.9")
    assert (item["service"], item["host"], item["message"]) == (service, host, message)


def test_rfc3164_time_without_year_is_never_far_in_the_future():
    """Dec 31 read on Jan 1 is last year's; the time is this machine's local time."""
    item = parse_syslog(b"<13>Jan  1 00:00:00 h t: x")
    assert item["timestamp"] < f"{time.gmtime().tm_year + 1}-01-02"


def test_octet_counting_and_newline_framing_mixed_and_split():
    """Messages cut anywhere across reads come out whole, in either framing."""
    framer = StreamFramer(b"\n\x00", octet_counting=True, max_frame=1000)
    stream = b"12 <13>1 - a b\n<13>second\r\n<13>third\x0012 <13>fourth!!"
    frames = [frame for i in range(len(stream)) for frame in framer.feed(stream[i:i + 1])]
    assert frames == [b"<13>1 - a b\n", b"<13>second\r", b"<13>third", b"<13>fourth!!"]
    assert framer.flush() == []


@pytest.mark.parametrize("read", [1, 5, 10_000])
def test_lines_that_start_no_syslog_message_continue_the_one_before(read):
    """Python's SysLogHandler puts a traceback in one message, ended by NUL: its lines
    start with no <PRI>, so they go on the message however the bytes arrive."""
    framer = syslog_framer()
    first = b"<11>app: failed\nTraceback (most recent call last):\nValueError: x\x00"
    second = b"<11>app: again\n  File \"x.py\", line 1\nKeyError: y\x00"
    stream = first + second + b"<14>app: fine\n<14>app: next\n"
    frames = [frame for i in range(0, len(stream), read)
              for frame in framer.feed(stream[i:i + read])]
    assert frames + framer.settle() == [first[:-1], second[:-1], b"<14>app: fine",
                                        b"<14>app: next"]


def test_blank_lines_and_read_boundaries_do_not_split_a_traceback():
    """A chained traceback has blank lines inside; a long one arrives in many reads and
    may pass the size limit, whose cut drops the rest of it, not each line after."""
    chained = (b"<11>app: boom\nTraceback (most recent call last):\nKeyError: 'a'\n\n"
               b"During handling of the above exception, another exception occurred:\n\n"
               b"Traceback (most recent call last):\n  File \"y\"\nValueError: b\x00")
    framer = syslog_framer()
    assert framer.feed(chained + b"<14>app: after\x00") == [chained[:-1], b"<14>app: after"]
    big = b"<11>app: big\n" + (b"  File \"x.py\", line 1, in f" + b"." * 40 + b"\n") * 20
    stream = big + b"ValueError: end\x00<11>app: next\x00"
    for read in (1, 7, 64, 333, len(stream)):
        framer = StreamFramer(b"\n\x00", octet_counting=True, max_frame=500,
                              continued_lines=True)
        frames = [frame for i in range(0, len(stream), read)
                  for frame in framer.feed(stream[i:i + read])]
        frames += framer.flush()
        assert [frame[:12] for frame in frames] == [b"<11>app: big", b"<11>app: nex"], read
        assert len(frames[0]) == 500 and framer.cut == 1


@pytest.mark.parametrize("read", [1, 3, 10_000])
def test_lines_that_only_look_like_a_message_start_continue_it(read):
    """"<1 item>" and "12 <tag>" are text, not <PRI> nor an octet count before one: they
    go on the message, however the bytes arrive."""
    first = b"<11>edge: E1 html body:\n<1 item>\nend\x00"
    second = b"<11>edge: E2 counts:\n12 <tag> rows\nend\x00"
    stream = first + second + b"13 <14>counted!!\n"
    framer = syslog_framer()
    frames = [frame for i in range(0, len(stream), read)
              for frame in framer.feed(stream[i:i + read])]
    assert frames + framer.flush() == [first[:-1], second[:-1], b"<14>counted!!"]


def test_a_run_of_blank_lines_ends_a_message_and_is_not_held():
    """A traceback has one blank line at a time: a run of them ends the message, so a
    sender of newlines holds neither memory nor the message; and what follows a held
    message's newline does not count towards its size."""
    framer = syslog_framer()
    assert framer.feed(b"<13>x\n") == [] and framer.holding
    assert framer.feed(b"\n" * 100_000) == [b"<13>x"] and not framer.holding
    assert len(framer._buffer) == 0
    framer = StreamFramer(b"\n\x00", octet_counting=True, max_frame=20, continued_lines=True)
    message = b"<13>" + b"a" * 15
    assert framer.feed(message + b"\n\n") == []
    assert framer.feed(b"<13>next\n") + framer.settle() == [message, b"<13>next"]
    assert framer.cut == 0


def reset_after(port: int, data: bytes, pause: float) -> None:
    """Send data, wait, then reset the connection (SO_LINGER 0) rather than close it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(data)
    time.sleep(pause)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("pause", [0.1, 0])
def test_a_connection_reset_keeps_the_whole_messages_before_it(listener, pause):
    """A sender that resets the connection: its whole lines are stored, whether they were
    read before the reset (and held for a next line) or arrive with it; the part of a
    line it was still sending is not stored as if whole."""
    reset_after(listener.settings.syslog_tcp,
                b"<14>app: first words\n<14>app: the last words\n<14>app: cut off mi",
                pause)
    wait_for(2)
    time.sleep(0.7)  # past the pause that would settle anything still held
    assert [line["message"] for line in stored()] == ["first words", "the last words"]


def test_only_a_syslog_message_goes_on_over_lines_and_closing_ends_a_held_one():
    """Text that merely starts with "<" is a line of its own; a held message and a start
    of the next one, left when the sender closes, are two messages."""
    framer = syslog_framer()
    assert framer.feed(b"<html> page\nplain line\n") == [b"<html> page", b"plain line"]
    assert framer.feed(b"<13>a\n<") == [] and framer.flush() == [b"<13>a", b"<"]


def test_a_message_ending_in_a_newline_waits_for_the_next_bytes_or_a_pause():
    """Only the next line tells whether a message goes on: until it comes the message is
    held, and a pause of the sender (settle) ends it. Lines of plain text, which start
    no syslog message, are lines of their own."""
    framer = syslog_framer()
    assert framer.feed(b"<13>one\n") == [] and framer.holding
    assert framer.feed(b"  continued\n") == [] and framer.holding
    assert framer.settle() == [b"<13>one\n  continued"] and not framer.holding
    assert framer.feed(b"<13>two\n9 <13>three<13>four\n") == [b"<13>two", b"<13>three"]
    assert framer.holding and framer.settle() == [b"<13>four"]
    plain = syslog_framer()
    assert plain.feed(b"plain\nlines\n") == [b"plain", b"lines"] and not plain.holding


def test_a_nul_ends_a_message_and_what_follows_it_is_framed_as_usual():
    """A NUL inside a line ends a message there; the text after it starts no syslog
    message, so it is a line of its own."""
    framer = syslog_framer()
    assert framer.feed(b"<13>a\x00b\n<13>c\n<13>d\n") + framer.settle() == [
        b"<13>a", b"b", b"<13>c", b"<13>d"]


def test_a_line_trickled_byte_by_byte_is_searched_once():
    """Each read searches only the bytes it added for a terminator: a sender dripping a
    long line one byte at a time costs linear work, not a search of the whole buffer."""
    framer = StreamFramer(b"\n", octet_counting=True, max_frame=100_000)
    searched = []

    class CountingPattern:
        """The framer's terminator pattern, noting how many bytes each search covers."""

        def __init__(self, pattern):
            self.pattern = pattern

        def search(self, buffer, position=0):
            searched.append(len(buffer) - position)
            return self.pattern.search(buffer, position)

    framer._end = CountingPattern(framer._end)
    line = b"<13>" + b"x" * 20_000
    frames = [frame for i in range(len(line)) for frame in framer.feed(line[i:i + 1])]
    frames += framer.feed(b"\n<13>next\n")
    assert frames == [line, b"<13>next"]
    assert sum(searched) < 3 * len(line)


@pytest.mark.parametrize(("delimiters", "counting", "stream", "expected"), [
    (b"\n\x00", True, b"<13>one\n<13>" + b"x" * 250 + b"\n<13>after\n",
     [b"<13>one", b"<13>" + b"x" * 96, b"<13>after"]),
    (b"\n\x00", True, b"7 <13>one254 <13>" + b"x" * 250 + b"<13>after\n",
     [b"<13>one", b"<13>" + b"x" * 96, b"<13>after"]),
    (b"\x00", False, b'{"a":1}\x00{"b":"' + b"x" * 250 + b'"}\x00{"c":2}\x00',
     [b'{"a":1}', b'{"b":"' + b"x" * 94, b'{"c":2}']),
], ids=["line", "octet-counted", "gelf"])
@pytest.mark.parametrize("read", [1, 7, 100, 263, 10_000])
def test_an_oversized_message_is_cut_and_the_stream_goes_on(delimiters, counting, stream,
                                                            expected, read):
    """A message over the limit keeps its first bytes; the rest of it is dropped and the
    messages after it come through, whatever the reads' sizes."""
    framer = StreamFramer(delimiters, octet_counting=counting, max_frame=100)
    frames = [frame for i in range(0, len(stream), read)
              for frame in framer.feed(stream[i:i + read])]
    assert frames == expected
    assert framer.flush() == []
    assert framer.cut == 1


def test_digits_and_a_bracket_are_not_an_octet_count_without_a_priority():
    """"3 <b>" starts a line of text, not a 3-byte frame: only `LEN <PRI>` counts."""
    framer = StreamFramer(b"\n", octet_counting=True, max_frame=100)
    assert framer.feed(b"3 <b>bold</b>\n99999 <not a priority>\n") == [
        b"3 <b>bold</b>", b"99999 <not a priority>"]


def test_the_rest_of_a_cut_message_is_not_a_last_message():
    """A sender that closes in the middle of an oversized line leaves nothing more."""
    framer = StreamFramer(b"\n", octet_counting=True, max_frame=100)
    assert framer.feed(b"<13>" + b"x" * 150) == [b"<13>" + b"x" * 96]
    assert framer.feed(b"y" * 50) == []
    assert framer.flush() == []


def test_plain_lines_that_start_with_digits_are_lines():
    """Only `LEN <PRI>...` is octet counting (RFC 6587 frames a syslog message, which
    starts with <PRI>): a line such as a date or "200 OK" is a line of its own."""
    framer = StreamFramer(b"\n\x00", octet_counting=True, max_frame=1000)
    stream = b"<13>first\n2024-05-01 12:00:00 app started\n200 OK sent\n12 <13>1 - a b\n7\n"
    assert framer.feed(stream) == [b"<13>first", b"2024-05-01 12:00:00 app started",
                                   b"200 OK sent", b"<13>1 - a b\n", b"7"]


def test_an_oversized_message_does_not_cost_the_connection_its_later_lines(app):
    """Over TCP, the lines after a message over the 1 MiB limit arrive too (the long one is
    cut); the connection stays open for more."""

    async def scenario():
        batcher = Batcher(app, "syslog", max_lines=100, max_seconds=60)

        async def queued(count: int) -> None:
            """Wait until the batcher holds count lines."""
            for _ in range(100):
                if len(batcher._items) >= count:
                    return
                await asyncio.sleep(0.05)

        server = await asyncio.start_server(
            stream_server(syslog_handler, batcher, syslog_framer, {}), "127.0.0.1", 0)
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(b"<13>one\n<13>" + b"x" * (MAX_FRAME_BYTES + 200_000) + b"\n<13>after\n")
        await writer.drain()
        await queued(3)
        writer.write(b"<13>still open\n")
        await writer.drain()
        await queued(4)
        writer.close()
        server.close()
        return [item["message"][:10] for item in batcher._items]

    assert asyncio.run(scenario()) == ["one", "x" * 10, "after", "still open"]


def _chunks(message: bytes, size: int, message_id: bytes = b"12345678") -> list[bytes]:
    """Split a GELF message into chunked datagrams."""
    parts = [message[i:i + size] for i in range(0, len(message), size)]
    return [b"\x1e\x0f" + message_id + bytes([n, len(parts)]) + p for n, p in enumerate(parts)]


def test_gelf_chunks_reassemble_in_any_order_and_expire():
    """Out-of-order chunks make one message; an incomplete one is forgotten in time."""
    message = os.urandom(5000)
    assembler = ChunkAssembler(timeout=0.05)
    chunks = _chunks(message, 600)
    random.shuffle(chunks)
    results = [assembler.add(chunk) for chunk in chunks]
    assert results[-1] == message and results[:-1] == [None] * (len(chunks) - 1)
    assembler.add(_chunks(message, 600, b"abcdefgh")[0])
    assert len(assembler) == 1
    time.sleep(0.06)
    assert assembler.add(b"{}") == b"{}" and assembler.add(_chunks(b"x" * 10, 4)[0]) is None
    assert len(assembler) == 1  # the stale one expired, the new one waits
    with pytest.raises(GelfError):
        assembler.add(b"\x1e\x0f" + b"12345678" + bytes([5, 3]) + b"x")


def test_gelf_chunks_held_are_bounded_in_bytes():
    """A message whose chunks add up past the frame limit is dropped as they arrive, and
    partial messages together never hold more than their budget: the oldest go first."""
    assembler = ChunkAssembler(max_message_bytes=1000, max_total_bytes=1000)
    big = _chunks(b"x" * 1800, 600, b"bigbigbi")
    assert assembler.add(big[0]) is None
    with pytest.raises(GelfError, match="larger than 1000 bytes"):
        assembler.add(big[1])
    assert len(assembler) == 0
    for n in range(3):
        assert assembler.add(_chunks(b"y" * 900, 450, bytes([n]) * 8)[0]) is None
    assert len(assembler) == 2  # 3 x 450 bytes is past the budget: the first went
    assert assembler.add(_chunks(b"y" * 900, 450, bytes([2]) * 8)[1]) == b"y" * 900
    assert len(assembler) == 0  # the second went to make room for the third's last chunk


def test_gelf_decompression_detects_gzip_zlib_and_plain():
    """Compression is told from the bytes; a bomb is refused."""
    document = b'{"short_message": "hi"}'
    assert decompress(gzip.compress(document), 1000) == document
    assert decompress(zlib.compress(document), 1000) == document
    assert decompress(document, 1000) == document
    with pytest.raises(GelfError):
        decompress(zlib.compress(b"0" * 10_000), 1000)
    with pytest.raises(GelfError):
        decompress(zlib.compress(document)[:-4], 1000)
    # Gzip members joined end to end are all read; anything else after a stream is refused.
    assert decompress(gzip.compress(document[:9]) + gzip.compress(document[9:]), 1000) == document
    with pytest.raises(GelfError):
        decompress(zlib.compress(document) + b"tail", 1000)


def test_a_gelf_chunk_that_fits_no_message_is_refused_with_its_reason(caplog):
    """A chunk header numbering its chunk past the count is the sender's mistake: refused
    with the reason, without a traceback in the log for every such datagram."""
    handle = gelf_udp_handler()
    with caplog.at_level(logging.WARNING):
        (refused,) = handle(b"\x1e\x0f" + b"12345678" + bytes([7, 3]) + b"part", "192.0.2.1")
    assert refused.error == "not a GELF chunk: chunk 7 of 3 is out of range"
    assert caplog.records == []


def test_settings_read_ports_and_switches(monkeypatch):
    """Ports default to 5514 / 12201 (also when empty); 0 or off disables one; a bad value
    is named."""
    monkeypatch.setenv("LOGDASH_SYSLOG_TCP_PORT", "off")
    monkeypatch.setenv("LOGDASH_LISTEN_BATCH_MS", "50")
    settings = listener_settings({"LOGDASH_GELF_UDP_PORT": "0"})
    assert (settings.syslog_udp, settings.syslog_tcp, settings.gelf_udp, settings.gelf_tcp) \
        == (5514, None, None, 12201)
    assert settings.batch_seconds == 0.05
    with pytest.raises(ValueError, match="LOGDASH_GELF_TCP_PORT"):
        listener_settings({"LOGDASH_GELF_TCP_PORT": "70000"})
    # Left empty, a port is its default, as every setting (not off).
    assert listener_settings({"LOGDASH_SYSLOG_UDP_PORT": " "}).syslog_udp == 5514


# ---- the listener, on real sockets ---------------------------------------------------

def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody uses right now (for both UDP and TCP)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class RunningListener:
    """The listener on its own event loop in a thread, as `flask listen` runs it."""

    def __init__(self, app, settings: ListenerSettings) -> None:
        """Start it and wait until every receiver is bound."""
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.listener = Listener(app, settings)
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        """Bind, serve until stopped, then store what is queued."""
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.listener.start())
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.listener.stop())
        self.loop.close()

    def stop(self) -> None:
        """Stop the loop and wait for the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)


@pytest.fixture
def listener(app):
    """Syslog and GELF receivers on free loopback ports, batching every 50 ms."""
    syslog_port = free_port()
    gelf_port = free_port()
    while gelf_port == syslog_port:  # the kernel may hand out a just-freed port again
        gelf_port = free_port()
    running = RunningListener(app, ListenerSettings(
        bind="127.0.0.1", syslog_udp=syslog_port, syslog_tcp=syslog_port, gelf_udp=gelf_port,
        gelf_tcp=gelf_port, batch_lines=1000, batch_seconds=0.05))
    yield running
    running.stop()


def stored(where: str = "TRUE", **params) -> list[dict]:
    """Stored lines matching a condition, oldest first."""
    rows = db.session.execute(text(
        "SELECT service, level, host, message, attributes FROM logs.entries"
        f" WHERE {where} ORDER BY timestamp, id"), params).mappings().all()
    db.session.rollback()
    return [dict(row) for row in rows]


def wait_for(count: int, where: str = "TRUE", timeout: float = 10, **params) -> list[dict]:
    """Poll until at least `count` lines match (the listener stores asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = stored(where, **params)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def run_logger(port: int, *args: str, message: str | None = None, stdin: str | None = None):
    """Send with util-linux logger to the listener."""
    command = [LOGGER, "--server", "127.0.0.1", "--port", str(port), *args]
    subprocess.run([*command, *([message] if message else [])], input=stdin, text=True,
                   check=True, timeout=10)


@needs_logger
@pytest.mark.parametrize("transport", ["--udp", "--tcp"])
def test_logger_rfc5424(listener, transport):
    """`logger --rfc5424`: tag → service, priority → level, host, structured data."""
    port = listener.settings.syslog_udp
    run_logger(port, transport, "--rfc5424", "-t", "billing", "-p", "user.err", "--id=42",
               "--msgid", "ID47", "--sd-id", "order@32473", "--sd-param", 'id="1234"',
               message="card declined")
    [line] = wait_for(1)
    assert (line["service"], line["level"], line["message"]) == ("billing", "error",
                                                                 "card declined")
    assert line["host"] in (HOSTNAME, HOSTNAME.split(".")[0])
    attributes = line["attributes"]
    assert attributes["order@32473"] == {"id": "1234"} and attributes["procid"] == "42"
    assert attributes["msgid"] == "ID47" and attributes["facility"] == "user"


@needs_logger
@pytest.mark.parametrize("transport", ["--udp", "--tcp"])
def test_logger_rfc3164(listener, transport):
    """`logger --rfc3164`: the BSD format, tag and host read from the header."""
    run_logger(listener.settings.syslog_udp, transport, "--rfc3164", "-t", "cron",
               "-p", "daemon.warning", message="job late")
    [line] = wait_for(1)
    assert (line["service"], line["level"], line["message"]) == ("cron", "warning", "job late")
    assert line["host"] in (HOSTNAME, HOSTNAME.split(".")[0])
    assert line["attributes"]["facility"] == "daemon"


@needs_logger
@pytest.mark.parametrize("framing", [[], ["--octet-count"]])
def test_logger_tcp_many_lines_on_one_connection(listener, framing):
    """Several messages on one TCP connection, newline-terminated or octet-counted."""
    run_logger(listener.settings.syslog_tcp, "--tcp", "--rfc5424", *framing, "-t", "batch",
               "-p", "local0.info", stdin="".join(f"line {n}\n" for n in range(50)))
    lines = wait_for(50)
    assert [line["message"] for line in lines] == [f"line {n}" for n in range(50)]
    assert {line["service"] for line in lines} == {"batch"}


@pytest.mark.parametrize("socktype", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_python_sysloghandler(listener, socktype):
    """The standard library's SysLogHandler over UDP and TCP: levels map, ident names the
    service, and the sender's address is the host (the handler names none)."""
    handler = logging.handlers.SysLogHandler(("127.0.0.1", listener.settings.syslog_udp),
                                             socktype=socktype)
    handler.ident = "payments: "
    logger = logging.getLogger(f"test.syslog.{socktype}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                      logging.CRITICAL):
            logger.log(level, "charge %s", logging.getLevelName(level))
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = wait_for(5)
    assert [(line["service"], line["level"], line["message"], line["host"]) for line in lines] \
        == [("payments", level, f"charge {name}", "127.0.0.1") for level, name in (
            ("debug", "DEBUG"), ("info", "INFO"), ("warning", "WARNING"), ("error", "ERROR"),
            ("critical", "CRITICAL"))]


def test_python_sysloghandler_over_tcp_keeps_a_traceback_in_its_message(listener):
    """A logged exception is one line, traceback included, not a line per text line."""
    handler = logging.handlers.SysLogHandler(("127.0.0.1", listener.settings.syslog_tcp),
                                             socktype=socket.SOCK_STREAM)
    handler.ident = "payments: "
    logger = logging.getLogger("test.syslog.traceback")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for attempt in range(2):
            try:
                1 / 0  # noqa: B018 (the exception is the point)
            except ZeroDivisionError:
                logger.exception("charge %d failed", attempt)
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = wait_for(2)
    time.sleep(0.2)  # any stray line of a split traceback would be stored by now
    lines = stored()
    assert [(line["service"], line["level"]) for line in lines] == [("payments", "error")] * 2
    for attempt, line in enumerate(lines):
        assert line["message"].startswith(f"charge {attempt} failed\nTraceback")
        assert line["message"].endswith("ZeroDivisionError: division by zero")


def http_to_log_port(port: int, body: bytes) -> bytes:
    """POST body to a TCP log port as a browser would (a web page can make it); return what
    comes back before the port closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example"
                     b"\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        return sock.recv(1024)


def test_http_requests_to_the_log_ports_store_nothing(listener):
    """A web page cannot use a browser to put lines in through the TCP ports: a connection
    that starts as an HTTP request is closed unread, its header lines and body with it."""
    injected = b"\n<11>Nov 28 06:50:00 victim injected: by a web page\n"
    assert http_to_log_port(listener.settings.syslog_tcp, injected) == b""
    gelf = json.dumps({"version": "1.1", "host": "victim", "short_message": "injected"})
    assert http_to_log_port(listener.settings.gelf_tcp, b"\x00" + gelf.encode() + b"\x00") \
        == b""
    with socket.create_connection(("127.0.0.1", listener.settings.syslog_tcp)) as sock:
        sock.sendall(b"<14>Nov 28 06:50:01 host honest: after them\n")
    assert wait_for(1)
    time.sleep(0.2)
    assert [row["message"] for row in stored()] == ["after them"]


def test_lines_without_a_time_keep_the_time_they_arrived(app):
    """Not the time their batch was stored, which may come much later (here: a batch
    waits a second; in an outage, until the database is back)."""
    port = free_port()
    running = RunningListener(app, ListenerSettings(
        bind="127.0.0.1", syslog_udp=port, syslog_tcp=None, gelf_udp=None, gelf_tcp=None,
        batch_lines=1000, batch_seconds=1.0))
    try:
        sent = datetime.now(UTC)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"<14>app: no time of its own", ("127.0.0.1", port))
        assert wait_for(1)
    finally:
        running.stop()
    stamped = db.session.execute(text("SELECT timestamp FROM logs.entries")).scalar_one()
    db.session.rollback()
    assert sent <= stamped < sent + timedelta(milliseconds=500)


def test_a_traceback_sent_in_several_packets_is_one_line(listener):
    """Over a network a long message arrives in pieces; one that ends in a newline, with
    the rest a moment later, is still one message."""
    message = b"<11>payments: charge failed\nTraceback (most recent call last):\n"
    rest = b"  File \"pay.py\", line 3\nValueError: no card\x00<14>payments: after\n"
    with socket.create_connection(("127.0.0.1", listener.settings.syslog_tcp)) as sock:
        sock.sendall(message)
        time.sleep(0.05)  # well within the pause that ends a message
        sock.sendall(rest)
    lines = wait_for(2)
    assert [line["message"] for line in lines] == [
        "charge failed\nTraceback (most recent call last):\n  File \"pay.py\", line 3\n"
        "ValueError: no card", "after"]


def gelf_logger(handler: logging.Handler) -> logging.Logger:
    """A logger that sends only to the handler."""
    logger = logging.getLogger(f"test.gelf.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_graypy_udp_plain_and_chunked(listener):
    """graypy over UDP: zlib-compressed, and chunked when larger than the chunk size."""
    handler = graypy.GELFUDPHandler("127.0.0.1", listener.settings.gelf_udp,
                                    facility="checkout", localname="shop-7")
    logger = gelf_logger(handler)
    big = os.urandom(8000).hex()  # random: still ~8 KB compressed, so several 1420-byte chunks
    try:
        logger.error("order %s failed", 7, extra={"order_id": 7})
        logger.warning(big)
    finally:
        handler.close()
    lines = wait_for(2, "service = 'checkout'")
    assert [(line["level"], line["message"][:20]) for line in lines] == [
        ("error", "order 7 failed"), ("warning", big[:20])]
    assert lines[1]["message"] == big and lines[0]["attributes"]["order_id"] == 7
    assert lines[0]["host"] == "shop-7"


def test_graypy_tcp(listener):
    """graypy over TCP: NUL-terminated JSON."""
    handler = graypy.GELFTCPHandler("127.0.0.1", listener.settings.gelf_tcp, facility="cart")
    logger = gelf_logger(handler)
    try:
        for n in range(3):
            logger.info("item %d added", n)
    finally:
        handler.close()
    lines = wait_for(3, "service = 'cart'")
    assert [line["message"] for line in lines] == ["item 0 added", "item 1 added",
                                                   "item 2 added"]


def _junk(rng: random.Random) -> bytes:
    """A datagram that is garbage in one of several ways."""
    choice = rng.randrange(6)
    size = rng.randint(0, 3000)
    if choice == 0:
        return rng.randbytes(size)
    if choice == 1:  # a chunk header with random ids, counts and numbers
        return b"\x1e\x0f" + rng.randbytes(rng.randint(0, 20))
    if choice == 2:  # a zlib or gzip header followed by garbage
        return rng.choice([b"\x78\x9c", b"\x1f\x8b"]) + rng.randbytes(size)
    if choice == 3:  # JSON that is not GELF
        return json.dumps(rng.choice([[], {}, {"level": "x"}, 5, "s", {"short_message": []}]
                                     )).encode()
    if choice == 4:  # syslog-looking prefixes with broken rest
        return rng.choice([b"<", b"<999>", b"<13>1 ", b"<13>1 - - - - - [", b"<13>Jan"]) \
            + rng.randbytes(rng.randint(0, 50))
    return zlib.compress(rng.randbytes(size))


def test_malformed_input_never_stops_the_listener(listener):
    """Hundreds of garbage datagrams and connections, then good messages still arrive."""
    rng = random.Random(5424)
    ports = (listener.settings.syslog_udp, listener.settings.gelf_udp)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(400):
            udp.sendto(_junk(rng), ("127.0.0.1", rng.choice(ports)))
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", rng.choice(ports)), timeout=5) as tcp:
            tcp.sendall(rng.choice([b"99999999999 x", b"12 <13>cut", b"{\x00}\x00"])
                        + _junk(rng) + rng.choice([b"", b"\n", b"\x00"]))
    time.sleep(0.3)
    assert listener.thread.is_alive()
    before = len(stored())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<11>1 - h survivor - - - still here", ("127.0.0.1", ports[0]))
        udp.sendto(json.dumps({"version": "1.1", "host": "h", "short_message": "gelf ok",
                               "_service": "survivor"}).encode(), ("127.0.0.1", ports[1]))
    survivors = wait_for(2, "service = 'survivor'")
    assert sorted(line["message"] for line in survivors) == ["gelf ok", "still here"]
    assert len(stored()) >= before + 2


def test_batches_go_at_the_line_limit_and_after_the_wait(app, monkeypatch):
    """A full batch goes at once; a partial one after max_seconds; both in order."""
    calls = []
    monkeypatch.setattr(batcher_module, "ingest_items",
                        lambda items, *a, **k: (calls.append((len(items), k)) or (
                            {"accepted": len(items), "rejected": 0, "errors": []}, False)))

    async def scenario():
        batcher = Batcher(app, "syslog", max_lines=10, max_seconds=0.2)
        task = asyncio.create_task(batcher.run())
        batcher.add([{"message": str(n)} for n in range(25)])
        await asyncio.sleep(0.05)
        full = list(calls)
        await asyncio.sleep(0.3)
        batcher.close()
        await task
        batcher.shutdown()
        return full

    full = asyncio.run(scenario())
    assert [size for size, _ in full] == [10, 10]
    assert [size for size, _ in calls] == [10, 10, 5]
    assert calls[0][1] == {"receiver": "syslog"}


def test_storing_retries_while_the_database_is_away(app, monkeypatch):
    """An unreachable database delays a batch, it is not lost; a bug drops only that batch."""
    from sqlalchemy.exc import OperationalError

    outcomes = [OperationalError("COPY", {}, Exception("server closed the connection")),
                None, ValueError("a bug"), None]
    stored_sizes = []

    def fake_ingest(items, *args, **kwargs):
        """Fail as scripted, else store."""
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        stored_sizes.append(len(items))
        return {"accepted": len(items), "rejected": 0, "errors": []}, False

    monkeypatch.setattr(batcher_module, "ingest_items", fake_ingest)
    monkeypatch.setattr(batcher_module, "RETRY_FIRST_SECONDS", 0.01)

    async def scenario():
        batcher = Batcher(app, "syslog", max_lines=2, max_seconds=0.01)
        task = asyncio.create_task(batcher.run())
        batcher.add([{}, {}])
        await asyncio.sleep(0.1)
        batcher.add([{}, {}, {}])
        batcher.close()
        await task
        batcher.shutdown()
        return batcher.dropped

    assert asyncio.run(scenario()) == 2
    assert stored_sizes == [2, 1]


def test_a_batch_the_database_will_never_take_is_dropped_not_retried(app, monkeypatch):
    """Only errors that pass are retried: a full disk is not one, and retrying its batch
    without end would hold up every line behind it."""
    calls = []

    def fail(items, *args, **kwargs):
        """The server refuses the batch for good."""
        calls.append(len(items))
        raise psycopg.errors.DiskFull("could not extend file")

    monkeypatch.setattr(batcher_module, "ingest_items", fail)
    monkeypatch.setattr(batcher_module, "RETRY_FIRST_SECONDS", 0.01)

    async def scenario():
        batcher = Batcher(app, "syslog", max_lines=3, max_seconds=0.01)
        task = asyncio.create_task(batcher.run())
        batcher.add([{}, {}, {}])
        await asyncio.sleep(0.2)
        batcher.close()
        await task
        batcher.shutdown()
        return batcher.dropped

    assert asyncio.run(scenario()) == 3
    assert calls == [3]


def _lock_waiters(admin) -> list:
    """Backends waiting for a row lock while adding to the minute counts."""
    return admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE 'INSERT INTO logs.rollup_minute%%'").fetchall()


async def _until(check, seconds: float = 5.0):
    """Poll until check() is true; return its last value."""
    for _ in range(int(seconds / 0.02)):
        if result := check():
            return result
        await asyncio.sleep(0.02)
    return check()


@pytest.mark.parametrize("cut_off", ["server ends the session", "lock timeout"])
def test_a_batch_cut_off_by_the_database_is_retried(app, database_url, monkeypatch, cut_off):
    """A batch the database breaks off is stored when retried, once: whether the server
    ends its session, or a lock timeout raises psycopg's own OperationalError from the
    COPY's cursor (which SQLAlchemy does not wrap) on a connection that stays usable."""
    monkeypatch.setattr(batcher_module, "RETRY_FIRST_SECONDS", 0.05)
    moment = datetime.now(UTC).replace(second=10, microsecond=0)
    line = {"service": "cut-off-test", "message": "hello", "timestamp": moment.isoformat()}
    ingest_items([dict(line)], None, app.config)  # the count row the batch will update
    db.session.remove()

    async def scenario(admin, holder):
        batcher = Batcher(app, "syslog", max_lines=1, max_seconds=0.01)
        task = asyncio.create_task(batcher.run())
        batcher.add([dict(line)])
        waiting = await _until(lambda: _lock_waiters(admin))
        assert waiting, "the batch never waited for the locked row"
        if cut_off == "server ends the session":
            admin.execute("SELECT pg_terminate_backend(%s)", waiting[0])
        else:
            assert await _until(lambda: not _lock_waiters(admin)), "no lock timeout"
        holder.rollback()
        await _until(lambda: batcher.dropped or admin.execute(
            "SELECT count(*) > 1 FROM logs.entries WHERE service = 'cut-off-test'").fetchone()[0])
        batcher.close()
        await task
        batcher.shutdown()
        return batcher.dropped

    with psycopg.connect(database_url, autocommit=True) as admin, \
            psycopg.connect(database_url) as holder:
        if cut_off == "lock timeout":
            admin.execute("ALTER DATABASE " + admin.info.dbname + " SET lock_timeout = '300ms'")
            db.engine.dispose()  # new connections take the setting
        try:
            holder.execute("SELECT 1 FROM logs.rollup_minute WHERE service = 'cut-off-test'"
                           " FOR UPDATE")
            dropped = asyncio.run(scenario(admin, holder))
        finally:
            admin.execute("ALTER DATABASE " + admin.info.dbname + " RESET lock_timeout")
            db.engine.dispose()
    assert dropped == 0
    stored = db.session.execute(text(
        "SELECT count(*) FROM logs.entries WHERE service = 'cut-off-test'")).scalar()
    counted = db.session.execute(text(
        "SELECT sum(count) FROM logs.rollup_minute WHERE service = 'cut-off-test'")).scalar()
    assert (stored, counted) == (2, 2)


def test_tcp_lines_beyond_the_queue_limit_wait_rather_than_drop(app, monkeypatch):
    """With the queue full, a TCP read's lines are all kept and the reader pauses until
    there is room again; UDP's extra datagrams are dropped, as datagrams may be."""

    async def scenario():
        batcher = Batcher(app, "syslog", max_lines=100, max_seconds=60, max_pending=10)
        server = await asyncio.start_server(
            stream_server(syslog_handler, batcher, syslog_framer, {}), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        # NUL-terminated: a line that ends a read is not held for the next one.
        writer.write(b"".join(b"<13>line %d\x00" % n for n in range(15)))
        await writer.drain()
        for _ in range(100):
            if len(batcher._items) >= 15:
                break
            await asyncio.sleep(0.01)
        queued_tcp = len(batcher._items)
        batcher.add([{"message": "a datagram"}])  # what the UDP receiver does
        writer.write(b"<13>later\x00")  # not read while the queue is full
        await writer.drain()
        await asyncio.sleep(0.2)
        held = len(batcher._items)
        task = asyncio.create_task(batcher.run())  # storing makes room: reading goes on
        for _ in range(200):
            if "later" in stored:
                break
            await asyncio.sleep(0.01)
        batcher.close()
        await task
        batcher.shutdown()
        writer.close()
        server.close()
        return queued_tcp, held, batcher.dropped, stored[-1]

    stored = []
    monkeypatch.setattr(batcher_module, "ingest_items", lambda items, *a, **k: (
        stored.extend(item.get("message") for item in items),
        ({"accepted": len(items), "rejected": 0, "errors": []}, False))[1])
    assert asyncio.run(scenario()) == (15, 15, 1, "later")
    assert len(stored) == 16  # the 15 lines of the first read, then "later"


def test_a_queue_full_of_long_lines_makes_tcp_wait_too(app):
    """The queue is bounded in message bytes as well as in lines: past the bytes, a TCP
    reader waits and UDP datagrams are dropped, however few the lines."""

    async def scenario():
        batcher = Batcher(app, "syslog", max_lines=100, max_seconds=60, max_pending=1000,
                          max_pending_bytes=10_000)
        server = await asyncio.start_server(
            stream_server(syslog_handler, batcher, syslog_framer, {}), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(b"<13>%s\n" % (b"x" * 4000) for _ in range(3)))
        await writer.drain()
        for _ in range(100):
            if len(batcher._items) >= 3:
                break
            await asyncio.sleep(0.01)
        batcher.add([{"message": "a datagram"}])
        writer.write(b"<13>later\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        held = len(batcher._items)
        batcher.close()
        writer.close()
        server.close()
        return held, batcher.dropped

    assert asyncio.run(scenario()) == (3, 1)
    # GELF's text fields count too, not only a field called message.
    gelf = Batcher(app, "gelf", max_lines=100, max_seconds=60, max_pending_bytes=10_000)
    gelf.add([{"short_message": "x", "full_message": "y" * 6000, "_trace": "z" * 4000}])
    gelf.add([{"short_message": "dropped"}])
    assert (len(gelf._items), gelf.dropped) == (1, 1)


def test_listen_command_runs_until_sigterm(database_url, redis_url, queue_prefix, app):
    """`flask --app app listen` binds the configured ports, stores lines, stops cleanly."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "SECRET_KEY": "secret-of-the-listener-test", "LOGDASH_QUEUE_PREFIX": queue_prefix,
           "LOGDASH_LISTEN_BIND": "127.0.0.1", "LOGDASH_SYSLOG_UDP_PORT": str(port),
           "LOGDASH_SYSLOG_TCP_PORT": "off", "LOGDASH_GELF_UDP_PORT": "0",
           "LOGDASH_GELF_TCP_PORT": str(free_port())}
    flask = Path(sys.executable).parent / "flask"
    process = subprocess.Popen([str(flask), "--app", "app", "listen"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        announced = [process.stdout.readline().strip() for _ in range(2)]
        assert announced == [f"listening: syslog/udp on 127.0.0.1:{port}",
                             f"listening: gelf/tcp on 127.0.0.1:{env['LOGDASH_GELF_TCP_PORT']}"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"<12>1 - edge1 nginx - - - upstream slow", ("127.0.0.1", port))
        [line] = wait_for(1)
        assert (line["service"], line["level"], line["host"]) == ("nginx", "warning", "edge1")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output


# ---- how it is started and documented ------------------------------------------------

def test_embedded_run_starts_the_listener_only_when_enabled():
    """manage.py run starts the Procfile's syslog line only with LOGDASH_SYSLOG_ENABLE=1."""
    import manage

    assert manage.procfile_commands()["syslog"] == "flask --app app listen"
    assert "syslog" not in manage.wanted_processes({})
    assert "syslog" not in manage.wanted_processes({"LOGDASH_SYSLOG_ENABLE": "0"})
    assert manage.wanted_processes({"LOGDASH_SYSLOG_ENABLE": "1"})[-1] == "syslog"
    # A typo stops the run, naming the variable, rather than quietly meaning off.
    with pytest.raises(SystemExit, match="LOGDASH_SYSLOG_ENABLE must be on or off"):
        manage.wanted_processes({"LOGDASH_SYSLOG_ENABLE": "enabled"})


def test_every_setting_is_documented():
    """Each LOGDASH_* variable the code reads is in .env.example and docs/configuration.md."""
    import re

    sources = [*ROOT.joinpath("app").rglob("*.py"), ROOT / "manage.py", ROOT / "Procfile"]
    used = {name for path in sources
            for name in re.findall(r"\bLOGDASH_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    assert "LOGDASH_SYSLOG_UDP_PORT" in used
    for document in (ROOT / ".env.example", ROOT / "docs/configuration.md"):
        text_of_doc = document.read_text()
        assert {name for name in used if name not in text_of_doc} == set(), document


def test_listen_refuses_a_bad_port_or_one_in_use_in_a_sentence(app):
    """A port that is no number, or one another program holds, stops `flask listen` with
    an error line, not a traceback."""
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["listen", "--syslog-udp-port", "abc"])
    assert bad.exit_code == 1
    assert "--syslog-udp-port must be a port number" in bad.output
    assert "Traceback" not in bad.output
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = runner.invoke(args=["listen", "--bind", "127.0.0.1", "--syslog-tcp-port",
                                   str(port), "--syslog-udp-port", "0", "--gelf-udp-port", "0",
                                   "--gelf-tcp-port", "0"])
    assert busy.exit_code == 1, busy.output
    assert "cannot listen on 127.0.0.1" in busy.output and "in use" in busy.output
