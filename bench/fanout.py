"""Live fan-out benchmark: every dashboard socket gets every tick, computed once per tick.

    python bench/fanout.py                                         # 1, 100, 1000 sockets
    python bench/fanout.py --clients 1,20 --seconds 3 --no-plot    # quick run (CI smoke)

Creates a throwaway database, posts some traffic through the API, starts the Procfile's
gunicorn (2 gthread workers, LOGDASH_WEB_THREADS raised so every socket has its thread),
then holds 1, 100 and 1000 WebSockets on /ws/logs/dashboard?window=1h for --seconds each.
A Redis subscriber on the live channel notes when each frame was published. Prints frames
per client per second, publish-to-receipt lag, and the database's table scans per tick;
the last line is scans per tick at the most sockets divided by scans per tick at one.
See bench/README.md and docs/performance.md.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import psycopg
import redis
from dashboard import percentile
from ingest import (
    ROOT,
    BenchError,
    PeakRss,
    app_env,
    free_port,
    make_app,
    ndjson_bodies,
    run_flask,
    run_http,
    run_throwaway,
    start_web,
    stop_web,
    token_headers,
    wait_healthy,
    with_database,
)
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

TARGET_QUERY_RATIO = 1.1
WINDOW = "1h"
PATH = f"/ws/logs/dashboard?window={WINDOW}"
TOPIC = f"dashboard:{WINDOW}"
# Tables the handshake's token check reads and writes: per connection, not per tick.
AUTH_TABLES = ("api_tokens", "users")
# Handshakes in flight at once: each holds a pooled database connection for its token check.
HANDSHAKES_AT_ONCE = 25
# A PostgreSQL 15 backend flushes its table counters at most once a second; counts made
# less than a second after its last flush wait until it has been idle 10 s
# (PGSTAT_IDLE_INTERVAL). Read them only after this long with nothing running.
STATS_SETTLE_SECONDS = 11.0
# The frame's "updated" time is unique per computation and says which tick it belongs to.
MARKER = re.compile(r'<time datetime="([^"]+)"')
PLOT = ROOT / "docs" / "performance-fanout.png"
NO_MATPLOTLIB = "matplotlib is not installed: no plot (pip install matplotlib)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,100,1000",
                        help="comma-separated socket counts, one phase each; the first is the"
                             " baseline of the ratio, the last its numerator")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--lines", type=int, default=5000, help="lines posted before the phases")
    parser.add_argument("--tick", type=float, default=1.0, help="LOGDASH_LIVE_TICK_SECONDS")
    parser.add_argument("--threads", type=int, default=0,
                        help="LOGDASH_WEB_THREADS (default: the most sockets + 64, so every"
                             " socket fits in one worker whatever the kernel's spread)")
    parser.add_argument("--no-deflate", action="store_true",
                        help="do not offer permessage-deflate (browsers do; simple-websocket's"
                             " client does not)")
    parser.add_argument("--plot", type=Path, default=PLOT, help="PNG to write (needs matplotlib)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG (smoke runs)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin connection; the benchmark creates and drops its own database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    try:
        args.counts = [int(n) for n in args.clients.split(",")]
    except ValueError:
        parser.error("--clients takes integers separated by commas")
    if not args.counts or min(args.counts) < 1 or args.seconds <= 0 or args.tick <= 0:
        parser.error("--clients, --seconds and --tick must be positive")
    args.threads = args.threads or max(args.counts) + 64
    return args


def marker_of(frame: str) -> str | None:
    """The generated-at time of a dashboard frame, None for other messages (alert banners)."""
    found = MARKER.search(frame)
    return found.group(1) if found else None


def tick_of(marker: str, tick_seconds: float) -> int:
    """The tick a frame was computed for (the tick loop starts on the boundary)."""
    return int(datetime.fromisoformat(marker).timestamp() // tick_seconds)


class Publications:
    """A subscriber on the live channel: when each dashboard frame was published."""

    def __init__(self, redis_url: str, channel: str) -> None:
        """Subscribe now, so no frame published from here on is missed."""
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.published: dict[str, float] = {}  # marker -> time.time() on receipt
        self.sizes: list[int] = []  # bytes of each frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Note every dashboard frame's arrival until stopped."""
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            arrived = time.time()
            body = json.loads(message["data"])
            if body["topic"] == TOPIC and (marker := marker_of(body["data"])):
                self.published.setdefault(marker, arrived)
                self.sizes.append(len(body["data"].encode()))

    def between(self, start: float, end: float) -> dict[str, float]:
        """Frames published in [start, end)."""
        return {m: t for m, t in list(self.published.items()) if start <= t < end}

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join()
        self.pubsub.close()


