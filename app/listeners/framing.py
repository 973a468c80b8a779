"""Split a TCP byte stream into messages, without doing any I/O (fed by the servers).

Syslog over TCP (RFC 6587) comes octet-counted (`LEN SP MSG`) or newline-terminated, and
a sender may switch per message; Python's SysLogHandler ends each message with NUL
instead, and its messages may hold newlines (a traceback). GELF over TCP ends each message
with NUL.
"""

import re

# RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, and a syslog message starts with <PRI>.
# A line that merely starts with digits (a date, "200 OK", "3 <b>") is framed by its
# terminator.
_COUNTED = re.compile(rb"(\d{1,10}) (?=<\d{1,3}>)")
# Digits, maybe a space, and nothing yet after them: too early to tell which framing.
_UNDECIDED = re.compile(rb"\d{1,10} ?")
# A NUL that ends a message: at the end of what was received, or before the next <PRI>.
_NUL_END = re.compile(rb"\x00(?:$|<\d)")


class StreamFramer:
    """Accumulate received bytes and hand back each complete message. A message longer than
    max_frame is cut to its first max_frame bytes and the rest of it dropped, as syslog
    servers do: the stream goes on with the next message, and nothing after it is lost."""

    def __init__(self, delimiters: bytes, octet_counting: bool, max_frame: int,
                 nul_framing_sticks: bool = False) -> None:
        """delimiters: the bytes that end a message; octet_counting: accept `LEN SP MSG`;
        nul_framing_sticks: once the sender is seen ending messages with NUL, only NUL
        ends them, so that their newlines stay inside."""
        self._buffer = bytearray()
        # How much of the buffer's start is known to hold no terminator: a sender trickling
        # a long line byte by byte must not make every read search it all again.
        self._searched = 0
        self._end = re.compile(b"[" + re.escape(delimiters) + b"]")
        self._nul_framing_sticks = nul_framing_sticks
        self._octet_counting = octet_counting
        self._max_frame = max_frame
        # The rest of a message that was cut: bytes of a counted one, or up to a terminator.
        self._drop_bytes = 0
        self._drop_line = False
        # How many messages were cut so far, for the server to say so.
        self.cut = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages they complete (empty ones skipped)."""
        self._buffer += data
        frames = []
        while (frame := self._next_frame()) is not None:
            if frame.strip():
                frames.append(bytes(frame))
        return frames

    def flush(self) -> bytes | None:
        """What is left when the sender closes: a last message sent without a terminator."""
        rest, self._buffer, self._searched = bytes(self._buffer), bytearray(), 0
        return rest if rest.strip() and not (self._drop_bytes or self._drop_line) else None

    def _next_frame(self) -> bytes | None:
        """Take one complete message off the buffer, or None when it holds only a part."""
        buffer = self._buffer
        if (self._drop_bytes or self._drop_line) and not self._drop_rest():
            return None
        # Terminators left over from the previous message (CRLF, NUL + LF) are skipped.
        start = 0
        while start < len(buffer) and buffer[start] in b"\r\n\x00":
            start += 1
        if start:
            del buffer[:start]
            self._searched = 0
        if not buffer:
            return None
        if self._octet_counting and buffer[:1].isdigit():
            if _UNDECIDED.fullmatch(buffer):
                return None
            if counted := _COUNTED.match(buffer):
                return self._counted_frame(int(counted[1]), counted.end())
        match = self._end.search(buffer, self._searched)
        if match is not None and self._nul_framing_sticks and self._nul_ends(match):
            match = self._end.search(buffer, self._searched)
        if match is None:
            if len(buffer) > self._max_frame:
                self._drop_line = True
                self.cut += 1
                return self._take(0, self._max_frame)
            self._searched = len(buffer)
            return None
        # Cut there whatever the reads: a long line that ends in the read that took it past
        # the limit is no different from one that ends in the next.
        if match.start() > self._max_frame:
            self.cut += 1
        frame = buffer[:min(match.start(), self._max_frame)]
        del buffer[:match.end()]
        self._searched = 0
        return frame

    def _nul_ends(self, found: re.Match) -> bool:
        """Whether the sender ends its messages with NUL: the terminator found is one, or
        a newline before a NUL that ends a message in what was received. From then on
        only NUL ends this connection's messages. (A message whose NUL has not arrived
        yet when its first newline is found is still cut there: the first one only.)"""
        ends = (_NUL_END.match(self._buffer, found.start()) if found[0] == b"\x00"
                else _NUL_END.search(self._buffer, found.end()))
        if not ends:
            return False
        self._end = re.compile(b"\x00")
        self._nul_framing_sticks = False
        return True

    def _drop_rest(self) -> bool:
        """Drop what the buffer holds of a cut message; whether all of it is gone."""
        buffer = self._buffer
        if self._drop_bytes:
            dropped = min(self._drop_bytes, len(buffer))
            del buffer[:dropped]
            self._drop_bytes -= dropped
            return not self._drop_bytes
        match = self._end.search(buffer)
        del buffer[:match.end() if match else len(buffer)]
        self._drop_line = match is None
        return not self._drop_line

    def _counted_frame(self, length: int, start: int) -> bytes | None:
        """The message of `length` bytes from `start`, once all of it (or as much as is
        kept of a long one) has arrived."""
        kept = min(length, self._max_frame)
        if len(self._buffer) < start + kept:
            return None
        self._drop_bytes = length - kept
        self.cut += length > kept
        return self._take(start, start + kept)

    def _take(self, start: int, end: int) -> bytes:
        """Bytes start to end of the buffer, removed with what comes before them."""
        frame = bytes(self._buffer[start:end])
        del self._buffer[:end]
        self._searched = 0
        return frame
