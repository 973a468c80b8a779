"""`flask logs import`: stream log files through the ingest path in batches.

Files may be NDJSON, a JSON document, syslog lines or plain text, gzip-compressed or not,
or `-` for standard input. Each batch is committed with an idempotency key made of the
run's id and the batch's byte range, and the offset after it is saved in a small state
file under the instance folder, so `--resume` continues after the last committed batch;
a batch that was committed just before a crash (its offset not yet saved) is recognised
by its key when re-sent and is not stored twice.
"""

import gzip
import hashlib
import io
import json
import os
import re
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from app.ingest.batch import ingest_items
from app.ingest.bodies import BodyError, LineError, loads, parse_json_body
from app.ingest.levels import normalize_level
from app.listeners.syslog import parse_syslog

FORMATS = ("auto", "ndjson", "json", "syslog", "plain")
MAX_LINE_BYTES = 1024 * 1024
LISTED_ERRORS = 20
IDEMPOTENCY_SCOPE = "import"
HEAD_BYTES = 4096  # what identifies a file when resuming: its first bytes, compressed as stored
SAMPLE_BYTES = 64 * 1024  # what detect_format reads of a file's start

_LEVEL_WORD = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|CRIT"
                         r"|CRITICAL|FATAL|ALERT|EMERG|PANIC)\b")
# Lower-case level words count only where a format marks them: [error], level=warn, <info>.
_LEVEL_MARKED = re.compile(r"(?i)(?:\[|<|\blevel[=:]\s*\"?)(trace|debug|info|notice|warn"
                           r"|warning|error|err|severe|crit|critical|fatal|alert|emerg|panic)"
                           r"\b")
# A syslog line as sent (<PRI>), or as a syslog daemon writes it to /var/log: "Nov 28
# 04:10:01 host tag[pid]: ...".
_SYSLOG_START = re.compile(rb"<\d{1,3}>|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ ")
# A plain line that starts with its date and time: "2026-11-28 04:05:23,123 ERROR ...".
_LEADING_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?"
                           r"(?:Z|[+-]\d\d:?\d\d)?(?=[\s\]|]|$)")


def guess_level(text: str) -> str:
    """The level a plain line names near its start (ERROR, [warn], level=info), else info."""
    head = text[:200]
    match = _LEVEL_WORD.search(head) or _LEVEL_MARKED.search(head)
    return normalize_level(match.group(1)) if match else "info"


class Entry(NamedTuple):
    """One decoded item, the line it came from, and the position just after it."""

    item: object
    line: int
    end: int


@dataclass
class Position:
    """Where reading starts: a byte offset (an item count for JSON documents) and line."""

    offset: int = 0
    line: int = 0


@dataclass
class FileSummary:
    """What one file's import stored and refused."""

    name: str
    accepted: int = 0
    rejected: int = 0
    replayed_batches: int = 0
    resumed_from: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped on request after a committed batch
    damaged: bool = False  # its compressed data ended early or could not be read

    def add(self, answer: dict, lines: list[int], replayed: bool) -> None:
        """Count one batch's answer; errors are named by their line in the file."""
        self.accepted += answer["accepted"]
        self.rejected += answer["rejected"]
        self.replayed_batches += replayed
        for error in answer["errors"]:
            if len(self.errors) < LISTED_ERRORS:
                self.errors.append(f"line {lines[error['index']]}: {error['error']}")


# ---- opening files ---------------------------------------------------------------------

class Source:
    """An open input: a file (maybe gzip) or standard input, read as bytes."""

    def __init__(self, name: str, stdin: BinaryIO | None = None) -> None:
        """Open `name` ('-' is standard input), undoing gzip if its first bytes say so."""
        self.name = name
        self.is_stdin = name == "-"
        if self.is_stdin:
            self.raw: BinaryIO = stdin or sys.stdin.buffer
            self.size = None
        else:
            # Buffered enough to hold the sample detect_format reads.
            self.raw = open(name, "rb", buffering=SAMPLE_BYTES)  # noqa: SIM115  (closed by close())
            self.size = os.fstat(self.raw.fileno()).st_size
        # peek() needs a buffered reader; files already are one, a test's stdin may not be.
        buffered = self.raw if hasattr(self.raw, "peek") else io.BufferedReader(self.raw)
        self.head = buffered.peek(HEAD_BYTES)[:HEAD_BYTES]
        self.stream: BinaryIO = buffered
        self.gunzip: _EndAtDamage | None = None
        if self.head[:2] == b"\x1f\x8b":
            self.gunzip = _EndAtDamage(gzip.GzipFile(fileobj=buffered))  # type: ignore[arg-type]
            self.stream = io.BufferedReader(self.gunzip, SAMPLE_BYTES)

    def damage(self) -> str | None:
        """Why the compressed data ended before its end, once it has."""
        error = self.gunzip.error if self.gunzip is not None else None
        return None if error is None else str(error) or type(error).__name__

    def progress(self) -> int:
        """Bytes of the file read so far (compressed bytes for .gz), for the progress bar."""
        return 0 if self.is_stdin else self.raw.tell()

    def close(self) -> None:
        """Close the file (standard input is left open)."""
        if not self.is_stdin:
            self.raw.close()


