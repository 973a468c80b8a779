"""Ingest benchmark: lines/s through POST /api/logs against a raw COPY ceiling.

    python bench/ingest.py                 # 200000 lines, 4 clients, batches of 1000
    python bench/ingest.py --lines 20000   # quick run (CI smoke)

Creates a throwaway database, runs the web process exactly as the Procfile says, posts
NDJSON to it, then COPYs the same number of rows straight into logs.entries from one
process, checks the counts, and prints http/raw_copy as the last line. See bench/README.md.
"""

import argparse
import json
import os
import queue
import random
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import redis
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.5
COPY_ENTRIES = (
    "COPY logs.entries (timestamp, service, level, message, host, logger, trace_id, attributes)"
    " FROM STDIN"
)
NDJSON = {"Content-Type": "application/x-ndjson"}

SERVICES = ("api", "auth", "billing", "checkout", "search", "worker")
LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_WEIGHTS = (15, 70, 10, 4, 1)
LOGGERS = ("app.http", "app.db", "app.jobs", "app.cache", "gunicorn.error", "urllib3")
PATHS = ("/api/orders", "/api/users", "/api/cart", "/api/search", "/api/invoices")
TEMPLATES = (
    "GET {path}/{id} {status} in {ms}ms",
    "POST {path} {status} in {ms}ms",
    "user {id} signed in from {ip}",
    "cache miss for key session:{hex8}",
    "retrying job {hex8} (attempt {n}/5)",
    "slow query took {ms}ms: SELECT * FROM orders WHERE customer_id = {id}",
    "payment {hex16} declined: card expired",
    "connection reset by peer {ip}:{port}",
    "worker {n} processed {id} messages in {ms}ms",
)


class BenchError(Exception):
    """Something that makes the run invalid: bad answer, wrong count, server down."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines per phase")
    parser.add_argument("--batch", type=int, default=1000, help="lines per request / COPY")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin connection; the benchmark creates and drops its own database there",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.batch < 1 or args.clients < 1:
        parser.error("--lines, --batch and --clients must be positive")
    return args


def with_database(url: str, name: str, scheme: str = "postgresql") -> str:
    """Return the URL with another database name and scheme."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=scheme, path=f"/{name}"))


def create_database(admin_url: str, name: str) -> None:
    """Create an empty database."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    """Drop the database, closing whatever still uses it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def app_env(db_url: str, redis_url: str, token: str) -> dict[str, str]:
    """Environment for the flask commands and gunicorn."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["DATABASE_URL"] = db_url
    env["REDIS_URL"] = redis_url
    env["LOGDASH_QUEUE_PREFIX"] = f"logdash-bench-{token}"
    # Without it the app writes instance/secret_key, which is not the benchmark's to touch.
    env["SECRET_KEY"] = secrets.token_hex(32)
    return env


def make_app(env: dict[str, str]):
    """The Logdash app on the benchmark's database, for the real partition, job and token code."""
    sys.path.insert(0, str(ROOT))
    from app import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
        "REDIS_URL": env["REDIS_URL"],
        "SECRET_KEY": env["SECRET_KEY"],
        "LOGDASH_QUEUE_PREFIX": env["LOGDASH_QUEUE_PREFIX"],
    })


def token_headers(app, name: str, scope: str) -> dict[str, str]:
    """Headers with a new API token of the scope, where the app has tokens at all."""
    try:
        from app.auth.credentials import create_token
    except ImportError:  # a version of Logdash from before API tokens
        return {}
    from app.extensions import db

    with app.app_context():
        _, plain = create_token(name, scope)
        db.session.remove()
    return {"Authorization": f"Bearer {plain}"}


def run_flask(env: dict[str, str], *args: str) -> None:
    """Run `flask --app app ...` and fail with its output if it fails."""
    command = ["flask", "--app", "app", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(command)} failed:\n{done.stdout}{done.stderr}")


