"""Dashboard benchmark: /api/logs/dashboard latency at two sizes, and a naive count beside it.

    python bench/dashboard.py                        # 100000 lines, then 10000000
    python bench/dashboard.py --lines-large 300000 --no-plot   # quick run (CI smoke)

Creates a throwaway database and loads a synthetic 30-day history of 50 services into it
(raw lines with COPY, counts in every tier as ingest and the jobs would have left them),
times GET /api/logs/dashboard?window=24h and ?window=7d against the Procfile's gunicorn,
grows the same history to the large size and times them again, then times a GROUP BY over
the raw lines for the same windows. The last line is naive/ours at the large size.
See bench/README.md and docs/performance.md.
"""

import argparse
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests
from ingest import (
    ROOT,
    BenchError,
    app_env,
    free_port,
    make_app,
    run_flask,
    run_throwaway,
    start_web,
    stop_web,
    token_headers,
    wait_healthy,
    with_database,
)

TARGET_GROWTH = 1.5
TARGET_NAIVE = 50
WINDOWS = ("24h", "7d")
HISTORY_DAYS = 30
MINUTE_US = 60_000_000
PLOT = ROOT / "docs" / "performance-dashboard.png"
COPY_ENTRIES = (
    "COPY logs.entries (timestamp, service, level, message, fingerprint, host, logger,"
    " trace_id, attributes) FROM STDIN"
)
NAIVE = {
    window: "SELECT service, level, count(*) FROM logs.entries"
    f" WHERE timestamp >= now() - interval '{interval}' GROUP BY 1, 2"
    for window, interval in (("24h", "24 hours"), ("7d", "7 days"))
}
COUNT_TABLES = ("rollup_minute", "template_minute", "rollup_hourly", "template_hourly",
                "rollup_daily", "templates", "services")

SERVICES = (
    "api-gateway", "auth", "billing", "cart", "catalog", "checkout", "notifications", "email",
    "inventory", "orders", "payments", "pricing", "recommendations", "reviews", "search",
    "shipping", "users", "sessions", "media", "thumbnails", "uploads", "reports", "analytics",
    "ingest", "scheduler", "worker", "cron", "webhooks", "ledger", "fraud", "tax", "currency",
    "geo", "maps", "chat", "feed", "profile", "admin", "audit", "export", "import", "backup",
    "cache", "config", "flags", "metrics", "tracing", "identity", "support", "search-indexer",
)
NOUNS = ("order", "invoice", "session", "payment", "cart", "account", "report", "shipment",
         "token", "message", "upload", "query")
# Per service: how many patterns of each level it logs, and the level's share of its lines.
LEVEL_MIX = {"debug": (2, 6.0), "info": (5, 80.0), "warning": (3, 9.0), "error": (3, 4.4),
             "critical": (1, 0.6)}
# (level, format): {noun} is fixed per template, each %s is a variable part of the kind
# named in the same order in the third field.
PATTERNS = (
    ("info", "{noun} %s created by user %s", ("id", "id")),
    ("info", "processed {noun} batch of %s items in %s", ("n", "ms")),
    ("info", "GET %s %s in %s ({noun})", ("path", "status_ok", "ms")),
    ("info", "{noun} cache hit for key=%s", ("hex",)),
    ("info", "{noun} worker started on %s:%s", ("ip", "port")),
    ("info", "published {noun} event %s", ("uuid",)),
    ("info", "{noun} sync completed: %s updated, %s unchanged", ("n", "n")),
    ("info", "scheduled {noun} cleanup in %s minutes", ("n",)),
    ("info", "{noun} heartbeat ok, uptime %s", ("hours",)),
    ("info", "accepted {noun} connection from %s", ("ip",)),
    ("debug", "{noun} lookup key=%s took %s", ("hex", "ms")),
    ("debug", "{noun} %s state transition: pending -> active", ("id",)),
    ("debug", "loaded %s {noun} rules from config", ("n",)),
    ("warning", "slow {noun} query took %s", ("ms",)),
    ("warning", "{noun} retry %s/5 for job %s", ("n5", "hex")),
    ("warning", "{noun} queue depth %s above soft limit", ("n",)),
    ("warning", "deprecated {noun} API called by client %s", ("ip",)),
    ("warning", "{noun} pool exhausted, waited %s for a connection", ("ms",)),
    ("error", "failed to process {noun} %s: timeout after %s", ("id", "ms")),
    ("error", "{noun} upstream returned %s for request %s", ("status_bad", "uuid")),
    ("error", "could not connect to {noun} store at %s:%s", ("ip", "port")),
    ("error", "{noun} validation failed for %s: missing field %s", ("id", "field")),
    ("error", "unhandled exception in {noun} handler: KeyError %s", ("hex",)),
    ("critical", "{noun} database unreachable, %s requests dropped", ("n",)),
    ("critical", "out of memory in {noun} worker %s, restarting", ("id",)),
)
PATHS = ("/api/orders", "/api/users", "/api/cart", "/api/search", "/api/invoices")
FIELDS = ('"email"', '"amount"', '"currency"', '"customer_id"', '"address"')


