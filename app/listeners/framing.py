"""Split a TCP byte stream into messages, without doing any I/O (fed by the servers).

Syslog over TCP (RFC 6587) comes octet-counted (`LEN SP MSG`) or newline-terminated, and
a sender may switch per message; Python's SysLogHandler ends each message with NUL
instead. GELF over TCP ends each message with NUL.
"""

import re

# RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, and a syslog message starts with <PRI>.
# A line that merely starts with digits (a date, "200 OK") is framed by its terminator.
_COUNTED = re.compile(rb"(\d{1,10}) (?=<)")
# Digits, maybe a space, and nothing yet after them: too early to tell which framing.
_UNDECIDED = re.compile(rb"\d{1,10} ?")


class FrameError(ValueError):
    """The stream cannot be split any further (a frame too long, a bad length). `frames`
    holds the messages completed before it, which are as good as any other."""

    def __init__(self, message: str) -> None:
        """The problem; `frames` is filled in by the framer that raises it."""
        super().__init__(message)
        self.frames: list[bytes] = []


class StreamFramer:
    """Accumulate received bytes and hand back each complete message."""

    def __init__(self, delimiters: bytes, octet_counting: bool, max_frame: int) -> None:
        """delimiters: the bytes that end a message; octet_counting: accept `LEN SP MSG`."""
        self._buffer = bytearray()
        # How much of the buffer's start is known to hold no terminator: a sender trickling
        # a long line byte by byte must not make every read search it all again.
        self._searched = 0
        self._end = re.compile(b"[" + re.escape(delimiters) + b"]")
        self._octet_counting = octet_counting
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages they complete (empty ones skipped)."""
        self._buffer += data
        frames = []
        try:
            while (frame := self._next_frame()) is not None:
                if frame.strip():
                    frames.append(bytes(frame))
            if len(self._buffer) > self._max_frame + 12:
                raise FrameError(f"a message is longer than {self._max_frame} bytes")
        except FrameError as error:
            error.frames = frames
            raise
        return frames

    def flush(self) -> bytes | None:
        """What is left when the sender closes: a last message sent without a terminator."""
        rest, self._buffer, self._searched = bytes(self._buffer), bytearray(), 0
        return rest if rest.strip() else None

    def _next_frame(self) -> bytes | None:
        """Take one complete message off the buffer, or None when it holds only a part."""
        buffer = self._buffer
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
        if match is None:
            self._searched = len(buffer)
            return None
        frame = buffer[:match.start()]
        del buffer[:match.end()]
        self._searched = 0
        return frame

    def _counted_frame(self, length: int, start: int) -> bytes | None:
        """The message of `length` bytes from `start`, once all of it has arrived."""
        if length > self._max_frame:
            raise FrameError(f"a message of {length} bytes is longer than {self._max_frame}")
        end = start + length
        if len(self._buffer) < end:
            return None
        frame = self._buffer[start:end]
        del self._buffer[:end]
        self._searched = 0
        return frame