def procfile_web() -> str:
    """Read the command of the Procfile's web: line."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == "web":
            return command.strip()
    raise BenchError("Procfile has no web: line")


def free_port() -> int:
    """Ask the kernel for a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_web(env: dict[str, str], port: int, log) -> subprocess.Popen:
    """Start gunicorn as the Procfile says, bound to localhost."""
    env = {**env, "PORT": str(port), "LOGDASH_BIND": "127.0.0.1"}
    return subprocess.Popen(
        ["/bin/sh", "-c", f"exec {procfile_web()}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Poll /healthz until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"gunicorn exited with {process.returncode} before answering")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or still booting
        time.sleep(0.2)
    raise BenchError(f"/healthz did not answer within {timeout:.0f}s")


def stop_web(process: subprocess.Popen) -> None:
    """Terminate the gunicorn master we started and wait for it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of one process, in KiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class PeakRss:
    """Samples VmHWM of the gunicorn workers, so a worker that exits still counts."""

    def __init__(self, master_pid: int, interval: float = 0.5) -> None:
        """Watch the children of master_pid."""
        self.master = psutil.Process(master_pid)
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        """Read every worker's high-water mark once."""
        try:
            children = self.master.children()
        except psutil.NoSuchProcess:
            return
        for child in children:
            try:
                hwm = vm_hwm_kib(child.pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), hwm)

    def _run(self) -> None:
        """Sample until stopped."""
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        """Begin sampling in the background."""
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            self.sample()


def log_line(rng: random.Random, now: datetime) -> dict:
    """Make one realistic log object with its timestamp as a datetime."""
    service = rng.choice(SERVICES)
    level = rng.choices(LEVELS, LEVEL_WEIGHTS)[0]
    message = rng.choice(TEMPLATES).format(
        path=rng.choice(PATHS),
        id=rng.randrange(1, 10_000_000),
        status=rng.choice((200, 200, 200, 201, 204, 304, 400, 404, 500, 503)),
        ms=rng.randrange(1, 5000),
        ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        port=rng.randrange(1024, 65536),
        hex8=f"{rng.getrandbits(32):08x}",
        hex16=f"{rng.getrandbits(64):016x}",
        n=rng.randrange(1, 6),
    )
    attributes = {"request_id": f"{rng.getrandbits(64):016x}", "duration_ms": rng.randrange(5000)}
    if rng.random() < 0.3:
        attributes["user_id"] = rng.randrange(1, 100_000)
    return {
        "timestamp": now - timedelta(microseconds=rng.randrange(1_000_000)),
        "service": service,
        "level": level,
        "message": message,
        "host": f"{service}-{rng.randrange(1, 4):02d}",
        "logger": rng.choice(LOGGERS),
        "trace_id": f"{rng.getrandbits(128):032x}" if rng.random() < 0.6 else None,
        "attributes": attributes,
    }


def batch_sizes(lines: int, batch: int) -> list[int]:
    """Split `lines` into batches of at most `batch`."""
    return [min(batch, lines - start) for start in range(0, lines, batch)]


def ndjson_bodies(lines: int, batch: int, rng: random.Random) -> list[tuple[bytes, int]]:
    """Pre-build the request bodies, so client-side work stays out of the timing."""
    now = datetime.now(UTC)
    bodies = []
    for size in batch_sizes(lines, batch):
        rows = []
        for _ in range(size):
            line = log_line(rng, now)
            line["timestamp"] = line["timestamp"].isoformat()
            rows.append(json.dumps(line, separators=(",", ":")))
        bodies.append(("\n".join(rows).encode() + b"\n", size))
    return bodies


def copy_batches(lines: int, batch: int, rng: random.Random) -> list[list[tuple]]:
    """Pre-build COPY rows in the column order of COPY_ENTRIES."""
    now = datetime.now(UTC)
    batches = []
    for size in batch_sizes(lines, batch):
        rows = []
        for _ in range(size):
            line = log_line(rng, now)
            line["attributes"] = json.dumps(line["attributes"])
            rows.append(tuple(line.values()))
        batches.append(rows)
    return batches


def post_batches(url: str, headers: dict, work: queue.Queue, failed: threading.Event,
                 out: dict) -> None:
    """One client: post bodies from the queue on one keep-alive session until it is empty."""
    latencies = out.setdefault("latencies", [])
    with requests.Session() as session:
        session.headers.update(headers)
        while not failed.is_set():
            try:
                body, size = work.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            try:
                response = session.post(url, data=body, headers=NDJSON, timeout=120)
            except requests.RequestException as error:
                out.setdefault("errors", []).append(f"request failed: {error}")
                failed.set()
                return
            latencies.append(time.perf_counter() - started)
            problem = check_answer(response, size)
            if problem:
                out.setdefault("errors", []).append(problem)
                failed.set()
                return
            out["accepted"] = out.get("accepted", 0) + size


def check_answer(response: requests.Response, size: int) -> str | None:
    """Say what is wrong with an ingest answer, or None if every line was accepted."""
    if response.status_code != 202:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    try:
        answer = response.json()
    except ValueError:
        return f"202 without JSON: {response.text[:200]}"
    if answer.get("accepted") != size or answer.get("rejected") != 0:
        return f"sent {size} lines, got {json.dumps(answer)[:500]}"
    return None


def run_http(base: str, headers: dict, bodies: list[tuple[bytes, int]], clients: int
             ) -> tuple[float, float, list]:
    """Post every body with `clients` threads; return wall and client CPU seconds, latencies."""
    work: queue.Queue = queue.Queue()
    for item in bodies:
        work.put(item)
    failed = threading.Event()
    results = [{} for _ in range(clients)]
    threads = [
        threading.Thread(target=post_batches,
                         args=(f"{base}/api/logs", headers, work, failed, out))
        for out in results
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    errors = [error for out in results for error in out.get("errors", [])]
    if errors:
        raise BenchError("ingest failed: " + "; ".join(errors[:3]))
    accepted = sum(out.get("accepted", 0) for out in results)
    expected = sum(size for _, size in bodies)
    if accepted != expected:
        raise BenchError(f"accepted {accepted} lines, expected {expected}")
    return elapsed, cpu, [latency for out in results for latency in out.get("latencies", [])]


def run_copy(db_url: str, batches: list[list[tuple]]) -> float:
    """COPY the rows from one connection, one transaction per batch; return elapsed seconds."""
    with psycopg.connect(db_url) as conn:
        started = time.perf_counter()
        for rows in batches:
            with conn.cursor() as cursor, cursor.copy(COPY_ENTRIES) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        return time.perf_counter() - started


def verify_counts(db_url: str, http_lines: int, copy_lines: int) -> tuple[int, int]:
    """Check what is in the tables against what was sent; return both counts."""
    with psycopg.connect(db_url) as conn:
        (entries,) = conn.execute("SELECT count(*) FROM logs.entries").fetchone()
        (rollup,) = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM logs.rollup_minute"
        ).fetchone()
    if entries != http_lines + copy_lines:
        raise BenchError(f"logs.entries has {entries} rows, expected {http_lines + copy_lines}")
    if rollup != http_lines:
        raise BenchError(f"logs.rollup_minute sums to {rollup}, expected {http_lines}")
    return entries, rollup


def tail(path: str, lines: int = 40) -> str:
    """Return the last lines of a file."""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def benchmark(args: argparse.Namespace, name: str, token: str, log_path: str) -> None:
    """Run both phases against the database `name` and print the results."""
    libpq_url = with_database(args.database_url, name)
    app_url = with_database(args.database_url, name, "postgresql+psycopg")
    env = app_env(app_url, args.redis_url, token)
    run_flask(env, "db", "upgrade")
    run_flask(env, "partitions")
    headers = token_headers(make_app(env), "bench/ingest.py", "ingest")
    rng = random.Random()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        web = start_web(env, port, log)
    rss = PeakRss(web.pid)
    try:
        wait_healthy(base, web)
        rss.start()
        bodies = ndjson_bodies(args.lines, args.batch, rng)
        http_seconds, client_cpu, latencies = run_http(base, headers, bodies, args.clients)
        if web.poll() is not None:
            raise BenchError(f"gunicorn exited with {web.returncode} during the run")
    finally:
        rss.stop()
        stop_web(web)
    del bodies  # the COPY rows are built next; do not hold both sets in memory

    batches = copy_batches(args.lines, args.batch, rng)
    copy_seconds = run_copy(libpq_url, batches)
    entries, rollup = verify_counts(libpq_url, args.lines, args.lines)

    http_rate = args.lines / http_seconds
    copy_rate = args.lines / copy_seconds
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    peaks = sorted(rss.peaks.values(), reverse=True)
    print(f"lines {args.lines}, batch {args.batch}, clients {args.clients}, cpus {os.cpu_count()}")
    print(f"{'phase':<10} {'seconds':>8} {'lines/s':>9}")
    print(f"{'http':<10} {http_seconds:>8.2f} {http_rate:>9.0f}")
    print(f"{'raw_copy':<10} {copy_seconds:>8.2f} {copy_rate:>9.0f}")
    print(
        f"http request latency: p50 {statistics.median(latencies) * 1000:.0f} ms,"
        f" p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms;"
        f" client CPU {client_cpu:.2f} s"
    )
    print(
        "gunicorn worker peak RSS (VmHWM): "
        + (", ".join(f"{kib / 1024:.1f} MiB" for kib in peaks) or "no workers seen")
        + (f"; max {peaks[0] / 1024:.1f} MiB" if peaks else "")
    )
    print(f"counts: logs.entries {entries} = 2 x {args.lines}, rollup sum {rollup} = http lines")
    print(f"ratio http/raw_copy = {http_rate / copy_rate:.2f} (target >= {TARGET_RATIO})")


def forget_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete what the run left in Redis under its queue prefix, RQ's jobs included."""
    client = redis.Redis.from_url(redis_url)
    keys = {*client.scan_iter(f"{prefix}:*"), *client.scan_iter(f"rq:*:{prefix}-*")}
    for queue_key in [k for k in keys if k.startswith(b"rq:queue:")]:
        keys.update(b"rq:job:" + job for job in client.lrange(queue_key, 0, -1))
        client.srem("rq:queues", queue_key)
    deleted = client.delete(*keys) if keys else 0
    client.close()
    return deleted


def run_throwaway(args: argparse.Namespace, benchmark) -> int:
    """Run benchmark(args, name, token, log_path) on a new database, always dropped; exit code."""
    token = secrets.token_hex(6)
    name = f"logdash_bench_{token}"
    log_fd, log_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".gunicorn.log")
    os.close(log_fd)
    failed = True
    create_database(args.database_url, name)
    try:
        benchmark(args, name, token, log_path)
        failed = False
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        print(f"--- gunicorn log ({log_path}) ---\n{tail(log_path)}", file=sys.stderr)
    finally:
        drop_database(args.database_url, name)
        forget_redis_keys(args.redis_url, f"logdash-bench-{token}")
        if not failed:
            os.unlink(log_path)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on a throwaway database."""
    return run_throwaway(parse_args(argv), benchmark)


if __name__ == "__main__":
    sys.exit(main())
