"""One ingest request, from raw body to stored lines and an answer for the sender."""

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from flask import current_app

from app.ingest.bodies import LineError
from app.ingest.partitions import ensure_partitions
from app.ingest.records import InvalidLine, Limits, Record, normalize
from app.ingest.services import services_past_the_limit
from app.ingest.signals import lines_stored
from app.ingest.store import KeyClaim, PartitionGone, store_records
from app.metrics import count_ingest

MAX_LISTED_ERRORS = 100

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """How many lines were stored and which were refused, and why."""

    accepted: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)

    def refuse(self, index: int, error: str) -> None:
        """Count a refused line, listing it while the list is short."""
        self.rejected += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"index": index, "error": error})

    def to_dict(self) -> dict:
        """Return the JSON answer to the sender."""
        return {"accepted": self.accepted, "rejected": self.rejected, "errors": self.errors}


def _within_the_service_limit(indexed: list[tuple[int, Record]], limit: int,
                              result: IngestResult) -> list[Record]:
    """The records whose service exists or fits under the limit; the others are refused."""
    past = services_past_the_limit({record.service for _, record in indexed}, limit)
    kept = []
    for index, record in indexed:
        if record.service in past:
            result.refuse(index, f"service {record.service!r} would be new, and {limit}"
                                 " services already log here (LOGDASH_MAX_SERVICES)")
        else:
            kept.append(record)
    return kept


def ingest_items(items: list, default_service: str | None, config,
                 idempotency: tuple[str, str] | None = None,
                 pinned_service: str | None = None,
                 receiver: str = "http") -> tuple[dict, bool]:
    """Normalise decoded objects, store the valid ones, and report on every one.

    Returns the answer for the sender and whether it replays an earlier request that used
    the same (scope, Idempotency-Key). A token pinned to a service only sends its lines.
    `receiver` (http, syslog, gelf, otlp, loki, import, ...) labels the /metrics counts.
    """
    started = time.perf_counter()
    received = datetime.now(UTC)
    limits = Limits.from_config(config, received)
    result = IngestResult()
    indexed: list[tuple[int, Record]] = []
    for index, item in enumerate(items):
        if isinstance(item, LineError):
            result.refuse(index, item.error)
            continue
        try:
            record = normalize(item, default_service, limits, received)
        except InvalidLine as error:
            result.refuse(index, str(error))
            continue
        except Exception:
            # A line that breaks a rule's code must not cost the batch's other lines (nor
            # loop a retrying sender on 500s): it is refused, and the fault logged.
            log.exception("%s: line %d could not be normalised", receiver, index)
            result.refuse(index, "line could not be read (a server fault, logged)")
            continue
        if pinned_service is not None and record.service != pinned_service:
            result.refuse(index, f"this token only sends logs for service {pinned_service!r}")
            continue
        indexed.append((index, record))
    result, records, earlier = _store(indexed, result, config["LOGDASH_MAX_SERVICES"],
                                      idempotency)
    if earlier is not None:
        return earlier, True
    count_ingest(receiver, result.accepted, result.rejected, time.perf_counter() - started)
    if records:
        lines_stored.send(current_app._get_current_object(), records=records)
    return result.to_dict(), False


def _store(indexed: list[tuple[int, Record]], result: IngestResult, limit: int,
           idempotency: tuple[str, str] | None
           ) -> tuple[IngestResult, list[Record], dict | None]:
    """Store the records whose service fits under the limit: (result with the limit's
    refusals added, the records stored, the earlier answer if the key was used before)."""
    try:
        return _store_once(indexed, result, limit, idempotency)
    except PartitionGone:
        # Rolled back (retention dropped a partition under the batch), and the limit's
        # lock with it: both steps are taken again, so the limit is counted under the lock.
        return _store_once(indexed, result, limit, idempotency)


def _store_once(indexed: list[tuple[int, Record]], result: IngestResult, limit: int,
                idempotency: tuple[str, str] | None
                ) -> tuple[IngestResult, list[Record], dict | None]:
    """One try of _store, adding the limit's refusals to a copy of result."""
    # Partitions are committed on their own: before the service limit's lock, which must
    # last until the lines are committed.
    ensure_partitions({record.timestamp.date() for _, record in indexed})
    outcome = replace(result, errors=list(result.errors))
    records = _within_the_service_limit(indexed, limit, outcome)
    outcome.accepted = len(records)
    claim = KeyClaim(*idempotency, outcome.to_dict()) if idempotency else None
    return outcome, records, store_records(records, claim)