class _EndAtDamage(io.RawIOBase):
    """Gzip data as it decompresses; where it is cut short or damaged, it ends there (the
    error kept), so that a buffered reader over it keeps every line read before. Raised
    instead, the error would lose what the reader had gathered for its line."""

    def __init__(self, gunzip: gzip.GzipFile) -> None:
        """Read from `gunzip`."""
        self.gunzip = gunzip
        self.error: Exception | None = None

    def readable(self) -> bool:
        """It is read."""
        return True

    def seekable(self) -> bool:
        """--resume goes to where an import stopped (gzip by reading up to it)."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Go to a position in the decompressed data."""
        return self.gunzip.seek(offset, whence)

    def tell(self) -> int:
        """The position in the decompressed data."""
        return self.gunzip.tell()

    def readinto(self, buffer) -> int:
        """Fill from one read of the decompressed data (read1: one that raises has
        returned nothing); 0 at the end, also at the damage."""
        if self.error is not None:
            return 0
        try:
            data = self.gunzip.read1(len(buffer))
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            self.error = error
            return 0
        buffer[:len(data)] = data
        return len(data)


def detect_format(stream: BinaryIO) -> str:
    """Tell the format from the first lines: NDJSON, a JSON document, syslog or plain."""
    sample = stream.peek(SAMPLE_BYTES).lstrip()  # type: ignore[attr-defined]
    first, newline, rest = sample.partition(b"\n")
    first = first.strip()
    if first.startswith(b"{"):
        # An object on the first line, one longer than the sample, or a broken first line
        # (cut by a rotation) with an object starting the next, as NDJSON's lines do; a
        # document read whole is one spread over lines ("{", then its indented keys).
        if not newline or rest.startswith(b"{") or _is_object(first):
            return "ndjson"
        return "json"
    if first.startswith(b"["):
        return "json"
    return "syslog" if _SYSLOG_START.match(first) else "plain"


def _is_object(line: bytes) -> bool:
    """Whether a line is a JSON object."""
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


# ---- reading entries -------------------------------------------------------------------

def _lines(stream: BinaryIO, start: Position) -> Iterator[tuple[bytes | None, int, int]]:
    """Each line (None when too long) with its number and the offset after it."""
    if start.offset:
        stream.seek(start.offset)
    offset, number = start.offset, start.line
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        offset += len(line)
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            offset += _skip_line(stream)
            line = None
        number += 1
        yield line, number, offset


def _skip_line(stream: BinaryIO) -> int:
    """Read past the rest of an over-long line; return how many bytes that was."""
    skipped = 0
    while chunk := stream.readline(MAX_LINE_BYTES):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _decode_line(line: bytes, fmt: str, service: str):
    """The log object of one line in a line format."""
    if fmt == "ndjson":
        try:
            return loads(line)  # as /api/logs reads a line: NaN and 1e400 kept as text
        except (ValueError, RecursionError) as error:
            return LineError(f"not valid JSON: {str(error)[:120]}")
    if fmt == "syslog":
        return parse_syslog(line, None, default_service=service)
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    entry = {"message": text, "level": guess_level(text)}
    # Its own time, when it starts with one (no zone: UTC, as at ingest); else the import's.
    if stamp := _LEADING_TIME.match(text.lstrip("[")):
        entry["timestamp"] = stamp[0].replace(",", ".")
    return entry


class Damaged(LineError):
    """Where a file's compressed data ended early or could not be read: the last entry."""


