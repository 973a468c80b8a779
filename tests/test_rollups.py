"""The minute rollup equals COUNT(*) of the stored lines, however they arrive."""

import random
import threading
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import text

from app.extensions import db
from tests.helpers import ndjson, post_logs

LEVELS = ["debug", "info", "warning", "error", "critical", "warn", "E", "loud"]


def random_batch(rng: random.Random, size: int, start: datetime) -> list[dict]:
    """Lines over a few services, levels and minutes, some of them invalid."""
    return [
        {"service": rng.choice(["api", "web", "db", "queue"]),
         "level": rng.choice(LEVELS),
         "message": f"event {rng.randint(0, 10**6)}",
         "timestamp": (start + timedelta(seconds=rng.randint(0, 3 * 86400))).isoformat()}
        for _ in range(size)
    ]


def rollup_vs_raw() -> tuple[dict, dict]:
    """Counts per (minute, service, level) from the minute rollup and from the raw rows."""
    rollup = {(r[0], r[1], r[2]): r[3] for r in db.session.execute(text(
        "SELECT minute, service, level, count FROM logs.rollup_minute"))}
    raw = {(r[0], r[1], r[2]): r[3] for r in db.session.execute(text(
        "SELECT date_trunc('minute', timestamp), service, level, count(*)"
        " FROM logs.entries GROUP BY 1, 2, 3"))}
    return rollup, raw


def hourly_views() -> tuple[dict, dict]:
    """Counts per (hour, service, level): minute and hourly tiers together, and raw rows."""
    tiers = {(r[0], r[1], r[2]): r[3] for r in db.session.execute(text(
        "SELECT bucket, service, level, sum(count) FROM ("
        " SELECT date_trunc('hour', minute, 'UTC') AS bucket, service, level, count"
        " FROM logs.rollup_minute UNION ALL"
        " SELECT hour, service, level, count FROM logs.rollup_hourly) AS t GROUP BY 1, 2, 3"))}
    raw = {(r[0], r[1], r[2]): r[3] for r in db.session.execute(text(
        "SELECT date_trunc('hour', timestamp, 'UTC'), service, level, count(*)"
        " FROM logs.entries GROUP BY 1, 2, 3"))}
    return tiers, raw


def test_rollups_match_raw_counts_after_random_batches(client):
    """Twenty random batches over three days: every stored line is counted exactly once.

    Lines newer than the minute tier's horizon are counted per minute; older ones straight
    into the hourly tier.
    """
    rng = random.Random(20261127)
    start = datetime.now(UTC) - timedelta(days=3)
    accepted = 0
    for _ in range(20):
        accepted += post_logs(client, random_batch(rng, rng.randint(1, 400), start)).json[
            "accepted"]
    assert accepted > 1000
    tiers, raw = hourly_views()
    assert sum(raw.values()) == accepted
    assert tiers == raw
    horizon = datetime.now(UTC) - timedelta(days=2) + timedelta(hours=1)
    recent_rollup, recent_raw = ({k: v for k, v in counts.items() if k[0] >= horizon}
                                 for counts in rollup_vs_raw())
    assert recent_raw
    assert recent_rollup == recent_raw


def test_rollup_is_exact_under_concurrent_senders(live_server, ingest_headers):
    """Six threads posting into the same minutes at once lose and double nothing."""
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    body = ndjson(
        {"service": "hot", "level": ["info", "error"][i % 2], "message": f"m{i}",
         "timestamp": (minute + timedelta(seconds=i % 60)).isoformat()} for i in range(200)
    )
    failures = []

    def sender():
        """Post the same batch ten times."""
        with requests.Session() as session:
            for _ in range(10):
                response = session.post(f"{live_server.url}/api/logs", data=body,
                                        headers={"Content-Type": "application/x-ndjson",
                                                 **ingest_headers})
                if response.status_code != 202 or response.json()["accepted"] != 200:
                    failures.append(response.text)

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rollup, raw = rollup_vs_raw()
    assert rollup == raw
    assert rollup == {(minute, "hot", "info"): 6000, (minute, "hot", "error"): 6000}