@dataclass(eq=False)
class Socket:
    """One client WebSocket and the frames it received: (time.time(), marker)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ws: WSConnection
    frames: list = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)


async def open_socket(port: int, headers: dict[str, str], deflate: bool) -> Socket:
    """Connect and complete the WebSocket handshake, with the token in its headers.

    With deflate, offer permessage-deflate as browsers do; the server then compresses
    every frame for every socket.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    extensions = [PerMessageDeflate()] if deflate else []
    writer.write(ws.send(Request(host=f"127.0.0.1:{port}", target=PATH, extra_headers=extra,
                                 extensions=extensions)))
    while True:
        data = await asyncio.wait_for(reader.read(65536), 30)
        if not data:
            raise BenchError("the server closed a socket during its handshake")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return Socket(reader, writer, ws)
            if isinstance(event, RejectConnection):
                raise BenchError(f"handshake refused with HTTP {event.status_code}")


async def receive(sock: Socket) -> None:
    """Note every frame's arrival time and marker until the connection ends."""
    parts: list[str] = []
    while data := await sock.reader.read(262144):
        arrived = time.time()
        sock.ws.receive_data(data)
        for event in sock.ws.events():
            if isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    sock.frames.append((arrived, marker_of("".join(parts))))
                    sock.first.set()
                    parts.clear()
            elif isinstance(event, Ping) and sock.ws.state is ConnectionState.OPEN:
                sock.writer.write(sock.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                return


async def close_socket(sock: Socket) -> None:
    """Say goodbye and close the connection."""
    try:
        sock.writer.write(sock.ws.send(CloseConnection(code=1000)))
        await sock.writer.drain()
    except (ConnectionError, RuntimeError):
        pass  # already closed by the server
    sock.writer.close()


@dataclass
class Target:
    """The gunicorn under test: where to connect, with which token, how to watch it."""

    port: int
    headers: dict[str, str]
    app: object
    pid: int
    db_url: str
    deflate: bool


def workers_cpu(master_pid: int) -> float:
    """CPU seconds used so far by the gunicorn master's workers."""
    total = 0.0
    for child in psutil.Process(master_pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            total += times.user + times.system
    return total


@dataclass
class Phase:
    """What one phase measured."""

    clients: int
    per_worker: list[int]
    connect_seconds: float
    ticks: range
    sockets: list[Socket]
    client_cpu: float
    server_cpu: float
    scans: dict[str, tuple[int, int]] = field(default_factory=dict)


async def hold_sockets(target: Target, count: int, ticks: int, tick: float) -> Phase:
    """Open count sockets, wait for a frame on each, hold them for `ticks` ticks, close them."""
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)

    async def opened() -> Socket:
        """One handshake, at most HANDSHAKES_AT_ONCE at a time."""
        async with gate:
            return await open_socket(target.port, target.headers, target.deflate)

    started = time.perf_counter()
    sockets = await asyncio.gather(*(opened() for _ in range(count)))
    connect_seconds = time.perf_counter() - started
    readers = [asyncio.create_task(receive(sock)) for sock in sockets]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in sockets)), 30)
    except TimeoutError as error:
        missing = sum(not s.first.is_set() for s in sockets)
        raise BenchError(f"{missing} of {count} sockets got no frame within 30 s") from error
    per_worker = worker_spread(target.app)
    # The measured ticks start at the next boundary, whole ticks only.
    first = math.floor(time.time() / tick) + 1
    await asyncio.sleep(first * tick - time.time())
    cpu, server = time.process_time(), workers_cpu(target.pid)
    await asyncio.sleep(ticks * tick)
    client_cpu, server_cpu = time.process_time() - cpu, workers_cpu(target.pid) - server
    await asyncio.sleep(2 * tick + 1)  # the frames of the last ticks are still on their way
    await asyncio.gather(*(close_socket(sock) for sock in sockets))
    await asyncio.wait(readers, timeout=5)
    return Phase(count, per_worker, connect_seconds, range(first, first + ticks), sockets,
                 client_cpu, server_cpu)