def read_entries(stream: BinaryIO, fmt: str, service: str, start: Position,
                 damage=lambda: None) -> Iterator[Entry]:
    """Every entry after `start`; blank lines are skipped, too-long ones refused. Where
    `damage()` says the data broke off, a Damaged entry ends them, the line it cut with it:
    those before are still stored."""
    # The last whole line's (or object's) number and the position after it.
    number, end = start.line, start.offset
    if fmt == "json":
        for entry in _json_entries(stream, start):
            yield entry
            number, end = entry.line, entry.end
    else:
        for line, at, after in _lines(stream, start):
            if line is not None and not line.endswith(b"\n") and damage() is not None:
                break  # the line the damage cut: not stored as if whole
            number, end = at, after
            if line is None:
                yield Entry(LineError(f"line is longer than {MAX_LINE_BYTES} bytes"), at,
                            after)
            elif line.strip():
                yield Entry(_decode_line(line, fmt, service), at, after)
    if (error := damage()) is not None:
        yield Entry(Damaged(f"the compressed data is cut short or damaged here ({error})"),
                    number + 1, end)


def _json_entries(stream: BinaryIO, start: Position) -> Iterator[Entry]:
    """The objects of one JSON document (read whole); positions count objects."""
    try:
        items = parse_json_body(stream.read())
    except BodyError as error:
        yield Entry(LineError(f"not a JSON document: {error}"), 1, 1)
        return
    for index in range(start.offset, len(items)):
        yield Entry(items[index], index + 1, index + 1)


# ---- resumable state -------------------------------------------------------------------

class ResumeError(Exception):
    """--resume cannot continue this file; the message says why."""


def _state_path(folder: Path, name: str) -> Path:
    """Where one file's import state is kept."""
    digest = hashlib.sha256(str(Path(name).resolve()).encode()).hexdigest()[:20]
    return folder / f"{digest}.json"


@dataclass
class ImportState:
    """Which run is importing a file, how far it committed, and in what batches."""

    path: Path | None
    run_id: str
    head: str
    fmt: str
    position: Position
    # Resuming keeps the batch size: the batch re-sent after a crash must cover the same
    # bytes as the one committed, or its key would not match and it would be stored twice.
    batch_size: int

    @classmethod
    def begin(cls, folder: Path | None, source: Source, fmt: str, resume: bool,
              batch_size: int) -> "ImportState":
        """Continue the saved import with --resume, else start a new run from the start."""
        head = hashlib.sha256(source.head).hexdigest()
        path = None if source.is_stdin or folder is None else _state_path(folder, source.name)
        if resume and path is not None and path.exists():
            saved = json.loads(path.read_text())
            if saved["head"] != head:
                raise ResumeError(f"{source.name} is not the file imported before (its start"
                                  " changed); import it again without --resume")
            if saved["format"] != fmt:
                raise ResumeError(f"{source.name} was imported as {saved['format']}, not {fmt}")
            return cls(path, saved["run_id"], head, fmt, Position(saved["offset"], saved["line"]),
                       saved["batch_size"])
        state = cls(path, uuid.uuid4().hex, head, fmt, Position(), batch_size)
        state.save()
        return state

    def save(self) -> None:
        """Write the state atomically (a crash leaves the old or the new one, whole)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({
            "run_id": self.run_id, "head": self.head, "format": self.fmt,
            "offset": self.position.offset, "line": self.position.line,
            "batch_size": self.batch_size}))
        os.replace(temporary, self.path)

    def key(self, start: int, end: int) -> tuple[str, str]:
        """The idempotency (scope, key) of the batch covering [start, end)."""
        return IDEMPOTENCY_SCOPE, f"{self.run_id}:{start}-{end}"


# ---- importing -------------------------------------------------------------------------

def _batches(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    """Group entries into lists of at most `size`."""
    batch: list[Entry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_source(source: Source, service: str, fmt: str, config, state_folder: Path | None,
                  resume: bool = False, batch_size: int = 1000,
                  on_progress=None, stop_asked=None) -> FileSummary:
    """Import one opened source; `on_progress(bytes_read)` is called after every batch, and
    once `stop_asked()` is true the import stops there (a later --resume goes on)."""
    if fmt == "auto":
        fmt = detect_format(source.stream)
    state = ImportState.begin(state_folder, source, fmt, resume, batch_size)
    summary = FileSummary(source.name, resumed_from=state.position.offset)
    entries = read_entries(source.stream, fmt, service, state.position, source.damage)
    for batch in _batches(entries, state.batch_size):
        start, end = state.position.offset, batch[-1].end
        answer, replayed = ingest_items([e.item for e in batch], service, config,
                                        idempotency=state.key(start, end), receiver="import")
        summary.add(answer, [e.line for e in batch], replayed)
        summary.damaged = summary.damaged or isinstance(batch[-1].item, Damaged)
        state.position = Position(end, batch[-1].line)
        state.save()
        if on_progress is not None:
            on_progress(source.progress())
        if stop_asked is not None and stop_asked():
            summary.interrupted = True
            break
    return summary