def _hex(rng: random.Random) -> str:
    """Eight hex digits, the last a decimal digit so the masking always sees a number."""
    return f"{rng.getrandbits(28):07x}{rng.getrandbits(3)}"


def _uuid(rng: random.Random) -> str:
    """A random UUID in its usual text form."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


VARIABLES = {
    "id": lambda rng: rng.getrandbits(23) + 1,
    "n": lambda rng: rng.getrandbits(7) + 1,
    "n5": lambda rng: rng.getrandbits(2) + 1,
    "ms": lambda rng: f"{rng.getrandbits(12) + 1}ms",
    "hours": lambda rng: f"{rng.getrandbits(9) + 1}h",
    "ip": lambda rng: f"10.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}",
    "port": lambda rng: rng.getrandbits(14) + 1024,
    "hex": _hex,
    "uuid": _uuid,
    "path": lambda rng: f"{rng.choice(PATHS)}/{rng.getrandbits(20) + 1}",
    "status_ok": lambda rng: rng.choice((200, 200, 200, 201, 204, 304)),
    "status_bad": lambda rng: rng.choice((500, 502, 503, 504)),
    "field": lambda rng: rng.choice(FIELDS),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines-small", type=int, default=100_000, help="raw lines, first size")
    parser.add_argument("--lines-large", type=int, default=10_000_000,
                        help="raw lines, second size (the same history, grown)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per window")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic history")
    parser.add_argument("--plot", type=Path, default=PLOT, help="PNG to write (needs matplotlib)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG (smoke runs)")
    parser.add_argument("--explain", action="store_true",
                        help="at the large size, time each query of the dashboard and print"
                             " the plans of the slowest")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin connection; the benchmark creates and drops its own database there",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    if args.lines_small < 1 or args.lines_large <= args.lines_small:
        parser.error("need 0 < --lines-small < --lines-large")
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be positive and --warmup not negative")
    return args


def zipf(count: int, exponent: float) -> list[float]:
    """Weights 1, 1/2^s, 1/3^s, ...: a few big ones and a long tail."""
    return [1 / (rank ** exponent) for rank in range(1, count + 1)]


def build_catalogue(rng: random.Random) -> tuple[list[tuple], list[float], dict[str, str]]:
    """Every (service, level, template) a line can come from, their weights, template texts."""
    from app.grouping import fingerprint, template_of

    formats = {}  # (pattern index, noun) -> (format, kinds, template, fingerprint)
    for index, (_, pattern, kinds) in enumerate(PATTERNS):
        for noun in NOUNS:
            fmt = pattern.replace("{noun}", noun)
            renders = {template_of(fmt % tuple(VARIABLES[k](rng) for k in kinds))
                       for _ in range(20)}
            if len(renders) != 1:
                raise BenchError(f"{fmt!r} masks to several templates: {sorted(renders)}")
            template = renders.pop()
            formats[index, noun] = (fmt, kinds, template, fingerprint(template))
    by_level = {level: [i for i, p in enumerate(PATTERNS) if p[0] == level] for level in LEVEL_MIX}
    combos, weights = [], []
    for service, service_weight in zip(SERVICES, zipf(len(SERVICES), 0.6), strict=True):
        nouns = rng.sample(NOUNS, 3)
        # Some services are much noisier in errors and warnings than others.
        trouble = rng.lognormvariate(0, 0.8)
        hosts = tuple(f"{service}-{n:02d}" for n in range(1, 4))
        for level, (patterns, share) in LEVEL_MIX.items():
            chosen = [(p, noun) for p in rng.sample(by_level[level], patterns) for noun in nouns]
            rng.shuffle(chosen)
            level_weight = share * (trouble if level in ("warning", "error", "critical") else 1)
            template_weights = zipf(len(chosen), 1.0)
            total = sum(template_weights)
            for key, template_weight in zip(chosen, template_weights, strict=True):
                fmt, kinds, _, fp = formats[key]
                generators = tuple(VARIABLES[k] for k in kinds)
                logger = f"{service}.{key[1]}"
                combos.append((service, level, fp, fmt, generators, logger, hosts))
                weights.append(service_weight * level_weight * template_weight / total)
    texts = {fp: template for _, _, template, fp in formats.values()}
    return combos, weights, texts


class History:
    """The 30 days the synthetic lines fall in, minute by minute, with a daily rhythm."""

    def __init__(self, end: datetime) -> None:
        """Minutes from `end` minus 30 days up to the minute before `end`."""
        self.end = end.replace(second=0, microsecond=0)
        self.start = self.end - timedelta(days=HISTORY_DAYS)
        minutes = HISTORY_DAYS * 24 * 60
        moments = [self.start + timedelta(minutes=i) for i in range(minutes)]
        self.prefixes = [m.strftime("%Y-%m-%d %H:%M:") for m in moments]
        self.weights = [self._rhythm(m) for m in moments]
        self.days: dict = {}  # UTC date -> (first minute index, end minute index)
        for i, moment in enumerate(moments):
            first, _ = self.days.get(moment.date(), (i, i))
            self.days[moment.date()] = (first, i + 1)

    @staticmethod
    def _rhythm(moment: datetime) -> float:
        """Relative traffic at a moment: peak mid-afternoon UTC, trough at night, quiet weekends."""
        hour = moment.hour + moment.minute / 60
        day = 1 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24)
        return day * (0.7 if moment.weekday() >= 5 else 1.0)

    def lines_per_day(self, lines: int) -> dict:
        """Split `lines` over the days in proportion to their traffic, summing exactly."""
        totals = {day: sum(self.weights[a:b]) for day, (a, b) in self.days.items()}
        whole = sum(totals.values())
        shares = {day: lines * weight / whole for day, weight in totals.items()}
        counts = {day: int(share) for day, share in shares.items()}
        by_remainder = sorted(shares, key=lambda d: shares[d] - counts[d], reverse=True)
        for day in by_remainder[: lines - sum(counts.values())]:
            counts[day] += 1
        return counts


def day_rows(history: History, day, count: int, combos: list[tuple], cum_weights: list[float],
             rng: random.Random) -> list[str]:
    """COPY text rows of one day's lines, in time order."""
    first, end = history.days[day]
    minute_weights = history.weights[first:end]
    picks = rng.choices(range(first, end), weights=minute_weights, k=count)
    bits = rng.getrandbits
    offsets = sorted(minute * MINUTE_US + bits(26) % MINUTE_US for minute in picks)
    sources = rng.choices(combos, cum_weights=cum_weights, k=count)
    prefixes = history.prefixes
    rows = []
    append = rows.append
    for offset, (service, level, fp, fmt, generators, logger, hosts) in zip(
        offsets, sources, strict=True
    ):
        minute, micros = divmod(offset, MINUTE_US)
        seconds, micros = divmod(micros, 1_000_000)
        message = fmt % tuple([generate(rng) for generate in generators])
        r = bits(64)
        trace = f"{bits(128):032x}" if r & 7 < 5 else "\\N"
        attributes = f'{{"request_id": "{r >> 8:014x}", "duration_ms": {r & 0xFFF}}}'
        append(f"{prefixes[minute]}{seconds:02d}.{micros:06d}+00\t{service}\t{level}\t{message}"
               f"\t{fp}\t{hosts[(r >> 3) % 3]}\t{logger}\t{trace}\t{attributes}\n")
    return rows


