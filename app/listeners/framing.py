"""Split a TCP byte stream into messages, without doing any I/O (fed by the servers).

Syslog over TCP (RFC 6587) comes octet-counted (`LEN SP MSG`) or newline-terminated, and
a sender may switch per message; Python's SysLogHandler ends each message with NUL
instead, and its messages may hold newlines (a traceback). GELF over TCP ends each message
with NUL.

A syslog message starts with <PRI>: with `continued_lines`, a line after a newline that
starts with neither <PRI> nor an octet count goes on the message before it, so that a
traceback stays one message whatever its terminator. A newline with nothing after it yet
holds the message back (`holding`) until more bytes show where it ends, or the sender
pauses (`settle`).
"""

import re

# RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, and a syslog message starts with <PRI>.
# A line that merely starts with digits (a date, "200 OK", "3 <b>") is framed by its
# terminator.
_COUNTED = re.compile(rb"(\d{1,10}) (?=<\d{1,3}>)")
# Digits, maybe a space, and nothing yet after them: too early to tell which framing.
_UNDECIDED = re.compile(rb"\d{1,10} ?")
# A syslog message's start: <PRI>.
_PRIORITY = re.compile(rb"<\d{1,3}>")
# What starts a message on a line of its own: <PRI>, or an octet count before one.
_MESSAGE_START = re.compile(rb"<\d{1,3}>|\d{1,10} <\d{1,3}>")
# The beginning of one of those, too little to tell yet ("<1", "12 <").
_START_SO_FAR = re.compile(rb"<\d{0,3}|\d{1,10}(?: (?:<\d{0,3})?)?")
# Blank lines, which neither end nor start a message; this many bytes of them do end it
# (a traceback has one at a time), and bound what is looked at and held for a decision.
_BLANK_LINES = re.compile(rb"[\r\n]*")
MAX_BLANK = 8


class StreamFramer:
    """Accumulate received bytes and hand back each complete message. A message longer than
    max_frame is cut to its first max_frame bytes and the rest of it dropped, as syslog
    servers do: the stream goes on with the next message, and nothing after it is lost."""

    def __init__(self, delimiters: bytes, octet_counting: bool, max_frame: int,
                 continued_lines: bool = False) -> None:
        """delimiters: the bytes that end a message; octet_counting: accept `LEN SP MSG`;
        continued_lines: a line that does not start a syslog message continues one."""
        self._buffer = bytearray()
        # How much of the buffer's start is known to hold no terminator: a sender trickling
        # a long line byte by byte must not make every read search it all again.
        self._searched = 0
        self._end = re.compile(b"[" + re.escape(delimiters) + b"]")
        self._continued_lines = continued_lines
        # A message is held at a newline the last byte received, until settle().
        self.holding = False
        self._settling = False
        self._octet_counting = octet_counting
        self._max_frame = max_frame
        # The rest of a message that was cut: bytes of a counted one, or up to a terminator.
        self._drop_bytes = 0
        self._drop_line = False
        # Whether the line-ended message being dropped goes on over lines of its own.
        self._drop_continued = False
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

    def settle(self) -> list[bytes]:
        """The sender paused: a message held at its last newline is complete."""
        self._settling = True
        try:
            return self.feed(b"")
        finally:
            self._settling = False

    def flush(self) -> list[bytes]:
        """What is left when the sender closes: a held message, and a last one sent
        without a terminator."""
        frames = self.settle()
        rest, self._buffer, self._searched = bytes(self._buffer), bytearray(), 0
        if rest.strip() and not (self._drop_bytes or self._drop_line):
            frames.append(rest)
        return frames

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
        self.holding = False
        continued = self._continued_lines and bool(_PRIORITY.match(buffer))
        match = self._terminator(buffer, continued)
        if match is None:
            # A held message ends at its newline: what came after it is not part of it.
            if (self._searched if self.holding else len(buffer)) > self._max_frame:
                self._drop_line, self._drop_continued = True, continued
                self.holding = False
                self.cut += 1
                return self._take(0, self._max_frame)
            if not self.holding:
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

    def _terminator(self, buffer: bytearray, continued: bool) -> re.Match | None:
        """The terminator that ends the buffer's first message, or None while it has none
        (or is held: self.holding). `continued`: the message goes on over lines that
        start no message."""
        while (found := self._end.search(buffer, self._searched)) is not None:
            if found[0] != b"\n" or not continued or not self._continues(found.end()):
                return found
            if self.holding:
                self._searched = found.start()  # looked at again with the next bytes
                return None
            # That newline is inside the message: not searched again.
            self._searched = found.end()
        return None

    def _continues(self, at: int) -> bool:
        """Whether what follows a newline ending at `at` continues the message: the next
        line that is not blank (a chained traceback has blank lines) starts no message.
        While too little follows to tell, the message is held (self.holding) unless
        settling."""
        start = _BLANK_LINES.match(self._buffer, at, at + MAX_BLANK).end()
        if start - at >= MAX_BLANK:
            return False
        following = self._buffer[start:start + 16]
        if following[:1] == b"\x00" or _MESSAGE_START.match(following):
            return False
        if not following or _START_SO_FAR.fullmatch(following):
            self.holding = not self._settling
            return self.holding
        return True

    def _drop_rest(self) -> bool:
        """Drop what the buffer holds of a cut message; whether all of it is gone."""
        buffer = self._buffer
        if self._drop_bytes:
            dropped = min(self._drop_bytes, len(buffer))
            del buffer[:dropped]
            self._drop_bytes -= dropped
            return not self._drop_bytes
        self.holding = False
        match = self._terminator(buffer, self._drop_continued)
        if match is None:
            # All of it goes, but a held newline, which the next bytes decide on.
            kept = self._searched if self.holding else len(buffer)
            del buffer[:kept]
            self._searched = 0
            return False
        del buffer[:match.end()]
        self._drop_line, self._searched = False, 0
        return True

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