def table_scans(db_url: str) -> dict[str, tuple[int, int]]:
    """Scans (sequential + index) and rows read so far, per table of the logs schema."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0),"
            " coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_user_tables WHERE schemaname = 'logs'").fetchall()
    return {name: (scans, read) for name, scans, read in rows}


def scans_delta(before: dict, after: dict, auth: bool) -> tuple[int, int]:
    """Scans and rows read between two readings, of the auth tables or of all the others."""
    names = [n for n in after if (n in AUTH_TABLES) == auth]
    return tuple(sum(after[n][i] - before.get(n, (0, 0))[i] for n in names) for i in (0, 1))


def worker_spread(app) -> list[int]:
    """Open sockets per web process, from the live sockets set every hub keeps in Redis."""
    from app.realtime.hub import keys_of

    members = app.redis.zrangebyscore(keys_of(app).sockets, time.time(), "+inf")
    counts: dict[str, int] = {}
    for member in members:
        hub = member.decode().split(":", 1)[0]
        counts[hub] = counts.get(hub, 0) + 1
    return sorted(counts.values(), reverse=True)


def run_phase(args, count: int, target: Target, before: dict) -> tuple[Phase, dict]:
    """One phase, from a reading of the table counters to the next, nothing running at either."""
    ticks = max(1, round(args.seconds / args.tick))
    phase = asyncio.run(hold_sockets(target, count, ticks, args.tick))
    time.sleep(STATS_SETTLE_SECONDS)
    after = table_scans(target.db_url)
    phase.scans = {"ticks": scans_delta(before, after, auth=False),
                   "handshakes": scans_delta(before, after, auth=True)}
    return phase, after


def summarize(phase: Phase, published: dict[str, float], phase_published: dict[str, float],
              tick: float) -> dict:
    """Delivery, lag and database work of one phase, from the frames and the counters."""
    in_window = {m: t for m, t in published.items() if tick_of(m, tick) in phase.ticks}
    seconds = len(phase.ticks) * tick
    received = [sum(1 for _, m in s.frames if m in in_window) for s in phase.sockets]
    lags = [arrived - in_window[m] for s in phase.sockets for arrived, m in s.frames
            if m in in_window]
    # Work per computation (every frame the phase published; the ticks while sockets connect
    # and close are uneven), times computations per tick over the measured ticks.
    computations = max(len(phase_published), 1)
    per_tick = len(in_window) / len(phase.ticks)
    scans, rows = phase.scans["ticks"]
    return {
        "clients": phase.clients,
        "per_worker": phase.per_worker,
        "connect_s": phase.connect_seconds,
        "published": len(in_window),
        "expected": len(phase.ticks),
        "fps_min": min(received) / seconds,
        "fps_median": statistics.median(received) / seconds,
        "delivered": sum(received) / max(len(in_window) * phase.clients, 1),
        "lag_p50_ms": statistics.median(lags) * 1000 if lags else float("nan"),
        "lag_p95_ms": percentile(lags, 0.95) * 1000 if lags else float("nan"),
        "lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        "frames_per_tick": per_tick,
        "scans_per_frame": scans / computations,
        "scans_per_tick": scans / computations * per_tick,
        "rows_per_tick": rows / computations * per_tick,
        "handshake_scans": phase.scans["handshakes"][0] / phase.clients,
        "client_cpu": phase.client_cpu / seconds,
        "server_cpu": phase.server_cpu / seconds,
    }


def load_traffic(base: str, app, lines: int) -> float:
    """Post realistic lines through the API, so the frames have numbers; return lines/s."""
    import random

    headers = token_headers(app, "bench/fanout.py ingest", "ingest")
    bodies = ndjson_bodies(lines, 500, random.Random(1))
    seconds, _, _ = run_http(base, headers, bodies, 2)
    return lines / seconds


def pyplot():
    """matplotlib.pyplot drawing to files, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(plt, fig, path: Path) -> str:
    """Write a figure as PNG, close it, and say where."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def save_plot(path: Path, results: list[dict], tick: float) -> str:
    """Frames per client per second, p95 lag and scans per tick against the socket count."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    clients = [r["clients"] for r in results]
    panels = (  # title, {label: values}, (reference value, its label)
        ("frames per client per second", {"min": "fps_min", "median": "fps_median"},
         (1 / tick, "one per tick")),
        ("publish-to-receipt lag, ms", {"p50": "lag_p50_ms", "p95": "lag_p95_ms"},
         (tick * 1000, "one tick")),
        ("table scans per tick", {"scans": "scans_per_tick"},
         (results[0]["scans_per_tick"] * TARGET_QUERY_RATIO, f"{TARGET_QUERY_RATIO} x at 1")),
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, series, (reference, reference_label)) in zip(axes, panels, strict=True):
        for label, key in series.items():
            ax.plot(clients, [r[key] for r in results], marker="o", label=label)
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label)
        ax.set_xscale("log")
        ax.set_xlabel("open sockets (2 workers)")
        ax.set_title(title, fontsize=10)
        highest = max([reference, *(r[key] for key in series.values() for r in results)])
        ax.set_ylim(0, highest * 1.25)
        ax.legend(fontsize=8, loc="center left")
    fig.suptitle(f"/ws/logs/dashboard?window={WINDOW}, tick {tick:g} s", fontsize=10)
    return save_figure(plt, fig, path)


