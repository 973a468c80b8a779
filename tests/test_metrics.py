"""GET /metrics: who may read it, and every family it exposes, from real ingest, queues,
job runs and alert deliveries."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db, redis_client
from app.ingest.batch import ingest_items
from app.models import AlertDelivery, JobExecution
from app.realtime.hub import keys_of
from tests.conftest import token_headers
from tests.helpers import post_logs, scalar


def scrape(client) -> dict:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def test_metrics_need_a_read_token_or_session_unless_public(app, anonymous_client,
                                                            monkeypatch):
    """Anonymous: 401; ingest-only token: 403; read token: 200; public when configured."""
    assert anonymous_client.get("/metrics").status_code == 401
    ingest_only = anonymous_client.get("/metrics", headers=token_headers("ingest"))
    assert ingest_only.status_code == 403
    assert anonymous_client.get("/metrics", headers=token_headers("read")).status_code == 200
    monkeypatch.setitem(app.config, "LOGDASH_METRICS_PUBLIC", True)
    assert anonymous_client.get("/metrics").status_code == 200


def test_lines_and_latency_by_receiver(app, client):
    """Every receiver's accepted and rejected lines, and a latency histogram per receiver."""
    answer = post_logs(client, [{"service": "a", "message": "ok"},
                                {"service": "a", "message": "ok too"},
                                {"service": "a", "message": "x", "level": "loud"}])
    assert answer.get_json()["accepted"] == 2
    ingest_items([{"service": "s", "message": "from syslog"}], None, app.config,
                 receiver="syslog")
    ingest_items([{"message": "no service"}], None, app.config, receiver="gelf")
    samples = scrape(client)
    assert samples[("logdash_lines_accepted_total", (("receiver", "http"),))] == 2
    assert samples[("logdash_lines_rejected_total", (("receiver", "http"),))] == 1
    assert samples[("logdash_lines_accepted_total", (("receiver", "syslog"),))] == 1
    assert samples[("logdash_lines_rejected_total", (("receiver", "gelf"),))] == 1
    assert samples[("logdash_ingest_duration_seconds_count", (("receiver", "http"),))] == 1
    inf = samples[("logdash_ingest_duration_seconds_bucket", (("le", "+Inf"),
                                                              ("receiver", "syslog")))]
    assert inf == 1
    assert 0 < samples[("logdash_ingest_duration_seconds_sum", (("receiver", "http"),))] < 5


def test_a_replayed_request_is_not_counted_twice(client):
    """A retry answered from its Idempotency-Key stored nothing, so counts nothing."""
    for _ in range(2):
        post_logs(client, {"service": "a", "message": "once"},
                  headers={"Idempotency-Key": "k1"})
    assert scrape(client)[("logdash_lines_accepted_total", (("receiver", "http"),))] == 1


def test_queues_jobs_deliveries_and_sockets(app, client):
    """Read at scrape time: RQ queue depth, job durations and failures, alert deliveries
    by outcome, and open WebSockets."""
    app.task_queue.enqueue("app.jobs.maintenance.create_partitions")
    now = datetime.now(UTC)
    db.session.add_all([
        JobExecution(job_type="aggregate", started_at=now - timedelta(seconds=2),
                     completed_at=now, status="success"),
        JobExecution(job_type="aggregate", started_at=now - timedelta(seconds=0.3),
                     completed_at=now, status="failed", error_message="boom"),
        JobExecution(job_type="aggregate", started_at=now, status="running"),
    ])
    for status in ("sent", "sent", "failed"):
        db.session.add(AlertDelivery(delivery_id="d", service="api", channel="webhook",
                                     target="https://example.com", event="firing", attempt=1,
                                     status=status, payload={}))
    db.session.commit()
    app.redis.zadd(keys_of(app).sockets, {"test-socket": time.time() + 60})

    samples = scrape(client)
    prefix = app.config["LOGDASH_QUEUE_PREFIX"]
    assert samples[("logdash_queue_jobs", (("queue", f"{prefix}-default"),))] == 1
    assert samples[("logdash_queue_jobs", (("queue", f"{prefix}-alerts"),))] == 0
    job = (("job_type", "aggregate"),)
    assert samples[("logdash_job_duration_seconds_count", job)] == 2
    assert samples[("logdash_job_duration_seconds_bucket", (("job_type", "aggregate"),
                                                            ("le", "0.5")))] == 1
    assert samples[("logdash_job_duration_seconds_sum", job)] == pytest.approx(2.3, abs=0.01)
    assert samples[("logdash_job_failures_total", job)] == 1
    assert samples[("logdash_alert_deliveries", (("channel", "webhook"),
                                                 ("status", "sent")))] == 2
    assert samples[("logdash_alert_deliveries", (("channel", "webhook"),
                                                 ("status", "failed")))] == 1
    assert samples[("logdash_websocket_connections", ())] == 1
    assert samples[("logdash_metrics_source_up", (("source", "postgres"),))] == 1


def test_redis_trouble_neither_fails_ingest_nor_the_scrape(app, client, monkeypatch):
    """Without Redis, lines are still stored, and /metrics still shows PostgreSQL's part."""

    def unreachable(*args, **kwargs):
        """Redis does not answer."""
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(app.redis, "pipeline", unreachable)
    assert post_logs(client, {"service": "a", "message": "kept"}).status_code == 202
    monkeypatch.setattr(app.redis, "hgetall", unreachable)
    samples = scrape(client)
    assert samples[("logdash_metrics_source_up", (("source", "redis"),))] == 0
    assert samples[("logdash_metrics_source_up", (("source", "postgres"),))] == 1


def test_a_hanging_redis_costs_one_timeout_per_spell_not_four_per_request(
        app, client, monkeypatch, caplog):
    """A Redis that accepts connections and never answers: the first batch waits for one
    timeout (its rate limit), then the extras are skipped (counters, tail, the check
    request) and later batches do not wait at all; the failure is logged once."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel; nothing ever answers
        hanging = redis_client(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        monkeypatch.setattr(app, "redis", hanging)
        lines = [{"service": "api", "level": "error", "message": "boom"}]
        took = []
        with caplog.at_level("WARNING", logger="app.redis_extras"):
            for _ in range(3):
                started = time.monotonic()
                assert post_logs(client, lines).status_code == 202
                took.append(time.monotonic() - started)
        hanging.close()
    # One call's 2 s timeout (not retried: the command may have run), then nothing more
    # to wait for (each bound far from the next: four calls of that, or one more timeout).
    assert 1.5 < took[0] < 3.5 and max(took[1:]) < 1.5, took
    assert len([r for r in caplog.records if r.name == "app.redis_extras"]) == 1
    assert scalar("SELECT count(*) FROM logs.entries") == 3
