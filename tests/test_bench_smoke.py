"""The benchmarks run end to end at a small size, so they keep working as the code moves."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import with_database

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(("script", "args", "last_line"), [
    ("alert_latency.py", ["--trials", "2"], "ratio median/target = "),
    ("ingest.py", ["--lines", "4000", "--clients", "2"], "ratio http/raw_copy = "),
    ("dashboard.py", ["--lines-small", "2000", "--lines-large", "20000", "--requests", "5",
                      "--warmup", "1", "--no-plot"], "ratio naive/ours "),
    ("dashboard_load.py", ["--lines", "6000", "--requests", "10", "--rounds", "1",
                           "--no-plot"], "ratio p95 under ingest/idle = "),
    ("fanout.py", ["--clients", "1,5", "--seconds", "2", "--lines", "200", "--no-plot"],
     "ratio scans per tick "),
])
def test_benchmark_runs_and_prints_its_ratio(database_url, redis_url, script, args, last_line):
    """Each script finishes, checks its own results, and ends with its ratio."""
    admin_url = with_database(database_url, "postgres")
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--database-url", admin_url,
         "--redis-url", redis_url],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].startswith(last_line)
