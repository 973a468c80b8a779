"""`flask logs import`: real files of every format, gzip, stdin, and resuming after a crash."""

import csv
import gzip
import json
import signal
import subprocess
import sys
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app.extensions import db
from app.ingest import importer
from app.ingest.importer import guess_level
from app.ingest.levels import normalize_level
from tests.fault_tools import ROOT, process_env
from tests.helpers import scalar
from tests.test_run_command import wait_until

LOGHUB = Path(__file__).resolve().parent.parent.parent / "shared/data/loghub"


@pytest.fixture
def run_import(app, tmp_path, monkeypatch):
    """Invoke `flask logs import ...`, keeping resume state under the test's folder."""
    monkeypatch.setattr(app, "instance_path", str(tmp_path / "instance"))
    runner = app.test_cli_runner()

    def run(*args, stdin: bytes | None = None, ok: bool = True):
        """Run the command; by default insist it succeeded."""
        result = runner.invoke(args=["logs", "import", *map(str, args)], input=stdin)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def lines(where: str = "TRUE") -> list[dict]:
    """Stored lines, oldest id first."""
    rows = db.session.execute(text(
        "SELECT service, level, message, host, attributes FROM logs.entries"
        f" WHERE {where} ORDER BY id")).mappings().all()
    db.session.rollback()
    return [dict(row) for row in rows]


@pytest.mark.parametrize(("line", "level"), [
    ("2024-01-02 ERROR db down", "error"),
    ("[warn] disk 91% full", "warning"),
    ("level=debug msg=tick", "debug"),
    ("FATAL: out of memory", "critical"),
    ("an error was corrected", "info"),  # lower-case prose is not a level marker
    ("all quiet", "info"),
])
def test_guess_level_reads_common_markers(line, level):
    """Upper-case level words anywhere near the start, lower-case ones only where marked."""
    assert guess_level(line) == level


def test_plain_file(run_import, tmp_path):
    """One line per message; levels guessed; blank lines skipped; the summary counts."""
    path = tmp_path / "app.log"
    path.write_text("ERROR db down\n\n[warn] disk 91% full\r\nstarted in 3 s\n")
    result = run_import(path, "--service", "legacy")
    assert f"{path}: 3 accepted, 0 rejected" in result.stdout
    assert [(line["service"], line["level"], line["message"]) for line in lines()] == [
        ("legacy", "error", "ERROR db down"), ("legacy", "warning", "[warn] disk 91% full"),
        ("legacy", "info", "started in 3 s")]


def test_ndjson_gzip_with_bad_lines_named(run_import, tmp_path):
    """Gzip is detected by its bytes; bad lines are refused and named by line number."""
    path = tmp_path / "events.ndjson.gz"
    path.write_bytes(gzip.compress(
        b'{"service": "api", "level": "error", "message": "boom", "order": 7}\n'
        b'not json\n'
        b'{"message": "uses the default service"}\n'
        b'{"service": "api", "level": "loud", "message": "bad level"}\n'))
    result = run_import(path, "--service", "fallback")
    assert "2 accepted, 2 rejected" in result.stdout
    assert "line 2: not valid JSON" in result.stdout
    assert "line 4: unknown level 'loud'" in result.stdout
    stored = lines()
    assert [(line["service"], line["message"]) for line in stored] == [
        ("api", "boom"), ("fallback", "uses the default service")]
    assert stored[0]["attributes"] == {"order": 7}


def test_ndjson_keeps_numbers_json_cannot_hold_as_text(run_import, tmp_path):
    """NaN and 1e400 are kept as their text, as POST /api/logs keeps them, not as null."""
    path = tmp_path / "odd.ndjson"
    path.write_bytes(b'{"service": "api", "message": "m", "ratio": NaN, "big": 1e400}\n')
    assert "1 accepted, 0 rejected" in run_import(path, "--service", "fallback").stdout
    assert lines()[0]["attributes"] == {"ratio": "NaN", "big": "1e400"}


