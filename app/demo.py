"""`flask demo`: realistic traffic for an empty instance, from real system logs.

Lines come from the Loghub samples (one service per system, with its real messages,
levels, components and nodes), or from a few made-up services when the samples are not
there. Times are spread over the last hours with a changing rate, plus short error
bursts, so the dashboard, health, top errors and alerts all have something to show.
"""

import csv
import math
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from flask import Flask
from sqlalchemy import text

from app.extensions import db
from app.ingest.batch import ingest_items
from app.ingest.importer import guess_level
from app.ingest.levels import normalize_level

BATCH_LINES = 1000
ERROR_LEVELS = ("error", "critical")
# Background traffic carries errors at no more than this share, so services look mostly
# healthy and the bursts stand out.
BACKGROUND_ERROR_SHARE = 0.02
HOSTS_PER_SERVICE = 3
# With --follow, the chance each second that a service starts failing for a while.
FOLLOW_BURST_CHANCE = 1 / 300
FOLLOW_BURST_SECONDS = 180


class Sample(NamedTuple):
    """One real (or made-up) line of a service, without a time."""

    level: str
    message: str
    logger: str | None
    host: str | None


class Pool(NamedTuple):
    """A service's calm lines and its error lines."""

    calm: list[Sample]
    errors: list[Sample]


def data_folder(app: Flask) -> Path:
    """Where the Loghub samples are: LOGDASH_DEMO_DATA, else shared/data/loghub by the repo."""
    configured = app.config.get("LOGDASH_DEMO_DATA") or os.environ.get("LOGDASH_DEMO_DATA")
    if configured:
        return Path(configured)
    return Path(app.root_path).parent.parent / "shared/data/loghub"


def _service_of(path: Path) -> str:
    """HDFS_2k.log_structured.csv → hdfs."""
    return path.name.split("_")[0].lower()


def _sample(row: dict) -> Sample:
    """A Loghub CSV row as a Sample; systems without a level column get one guessed."""
    message = row.get("Content") or ""
    level = normalize_level(row["Level"]) if row.get("Level") else None
    return Sample(level or guess_level(message), message, row.get("Component") or None,
                  row.get("Node") or None)


def load_loghub(folder: Path) -> dict[str, Pool]:
    """Every *_structured.csv in folder, as one service each."""
    pools = {}
    for path in sorted(folder.glob("*_structured.csv")):
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            samples = [_sample(row) for row in csv.DictReader(handle)]
        samples = [s for s in samples if s.message.strip()]
        if samples:
            pools[_service_of(path)] = _split(samples)
    return pools


def _split(samples: list[Sample]) -> Pool:
    """Separate a service's error lines from the rest."""
    return Pool([s for s in samples if s.level not in ERROR_LEVELS],
                [s for s in samples if s.level in ERROR_LEVELS])


SYNTHETIC = {
    "web": (("info", "GET /api/orders/{n} 200 in {ms} ms"),
            ("info", "POST /api/cart 201 in {ms} ms"),
            ("warning", "slow request GET /search?q=shoes took {ms} ms"),
            ("error", "upstream billing timed out after {ms} ms")),
    "billing": (("info", "charged order {n} for {cents} cents"),
                ("warning", "card {n} retried with 3-D Secure"),
                ("error", "card declined for order {n}: insufficient funds")),
    "auth": (("info", "user {n} signed in from 10.0.{a}.{b}"),
             ("debug", "token refreshed for session {n}"),
             ("error", "password check failed for user {n}")),
    "worker": (("info", "job {n} finished in {ms} ms"),
               ("warning", "queue depth {n} above 1000"),
               ("critical", "worker {a} out of memory, restarting")),
}


def synthetic_pools(rng: random.Random) -> dict[str, Pool]:
    """Made-up services with varied numbers filled into a few templates each."""
    pools = {}
    for service, templates in SYNTHETIC.items():
        samples = [Sample(level, template.format(n=rng.randint(1000, 99999),
                                                 ms=rng.randint(2, 5000),
                                                 cents=rng.randint(100, 90000),
                                                 a=rng.randint(0, 255), b=rng.randint(1, 254)),
                          service, None)
                   for level, template in templates for _ in range(50)]
        pools[service] = _split(samples)
    return pools


def load_pools(app: Flask, rng: random.Random) -> tuple[dict[str, Pool], str]:
    """The Loghub services if the samples are there, else synthetic ones; and which."""
    folder = data_folder(app)
    pools = load_loghub(folder) if folder.is_dir() else {}
    if pools:
        return pools, f"Loghub samples in {folder}"
    return synthetic_pools(rng), "synthetic messages (no Loghub samples found)"


class Line(NamedTuple):
    """A sample placed in time, for one service."""

    moment: datetime
    service: str
    sample: Sample


def to_item(line: Line, rng: random.Random) -> dict:
    """The log object ingest receives for a line."""
    host = line.sample.host or f"{line.service}-{rng.randint(1, HOSTS_PER_SERVICE)}"
    return {"service": line.service, "level": line.sample.level,
            "message": line.sample.message, "logger": line.sample.logger, "host": host,
            "timestamp": line.moment.isoformat(), "demo": True}


