"""`flask demo`: realistic traffic from the Loghub samples (or made-up when absent)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app import demo
from app.extensions import db

LOGHUB = Path(__file__).resolve().parent.parent.parent / "shared/data/loghub"
LOGHUB_SERVICES = {"android", "apache", "bgl", "hdfs", "hadoop", "healthapp", "spark",
                   "zookeeper"}


def run_demo(app, *args):
    """Invoke `flask demo ...`."""
    return app.test_cli_runner().invoke(args=["demo", *args])


def query(sql: str):
    """Rows of a query, outside any lasting transaction."""
    rows = db.session.execute(text(sql)).all()
    db.session.rollback()
    return rows


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="Loghub samples not present")
def test_demo_fills_an_empty_instance_with_loghub_traffic(app, client):
    """Every system is a service, lines spread over the window, bursts show as errors, and
    the dashboard has something to show; a second run refuses without --force."""
    started = datetime.now(UTC)
    result = run_demo(app, "--lines", "600", "--hours", "1", "--bursts", "2", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "8 services from Loghub samples" in result.output
    assert result.output.count("error burst:") == 2
    services = {service for (service,) in query("SELECT DISTINCT service FROM logs.entries")}
    assert services == LOGHUB_SERVICES
    total, oldest, newest = query("SELECT count(*), min(timestamp), max(timestamp)"
                                  " FROM logs.entries")[0]
    assert total >= 600 + 2 * 40
    assert started - timedelta(minutes=61) <= oldest and newest <= datetime.now(UTC)
    assert newest - oldest > timedelta(minutes=40)  # spread, not all at once
    # Background errors are rare; the bursts make one service's errors stand out.
    [(service, errors)] = query("SELECT service, count(*) FROM logs.entries"
                                " WHERE level IN ('error', 'critical')"
                                " GROUP BY service ORDER BY 2 DESC LIMIT 1")
    assert errors >= 40
    assert f"error burst: {service} at" in result.output
    dashboard = client.get("/api/logs/dashboard?window=1h").get_json()
    assert dashboard["totals"]["total"] == total
    assert dashboard["top_errors"]

    again = run_demo(app, "--lines", "10")
    assert again.exit_code == 1 and "already has logs" in again.output
    assert run_demo(app, "--lines", "10", "--bursts", "0", "--force").exit_code == 0


def test_demo_without_samples_makes_up_services(app, tmp_path, monkeypatch):
    """With no Loghub folder (LOGDASH_DEMO_DATA elsewhere), synthetic services are used."""
    monkeypatch.setitem(app.config, "LOGDASH_DEMO_DATA", str(tmp_path / "missing"))
    result = run_demo(app, "--lines", "200", "--hours", "0.5", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "synthetic messages" in result.output
    services = {service for (service,) in query("SELECT DISTINCT service FROM logs.entries")}
    assert services == set(demo.SYNTHETIC)


def test_demo_follow_keeps_a_trickle_going(app, tmp_path, monkeypatch):
    """--follow sends current lines every second, and a failing service now and then."""
    monkeypatch.setitem(app.config, "LOGDASH_DEMO_DATA", str(tmp_path / "missing"))
    monkeypatch.setattr(demo, "FOLLOW_BURST_CHANCE", 1.0)
    started = datetime.now(UTC)
    result = run_demo(app, "--lines", "0", "--follow", "--rate", "30", "--stop-after", "1.5")
    assert result.exit_code == 0, result.output
    assert "error burst:" in result.output and "demo: stopped after" in result.output
    [(recent,)] = query(f"SELECT count(*) FROM logs.entries"
                        f" WHERE timestamp >= '{started.isoformat()}'")
    assert recent >= 20


def test_stop_after_without_follow_or_below_zero_is_refused(app):
    """--stop-after bounds --follow; alone, or not above 0, it is a mistake said so."""
    alone = run_demo(app, "--stop-after", "5", "--lines", "0")
    assert alone.exit_code == 2 and "only goes with --follow" in alone.output
    negative = run_demo(app, "--follow", "--stop-after", "-5", "--lines", "0")
    assert negative.exit_code == 2 and "--stop-after" in negative.output
