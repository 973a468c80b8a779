"""Alert latency: from the 202 of the line that crosses a threshold to the signed webhook.

    python bench/alert_latency.py               # 20 trials
    python bench/alert_latency.py --trials 3    # quick run (CI smoke)

Runs web, worker and scheduler exactly as the Procfile says, on a throwaway database, with
a webhook receiver on loopback. Each trial gives a fresh service a threshold, sends one
batch that crosses it, and times how long the receiver waits for the alert. Prints the
median and p95 next to the scheduler's backstop interval; the last line is the median
against the 5 s target. See bench/README.md.
"""

import argparse
import json
import secrets
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

TARGET_MEDIAN_SECONDS = 5.0
THRESHOLD = 5


def parse_args(argv=None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds to wait for one alert before the run fails")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


class Receiver:
    """A webhook receiver on loopback noting when each service's first alert arrived."""

    def __init__(self) -> None:
        """Listen on a free port."""
        self.arrivals: dict[str, float] = {}
        self.ready = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                """Note the arrival time of a firing alert, then answer 200."""
                arrived = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()
                if body.get("event") == "firing":
                    with receiver.ready:
                        receiver.arrivals.setdefault(body["service"], arrived)
                        receiver.ready.notify_all()

            def log_message(self, *args):
                """Stay quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alert"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, service: str, timeout: float) -> float | None:
        """When the first firing alert for the service arrived, waiting up to timeout."""
        with self.ready:
            self.ready.wait_for(lambda: service in self.arrivals, timeout)
            return self.arrivals.get(service)


def procfile_command(name: str) -> str:
    """The command of one Procfile line."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise BenchError(f"Procfile has no {name}: line")


def start_process(name: str, env: dict, log) -> subprocess.Popen:
    """Start a Procfile process (worker, scheduler)."""
    return subprocess.Popen(["/bin/sh", "-c", f"exec {procfile_command(name)}"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def trial(base: str, admin: dict, ingest: dict, receiver: Receiver, number: int,
          timeout: float) -> float:
    """One crossing: seconds from the crossing batch's 202 to the webhook's arrival."""
    service = f"bench-{number}-{secrets.token_hex(3)}"
    config = {"service": service, "error_threshold_per_min": THRESHOLD,
              "alert_webhook_url": receiver.url}
    made = requests.post(f"{base}/api/logs/alerts/config", json=config, headers=admin, timeout=10)
    if made.status_code != 201:
        raise BenchError(f"config: {made.status_code} {made.text}")
    lines = [{"service": service, "level": "error", "message": f"payment {i} failed"}
             for i in range(THRESHOLD + 1)]
    answer = requests.post(f"{base}/api/logs", json=lines, headers=ingest, timeout=30)
    acknowledged = time.monotonic()
    if answer.status_code != 202:
        raise BenchError(f"ingest: {answer.status_code} {answer.text}")
    arrived = receiver.wait_for(service, timeout)
    if arrived is None:
        raise BenchError(f"no alert for {service} within {timeout:.0f}s")
    return arrived - acknowledged


def run_trials(args: argparse.Namespace, name: str, token: str, log_path: str) -> list[float]:
    """Start everything, run the trials, stop everything; return the latencies."""
    db_url = with_database(args.database_url, name, "postgresql+psycopg")
    env = {**app_env(db_url, args.redis_url, token),
           "LOGDASH_WEBHOOK_ALLOW": "127.0.0.1/32"}
    run_flask(env, "db", "upgrade")
    app = make_app(env)
    app.config["LOGDASH_WEBHOOK_ALLOW"] = "127.0.0.1/32"
    admin = token_headers(app, "bench admin", "admin")
    ingest = token_headers(app, "bench", "ingest")
    receiver = Receiver()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        processes = [start_web(env, port, log), start_process("worker", env, log),
                     start_process("scheduler", env, log)]
        try:
            wait_healthy(base, processes[0])
            latencies = []
            for number in range(args.trials):
                latencies.append(trial(base, admin, ingest, receiver, number, args.timeout))
                print(f"trial {number + 1:2d}: {latencies[-1]:.3f} s", flush=True)
            return latencies
        finally:
            for process in processes:
                stop_web(process)


def benchmark(args: argparse.Namespace, name: str, token: str, log_path: str) -> None:
    """Run the trials and print their median and p95, the ratio last."""
    latencies = run_trials(args, name, token, log_path)
    median = statistics.median(latencies)
    p95 = percentile(latencies, 0.95)
    print(f"trials {len(latencies)}: median {median:.3f} s, p95 {p95:.3f} s,"
          f" max {max(latencies):.3f} s")
    print("checks: asked by ingest for every batch with warnings or errors;"
          " backstop every 60 s (check_thresholds)")
    print(f"ratio median/target = {median / TARGET_MEDIAN_SECONDS:.2f}"
          f" (median {median:.2f} s, target <= {TARGET_MEDIAN_SECONDS:.0f} s)")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the sorted values fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def main(argv=None) -> int:
    """Run the benchmark on a throwaway database."""
    return run_throwaway(parse_args(argv), benchmark)


if __name__ == "__main__":
    raise SystemExit(main())