def report(args, results: list[dict], peaks: list[int], frame_bytes: list[int]) -> None:
    """Print delivery and cost per phase, the plot's path and, last, the ratio of scans per tick."""
    print(f"\n{'sockets':>7} {'per worker':>11} {'connects/s':>10} {'frames':>7} {'fps min':>7}"
          f" {'fps med':>7} {'delivered':>9} {'lag p50':>7} {'lag p95':>7} {'lag max':>7}")
    for r in results:
        spread = "+".join(str(n) for n in r["per_worker"])
        frames = f"{r['published']}/{r['expected']}"
        print(f"{r['clients']:>7} {spread:>11} {r['clients'] / r['connect_s']:>10.0f} {frames:>7}"
              f" {r['fps_min']:>7.2f} {r['fps_median']:>7.2f} {r['delivered']:>9.1%}"
              f" {r['lag_p50_ms']:>7.0f} {r['lag_p95_ms']:>7.0f} {r['lag_max_ms']:>7.0f}")
    print(f"\n{'sockets':>7} {'frames/tick':>11} {'scans/frame':>11} {'scans/tick':>10}"
          f" {'rows/tick':>9} {'handshake scans':>15} {'server cpu':>10} {'client cpu':>10}")
    for r in results:
        print(f"{r['clients']:>7} {r['frames_per_tick']:>11.2f} {r['scans_per_frame']:>11.1f}"
              f" {r['scans_per_tick']:>10.1f} {r['rows_per_tick']:>9.0f}"
              f" {r['handshake_scans']:>15.1f} {r['server_cpu']:>10.0%} {r['client_cpu']:>10.0%}")
    print(f"frames: published / ticks measured (tick {args.tick:g} s); fps: frames per client"
          f" per second (target {1 / args.tick:g}); delivered: frames received / (sockets x"
          " frames published); lag: ms from publication (a Redis subscriber's receipt) to the"
          " socket's; frames/tick: computations per measured tick; scans, rows: sequential +"
          " index scans and rows read in the logs tables but the token tables, per frame the"
          " phase computed, and that times frames/tick; handshake scans: in the token tables,"
          " per socket; cpu: of one core, gunicorn workers and this client")
    print(f"frame size {statistics.median(frame_bytes) / 1024:.1f} KiB; gunicorn worker peak"
          " RSS (VmHWM) " + ", ".join(f"{kib / 1024:.0f} MiB" for kib in peaks)
          + f"; LOGDASH_WEB_THREADS {args.threads}: at most {2 * args.threads} open sockets,"
          " one gthread thread each, fewer as HTTP requests need threads too")
    if not args.no_plot:
        print(save_plot(args.plot, results, args.tick))
    first, last = results[0], results[-1]
    ratio = last["scans_per_tick"] / first["scans_per_tick"] if first["scans_per_tick"] else 0
    print(f"ratio scans per tick {last['clients']}/{first['clients']} sockets = {ratio:.2f}"
          f" (target <= {TARGET_QUERY_RATIO})")


