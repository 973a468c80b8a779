"""Statistics read the count tiers by index ranges, and every number equals the raw lines."""

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text

from app.extensions import db
from app.ingest.store import late_hours
from app.rollups.aggregate import LOCKS, aggregate_hours
from app.rollups.tiers import floor_hour, minute_horizon
from app.stats.counts import KINDS, _sources, level_totals, split_of, top_templates
from app.stats.health import ERROR_LEVELS, hour_counts
from app.stats.sealed import MAX_ENTRIES, sealed_sums
from app.stats.windows import make_window
from tests.helpers import post_logs, scalar

NOW = datetime.now(UTC)
NOW_IS_CLOCK = True  # conftest sets NOW anew for each test
COUNT_TABLES = {table for minute, hourly, _ in KINDS.values() for table in (minute, hourly)}


def lines(hours_ago: float, service: str, level: str, message: str, count: int) -> list[dict]:
    """`count` lines of one template at some hours before now."""
    moment = (NOW - timedelta(hours=hours_ago)).isoformat()
    return [{"service": service, "level": level, "message": message.format(i=i),
             "timestamp": moment} for i in range(count)]


def send(client, *batches: list[dict]) -> None:
    """Post every batch and check that all its lines were accepted."""
    for batch in batches:
        assert post_logs(client, batch).json["accepted"] == len(batch)


def history(client) -> None:
    """Lines over eight days: hourly-only days, minutes, and a template two services share."""
    send(client,
         lines(24 * 6, "api", "error", "disk full on volume {i}", 4),
         lines(30, "api", "info", "GET /users/{i} 200", 9),
         lines(20.5, "api", "error", "timeout talking to db-{i} after 3000 ms", 5),
         lines(20.5, "web", "error", "timeout talking to db-{i} after 3000 ms", 7),
         lines(5.5, "web", "critical", "out of memory in worker {i}", 3),
         lines(2.5, "api", "warning", "slow query {i}", 6),
         lines(0, "web", "info", "served asset {i}", 11),
         lines(0, "api", "error", "timeout talking to db-{i} after 3000 ms", 2),
         # Ahead of now: in no total and no series until their minute comes.
         lines(-2, "api", "error", "timeout talking to db-{i} after 3000 ms", 3),
         lines(-1.5, "late", "info", "clock skew {i}", 1))


def past_dirty_hours() -> int:
    """Dirty hours before the current one, which the hourly job takes. (Lines stamped NOW
    turn late while the suite runs, which marks the current hour until it is over.)"""
    return scalar("SELECT count(*) FROM logs.dirty_hours WHERE hour < :hour",
                  hour=floor_hour(datetime.now(UTC)))


def raw(sql: str, window) -> list[tuple]:
    """Rows of a query over the raw lines of a window, which ends with now's minute (the
    reference, never the app's)."""
    end = window.now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return [tuple(row) for row in db.session.execute(
        text(sql), {"start": window.start, "end": end, "unit": window.bucket})]


def expected_totals(window) -> tuple[dict, dict, dict]:
    """The three sums of level_totals, computed from the raw lines."""
    slots = {bucket: slot for slot, bucket in enumerate(window.buckets())}
    by_slot_level, by_service_level, by_service_slot = defaultdict(int), defaultdict(int), {}
    for bucket, service, level, count in raw(
            "SELECT date_trunc(:unit, timestamp, 'UTC'), service, level, count(*)"
            " FROM logs.entries WHERE timestamp >= :start AND timestamp < :end"
            " GROUP BY 1, 2, 3", window):
        by_service_level[service, level] += count
        series = by_service_slot.setdefault(service, [0] * len(slots))
        if bucket in slots:
            by_slot_level[slots[bucket], level] += count
            series[slots[bucket]] += count
    return dict(by_slot_level), dict(by_service_level), by_service_slot


def expected_top(window, limit: int, levels) -> list[tuple]:
    """(service, level, fingerprint, count, series) of the top templates, from raw lines."""
    per_bucket: dict = defaultdict(lambda: defaultdict(int))
    for bucket, service, level, fingerprint, count in raw(
            "SELECT date_trunc(:unit, timestamp, 'UTC'), service, level, fingerprint, count(*)"
            " FROM logs.entries WHERE timestamp >= :start AND timestamp < :end"
            " GROUP BY 1, 2, 3, 4", window):
        if levels is None or level in levels:
            per_bucket[service, level, fingerprint][bucket] += count
    totals = {key: sum(counts.values()) for key, counts in per_bucket.items()}
    ranked = sorted(totals, key=lambda k: (-totals[k], k[2], k[0], k[1]))[:limit]
    return [(*key, totals[key], [per_bucket[key].get(b, 0) for b in window.buckets()])
            for key in ranked]


