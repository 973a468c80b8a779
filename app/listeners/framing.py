"""Split a TCP byte stream into messages, without doing any I/O (fed by the servers).

Syslog over TCP (RFC 6587) comes octet-counted (`LEN SP MSG`) or newline-terminated, and
a sender may switch per message; Python's SysLogHandler ends each message with NUL
instead. GELF over TCP ends each message with NUL.
"""

import re


class FrameError(ValueError):
    """The stream cannot be split any further (a frame too long, a bad length)."""


class StreamFramer:
    """Accumulate received bytes and hand back each complete message."""

    def __init__(self, delimiters: bytes, octet_counting: bool, max_frame: int) -> None:
        """delimiters: the bytes that end a message; octet_counting: accept `LEN SP MSG`."""
        self._buffer = bytearray()
        self._end = re.compile(b"[" + re.escape(delimiters) + b"]")
        self._octet_counting = octet_counting
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages they complete (empty ones skipped)."""
        self._buffer += data
        frames = []
        while True:
            frame = self._next_frame()
            if frame is None:
                break
            if frame.strip():
                frames.append(bytes(frame))
        if len(self._buffer) > self._max_frame + 12:
            raise FrameError(f"a message is longer than {self._max_frame} bytes")
        return frames

    def flush(self) -> bytes | None:
        """What is left when the sender closes: a last message sent without a terminator."""
        rest, self._buffer = bytes(self._buffer), bytearray()
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
        if not buffer:
            return None
        if self._octet_counting and buffer[:1].isdigit():
            return self._counted_frame()
        match = self._end.search(buffer)
        if match is None:
            return None
        frame = buffer[:match.start()]
        del buffer[:match.end()]
        return frame

    def _counted_frame(self) -> bytes | None:
        """`MSG-LEN SP SYSLOG-MSG`: the length says where the message ends."""
        buffer = self._buffer
        space = buffer.find(b" ", 0, 11)
        if space < 0:
            if len(buffer) > 10:
                raise FrameError("octet count is not a number followed by a space")
            return None
        try:
            length = int(buffer[:space])
        except ValueError:
            raise FrameError("octet count is not a number") from None
        if length > self._max_frame:
            raise FrameError(f"a message of {length} bytes is longer than {self._max_frame}")
        end = space + 1 + length
        if len(buffer) < end:
            return None
        frame = buffer[space + 1:end]
        del buffer[:end]
        return frame
