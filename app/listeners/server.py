"""The UDP and TCP servers of `flask --app app listen`, on one asyncio event loop.

Each received message is parsed into log objects and queued on its receiver's Batcher.
Nothing a sender does (garbage, a half-sent frame, a dropped connection) can stop the
loop: a message that cannot be read is counted as refused and the rest goes on.
"""

import asyncio
import logging
import re
import signal
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask

from app.ingest.bodies import LineError
from app.ingest.records import TIMESTAMP_KEYS, first_present
from app.listeners.batcher import Batcher
from app.listeners.framing import StreamFramer
from app.listeners.gelf import ChunkAssembler, GelfError, gelf_items
from app.listeners.settings import MAX_FRAME_BYTES, ListenerSettings
from app.listeners.syslog import parse_syslog

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024
# How long stopping waits for open TCP connections to hand over what they received.
CLOSE_SECONDS = 2.0
# How long a message that ended with a newline waits for a next line that may continue it
# (a traceback sent in several packets) before it is taken as whole: past a lost packet's
# resending (at least 0.2 s).
SETTLE_SECONDS = 0.5
# Parses one message (bytes) from a peer (its IP address) into log objects.
Handler = Callable[[bytes, str | None], list]
# The request line of an HTTP request: a connection that starts with one is a browser (or
# a script) speaking HTTP to a log port, as a web page can make it do.
_HTTP_REQUEST = re.compile(rb"[A-Z]{3,10} \S+ HTTP/\d")


def _safely(handle: Handler, data: bytes, peer: str | None, arrived: datetime) -> list:
    """Run a parser; a failure it did not foresee refuses that message, never the loop."""
    try:
        return _stamped(handle(data, peer), arrived)
    except Exception as error:
        log.warning("could not read a message from %s", peer, exc_info=True)
        return [LineError(f"message could not be read: {error.__class__.__name__}")]


def _stamped(items: list, arrived: datetime) -> list:
    """Give log objects that carry no time of their own the time they arrived: storing
    may come later (a batch's wait, the database away for a while)."""
    for item in items:
        if isinstance(item, dict):
            key, value = first_present(item, TIMESTAMP_KEYS)
            if value is None:
                item[key or "timestamp"] = arrived.isoformat()
    return items


def syslog_handler(data: bytes, peer: str | None) -> list:
    """One syslog message."""
    return [parse_syslog(data, peer)]


def gelf_udp_handler() -> Handler:
    """GELF datagrams: whole messages, or chunks collected until complete."""
    chunks = ChunkAssembler()

    def handle(data: bytes, peer: str | None) -> list:
        """One datagram; a chunk that cannot belong to a message is refused with the reason."""
        try:
            payload = chunks.add(data)
        except GelfError as error:
            return [LineError(f"not a GELF chunk: {error}")]
        return [] if payload is None else gelf_items(payload, MAX_FRAME_BYTES)

    return handle


def gelf_tcp_handler(data: bytes, peer: str | None) -> list:
    """One NUL-terminated GELF frame."""
    return gelf_items(data, MAX_FRAME_BYTES)


class DatagramReceiver(asyncio.DatagramProtocol):
    """A UDP endpoint: each datagram is one message (or one GELF chunk)."""

    def __init__(self, handle: Handler, batcher: Batcher) -> None:
        """Parse with `handle`, queue on `batcher`."""
        self.handle = handle
        self.batcher = batcher

    def datagram_received(self, data: bytes, addr) -> None:
        """Parse and queue one datagram; empty ones are ignored."""
        if data.strip(b" \r\n\x00"):
            self.batcher.add(_safely(self.handle, data, addr[0], datetime.now(UTC)))

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier send: nothing to do for a receiver."""
        log.debug("UDP error: %s", exc)


def stream_server(handle: Handler, batcher: Batcher, framer: Callable[[], StreamFramer],
                  connections: dict):
    """A TCP connection handler that frames the stream and queues each message.

    `connections` maps each open connection's task to its writer, so stopping can close
    them and wait for what they already received.
    """

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read until the sender closes or the listener stops."""
        peername = writer.get_extra_info("peername")
        peer = peername[0] if peername else None
        frames = framer()
        connections[asyncio.current_task()] = writer
        first, arrived = True, datetime.now(UTC)

        def queue(received: list[bytes]) -> bool:
            """Queue messages; False when the connection turned out to speak HTTP."""
            nonlocal first
            for frame in received:
                if first and _refused_as_http(frame, peer):
                    return False
                first = False
                batcher.add(_safely(handle, frame, peer, arrived), lossless=True)
            return True

        try:
            try:
                while (data := await _next_read(reader, frames.holding)) != b"":
                    if data is not None:
                        arrived = datetime.now(UTC)
                    cut = frames.cut
                    if not queue(frames.settle() if data is None else frames.feed(data)):
                        return
                    if frames.cut > cut:
                        log.warning("cut %d message(s) from %s at %d bytes",
                                    frames.cut - cut, peer, MAX_FRAME_BYTES)
                    await batcher.room()
                cut_off = getattr(reader, "reset", False)
            except OSError:
                cut_off = True
            # Closed, the sender's last bytes are its last message; cut off (a reset), only
            # whole ones are kept, not the part of one it was sending.
            queue(frames.settle() if cut_off else frames.flush())
        finally:
            connections.pop(asyncio.current_task(), None)
            writer.close()

    return serve