def check_exact(window_names=("1h", "24h", "7d"), now: datetime | None = None) -> None:
    """level_totals and top_templates equal the raw lines, for every window and filter."""
    for name in window_names:
        window = make_window(name, now)
        totals = level_totals(window)
        by_slot_level, by_service_level, by_service_slot = expected_totals(window)
        assert (totals.by_slot_level, totals.by_service_level) == (by_slot_level,
                                                                   by_service_level)
        assert {name: totals.service_series(name)
                for name, _ in by_service_level} == by_service_slot
        for limit, levels in ((1, list(ERROR_LEVELS)), (10, list(ERROR_LEVELS)), (10, None)):
            got = [(t["service"], t["level"], t["fingerprint"], t["count"], t["series"])
                   for t in top_templates(window, limit, levels=levels)]
            assert got == expected_top(window, limit, levels)


def test_counts_are_exact_before_and_after_aggregation(client):
    """A scheduler a week behind (minutes only), then caught up: the raw lines' numbers."""
    aggregate_hours(NOW - timedelta(days=8))
    history(client)
    assert scalar("SELECT count(*) FROM logs.rollup_hourly") == 0
    check_exact()
    aggregate_hours()
    assert past_dirty_hours() == 0
    check_exact()


def test_counts_are_exact_with_dirty_hours(client):
    """Late lines in aggregated hours are read from minutes until the job redoes them."""
    history(client)
    aggregate_hours()
    check_exact()  # the sealed hours' sums are now kept, keyed on what they depend on
    send(client, lines(20.5, "api", "error", "timeout talking to db-{i} after 3000 ms", 3),
         lines(5.5, "web", "info", "late asset {i}", 2))
    assert past_dirty_hours() == 2
    check_exact()
    # The same watermark and no dirty hours again, as before the late lines: only the
    # job's note in logs.tier_changes tells the kept sums apart.
    aggregate_hours()
    check_exact()


def test_counts_are_exact_when_lines_too_old_for_minutes_arrive(client):
    """Lines older than the minute tier go straight to sealed hours; kept sums see them."""
    history(client)
    aggregate_hours()
    check_exact()
    send(client, lines(24 * 3, "api", "error", "disk full on volume {i}", 5),
         lines(24 * 5 + 0.5, "web", "critical", "out of memory in worker {i}", 2))
    assert past_dirty_hours() == 0
    check_exact()


def test_before_the_first_run_after_an_upgrade_old_lines_go_to_sealed_hours(client):
    """An installation upgraded from before the stored minute horizon has a watermark but
    no horizon until the job runs: lines too old for minutes still go straight to the
    hourly tier, not to minutes of hours whose other minutes retention already dropped."""
    history(client)
    aggregate_hours()
    db.session.execute(text("DELETE FROM logs.watermarks WHERE tier = 'minute_horizon'"))
    db.session.commit()
    send(client, lines(24 * 5 + 0.5, "web", "critical", "out of memory in worker {i}", 2))
    assert past_dirty_hours() == 0
    check_exact()


def test_top_template_series_leave_out_other_services_of_the_template(client):
    """A template shared by two services: the top one's series counts its own lines only."""
    history(client)
    aggregate_hours()
    (top,) = top_templates(make_window("24h"), 1, levels=list(ERROR_LEVELS))
    # api: 5 + 2 lines in the window's buckets (3 more are ahead of now); web's 7 are not
    # its own.
    assert (top["service"], top["count"], sum(top["series"])) == ("api", 7, 7)


def scans(plan: dict) -> list[dict]:
    """Every node of a JSON plan that reads one of the count tables."""
    found = [plan] if plan.get("Relation Name") in COUNT_TABLES else []
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


def whole_source(window, kind: str) -> tuple[str, dict]:
    """Every SELECT a window's counts of one kind read, as one statement, and its parameters."""
    *parts, params = _sources(window, split_of(window), kind)
    return " UNION ALL ".join(part for part in parts if part is not None), params