def benchmark(args: argparse.Namespace, name: str, token: str, log_path: str) -> None:
    """Load traffic, run every phase against the Procfile's gunicorn, and print the results."""
    libpq_url = with_database(args.database_url, name)
    env = {**app_env(with_database(args.database_url, name, "postgresql+psycopg"),
                     args.redis_url, token),
           "LOGDASH_WEB_THREADS": str(args.threads),
           "LOGDASH_LIVE_TICK_SECONDS": str(args.tick),
           # One token opens every socket (a browser's pages would use sessions, not limited).
           "LOGDASH_TOKEN_RATE_PER_MINUTE": "1000000"}
    run_flask(env, "db", "upgrade")
    run_flask(env, "partitions")
    app = make_app(env)
    from app.realtime.hub import keys_of

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        web = start_web(env, port, log)
    rss = PeakRss(web.pid)
    publications = Publications(args.redis_url, keys_of(app).channel)
    results = []
    try:
        wait_healthy(base, web)
        rss.start()
        rate = load_traffic(base, app, args.lines)
        print(f"loaded {args.lines} lines through POST /api/logs ({rate:.0f} lines/s);"
              f" cpus {os.cpu_count()}, tick {args.tick:g} s, {args.seconds:g} s per phase,"
              f" permessage-deflate {'off' if args.no_deflate else 'offered, as browsers do'}",
              flush=True)
        target = Target(port, token_headers(app, "bench/fanout.py", "read"), app, web.pid,
                        libpq_url, not args.no_deflate)
        time.sleep(STATS_SETTLE_SECONDS)
        counters = table_scans(libpq_url)
        for count in args.counts:
            started = time.time()
            phase, counters = run_phase(args, count, target, counters)
            result = summarize(phase, publications.published,
                               publications.between(started, time.time()), args.tick)
            results.append(result)
            print(f"{count} sockets: spread {result['per_worker']}, fps min"
                  f" {result['fps_min']:.2f}, lag p95 {result['lag_p95_ms']:.0f} ms,"
                  f" scans/tick {result['scans_per_tick']:.1f}", flush=True)
            if web.poll() is not None:
                raise BenchError(f"gunicorn exited with {web.returncode} during the run")
    finally:
        publications.close()
        rss.stop()
        stop_web(web)
    report(args, results, sorted(rss.peaks.values(), reverse=True), publications.sizes)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on a throwaway database."""
    return run_throwaway(parse_args(argv), benchmark)


if __name__ == "__main__":
    sys.exit(main())