def load_lines(db_url: str, history: History, lines: int, catalogue: tuple,
               rng: random.Random) -> float:
    """COPY `lines` more synthetic lines, one transaction per day; return elapsed seconds."""
    combos, weights, _ = catalogue
    cum_weights, running = [], 0.0
    for weight in weights:
        running += weight
        cum_weights.append(running)
    started = time.perf_counter()
    with psycopg.connect(db_url) as conn:
        conn.execute("SET synchronous_commit = off")  # a crash only loses a throwaway load
        for day, count in history.lines_per_day(lines).items():
            rows = day_rows(history, day, count, combos, cum_weights, rng)
            with conn.cursor() as cursor, cursor.copy(COPY_ENTRIES) as copy:
                for start in range(0, len(rows), 20_000):
                    copy.write("".join(rows[start:start + 20_000]))
            conn.commit()
    return time.perf_counter() - started


def create_partitions(app, history: History) -> None:
    """Create the daily partitions of the history and the days ahead, with the app's code."""
    from app.ingest.partitions import ensure_partitions

    today = datetime.now(UTC).date()
    ahead = app.config["LOGDASH_PARTITION_DAYS_AHEAD"]
    days = set(history.days) | {today + timedelta(days=n) for n in range(ahead + 1)}
    with app.app_context():
        ensure_partitions(days)


