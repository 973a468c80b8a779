"""Dashboard under ingest: p95 of GET /api/logs/dashboard?window=24h while ingest runs, over idle.

    python bench/dashboard_load.py                                    # 60000 lines, 100 + 100
    python bench/dashboard_load.py --lines 10000 --requests 20 --rounds 2 --no-plot   # CI smoke

Creates a throwaway database and starts the Procfile's gunicorn. First measures the ingest
rate as bench/ingest.py does (NDJSON batches from client threads, here --lines lines, which
also become the data the dashboard reads). Then times the dashboard from one client in
alternating blocks: idle, then while client threads post the same batches on a fixed
schedule at --fraction of that rate. The last line is p95 under ingest over p95 idle.
See bench/README.md and docs/performance.md.
"""

import argparse
import contextlib
import math
import os
import random
import statistics
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import requests
from dashboard import percentile, time_dashboard
from fanout import NO_MATPLOTLIB, pyplot, run_throwaway, save_figure, workers_cpu
from ingest import (
    NDJSON,
    ROOT,
    BenchError,
    app_env,
    check_answer,
    free_port,
    make_app,
    ndjson_bodies,
    run_flask,
    run_http,
    start_web,
    stop_web,
    token_headers,
    wait_healthy,
    with_database,
)

TARGET_RATIO = 2.0
PLOT = ROOT / "docs" / "performance-dashboard-load.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=60_000,
                        help="lines posted to measure the ingest rate (they stay as data)")
    parser.add_argument("--batch", type=int, default=1000, help="lines per ingest request")
    parser.add_argument("--clients", type=int, default=4, help="ingest client threads")
    parser.add_argument("--fraction", type=float, default=0.5,
                        help="ingest rate under load, as a fraction of the measured rate")
    parser.add_argument("--window", default="24h", help="dashboard window timed")
    parser.add_argument("--requests", type=int, default=100,
                        help="timed requests idle, and as many under ingest")
    parser.add_argument("--rounds", type=int, default=5,
                        help="idle and loaded blocks alternate this many times, so that outside"
                             " load drifting during the run touches both alike")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per block")
    parser.add_argument("--plot", type=Path, default=PLOT, help="PNG to write (needs matplotlib)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG (smoke runs)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="admin connection; the benchmark creates and drops its own database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    if min(args.lines, args.batch, args.clients, args.requests, args.rounds) < 1:
        parser.error("--lines, --batch, --clients, --requests and --rounds must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    return args


class PacedIngest:
    """Client threads posting batches on a fixed schedule (open loop): `rate` lines/s."""

    def __init__(self, base: str, headers: dict, bodies: list[tuple[bytes, int]], rate: float,
                 clients: int) -> None:
        """Prepare; batches are taken from `bodies` in turn, again from the first if needed."""
        self.url, self.headers, self.bodies = f"{base}/api/logs", headers, bodies
        self.interval = statistics.mean(size for _, size in bodies) / rate
        self.errors: list[str] = []
        self.lines = 0
        self.late: list[float] = []  # seconds each batch was sent after its slot
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        self.started = self.seconds = 0.0

    def _slot(self) -> int:
        """The next batch's number."""
        with self._lock:
            self._next += 1
            return self._next - 1

    def _run(self) -> None:
        """Post each slot's batch at its time until stopped; a late slot goes at once."""
        with requests.Session() as session:
            session.headers.update(self.headers)
            while not self._stop.is_set() and not self.errors:
                slot = self._slot()
                due = self.started + slot * self.interval
                if self._stop.wait(max(0.0, due - time.perf_counter())):
                    return
                self.late.append(time.perf_counter() - due)
                body, size = self.bodies[slot % len(self.bodies)]
                try:
                    response = session.post(self.url, data=body, headers=NDJSON, timeout=120)
                except requests.RequestException as error:
                    self.errors.append(f"request failed: {error}")
                    return
                problem = check_answer(response, size)
                if problem:
                    self.errors.append(problem)
                    return
                with self._lock:
                    self.lines += size

    def start(self) -> None:
        """Begin posting."""
        self.started = time.perf_counter()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop after the requests in flight; fail if any answer was wrong."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.seconds = time.perf_counter() - self.started
        if self.errors:
            raise BenchError("paced ingest failed: " + "; ".join(self.errors[:3]))


class CpuMeter:
    """CPU use over some blocks: the whole machine's, and the gunicorn workers' own."""

    def __init__(self, master_pid: int) -> None:
        """Nothing measured yet."""
        self.master_pid = master_pid
        self.busy = self.total = self.workers = 0.0

    @contextlib.contextmanager
    def measuring(self):
        """Add the CPU used while the block runs."""
        machine, workers = psutil.cpu_times(), workers_cpu(self.master_pid)
        yield
        after = psutil.cpu_times()
        spent = {name: getattr(after, name) - getattr(machine, name) for name in after._fields}
        # guest time is counted in user time already.
        total = sum(spent.values()) - spent.get("guest", 0.0) - spent.get("guest_nice", 0.0)
        self.total += total
        self.busy += total - spent["idle"] - spent.get("iowait", 0.0)
        self.workers += workers_cpu(self.master_pid) - workers

    def describe(self) -> str:
        """Busy share of the machine, and the workers' CPU as cores."""
        cores = self.total / (psutil.cpu_count() or 1)  # wall seconds measured
        return (f"machine {self.busy / max(self.total, 1e-9):.0%} busy,"
                f" gunicorn workers {self.workers / max(cores, 1e-9):.2f} cores")


def timed(base: str, headers: dict, args: argparse.Namespace) -> list[float]:
    """Latencies of one block's timed dashboard requests, checking the answer."""
    block = SimpleNamespace(warmup=args.warmup, requests=math.ceil(args.requests / args.rounds))
    _, latencies, body = time_dashboard(base, args.window, headers, block)
    if body["window"]["name"] != args.window or "totals" not in body:
        raise BenchError(f"unexpected dashboard answer: {str(body)[:300]}")
    return latencies


def summary(label: str, latencies: list[float]) -> str:
    """One line: p50, p95 and max in milliseconds."""
    return (f"{label:<22} p50 {statistics.median(latencies) * 1000:7.1f} ms"
            f"  p95 {percentile(latencies, 0.95) * 1000:7.1f} ms"
            f"  max {max(latencies) * 1000:7.1f} ms  ({len(latencies)} requests)")


def save_plot(path: Path, phases: dict[str, list[float]], title: str) -> str:
    """Each phase's latencies as a distribution (sorted), p95 marked."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, latencies in phases.items():
        ordered = sorted(ms * 1000 for ms in latencies)
        share = [100 * (i + 1) / len(ordered) for i in range(len(ordered))]
        ax.plot(ordered, share, label=f"{label} (p95 {percentile(ordered, 0.95):.0f} ms)")
    ax.axhline(95, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("latency, ms (log scale)")
    ax.set_ylabel("% of requests at or under")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def benchmark(args: argparse.Namespace, name: str, token: str, log_path: str) -> None:
    """Measure the ingest rate, then the dashboard idle and under paced ingest, alternately."""
    env = {**app_env(with_database(args.database_url, name, "postgresql+psycopg"),
                     args.redis_url, token),
           # One token sends every request: the point is load, not the per-token limit.
           "LOGDASH_TOKEN_RATE_PER_MINUTE": "1000000"}
    run_flask(env, "db", "upgrade")
    run_flask(env, "partitions")
    app = make_app(env)
    ingest = token_headers(app, "bench/dashboard_load.py ingest", "ingest")
    read = token_headers(app, "bench/dashboard_load.py", "read")
    bodies = ndjson_bodies(args.lines, args.batch, random.Random(1))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        web = start_web(env, port, log)
    try:
        wait_healthy(base, web)
        seconds, _, _ = run_http(base, ingest, bodies, args.clients)
        rate = args.lines / seconds
        print(f"ingest rate: {args.lines} lines in {seconds:.2f} s = {rate:.0f} lines/s"
              f" ({args.clients} clients, batches of {args.batch}); cpus {os.cpu_count()}",
              flush=True)
        meters = {"idle": CpuMeter(web.pid), "under ingest": CpuMeter(web.pid)}
        phases, paced = alternate(base, read, ingest, bodies, rate * args.fraction, args,
                                  meters)
        if web.poll() is not None:
            raise BenchError(f"gunicorn exited with {web.returncode} during the run")
    finally:
        stop_web(web)
    report(args, phases, rate, paced, meters)


def alternate(base: str, read: dict, ingest: dict, bodies: list, rate: float,
              args: argparse.Namespace, meters: dict[str, CpuMeter]
              ) -> tuple[dict[str, list[float]], list[PacedIngest]]:
    """Time the dashboard in alternating blocks: idle, then while ingest runs at `rate`."""
    phases: dict[str, list[float]] = {"idle": [], "under ingest": []}
    paced = []
    for _ in range(args.rounds):
        with meters["idle"].measuring():
            phases["idle"] += timed(base, read, args)
        paced.append(PacedIngest(base, ingest, bodies, rate, args.clients))
        paced[-1].start()
        time.sleep(1.0)  # let the ingest settle into its pace before timing
        with meters["under ingest"].measuring():
            phases["under ingest"] += timed(base, read, args)
        paced[-1].stop()
    return phases, paced


def report(args: argparse.Namespace, phases: dict[str, list[float]], rate: float,
           paced: list[PacedIngest], meters: dict[str, CpuMeter]) -> None:
    """Print each phase, the plot's path and, last, the ratio of p95s."""
    achieved = sum(p.lines for p in paced) / sum(p.seconds for p in paced)
    late = [seconds * 1000 for p in paced for seconds in p.late]
    print(f"paced ingest: target {rate * args.fraction:.0f} lines/s ({args.fraction:g} x"
          f" {rate:.0f}), achieved {achieved:.0f} lines/s; batches sent after their slot by"
          f" p50 {statistics.median(late):.0f} ms, p95 {percentile(late, 0.95):.0f} ms")
    print(f"GET /api/logs/dashboard?window={args.window}, one client, {args.rounds} rounds of"
          f" {args.warmup} warm-ups + {math.ceil(args.requests / args.rounds)} timed requests"
          " idle, then as many under ingest")
    for label, latencies in phases.items():
        print("  " + summary(label, latencies) + "; " + meters[label].describe())
    if not args.no_plot:
        print(save_plot(args.plot, phases,
                        f"GET /api/logs/dashboard?window={args.window}, idle and while ingest"
                        f" runs at {achieved:.0f} lines/s"))
    ratio = percentile(phases["under ingest"], 0.95) / percentile(phases["idle"], 0.95)
    print(f"ratio p95 under ingest/idle = {ratio:.2f} (target <= {TARGET_RATIO:g})")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on a throwaway database."""
    return run_throwaway(parse_args(argv), benchmark)


if __name__ == "__main__":
    raise SystemExit(main())