@pytest.mark.parametrize("late", [False, True])
def test_counts_read_every_tier_by_an_index_range(client, late):
    """Each branch of a window's source is an index range; minutes read only what they keep."""
    history(client)
    aggregate_hours()
    if late:
        send(client, lines(20.5, "api", "error", "timeout talking to db-{i} after 3000 ms", 1))
    # The tables are tiny here; without this the planner would rightly scan them whole.
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    for kind, (minute_table, _, _) in KINDS.items():
        source, params = whole_source(make_window("7d"), kind)
        plan = db.session.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {source}"),
                                  params).scalar()
        for node in scans(plan[0]["Plan"]):
            assert "Index Cond" in node or "Recheck Cond" in node, node
            if node["Relation Name"] == minute_table:
                # Minutes before the watermark are the hourly tier's: not even looked at.
                assert node.get("Rows Removed by Filter", 0) == 0, node


def test_lines_too_old_for_minutes_count_before_the_hourly_job_ever_ran(client):
    """A fresh install: old lines stay in minutes until the job's first run takes them."""
    send(client, lines(24 * 3, "api", "error", "disk full on volume {i}", 4),
         lines(1, "web", "info", "served asset {i}", 2))
    assert scalar("SELECT count(*) FROM logs.rollup_hourly") == 0
    check_exact()
    aggregate_hours()
    assert scalar("SELECT sum(count) FROM logs.rollup_hourly") == 6
    check_exact()


def test_a_job_run_with_nothing_to_do_leaves_sealed_hours_unchanged(client):
    """Kept sums stay valid across the runs that find no new or dirty hour."""
    history(client)
    aggregate_hours(NOW)
    changed = scalar("SELECT changed_at FROM logs.tier_changes WHERE tier = 'hourly'")
    assert changed is not None
    aggregate_hours(NOW)
    assert scalar("SELECT changed_at FROM logs.tier_changes WHERE tier = 'hourly'") == changed
    send(client, lines(20.5, "api", "error", "timeout talking to db-{i} after 3000 ms", 1))
    aggregate_hours(NOW)
    assert scalar("SELECT changed_at FROM logs.tier_changes WHERE tier = 'hourly'") > changed


def at(moment: datetime, service: str, level: str, count: int) -> list[dict]:
    """`count` lines of one service and level at a moment."""
    return [{"service": service, "level": level, "message": f"event {i}",
             "timestamp": moment.isoformat()} for i in range(count)]


def check_hour_exact(hour, since) -> None:
    """hour_counts equals the raw lines of the minute window, as (all, from since on)."""
    expected = {(service, level): (n, recent) for service, level, n, recent in db.session.execute(
        text("SELECT service, level, count(*), count(*) FILTER (WHERE timestamp >= :since)"
             " FROM logs.entries WHERE timestamp >= :start AND timestamp < :end GROUP BY 1, 2"),
        {"start": hour.start, "since": since,
         "end": hour.now.replace(second=0, microsecond=0) + timedelta(minutes=1)})}
    assert hour_counts(hour, since)[0] == expected


def test_health_counts_are_exact_with_the_minutes_before_the_watermark_kept(client):
    """The last hour per service and level equals the raw lines: before and after the job,
    with a late line in a kept minute, and after the job redid that hour."""
    now = datetime.now(UTC)
    hour = make_window("1h", now)
    since = hour.buckets()[-15]
    # The window's first minute lies before the current hour (unless now is hh:59).
    first = hour.start + timedelta(seconds=30)
    send(client, at(first, "api", "error", 3), at(first, "web", "info", 2),
         at(now - timedelta(minutes=20), "web", "error", 1), at(now, "api", "warning", 4),
         at(now - timedelta(hours=2), "api", "error", 5),
         at(now + timedelta(minutes=30), "api", "info", 1))
    check_hour_exact(hour, since)
    aggregate_hours()
    check_hour_exact(hour, since)
    check_exact(("1h",), now)
    kept = [key[:2] for key in sealed_sums("minutes").entries]
    assert {("health", hour.start), ("levels", "1h")} <= set(kept) or hour.start >= floor_hour(now)
    check_hour_exact(hour, since)  # from the kept sums
    check_exact(("1h",), now)
    # Late lines in the window's sealed first hour: it is read from minutes until redone.
    for late in (2, 1):
        send(client, at(first + timedelta(seconds=5), "api", "error", late))
        check_hour_exact(hour, since)
        check_exact(("1h",), now)
    aggregate_hours()
    check_hour_exact(hour, since)
    check_exact(("1h",), now)