def build_counts(db_url: str, app, texts: dict[str, str]) -> float:
    """Recompute every count tier, templates and services from the raw lines; return seconds."""
    from app.rollups.aggregate import aggregate_days, aggregate_hours
    from app.rollups.retention import delete_old_counts
    from app.rollups.tiers import floor_hour

    started = time.perf_counter()
    now = datetime.now(UTC)
    # The minute tier keeps 2 days; its first whole hour is where the hourly job takes over.
    minutes_from = floor_hour(now) - timedelta(days=app.config["LOGDASH_RETAIN_MINUTE_DAYS"])
    with psycopg.connect(db_url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("TRUNCATE " + ", ".join(
            f"logs.{t}" for t in (*COUNT_TABLES, "watermarks", "dirty_hours", "dirty_days")))
        conn.execute(
            "CREATE TEMP TABLE bench_hours AS SELECT date_trunc('hour', timestamp, 'UTC') AS hour,"
            " service, level, fingerprint, count(*) AS count, min(timestamp) AS first_seen,"
            " max(timestamp) AS last_seen FROM logs.entries GROUP BY 1, 2, 3, 4"
        )
        # Hours before the minute tier: what ingest and the hourly job left in the hourly tier.
        # Rows go in in time order, as ingest and the jobs write them as time passes (a
        # hash aggregate's order would scatter each minute's rows over the whole table).
        conn.execute(
            "INSERT INTO logs.template_hourly (hour, service, level, fingerprint, count)"
            " SELECT hour, service, level, fingerprint, count FROM bench_hours"
            " WHERE hour < %s ORDER BY 1", (minutes_from,))
        conn.execute(
            "INSERT INTO logs.rollup_hourly (hour, service, level, count)"
            " SELECT hour, service, level, sum(count) FROM bench_hours WHERE hour < %s"
            " GROUP BY 1, 2, 3 ORDER BY 1", (minutes_from,))
        conn.execute(
            "INSERT INTO logs.template_minute (minute, service, level, fingerprint, count)"
            " SELECT date_trunc('minute', timestamp, 'UTC'), service, level, fingerprint,"
            " count(*) FROM logs.entries WHERE timestamp >= %s GROUP BY 1, 2, 3, 4 ORDER BY 1",
            (minutes_from,))
        conn.execute(
            "INSERT INTO logs.rollup_minute (minute, service, level, count)"
            " SELECT minute, service, level, sum(count) FROM logs.template_minute"
            " GROUP BY 1, 2, 3 ORDER BY 1")
        # Ingest keeps the first line of a template as its sample.
        conn.execute(
            "INSERT INTO logs.templates"
            " (service, level, fingerprint, template, sample, first_seen, last_seen)"
            " SELECT s.service, s.level, s.fingerprint, t.template, e.message, s.first_seen,"
            " s.last_seen FROM (SELECT service, level, fingerprint, min(first_seen) AS first_seen,"
            " max(last_seen) AS last_seen FROM bench_hours GROUP BY 1, 2, 3) AS s"
            " JOIN unnest(%s::text[], %s::text[]) AS t (fingerprint, template)"
            " ON t.fingerprint = s.fingerprint"
            " CROSS JOIN LATERAL (SELECT message FROM logs.entries AS e"
            " WHERE e.fingerprint = s.fingerprint AND e.timestamp = s.first_seen"
            " AND e.service = s.service AND e.level = s.level LIMIT 1) AS e",
            (list(texts), list(texts.values())))
        conn.execute(
            "INSERT INTO logs.services (service, first_seen, last_seen)"
            " SELECT service, min(first_seen), max(last_seen) FROM bench_hours GROUP BY 1")
        conn.execute("INSERT INTO logs.watermarks (tier, through) VALUES ('hourly', %s)",
                     (minutes_from,))
    with app.app_context():
        aggregate_hours(now)
        aggregate_days(now)
        delete_old_counts(app.config, now)
    return time.perf_counter() - started


def vacuum_analyze(db_url: str) -> float:
    """VACUUM ANALYZE what was loaded, as autovacuum eventually would, then CHECKPOINT;
    return seconds."""
    started = time.perf_counter()
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in ("entries", *COUNT_TABLES):
            conn.execute(f"VACUUM (ANALYZE) logs.{table}")
        # Gigabytes just written are still being flushed to disk (by PostgreSQL and the
        # kernel) for a while: time the dashboard after that, not during it.
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def check_counts(db_url: str, expected: int) -> dict[str, int]:
    """Check that every tier adds up to the raw lines; return the row count of each table."""
    with psycopg.connect(db_url) as conn:
        (raw,) = conn.execute("SELECT count(*) FROM logs.entries").fetchone()
        hourly, daily = (conn.execute(
            "SELECT through FROM logs.watermarks WHERE tier = %s", (tier,)).fetchone()[0]
            for tier in ("hourly", "daily"))
        (tiers,) = conn.execute(
            "SELECT (SELECT coalesce(sum(count), 0) FROM logs.rollup_hourly WHERE hour < %s)"
            " + (SELECT coalesce(sum(count), 0) FROM logs.rollup_minute WHERE minute >= %s)",
            (hourly, hourly)).fetchone()
        (days,) = conn.execute(
            "SELECT (SELECT coalesce(sum(count), 0) FROM logs.rollup_daily)"
            " = (SELECT coalesce(sum(count), 0) FROM logs.rollup_hourly WHERE hour < %s)",
            (daily,)).fetchone()
        # Service counts per minute are kept longer than template counts per minute.
        (minutes,) = conn.execute(
            "SELECT (SELECT sum(count) FROM logs.rollup_minute"
            " WHERE minute >= (SELECT min(minute) FROM logs.template_minute))"
            " = (SELECT sum(count) FROM logs.template_minute)").fetchone()
        rows = {t: conn.execute(f"SELECT count(*) FROM logs.{t}").fetchone()[0]
                for t in COUNT_TABLES}
        rows["size_mb"] = conn.execute(
            "SELECT pg_database_size(current_database()) / 1048576").fetchone()[0]
    if raw != expected:
        raise BenchError(f"logs.entries has {raw} rows, expected {expected}")
    if tiers != raw:
        raise BenchError(f"hourly before {hourly} + minutes after sum to {tiers}, not {raw}")
    if not days or not minutes:
        raise BenchError("rollup_daily or rollup_minute disagree with the tier they come from")
    return rows


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a list of numbers."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def time_dashboard(base: str, window: str, headers: dict, args: argparse.Namespace
                   ) -> tuple[list, list, dict]:
    """Seconds taken by each warm-up and each timed GET of the dashboard, and the last answer.

    The warm-ups include each worker's first request of the window, which sums its sealed
    hours (they are then kept until the hourly job or a late line changes them).
    """
    url = f"{base}/api/logs/dashboard?window={window}"
    warmups, latencies = [], []
    with requests.Session() as session:
        session.headers.update(headers)
        for i in range(args.warmup + args.requests):
            started = time.perf_counter()
            response = session.get(url, timeout=300)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise BenchError(f"GET {url}: HTTP {response.status_code}: {response.text[:300]}")
            (latencies if i >= args.warmup else warmups).append(elapsed)
    return warmups, latencies, response.json()