def background_line(pools: dict[str, Pool], moment: datetime, rng: random.Random) -> Line:
    """One ordinary line of a random service."""
    service = rng.choice(sorted(pools))
    pool = pools[service]
    share = len(pool.errors) / (len(pool.errors) + len(pool.calm))
    use_errors = pool.errors and (not pool.calm
                                  or rng.random() < min(share, BACKGROUND_ERROR_SHARE))
    return Line(moment, service, rng.choice(pool.errors if use_errors else pool.calm))


def failing_services(pools: dict[str, Pool], count: int, rng: random.Random) -> list[str]:
    """`count` services that have error lines, all different while there are enough."""
    candidates = sorted(s for s, pool in pools.items() if pool.errors)
    if not candidates:
        return []
    order = rng.sample(candidates, len(candidates))
    return [order[i % len(order)] for i in range(count)]


def failing_messages(pools: dict[str, Pool], service: str, rng: random.Random) -> list[Sample]:
    """The few error messages a failing service repeats, as a broken dependency does."""
    errors = pools[service].errors
    return rng.sample(errors, min(3, len(errors)))


def burst(pools: dict[str, Pool], service: str, start: datetime,
          rng: random.Random) -> list[Line]:
    """40-150 errors of one service within 2-4 minutes after start."""
    messages = failing_messages(pools, service, rng)
    length = rng.uniform(120, 240)
    return [Line(start + timedelta(seconds=rng.uniform(0, length)), service,
                 rng.choice(messages)) for _ in range(rng.randint(40, 150))]


def _minute_weights(minutes: int, rng: random.Random) -> list[float]:
    """Traffic per minute: a slow wave with noise, so the charts are not flat."""
    phase = rng.uniform(0, 2 * math.pi)
    return [max(0.1, 1 + 0.5 * math.sin(phase + 2 * math.pi * m / 45) + rng.gauss(0, 0.15))
            for m in range(minutes)]


def history(pools: dict[str, Pool], total: int, hours: float, bursts: int,
            rng: random.Random, now: datetime) -> tuple[list[Line], list[str]]:
    """About `total` lines over the last `hours`, with error bursts, oldest first; and a
    description of each burst."""
    minutes = max(1, round(hours * 60))
    # Whole minute buckets, the current one last, as the dashboard's windows count them.
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    picks = rng.choices(range(minutes), weights=_minute_weights(minutes, rng), k=total)
    lines = [background_line(pools, first + timedelta(minutes=m, seconds=rng.uniform(0, 60)),
                             rng) for m in picks]
    described = []
    for service in failing_services(pools, bursts, rng):
        # Starting 5 minutes before now or earlier, a burst is over and fully counted.
        start = first + timedelta(minutes=rng.uniform(0, max(minutes - 5, 0)))
        lines += burst(pools, service, start, rng)
        described.append(f"{service} at {start:%H:%M} UTC")
    lines = sorted((line for line in lines if line.moment <= now), key=lambda line: line.moment)
    return lines, described


def store(app: Flask, lines: list[Line], rng: random.Random) -> tuple[int, int]:
    """Ingest lines in batches; return how many were accepted and refused."""
    accepted = rejected = 0
    for start in range(0, len(lines), BATCH_LINES):
        items = [to_item(line, rng) for line in lines[start:start + BATCH_LINES]]
        answer, _ = ingest_items(items, None, app.config, receiver="demo")
        accepted += answer["accepted"]
        rejected += answer["rejected"]
    return accepted, rejected


def instance_is_empty() -> bool:
    """Whether no service has logged yet."""
    has_any = db.session.execute(text("SELECT EXISTS (SELECT 1 FROM logs.services)")).scalar()
    db.session.rollback()
    return not has_any


def follow(app: Flask, pools: dict[str, Pool], rate: float, rng: random.Random,
           keep_going: Callable[[], bool], echo: Callable[[str], None]) -> int:
    """Send about `rate` lines a second while keep_going(); now and then, for a few
    minutes, one service fails. Returns how many lines were stored."""
    sent, failing, failing_until = 0, None, 0.0
    while keep_going():
        now = datetime.now(UTC)
        lines = [background_line(pools, now, rng) for _ in range(_poisson(rate, rng))]
        if failing is None and rng.random() < FOLLOW_BURST_CHANCE:
            for service in failing_services(pools, 1, rng):
                failing = service, failing_messages(pools, service, rng)
                failing_until = time.monotonic() + FOLLOW_BURST_SECONDS
                echo(f"error burst: {service} for {FOLLOW_BURST_SECONDS} s")
        if failing is not None:
            service, messages = failing
            lines += [Line(now, service, rng.choice(messages)) for _ in range(_poisson(1, rng))]
            if time.monotonic() > failing_until:
                failing = None
        if lines:
            sent += store(app, lines, rng)[0]
        time.sleep(1)
    return sent


def _poisson(mean: float, rng: random.Random) -> int:
    """A Poisson-distributed count (Knuth's method; means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