class Clock(datetime):
    """The system clock moved ahead, for ingest running later than the test."""

    ahead = timedelta(0)

    @classmethod
    def now(cls, tz=None):
        """The real time plus `ahead`."""
        return datetime.now(tz) + cls.ahead


def test_kept_minutes_of_the_current_hour_see_a_line_that_arrives_late(client, monkeypatch):
    """Minutes older than KEEP_AFTER are summed once and kept; a line that arrives for one
    of them later than LATE_AFTER marks its hour, and every number includes it."""
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)  # read as if ten minutes had passed
    moment = max(now - timedelta(seconds=30), floor_hour(now))  # in the current hour
    send(client, at(moment, "api", "error", 3), at(moment, "web", "info", 2),
         at(now - timedelta(hours=3), "web", "warning", 4))
    aggregate_hours()
    window = make_window("24h", later)
    split = split_of(window)
    assert split.watermark <= moment < split.cut  # the lines' minute is kept
    check_exact(now=later)
    check_hour_exact(make_window("1h", later), make_window("1h", later).buckets()[-15])
    assert [key for key in sealed_sums("minutes").entries if key[-1] == split.cut]
    # A late line in a sealed hour: that hour is read from minutes, the kept minutes stay.
    send(client, at(now - timedelta(hours=3), "web", "warning", 1))
    assert split_of(window).dirty and split_of(window).cut == split.cut
    check_exact(now=later)
    aggregate_hours()
    check_exact(now=later)
    # The same minute three minutes on (within the hour, unless now is past hh:56): late.
    monkeypatch.setattr(Clock, "ahead", timedelta(minutes=3))
    monkeypatch.setattr("app.ingest.store.datetime", Clock)
    send(client, at(moment, "api", "error", 2))
    assert split_of(window).cut == split_of(window).watermark
    check_exact(now=later)
    check_hour_exact(make_window("1h", later), make_window("1h", later).buckets()[-15])


def test_a_late_hour_keeps_its_lines_when_the_clock_passes_the_minute_horizon(
        app, client, monkeypatch):
    """A late line for the oldest hour ingest counts per minute marks that hour, for the job
    to redo from its minutes. If the clock then passes the next hour before the job runs,
    another late line for that hour must still go to its minutes, not be added to the
    hourly tier only for the job to replace it with the minutes' sums."""
    aggregate_hours()
    now = datetime.now(UTC)
    oldest = minute_horizon(now, app.config["LOGDASH_RETAIN_MINUTE_DAYS"])
    send(client, at(oldest + timedelta(minutes=10), "api", "error", 2))
    assert scalar("SELECT count(*) FROM logs.dirty_hours WHERE hour = :h", h=oldest) == 1
    # Ingest's clock a second into the next hour, which would put `oldest` past the horizon.
    monkeypatch.setattr(Clock, "ahead", floor_hour(now) + timedelta(hours=1, seconds=1) - now)
    monkeypatch.setattr("app.ingest.store.datetime", Clock)
    send(client, at(oldest + timedelta(minutes=20), "api", "error", 3))
    check_exact(("7d",))
    aggregate_hours()
    check_exact(("7d",))


def test_counts_are_exact_on_a_web_process_whose_clock_is_behind_the_jobs(client):
    """Clocks may disagree by minutes: the hourly job may seal the hour a web process still
    sees as current, and lines may be stamped in the minutes after that process's now.
    Every window it serves stays exact, and ends with its own minute."""
    now = datetime.now(UTC)
    send(client, at(now + timedelta(minutes=2), "api", "error", 3),
         at(now - timedelta(minutes=1), "api", "info", 2),
         at(now - timedelta(hours=2), "web", "warning", 4))
    aggregate_hours(floor_hour(now) + timedelta(hours=1, minutes=1))  # the job, an hour on
    check_exact(now=now)
    check_hour_exact(make_window("1h", now), make_window("1h", now).buckets()[-15])


def test_late_hours_are_those_older_than_late_after_or_sealed():
    """A minute is late once LATE_AFTER old, and always in an hour the job has sealed."""
    def t(hour: int, minute: int, second: int = 0) -> datetime:
        """A moment on one day."""
        return datetime(2026, 11, 27, hour, minute, second, tzinfo=UTC)

    now = t(12, 10, 30)
    minutes = {t(11, 59), t(12, 7), t(12, 8), t(12, 10)}
    assert late_hours(minutes, now, None) == {t(11, 0), t(12, 0)}
    assert late_hours(minutes - {t(12, 7)}, now, None) == {t(11, 0)}
    early = t(12, 1)  # within LATE_AFTER of 11:59
    assert late_hours({t(11, 59)}, early, None) == set()
    assert late_hours({t(11, 59)}, early, t(12, 0)) == {t(11, 0)}  # the job sealed 11:00
    assert late_hours({t(12, 0)}, early, t(12, 0)) == set()


