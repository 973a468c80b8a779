"""The README's run command on a machine with nothing configured: embedded servers, all
three processes, a working API, and a clean stop."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import psycopg
import pytest
import requests

import manage

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, timeout: float):
    """Call check() until it returns something truthy or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (requests.RequestException, psycopg.OperationalError):
            value = None
        if value:
            return value
        time.sleep(0.3)
    return None


@pytest.fixture
def running(tmp_path):
    """`python3 manage.py run` with no DATABASE_URL or REDIS_URL, stopped with SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LOGDASH_BASE_URL")}
    env.update(PORT=str(port), LOGDASH_INSTANCE_PATH=str(tmp_path / "instance"))
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen([sys.executable, "manage.py", "run"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    yield f"http://127.0.0.1:{port}", tmp_path / "instance", process, tmp_path / "run.log"
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    log.close()


def test_run_command_serves_with_embedded_services(running):
    """Web, worker and scheduler come up on embedded PostgreSQL and Redis, then stop cleanly."""
    url, instance, process, log = running
    ready = wait_until(lambda: requests.get(f"{url}/readyz", timeout=2).status_code == 200, 90)
    assert ready, log.read_text()[-3000:]
    # Said at the first answer manage.py itself gets, a moment after ours.
    assert wait_until(lambda: f"Logdash is running at {url}/" in log.read_text(), 10)

    response = requests.post(f"{url}/api/logs", json={"service": "demo", "message": "hello"},
                             timeout=10)
    assert response.status_code == 202
    password = re.search(r"admin / (\S+)", log.read_text()).group(1)
    browser = requests.Session()
    form = browser.get(f"{url}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    signed_in = browser.post(f"{url}/login", timeout=10, data={
        "username": "admin", "password": password, "csrf_token": csrf})
    assert signed_in.status_code == 200 and signed_in.url == f"{url}/"
    found = browser.get(f"{url}/api/logs?service=demo", timeout=10).json()
    assert [line["message"] for line in found["logs"]] == ["hello"]

    # The scheduler queues partition upkeep at start and the worker runs it.
    dsn = f"host={instance / 'pgdata'} dbname=logdash user=postgres"

    def upkeep_ran():
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT count(*) FROM logs.job_executions"
                                " WHERE job_type = 'create_partitions' AND status = 'success'"
                                ).fetchone()[0]

    assert wait_until(upkeep_ran, 60), log.read_text()[-3000:]
    assert (instance / "secret_key").exists()
    # The worker, which writes alerts' links, is told where the web server answers.
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    [worker] = [pid for pid in children
                if b"worker.py" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert f"LOGDASH_BASE_URL={url}".encode() in Path(f"/proc/{worker}/environ").read_bytes()

    # Commands reach the running embedded servers through manage.py, with nothing set.
    bare = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    made = subprocess.run([sys.executable, "manage.py", "flask", "tokens", "create", "--name",
                           "cli", "--scope", "ingest"], cwd=ROOT, timeout=60, text=True,
                          capture_output=True, env={**bare, "LOGDASH_INSTANCE_PATH": str(instance)})
    assert made.returncode == 0, made.stderr
    token = re.search(r"ld_\S+", made.stdout).group(0)
    sent = requests.post(f"{url}/api/logs", json={"service": "cli", "message": "m"}, timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
    assert sent.status_code == 202
    # A file named as it lies in the folder the command is typed in; an app.py there is
    # not taken for Logdash.
    (instance.parent / "rel.log").write_text("2026-11-28 04:05:23 ERROR disk full\n")
    (instance.parent / "app.py").write_text('raise SystemExit("not Logdash")\n')
    imported = subprocess.run([sys.executable, str(ROOT / "manage.py"), "flask", "logs",
                               "import", "rel.log", "--service", "rel"], cwd=instance.parent,
                              timeout=60, text=True, capture_output=True,
                              env={**bare, "LOGDASH_INSTANCE_PATH": str(instance)})
    assert imported.returncode == 0 and "1 accepted" in imported.stdout, imported.stderr

    # A second run from the same folder refuses to start, and leaves the first one whole.
    again = subprocess.run([sys.executable, "manage.py", "run"], cwd=ROOT, timeout=60,
                           env={**os.environ, "LOGDASH_INSTANCE_PATH": str(instance)},
                           capture_output=True, text=True)
    assert again.returncode == 1 and "already running" in again.stderr
    other = instance.parent / "other-instance"
    port = url.rsplit(":", 1)[1]
    elsewhere = subprocess.run([sys.executable, "manage.py", "run"], cwd=ROOT, timeout=60,
                               env={**os.environ, "LOGDASH_INSTANCE_PATH": str(other),
                                    "PORT": port}, capture_output=True, text=True)
    assert elsewhere.returncode == 1 and f"Port {port} on 127.0.0.1 is in use" in elsewhere.stderr
    assert not (other / "redis.sock").exists() and not (other / "pgdata").exists()
    assert (instance / "redis.sock").exists()
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not (instance / "pgdata" / "postmaster.pid").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=2)


def test_a_run_after_one_killed_outright_still_stops_its_postgres(running):
    """A run killed outright leaves its pid in pgserver's list of processes using the
    server; the next run must still stop PostgreSQL when it stops. Stopped with Ctrl-C (the
    terminal's whole process group), its embedded Redis outlives the processes using it."""
    url, instance, process, log = running
    assert wait_until(lambda: requests.get(f"{url}/readyz", timeout=2).ok, 90), \
        log.read_text()[-3000:]
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    (instance / "pgdata" / ".handle_pids.json").write_text(f"[{gone.pid}]")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LOGDASH_BASE_URL")}
    env.update(PORT=url.rsplit(":", 1)[1], LOGDASH_INSTANCE_PATH=str(instance))
    with (instance.parent / "again.log").open("w") as again_log:
        again = subprocess.Popen([sys.executable, "manage.py", "run"], cwd=ROOT, env=env,
                                 stdout=again_log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            assert wait_until(lambda: requests.get(f"{url}/readyz", timeout=2).ok, 90)
            assert wait_until(lambda: "Logdash is running at" in (
                instance.parent / "again.log").read_text(), 10)
            os.killpg(again.pid, signal.SIGINT)
            assert again.wait(30) == 0
        finally:
            if again.poll() is None:
                os.killpg(again.pid, signal.SIGTERM)
    postmaster = instance / "pgdata" / "postmaster.pid"
    left = int(postmaster.read_text().split()[0]) if postmaster.exists() else None
    if left is not None:  # the failure this test is about: stop what it left
        with contextlib.suppress(ProcessLookupError):
            os.kill(left, signal.SIGTERM)
    assert left is None
    # Stopped by the run, after the processes using it; never by the Ctrl-C itself.
    assert "Received SIGINT" not in (instance / "redis.log").read_text()


def test_a_failed_start_leaves_no_embedded_redis_behind(tmp_path):
    """When migrating fails (here: a database that does not exist), the embedded Redis the
    command started is stopped with it, so the next run does not meet it."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SECRET_KEY")}
    env.update(PORT=str(free_port()), LOGDASH_INSTANCE_PATH=str(tmp_path / "instance"),
               DATABASE_URL="postgresql://postgres@127.0.0.1:5432/logdash_no_such_database")
    redis_socket = tmp_path / "instance" / "redis.sock"
    try:
        # A Redis left running would hold the output pipe open: the run would seem to hang.
        result = subprocess.run([sys.executable, "manage.py", "run"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        leftover = subprocess.run(["pgrep", "-f", str(redis_socket)], capture_output=True,
                                  text=True).stdout.split()
        for pid in leftover:  # stop what a failing run left, so it does not outlive the test
            os.kill(int(pid), signal.SIGTERM)
    assert result.returncode != 0
    assert "embedded Redis" in result.stdout
    assert leftover == [] and not redis_socket.exists()


def test_a_venv_left_without_pip_is_made_anew(tmp_path, monkeypatch):
    """A Python without ensurepip leaves a .venv with an interpreter and no pip; the next
    run must not take that .venv as ready."""
    half_made = tmp_path / ".venv"
    venv.EnvBuilder(with_pip=False).create(half_made)
    monkeypatch.setattr(manage, "BIN", half_made / "bin")
    assert manage.venv_python().exists()
    assert not manage.venv_has_pip()
    monkeypatch.setattr(manage, "BIN", ROOT / ".venv" / "bin")
    assert manage.venv_has_pip()


def test_an_embedded_redis_that_does_not_start_stops_the_run(tmp_path):
    """A Redis that cannot listen (here: a socket path longer than unix sockets allow) is
    reported at once, with where its log is, instead of a run on a URL nothing serves;
    a socket file left by an earlier Redis that was killed does not pass for it."""
    instance = tmp_path / ("deep" * 30) / "instance"
    instance.mkdir(parents=True)
    (instance / "redis.sock").touch()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SECRET_KEY")}
    env.update(PORT=str(free_port()), LOGDASH_INSTANCE_PATH=str(instance),
               DATABASE_URL="postgresql://postgres@127.0.0.1:5432/logdash_not_reached")
    result = subprocess.run([sys.executable, "manage.py", "run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"the embedded Redis did not start; see {instance / 'redis.log'}" in result.stderr


def test_a_run_killed_outright_leaves_its_processes_locked_against_another(tmp_path,
                                                                           monkeypatch):
    """The processes a run starts hold its instance lock too: if the run itself is killed
    (SIGKILL, no chance to stop them), a second run still refuses to start beside them."""
    script = (
        "import subprocess, sys, time\n"
        "from pathlib import Path\n"
        "import manage\n"
        f"manage.INSTANCE = Path({str(tmp_path)!r})\n"
        "assert manage.hold_run_lock()\n"
        "child = subprocess.Popen(['sleep', '60'], pass_fds=manage.run_lock_fds())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                           text=True)
    child = int(run.stdout.readline())
    try:
        run.kill()
        run.wait(10)
        monkeypatch.setattr(manage, "INSTANCE", tmp_path)
        monkeypatch.setattr(manage, "RUN_LOCK", [])
        assert not manage.hold_run_lock()
        os.kill(child, signal.SIGTERM)
        wait_until(lambda: manage.hold_run_lock(), 10)
        assert manage.RUN_LOCK
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
        run.stdout.close()
        for handle in manage.RUN_LOCK:
            handle.close()
