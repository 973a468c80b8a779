"""GET /metrics in the Prometheus text format.

Why counters live in Redis: lines are ingested by every gunicorn worker, the syslog/GELF
listener, `flask logs import` and `flask demo`, often on several machines. A per-process
prometheus_client registry would show a scrape only the counts of the one worker that
answered, and prometheus_client's multiprocess mode shares a directory on one machine
only. So each ingest adds its counts to a Redis hash (one pipelined round trip), and
every web process answers /metrics with the same cluster-wide totals: scrape one of them
(through the load balancer is fine). Everything else is read at scrape time: queue depths
from Redis, job runs and alert deliveries from PostgreSQL, open sockets from the hub.
If Redis was emptied, the counters start again from zero, which Prometheus treats as a
counter reset.
"""

import logging

import redis
from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.redis_extras import try_redis

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

# Seconds; one batch of a few lines takes milliseconds, 50,000 lines about a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)
INF = "+Inf"


def _key(app: Flask) -> str:
    """The Redis hash holding this installation's ingest counters."""
    return f"{app.config['LOGDASH_QUEUE_PREFIX']}:metrics:ingest"


def _bucket(seconds: float, buckets: tuple) -> str:
    """The upper bound of the first histogram bucket that holds `seconds`."""
    return next((str(bound) for bound in buckets if seconds <= bound), INF)


def count_ingest(receiver: str, accepted: int, rejected: int, seconds: float) -> None:
    """Add one ingest batch to the cluster-wide counters; never fails the ingest."""
    app = current_app._get_current_object()

    def count() -> None:
        """The counters' increments, in one round trip."""
        pipe = app.redis.pipeline(transaction=False)
        key = _key(app)
        pipe.hincrby(key, f"accepted|{receiver}", accepted)
        pipe.hincrby(key, f"rejected|{receiver}", rejected)
        pipe.hincrby(key, f"latency|{receiver}|{_bucket(seconds, LATENCY_BUCKETS)}", 1)
        pipe.hincrbyfloat(key, f"latency_sum|{receiver}", seconds)
        pipe.execute()

    # The lines are committed; a lost count only makes a graph slightly low.
    try_redis("ingest counters", count, None)


def _read_counters(app: Flask) -> dict[str, bytes]:
    """Every ingest counter field with its value."""
    return {field.decode(): value for field, value in app.redis.hgetall(_key(app)).items()}


def _line_families(fields: dict) -> list:
    """logdash_lines_accepted_total / _rejected_total by receiver."""
    families = []
    for outcome in ("accepted", "rejected"):
        family = CounterMetricFamily(f"logdash_lines_{outcome}", f"Log lines {outcome} at"
                                     " ingest, by receiver", labels=["receiver"])
        for name, value in sorted(fields.items()):
            kind, _, receiver = name.partition("|")
            if kind == outcome:
                family.add_metric([receiver], int(value))
        families.append(family)
    return families


def _cumulative(counts: dict[str, int], buckets: tuple) -> list[tuple[str, int]]:
    """Per-bucket counts made cumulative, as Prometheus histograms are."""
    total, out = 0, []
    for bound in [*map(str, buckets), INF]:
        total += counts.get(bound, 0)
        out.append((bound, total))
    return out


def _latency_family(fields: dict) -> HistogramMetricFamily:
    """logdash_ingest_duration_seconds: time to normalise and commit one batch."""
    family = HistogramMetricFamily("logdash_ingest_duration_seconds", "Time to normalise and"
                                   " commit one ingest batch, by receiver",
                                   labels=["receiver"])
    per_receiver: dict[str, dict[str, int]] = {}
    for name, value in fields.items():
        kind, _, rest = name.partition("|")
        if kind == "latency":
            receiver, _, bound = rest.rpartition("|")
            per_receiver.setdefault(receiver, {})[bound] = int(value)
    for receiver, counts in sorted(per_receiver.items()):
        total = float(fields.get(f"latency_sum|{receiver}", 0))
        family.add_metric([receiver], _cumulative(counts, LATENCY_BUCKETS), total)
    return family