def test_a_batch_waits_while_the_hourly_job_runs(client):
    """Ingest and the hourly job exclude each other, so the job never seals an hour while
    a batch writing into it is open; the batch then sees the job's watermark."""
    hour = floor_hour(datetime.now(UTC))
    with db.engine.connect() as job:
        job.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCKS["hourly"]})
        # As if the job had just sealed the current hour (it never does; the point is
        # which watermark the waiting batch reads).
        job.execute(text("INSERT INTO logs.watermarks (tier, through) VALUES ('hourly', :t)"
                         " ON CONFLICT (tier) DO UPDATE SET through = excluded.through"),
                    {"t": hour + timedelta(hours=1)})
        sent = threading.Thread(target=send, args=(client, at(datetime.now(UTC), "api",
                                                              "info", 1)))
        sent.start()
        sent.join(timeout=1)
        assert sent.is_alive()  # waiting for the job's lock
        job.commit()
    sent.join(timeout=10)
    assert not sent.is_alive()
    assert scalar("SELECT count(*) FROM logs.dirty_hours WHERE hour = :h", h=hour) == 1


def test_api_reads_run_without_a_transaction_but_sealed_sums_get_one(client):
    """A GET of the API runs each statement on its own (no BEGIN, no ROLLBACK); the 7d
    window's sealed hours are grouped in a transaction of their own with more work_mem;
    the next request's session begins transactions as usual."""
    history(client)
    aggregate_hours()
    ran = []

    def note(conn, cursor, statement, parameters, context, executemany):
        """Record how the connection stood when a statement had run."""
        raw = cursor.connection
        ran.append((statement, raw.autocommit, raw.info.transaction_status.name,
                    raw.execute("SHOW work_mem").fetchone()[0]))

    event.listen(db.engine, "after_cursor_execute", note)
    try:
        assert client.get("/api/logs/dashboard?window=7d").status_code == 200
        reads = list(ran)
        ran.clear()
        created = client.post("/api/tokens", json={"name": "ci", "scope": "read"})
    finally:
        event.remove(db.engine, "after_cursor_execute", note)
    assert created.status_code == 201
    sealed = [r for r in reads if "FROM logs.rollup_hourly" in r[0] and "GROUPING(" in r[0]]
    assert [r[1:] for r in sealed] == [(True, "INTRANS", "32MB")]
    others = [r[1:] for r in reads if r[0] not in {s[0] for s in sealed}
              and "work_mem" not in r[0]]
    assert len(others) >= 6 and set(others) == {(True, "IDLE", "4MB")}
    assert ran and all(not autocommit for _, autocommit, _, _ in ran)


def test_kept_minutes_never_push_the_sums_of_sealed_hours_out(client):
    """Kept minutes are summed anew every minute for each window in view: a store of their
    own, however many, leaves the costlier sums of sealed hours in place."""
    history(client)
    aggregate_hours()
    level_totals(make_window("7d"))
    sealed = set(sealed_sums().entries)
    assert sealed
    now = datetime.now(UTC)
    for minutes in range(MAX_ENTRIES + 8):
        level_totals(make_window("1h", now - timedelta(minutes=minutes)))
    assert sealed <= set(sealed_sums().entries)
    assert len(sealed_sums("minutes").entries) == MAX_ENTRIES


@pytest.mark.parametrize("window", ["24h", "7d"])
def test_a_service_dashboard_reads_the_tiers_once(client, monkeypatch, window):
    """Its counts, health, top errors and top templates all see the tiers divided at one
    moment: the hourly job moving between two reads would make them disagree."""
    import app.stats.counts as counts_module
    import app.stats.dashboard as dashboard_module

    reads = []

    def counted(of):
        reads.append(of.name)
        return split_of(of)

    for module in (counts_module, dashboard_module):
        monkeypatch.setattr(module, "split_of", counted)
    post_logs(client, {"service": "api", "level": "error", "message": "boom"})
    response = client.get(f"/api/logs/dashboard/service/api?window={window}")
    assert response.status_code == 200 and response.json["top_templates"]
    assert reads == [window]
