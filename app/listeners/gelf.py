"""GELF's UDP and TCP transport: chunk reassembly and compression.

What a GELF document means (its fields, host, level, `_extra` fields) is decided by
`app.ingest.gelf.parse_messages`, shared with the HTTP GELF input (POST /gelf); this module
only turns datagrams and TCP frames into the JSON documents it reads.
"""

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from app.ingest.bodies import InflateError, LineError, inflate
from app.ingest.gelf import parse_messages
from app.listeners.settings import MAX_FRAME_BYTES

CHUNK_MAGIC = b"\x1e\x0f"
CHUNK_HEADER = 12  # magic (2), message id (8), sequence number (1), sequence count (1)
MAX_CHUNKS = 128  # the GELF spec's limit
CHUNK_TIMEOUT_SECONDS = 5.0  # the spec: drop a message whose chunks do not all arrive by then
MAX_PENDING_MESSAGES = 1000  # partial messages kept at once; the oldest go first
# Bytes partial messages may hold together (1000 of 128 chunks of 64 KiB would be 8 GiB).
MAX_PENDING_BYTES = 64 * 1024 * 1024


class GelfError(ValueError):
    """A datagram or frame that holds no usable GELF document."""


def decompress(data: bytes, max_bytes: int) -> bytes:
    """Undo gzip or zlib compression (told apart by their headers); plain JSON passes."""
    if data[:2] == b"\x1f\x8b":
        wbits = 31
    elif len(data) > 1 and data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0:
        wbits = 15
    else:
        return data
    try:
        return inflate(data, wbits, max_bytes)
    except InflateError as error:
        if error.too_large:
            raise GelfError(f"decompressed message is {error}") from None
        raise GelfError(f"not valid compressed data: {error}") from None


@dataclass
class _Partial:
    """A chunked message still being received."""

    started: float
    count: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class ChunkAssembler:
    """Collect the chunks of chunked GELF datagrams until each message is whole, within
    bounds: a message's chunks may add up to max_message_bytes, and all partial messages
    together to max_total_bytes (the oldest are forgotten first)."""

    def __init__(self, timeout: float = CHUNK_TIMEOUT_SECONDS,
                 max_pending: int = MAX_PENDING_MESSAGES,
                 max_message_bytes: int = MAX_FRAME_BYTES,
                 max_total_bytes: int = MAX_PENDING_BYTES) -> None:
        """Start with no partial messages."""
        self._pending: OrderedDict[bytes, _Partial] = OrderedDict()
        self._timeout = timeout
        self._max_pending = max_pending
        self._max_message_bytes = max_message_bytes
        self._max_total_bytes = max_total_bytes
        self._bytes = 0

    def add(self, datagram: bytes) -> bytes | None:
        """Take one datagram; return a whole message when it is one or completes one."""
        if not datagram.startswith(CHUNK_MAGIC):
            return datagram
        if len(datagram) < CHUNK_HEADER:
            raise GelfError("chunk is shorter than its header")
        message_id = datagram[2:10]
        number, count = datagram[10], datagram[11]
        if not 0 < count <= MAX_CHUNKS or number >= count:
            raise GelfError(f"chunk {number} of {count} is out of range")
        self._expire()
        partial = self._pending.get(message_id)
        if partial is None:
            # Kept in order of first chunk, so the oldest are expired or evicted first.
            partial = self._pending[message_id] = _Partial(time.monotonic(), count)
            if len(self._pending) > self._max_pending:
                self._forget(next(iter(self._pending)))
        if partial.count != count:
            raise GelfError("chunks of one message disagree on their count")
        part = datagram[CHUNK_HEADER:]
        grown = len(part) - len(partial.parts.get(number, b""))
        partial.parts[number] = part
        partial.size += grown
        self._bytes += grown
        if partial.size > self._max_message_bytes:
            self._forget(message_id)
            raise GelfError(f"chunked message is larger than {self._max_message_bytes} bytes")
        while self._bytes > self._max_total_bytes:
            self._forget(next(iter(self._pending)))
        if len(partial.parts) < count or message_id not in self._pending:
            return None
        self._forget(message_id)
        return b"".join(partial.parts[i] for i in range(count))

    def _forget(self, message_id: bytes) -> None:
        """Drop one partial message and the bytes it held."""
        self._bytes -= self._pending.pop(message_id).size

    def _expire(self) -> None:
        """Forget partial messages older than the timeout."""
        deadline = time.monotonic() - self._timeout
        while self._pending:
            message_id, partial = next(iter(self._pending.items()))
            if partial.started >= deadline:
                break
            self._forget(message_id)

    def __len__(self) -> int:
        """How many messages are waiting for chunks."""
        return len(self._pending)


def gelf_items(payload: bytes, max_bytes: int) -> list:
    """The log objects of one whole GELF message; a LineError stands for an unusable one."""
    try:
        return parse_messages(decompress(payload, max_bytes))
    except Exception as error:
        # Whatever a sender put in a datagram, the listener keeps running: the message is
        # counted as refused, with the reason.
        return [LineError(f"not a GELF message: {str(error)[:120]}")]

