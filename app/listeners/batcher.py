"""Gather received messages and store them in batches through the ingest path.

A batch goes when it holds `max_lines` objects or `max_seconds` after the first arrived,
whichever comes first: a busy sender gets big COPY batches, a quiet one sees its line
within a fraction of a second. Storing runs in a thread of its own, so the event loop
keeps receiving while PostgreSQL works.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import psycopg
import psycopg.errors
from flask import Flask
from sqlalchemy.exc import DBAPIError, OperationalError

from app.ingest.batch import ingest_items

log = logging.getLogger(__name__)

# Objects, and characters of their text, held while PostgreSQL is slow or away; beyond
# either UDP messages are dropped and TCP senders wait (their sockets stop being read),
# rather than memory growing unbounded. A line may be long until storing cuts it.
MAX_PENDING = 100_000
MAX_PENDING_BYTES = 256 * 1024 * 1024
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
# At shutdown, a batch that still cannot be stored is retried this often, then dropped.
RETRIES_WHEN_CLOSING = 3


# psycopg errors that pass: the server going away or refusing connections for now, a lock
# wait or a deadlock. Not every OperationalError does (a full disk, a query over its
# limit): retried without end, one such batch would hold up all the receiver's lines.
PASSING_ERRORS = (psycopg.errors.ConnectionException, psycopg.errors.AdminShutdown,
                  psycopg.errors.CrashShutdown, psycopg.errors.CannotConnectNow,
                  psycopg.errors.LockNotAvailable, psycopg.errors.TransactionRollback)


def _transient(error: Exception) -> bool:
    """Whether storing may work if tried again (the database is away or restarting)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if not isinstance(error.orig, psycopg.Error):
            return isinstance(error, OperationalError)
        error = error.orig
    # The COPY and the counts go through psycopg's own cursor, whose errors SQLAlchemy does
    # not wrap. One without a SQLSTATE did not come from the server: the connection failed.
    return isinstance(error, PASSING_ERRORS) or (
        isinstance(error, psycopg.OperationalError) and error.sqlstate is None)


def _message_bytes(items: list) -> int:
    """About how much memory the objects hold: the characters of their text fields (a
    syslog message, GELF's short and full message and its additional fields)."""
    return sum(len(value) for item in items if isinstance(item, dict)
               for value in item.values() if isinstance(value, str))


class Batcher:
    """One receiver's queue of log objects, stored in batches in arrival order."""

    def __init__(self, app: Flask, receiver: str, max_lines: int, max_seconds: float,
                 max_pending: int = MAX_PENDING,
                 max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        """Batch for `receiver` (the /metrics label) into `app`'s database."""
        self.app = app
        self.receiver = receiver
        self.max_lines = max_lines
        self.max_seconds = max_seconds
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.dropped = 0
        self._items: list = []
        self._bytes = 0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ingest-{receiver}")

    def add(self, items: list, lossless: bool = False) -> None:
        """Queue log objects (called on the event loop); drop them when the queue is full,
        unless `lossless`: a TCP reader, which then waits for room() before reading more,
        so the queue outgrows its limit by at most one read per connection."""
        if not items:
            return  # a GELF chunk that does not complete a message yet
        if self._over_limit() and not lossless:
            if not self.dropped % 1000:
                log.warning("%s: %d messages dropped, the database is not keeping up",
                            self.receiver, self.dropped + len(items))
            self.dropped += len(items)
            return
        self._items.extend(items)
        self._bytes += _message_bytes(items)
        self._arrived.set()
        if len(self._items) >= self.max_lines:
            self._full.set()
        if self._over_limit():
            self._room.clear()

    def _over_limit(self) -> bool:
        """Whether the queue holds as many objects or message bytes as it may."""
        return len(self._items) >= self.max_pending or self._bytes >= self.max_pending_bytes

    async def room(self) -> None:
        """Wait until the queue has room (TCP readers pause here)."""
        await self._room.wait()

    async def run(self) -> None:
        """Store batches until closed and empty."""
        while not (self._closing and not self._items):
            if not self._items:
                await self._arrived.wait()
                self._arrived.clear()
                continue
            if len(self._items) < self.max_lines and not self._closing:
                await self._until_full()
            batch, self._items = self._items[:self.max_lines], self._items[self.max_lines:]
            self._bytes -= _message_bytes(batch)
            if not self._over_limit():
                self._room.set()
            await self._store(batch)

    def close(self) -> None:
        """Store what is queued without waiting for fuller batches, then let run() end."""
        self._closing = True
        self._arrived.set()
        self._full.set()

    async def _until_full(self) -> None:
        """Give the batch up to max_seconds to fill."""
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.max_seconds)

    async def _store(self, batch: list) -> None:
        """Store one batch, retrying while the database is away."""
        loop = asyncio.get_running_loop()
        delay, attempt = RETRY_FIRST_SECONDS, 0
        while True:
            attempt += 1
            try:
                await loop.run_in_executor(self._executor, self._ingest, batch)
                return
            except Exception as error:
                if not _transient(error) or (self._closing and attempt > RETRIES_WHEN_CLOSING):
                    log.exception("%s: dropping a batch of %d messages", self.receiver,
                                  len(batch))
                    self.dropped += len(batch)
                    return
                log.warning("%s: could not store %d messages (%s); retrying in %.1f s",
                            self.receiver, len(batch), error.__class__.__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _ingest(self, batch: list) -> dict:
        """Store a batch in an app context of this thread (runs in the executor)."""
        with self.app.app_context():
            answer, _ = ingest_items(batch, None, self.app.config, receiver=self.receiver)
        if answer["rejected"]:
            log.info("%s: %d of %d messages refused, e.g. %s", self.receiver,
                     answer["rejected"], len(batch), answer["errors"][0]["error"])
        return answer

    def shutdown(self) -> None:
        """Release the storing thread."""
        self._executor.shutdown(wait=True)