def check_totals(db_url: str, body: dict) -> int:
    """Check the dashboard's total against a count of the raw lines in its window."""
    start = datetime.fromisoformat(body["window"]["start"])
    with psycopg.connect(db_url) as conn:
        (raw,) = conn.execute(
            "SELECT count(*) FROM logs.entries WHERE timestamp >= %s", (start,)).fetchone()
    total = body["totals"]["total"]
    if total != raw:
        raise BenchError(f"window {body['window']['name']}: dashboard total {total}, raw {raw}")
    return total


def time_naive(db_url: str, window: str, args: argparse.Namespace) -> list[float]:
    """Seconds taken by each timed GROUP BY over the raw lines of the window."""
    latencies = []
    with psycopg.connect(db_url) as conn:
        for i in range(args.warmup + args.requests):
            started = time.perf_counter()
            conn.execute(NAIVE[window]).fetchall()
            elapsed = time.perf_counter() - started
            conn.rollback()
            if i >= args.warmup:
                latencies.append(elapsed)
    return latencies


def explain_dashboard(app, db_url: str, window_name: str, slowest: int = 2) -> None:
    """Time each statement one dashboard() call runs, and print the plans of the slowest."""
    from sqlalchemy import event

    from app.extensions import db
    from app.stats.dashboard import dashboard
    from app.stats.health import HealthRules
    from app.stats.windows import make_window

    statements = []

    def before(conn, cursor, statement, parameters, context, executemany):
        """Remember when a statement started."""
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        """Record a statement with its parameters and duration."""
        elapsed = time.perf_counter() - conn.info.pop("bench_started")
        statements.append((elapsed, statement, parameters))

    with app.app_context():
        engine = db.engine
        dashboard(make_window(window_name), HealthRules.from_config(app.config))  # warm up
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            dashboard(make_window(window_name), HealthRules.from_config(app.config))
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
        db.session.remove()
    print(f"--- dashboard(window={window_name}) in-process, {len(statements)} statements ---")
    for elapsed, statement, _ in statements:
        print(f"{elapsed * 1000:8.1f} ms  {' '.join(statement.split())[:110]}")
    with psycopg.connect(db_url) as conn:
        for elapsed, statement, parameters in sorted(statements, key=lambda s: -s[0])[:slowest]:
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
            print(f"--- plan of the {elapsed * 1000:.1f} ms statement ---")
            print("\n".join(line for (line,) in plan))
            conn.rollback()