def _queue_families(app: Flask) -> list:
    """RQ queue depths and failed jobs, read from Redis now."""
    depth = GaugeMetricFamily("logdash_queue_jobs", "Jobs waiting in an RQ queue",
                              labels=["queue"])
    failed = GaugeMetricFamily("logdash_queue_failed_jobs", "Jobs in an RQ queue's failed"
                               " registry", labels=["queue"])
    for queue in (app.alert_queue, app.task_queue):
        depth.add_metric([queue.name], queue.count)
        failed.add_metric([queue.name], queue.failed_job_registry.count)
    return [depth, failed]


def _websocket_family(app: Flask) -> list:
    """Open live-page sockets across every web process."""
    from app.realtime import live_connections

    count = live_connections(app)
    if count is None:
        return []
    return [GaugeMetricFamily("logdash_websocket_connections", "Open live-page WebSockets"
                              " across every web process", value=count)]


JOB_SQL = text(
    "SELECT job_type,"
    " count(*) FILTER (WHERE status = 'failed') AS failures,"
    " count(*) FILTER (WHERE completed_at IS NOT NULL) AS runs,"
    " coalesce(sum(extract(epoch FROM completed_at - started_at)), 0) AS seconds,"
    + ",".join(f" count(*) FILTER (WHERE completed_at - started_at <= make_interval(secs =>"
               f" {bound})) AS le_{i}" for i, bound in enumerate(JOB_BUCKETS))
    + " FROM logs.job_executions GROUP BY job_type ORDER BY job_type"
)
DELIVERY_SQL = text("SELECT channel, status, count(*) FROM logs.alert_deliveries"
                    " GROUP BY channel, status ORDER BY channel, status")


def _job_families() -> list:
    """Job run durations and failures, from logs.job_executions now."""
    duration = HistogramMetricFamily("logdash_job_duration_seconds", "Duration of finished"
                                     " job runs", labels=["job_type"])
    failures = CounterMetricFamily("logdash_job_failures", "Job runs that failed",
                                   labels=["job_type"])
    for row in db.session.execute(JOB_SQL).mappings():
        buckets = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(JOB_BUCKETS)]
        duration.add_metric([row["job_type"]], [*buckets, (INF, row["runs"])],
                            float(row["seconds"]))
        failures.add_metric([row["job_type"]], row["failures"])
    return [duration, failures]


def _delivery_family() -> list:
    """Alert delivery attempts by channel and outcome, from logs.alert_deliveries now."""
    family = GaugeMetricFamily("logdash_alert_deliveries", "Alert delivery attempts by"
                               " channel and status (pending, sending, sent, failed, ...)",
                               labels=["channel", "status"])
    for channel, status, count in db.session.execute(DELIVERY_SQL):
        family.add_metric([channel, status], count)
    return [family]


class LogdashCollector:
    """Builds every metric family when scraped; a source that does not answer is skipped
    and reported as down, so a broken database still leaves the Redis numbers visible."""

    def __init__(self, app: Flask) -> None:
        """Collect for this app."""
        self.app = app

    def collect(self):
        """Yield the metric families of every source that answers."""
        up = GaugeMetricFamily("logdash_metrics_source_up", "Whether a source of these"
                               " metrics answered this scrape", labels=["source"])
        for source, read in (("redis", self._from_redis), ("postgres", self._from_postgres)):
            try:
                yield from read()
                up.add_metric([source], 1)
            except (redis.RedisError, SQLAlchemyError):
                log.warning("metrics: %s did not answer", source, exc_info=True)
                up.add_metric([source], 0)
        yield up

    def _from_redis(self) -> list:
        """Ingest counters, queues and sockets."""
        fields = _read_counters(self.app)
        return [*_line_families(fields), _latency_family(fields), *_queue_families(self.app),
                *_websocket_family(self.app)]

    def _from_postgres(self) -> list:
        """Jobs and alert deliveries; the read transaction ends here either way."""
        try:
            return [*_job_families(), *_delivery_family()]
        finally:
            db.session.rollback()


@bp.get("/metrics")
def metrics():
    """The Prometheus exposition of this installation's numbers."""
    registry = current_app.extensions["logdash.metrics"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Register /metrics with a registry of this app's own (tests build many apps).

    LOGDASH_METRICS_PUBLIC=1 lets it answer without a token (see app.auth.access).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LogdashCollector(app))
    app.extensions["logdash.metrics"] = registry
    app.register_blueprint(bp)