def detected(path: Path) -> str:
    """The format the import would take the file for."""
    source = importer.Source(str(path))
    try:
        return importer.detect_format(source.stream)
    finally:
        source.close()


@pytest.mark.parametrize("first", [
    '{"service": "api", "message": "' + "x" * 10_000 + '"}',  # longer than a read buffer
    '{"service": "api", "message": "cut by a rotat',  # a broken first line
], ids=["long", "broken"])
def test_ndjson_with_a_long_or_broken_first_line_is_read_line_by_line(run_import, tmp_path,
                                                                       first):
    """Detection looks past a first line that is long or broken: the file is still NDJSON,
    read a line at a time (a JSON document is read whole), its good lines kept."""
    path = tmp_path / "events.ndjson"
    path.write_text(first + "\n" + '{"service": "api", "message": "second"}\n')
    assert detected(path) == "ndjson"
    result = run_import(path, "--service", "fallback")
    assert "accepted" in result.stdout
    assert "second" in [line["message"] for line in lines()]


def test_a_json_document_over_several_lines_is_read_whole(run_import, tmp_path):
    """An object spread over lines is one document, not NDJSON."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"service": "api", "message": "whole", "n": {"a": 1}},
                               indent=2))
    assert detected(path) == "json"
    assert "1 accepted, 0 rejected" in run_import(path, "--service", "f").stdout


def test_stdin_json_document(run_import):
    """`-` reads standard input; a JSON array is one document."""
    document = json.dumps([{"message": f"m{n}", "level": "warning"} for n in range(3)])
    result = run_import("-", "--service", "piped", "--format", "json",
                        stdin=document.encode())
    assert "-: 3 accepted, 0 rejected" in result.stdout
    assert {(line["service"], line["level"]) for line in lines()} == {("piped", "warning")}


def test_syslog_file(run_import, tmp_path):
    """Syslog lines keep their own tag and host; untagged ones get --service."""
    path = tmp_path / "messages"
    path.write_text("<11>1 2026-01-01T00:00:00Z db1 postgres - - - checkpoint slow\n"
                    "<14>no tag here\n")
    # The first line's date is long past: it is refused like any line older than 30 days.
    result = run_import(path, "--service", "box")
    assert "1 accepted, 1 rejected" in result.stdout and "line 1: timestamp" in result.stdout
    assert [(line["service"], line["level"], line["host"]) for line in lines()] == [
        ("box", "info", None)]


def test_plain_lines_keep_the_time_they_start_with(run_import, tmp_path):
    """A log file's lines were written over hours: each is stored at the time it starts
    with (no zone: UTC), not at the moment of the import."""
    first = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=123000)
    second = first + timedelta(minutes=90)
    path = tmp_path / "app.log"
    path.write_text(f"{first:%Y-%m-%d %H:%M:%S},123 ERROR worker-2 job 10 failed\n"
                    f"[{second:%Y-%m-%dT%H:%M:%S}Z] INFO worker-2 job 11 done\n"
                    "no time here\n")
    run_import(path, "--service", "app")
    stored = db.session.execute(text(
        "SELECT timestamp, level FROM logs.entries ORDER BY id")).all()
    db.session.rollback()
    assert [(at, level) for at, level in stored[:2]] == [
        (first, "error"), (second.replace(microsecond=0), "info")]
    assert stored[2][0] > datetime.now(UTC) - timedelta(minutes=5)  # the import's time


def test_a_syslog_file_as_written_to_var_log_is_read_as_syslog(run_import, tmp_path):
    """'Nov 28 04:10:01 host tag[pid]: text', as a syslog daemon writes it, is detected:
    the tag names the service, the host is kept, and so is the time."""
    moment = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    path = tmp_path / "syslog"
    path.write_text(f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S} myhost CRON[1234]:"
                    " (root) CMD (run-parts /etc/cron.hourly)\n")
    run_import(path, "--service", "box")
    stored = db.session.execute(text("SELECT service, host, timestamp FROM logs.entries")).one()
    db.session.rollback()
    assert tuple(stored) == ("CRON", "myhost", moment)


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="Loghub samples not present")
def test_loghub_file_as_plain_text(run_import, tmp_path):
    """A real Loghub log (Hadoop) as plain text: every line stored, levels as labelled."""
    with (LOGHUB / "Hadoop_2k.log_structured.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = tmp_path / "hadoop.log"
    path.write_text("".join(f"{row['Level']} {row['Content']}\n" for row in rows))
    result = run_import(path, "--service", "hadoop", "--batch-size", "500")
    assert f"{len(rows)} accepted, 0 rejected" in result.stdout
    stored = Counter(line["level"] for line in lines())
    assert stored == Counter(normalize_level(row["Level"]) for row in rows)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_resume_after_a_crash_stores_every_line_once(run_import, tmp_path, monkeypatch,
                                                     compressed):
    """A crash after a batch commits but before its offset is saved: --resume re-sends that
    batch, which its idempotency key turns into a no-op, and finishes the file."""
    path = tmp_path / ("big.log.gz" if compressed else "big.log")
    text = "".join(f"INFO line {n}\n" for n in range(2500)).encode()
    path.write_bytes(gzip.compress(text) if compressed else text)
    real_save = importer.ImportState.save
    saves = []

    def crash_on_third_save(state):
        """Save the start and the first batch, then die as the second is saved."""
        saves.append(state.position.offset)
        if len(saves) == 3:
            raise KeyboardInterrupt
        real_save(state)

    monkeypatch.setattr(importer.ImportState, "save", crash_on_third_save)
    crashed = run_import(path, "--service", "big", "--batch-size", "1000", ok=False)
    assert crashed.exit_code != 0
    assert len(lines()) == 2000  # two batches committed, only the first one's offset saved
    monkeypatch.setattr(importer.ImportState, "save", real_save)

    # A different --batch-size on resume is ignored: the re-sent batch must match.
    result = run_import(path, "--service", "big", "--batch-size", "700", "--resume")
    assert "1 batches already stored by an interrupted run" in result.stdout
    assert "resumed at byte" in result.stdout
    stored = [line["message"] for line in lines()]
    assert len(stored) == 2500 and len(set(stored)) == 2500

    if compressed:
        return
    # Resuming a finished file adds nothing; lines appended since are imported.
    with path.open("a") as handle:
        handle.write("ERROR appended later\n")
    run_import(path, "--service", "big", "--resume")
    assert [line["message"] for line in lines("level = 'error'")] == ["ERROR appended later"]
    assert len(lines()) == 2501


def test_resume_refuses_a_different_file(run_import, tmp_path):
    """A file whose start changed (replaced, rotated) is not resumed at an old offset."""
    path = tmp_path / "rotating.log"
    path.write_text("first generation\n")
    run_import(path, "--service", "r")
    path.write_text("second generation\n")
    result = run_import(path, "--service", "r", "--resume", ok=False)
    assert result.exit_code == 1 and "not the file imported before" in result.output


def test_missing_file_is_a_clear_error(run_import, tmp_path):
    """A path that cannot be opened stops the command with its name."""
    result = run_import(tmp_path / "nope.log", "--service", "x", ok=False)
    assert result.exit_code == 1 and "nope.log" in result.output


def test_a_blank_service_is_refused_before_anything_is_read(run_import, tmp_path):
    """--service names lines that do not name one: a blank one is refused at once."""
    path = tmp_path / "a.log"
    path.write_text("INFO hello\n")
    result = run_import(path, "--service", " ", ok=False)
    assert result.exit_code == 2 and "service is empty" in result.output
    assert lines() == []


def test_an_import_that_stores_nothing_fails(run_import, tmp_path):
    """Every line refused: the summary says why, and the exit status says it failed."""
    path = tmp_path / "old.ndjson"
    path.write_text('{"message": "m", "timestamp": "2001-01-01T00:00:00Z"}\n' * 2)
    result = run_import(path, "--service", "old", ok=False)
    assert result.exit_code == 1
    assert "0 accepted, 2 rejected" in result.output and "no line was accepted" in result.output


@pytest.mark.parametrize("lines", [5_000, 50_000])  # its whole text within 64 KiB, or not
def test_a_gzip_file_cut_short_stores_every_whole_line_before_the_cut(run_import, tmp_path,
                                                                      lines):
    """A truncated .gz: every whole line before the cut is stored, the one it cut is not;
    the summary names where it ends and the command fails."""
    path = tmp_path / "cut.log.gz"
    whole = gzip.compress(b"".join(b"INFO line %d\n" % n for n in range(lines)))
    path.write_bytes(whole[:len(whole) * 3 // 4])
    readable = zlib.decompressobj(31).decompress(path.read_bytes())
    whole_lines = readable.count(b"\n")
    result = run_import(path, "--service", "cut", "--batch-size", "1000", ok=False)
    assert result.exit_code == 1
    assert f"line {whole_lines + 1}: the compressed data is cut short" in result.output
    assert "cut.log.gz is cut short or damaged" in result.output
    stored = [line["message"] for line in lines_stored()]
    assert stored == readable.decode().splitlines()[:whole_lines]


def test_a_cut_download_completed_later_resumes_after_its_last_whole_line(run_import,
                                                                          tmp_path):
    """Imported while cut short, then whole: --resume goes on after the last whole line
    stored, so the line the cut split is stored once, whole."""
    path = tmp_path / "download.log.gz"
    whole = gzip.compress(b"".join(b"INFO line %d\n" % n for n in range(50_000)))
    path.write_bytes(whole[:len(whole) // 2])
    run_import(path, "--service", "dl", ok=False)
    path.write_bytes(whole)
    run_import(path, "--service", "dl", "--resume")
    assert [line["message"] for line in lines_stored()] == [
        f"INFO line {n}" for n in range(50_000)]


def lines_stored() -> list[dict]:
    """Stored lines, oldest id first, the transaction ended."""
    found = lines()
    db.session.rollback()
    return found


def test_resume_refuses_standard_input(run_import):
    """Standard input cannot be read again from where an import left it: --resume with -
    is refused rather than storing it all again."""
    result = run_import("-", "--service", "s", "--resume", stdin=b"INFO a\n", ok=False)
    assert result.exit_code == 2 and "standard input cannot be read again" in result.output
    assert lines() == []


def test_ctrl_c_stops_after_a_batch_and_resume_goes_on(app, database_url, redis_url, queue_prefix,
                                                        tmp_path):
    """The first Ctrl-C lets the batch being stored finish, says how to go on, and --resume
    then stores the rest: every line once, and no traceback."""
    path = tmp_path / "big.log"
    path.write_text("".join(f"INFO line {n}\n" for n in range(60_000)))
    env = process_env(database_url, redis_url, queue_prefix,
                      LOGDASH_INSTANCE_PATH=str(tmp_path / "instance"))
    command = [str(Path(sys.executable).parent / "flask"), "--app", "app", "logs", "import",
               str(path), "--service", "ctrlc", "--batch-size", "100"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert wait_until(lambda: count_of("ctrlc") > 0, 60)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "--resume" in output and "Traceback" not in output
    assert 0 < count_of("ctrlc") < 60_000
    resumed = subprocess.run([*command, "--resume"], cwd=ROOT, env=env, text=True,
                             capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert count_of("ctrlc") == 60_000
    assert scalar("SELECT count(DISTINCT message) FROM logs.entries") == 60_000


def count_of(service: str) -> int:
    """Lines of a service stored so far, as another process committed them."""
    count = scalar("SELECT count(*) FROM logs.entries WHERE service = :s", s=service)
    db.session.rollback()
    return count