def summary(latencies: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    return statistics.median(latencies) * 1000, percentile(latencies, 0.95) * 1000


def save_plot(path: Path, results: dict, sizes: dict) -> str:
    """Draw p50 and p95 of every measurement as grouped bars; say what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    series = [(f"ours, {sizes['small']:,} lines", "small"),
              (f"ours, {sizes['large']:,} lines", "large"),
              (f"naive GROUP BY, {sizes['large']:,} lines", "naive")]
    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.13
    for s, (label, key) in enumerate(series):
        for q, quantile in enumerate(("p50", "p95")):
            offset = (s * 2 + q - 2.5) * width
            values = [results[key, w][q] for w in WINDOWS]
            bars = ax.bar([i + offset for i in range(len(WINDOWS))], values, width,
                          label=f"{label} {quantile}", color=f"C{s}",
                          alpha=1.0 if q == 0 else 0.55)
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(WINDOWS)), [f"window={w}" for w in WINDOWS])
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (log scale)")
    ax.set_title("GET /api/logs/dashboard (HTTP, gunicorn) vs GROUP BY over raw lines")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def measure_size(label: str, base: str, headers: dict, db_url: str, args: argparse.Namespace,
                 results: dict) -> None:
    """Time both windows over HTTP and check their totals against the raw lines."""
    for window in WINDOWS:
        warmups, latencies, body = time_dashboard(base, window, headers, args)
        total = check_totals(db_url, body)
        results[label, window] = summary(latencies)
        p50, p95 = results[label, window]
        cold = f"  slowest warm-up {max(warmups) * 1000:.1f} ms" if warmups else ""
        print(f"  {label:<6} {window:<4} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms{cold}"
              f"  (total {total} lines in the window, checked against raw)")


def grow(label: str, target: int, loaded: int, db_url: str, app, history: History,
         catalogue: tuple, rng: random.Random) -> dict:
    """Load lines up to `target`, rebuild the counts, vacuum; print and return table sizes."""
    seconds = load_lines(db_url, history, target - loaded, catalogue, rng)
    counts_seconds = build_counts(db_url, app, catalogue[2])
    vacuum_seconds = vacuum_analyze(db_url)
    rows = check_counts(db_url, target)
    print(f"{label}: {target} lines; COPY of {target - loaded} lines {seconds:.1f} s"
          f" ({(target - loaded) / seconds:.0f} lines/s), counts {counts_seconds:.1f} s,"
          f" vacuum analyze {vacuum_seconds:.1f} s, database {rows['size_mb']} MB")
    print("  rows: " + ", ".join(f"{t} {rows[t]}" for t in COUNT_TABLES))
    return rows


def benchmark(args: argparse.Namespace, name: str, token: str, log_path: str) -> None:
    """Load, measure at both sizes, measure the naive query, and print the results."""
    libpq_url = with_database(args.database_url, name)
    env = app_env(with_database(args.database_url, name, "postgresql+psycopg"),
                  args.redis_url, token)
    run_flask(env, "db", "upgrade")
    app = make_app(env)
    rng = random.Random(args.seed)
    catalogue = build_catalogue(rng)
    history = History(datetime.now(UTC))
    create_partitions(app, history)
    headers = token_headers(app, "bench/dashboard.py", "read")
    print(f"history {history.start:%Y-%m-%d %H:%M} to {history.end:%Y-%m-%d %H:%M} UTC,"
          f" {len(SERVICES)} services, {len(catalogue[2])} templates,"
          f" {len(catalogue[0])} (service, level, template) sources, cpus {os.cpu_count()}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        web = start_web(env, port, log)
    results: dict = {}
    rows: dict = {}
    try:
        wait_healthy(base, web)
        loaded = 0
        for label, target in (("small", args.lines_small), ("large", args.lines_large)):
            rows[label] = grow(label, target, loaded, libpq_url, app, history, catalogue, rng)
            loaded = target
            measure_size(label, base, headers, libpq_url, args, results)
        if web.poll() is not None:
            raise BenchError(f"gunicorn exited with {web.returncode} during the run")
    finally:
        stop_web(web)
    for window in WINDOWS:
        results["naive", window] = summary(time_naive(libpq_url, window, args))
    if args.explain:
        for window in WINDOWS:
            explain_dashboard(app, libpq_url, window)
    report(args, results, rows)


def report(args: argparse.Namespace, results: dict, rows: dict) -> None:
    """Print the table and the ratios, the naive one last; save the plot."""
    sizes = {"small": args.lines_small, "large": args.lines_large}
    print(f"\n{args.requests} timed requests per row after {args.warmup} warm-ups")
    print(f"{'what':<22} {'lines':>10} {'window':>6} {'p50 ms':>9} {'p95 ms':>9}")
    for key, what in (("small", "dashboard (HTTP)"), ("large", "dashboard (HTTP)"),
                      ("naive", "naive GROUP BY (SQL)")):
        lines = sizes.get(key, args.lines_large)
        for window in WINDOWS:
            p50, p95 = results[key, window]
            print(f"{what:<22} {lines:>10} {window:>6} {p50:>9.1f} {p95:>9.1f}")
    growth = {t: rows["large"][t] / max(rows["small"][t], 1) for t in COUNT_TABLES}
    print("rollup rows large/small: " + ", ".join(f"{t} {g:.1f}x" for t, g in growth.items()))
    if not args.no_plot:
        print(save_plot(args.plot, results, sizes))
    for window in WINDOWS:
        ratio = results["large", window][1] / results["small", window][1]
        print(f"ratio large/small p95 ({window}) = {ratio:.2f} (target <= {TARGET_GROWTH})")
    # Both windows the issue names; 24h last, as the smallest (the one the target binds).
    for window in sorted(WINDOWS, key=lambda w: w == "24h"):
        ratio = results["naive", window][0] / results["large", window][0]
        print(f"ratio naive/ours p50 at large ({window}) = {ratio:.1f}"
              f" (target >= {TARGET_NAIVE})")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on a throwaway database."""
    return run_throwaway(parse_args(argv), benchmark)


if __name__ == "__main__":
    sys.exit(main())