async def _next_read(reader: asyncio.StreamReader, holding: bool) -> bytes | None:
    """The next bytes from the sender (b"" once it closed); None when a message is held
    and SETTLE_SECONDS pass without them: the sender paused, its message is whole."""
    if not holding:
        return await reader.read(READ_BYTES)
    read = asyncio.ensure_future(reader.read(READ_BYTES))
    try:
        done, _ = await asyncio.wait({read}, timeout=SETTLE_SECONDS)
    finally:
        # On the timeout, or this task cancelled, no read goes on without it (a cancelled
        # read leaves what it had not returned in the reader).
        read.cancel()
    if read in done:
        return read.result()  # the socket's own errors, a timeout among them, end the loop
    try:
        return await read  # it finished just before it was cancelled
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():
            raise  # this task is being cancelled too, not just the read
        return None


class _Reader(asyncio.StreamReader):
    """A connection's stream; `reset` once it was cut off rather than closed."""

    reset = False


class _ResetEndsTheStream(asyncio.StreamReaderProtocol):
    """A connection reset (or a socket timeout) ends the stream as a close does, so the
    bytes received before it are still read (asyncio would raise before returning them)."""

    def __init__(self, reader: _Reader, connected) -> None:
        """Feed `reader`; call `connected` with each connection's reader and writer."""
        super().__init__(reader, connected)
        self._stream = reader

    def connection_lost(self, exc: Exception | None) -> None:
        """Mark a reset, and end the stream as if closed."""
        if isinstance(exc, OSError):
            self._stream.reset, exc = True, None
        super().connection_lost(exc)


async def start_stream_server(serve, host: str, port: int) -> asyncio.Server:
    """asyncio.start_server, but a reset keeps what came before it readable."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _ResetEndsTheStream(_Reader(limit=READ_BYTES), serve), host, port)


def _refused_as_http(first_frame: bytes, peer: str | None) -> bool:
    """Whether a connection's first message is an HTTP request, whose lines are not logs.

    A web page can make a browser POST to any port, its body lines included, with no way
    for this port to tell where it came from: such a connection is closed unread.
    """
    if not _HTTP_REQUEST.match(first_frame):
        return False
    log.warning("closed a connection from %s that spoke HTTP, not a log protocol", peer)
    return True


def syslog_framer() -> StreamFramer:
    """RFC 6587 framing: octet counting, or LF (NUL for Python's SysLogHandler), with lines
    that start no message continuing the one before."""
    return StreamFramer(b"\n\x00", octet_counting=True, max_frame=MAX_FRAME_BYTES,
                        continued_lines=True)


def gelf_framer() -> StreamFramer:
    """GELF TCP: each message ends with NUL."""
    return StreamFramer(b"\x00", octet_counting=False, max_frame=MAX_FRAME_BYTES)


class Listener:
    """The enabled receivers and their batchers, started and stopped together."""

    def __init__(self, app: Flask, settings: ListenerSettings) -> None:
        """Prepare (nothing is bound until start)."""
        self.app = app
        self.settings = settings
        self.batchers: dict[str, Batcher] = {}
        self.addresses: dict[str, tuple[str, int]] = {}
        self._closers: list = []
        self._tasks: list[asyncio.Task] = []
        self._connections: dict[asyncio.Task, asyncio.StreamWriter] = {}

    def _batcher(self, receiver: str) -> Batcher:
        """The batcher of a receiver (syslog or gelf), shared by its UDP and TCP servers."""
        if receiver not in self.batchers:
            batcher = Batcher(self.app, receiver, self.settings.batch_lines,
                              self.settings.batch_seconds)
            self.batchers[receiver] = batcher
            self._tasks.append(asyncio.create_task(batcher.run()))
        return self.batchers[receiver]

    async def _udp(self, name: str, port: int, handle: Handler, receiver: str) -> None:
        """Bind one UDP receiver."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: DatagramReceiver(handle, self._batcher(receiver)),
            local_addr=(self.settings.bind, port))
        self._closers.append(transport)
        self.addresses[name] = transport.get_extra_info("sockname")[:2]

    async def _tcp(self, name: str, port: int, handle: Handler, receiver: str,
                   framer: Callable[[], StreamFramer]) -> None:
        """Bind one TCP receiver."""
        server = await start_stream_server(
            stream_server(handle, self._batcher(receiver), framer, self._connections),
            self.settings.bind, port)
        self._closers.append(server)
        self.addresses[name] = server.sockets[0].getsockname()[:2]

    async def start(self) -> dict[str, tuple[str, int]]:
        """Bind every enabled receiver; return each one's address."""
        s = self.settings
        if s.syslog_udp:
            await self._udp("syslog/udp", s.syslog_udp, syslog_handler, "syslog")
        if s.syslog_tcp:
            await self._tcp("syslog/tcp", s.syslog_tcp, syslog_handler, "syslog", syslog_framer)
        if s.gelf_udp:
            await self._udp("gelf/udp", s.gelf_udp, gelf_udp_handler(), "gelf")
        if s.gelf_tcp:
            await self._tcp("gelf/tcp", s.gelf_tcp, gelf_tcp_handler, "gelf", gelf_framer)
        return self.addresses

    async def stop(self) -> None:
        """Stop receiving, store everything already received, release the threads."""
        for closer in self._closers:
            closer.close()
        for writer in list(self._connections.values()):
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=CLOSE_SECONDS)
        for batcher in self.batchers.values():
            batcher.close()
        await asyncio.gather(*self._tasks)
        for batcher in self.batchers.values():
            batcher.shutdown()


async def serve(app: Flask, settings: ListenerSettings,
                on_start: Callable[[dict], None] | None = None) -> None:
    """Run the listener until SIGTERM or SIGINT, then store what was received and return."""
    listener = Listener(app, settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopping.set)
    try:
        addresses = await listener.start()
        if on_start is not None:
            on_start(addresses)
        if addresses:
            await stopping.wait()
    finally:
        await listener.stop()
