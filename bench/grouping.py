"""Grouping benchmark: our message templates against drain3 on Loghub's labelled samples.

    python bench/grouping.py                    # the table, the means, µs per message
    python bench/grouping.py --write-docs       # also put the table into docs/grouping.md
    python bench/grouping.py --data DIR         # another folder of *_2k.log_structured.csv

For every file, each Content is grouped twice: by the fingerprint of its template
(app.grouping) and by the cluster drain3's TemplateMiner gives it at its default
configuration (a fresh miner per file). Both are scored with the grouping accuracy (GA) of
grouping_accuracy.py in the data folder. drain3 is optional: without it only ours is shown.
The last line is `mean grouping accuracy: ours 0.NNN, drain3 0.NNN`.
"""

import argparse
import csv
import importlib
import importlib.util
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/loghub"
DOCS = ROOT / "docs" / "grouping.md"
TABLE_START = "<!-- grouping-table:start -->"
TABLE_END = "<!-- grouping-table:end -->"
# The rules were written looking at these four files only; the other four were held out to
# check that they generalise (see docs/grouping.md).
DEVELOPED_ON = ("HDFS", "Hadoop", "Spark", "Zookeeper")
REPEATS = 7


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Loghub sample folder")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"rewrite the table in {DOCS.relative_to(ROOT)}"
    )
    return parser.parse_args(argv)


def load_module(path: Path, name: str):
    """Import a Python file by its path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_grouping():
    """Import app.grouping from this checkout, wherever the script is run from."""
    sys.path.insert(0, str(ROOT))
    return importlib.import_module("app.grouping")


def load_drain3():
    """Return drain3's (TemplateMiner, TemplateMinerConfig), or None when not installed."""
    try:
        from drain3 import TemplateMiner
        from drain3.template_miner_config import TemplateMinerConfig
    except ImportError:
        return None
    logging.getLogger("drain3").setLevel(logging.ERROR)  # it logs every new cluster
    return TemplateMiner, TemplateMinerConfig


def read_sample(path: Path) -> tuple[list[str], list[str]]:
    """Return the messages of a Loghub CSV and their true templates."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [row["Content"] for row in rows], [row["EventTemplate"] for row in rows]


def our_labels(grouping, messages: list[str]) -> list[str]:
    """Group messages by the fingerprint of their template."""
    return [grouping.fingerprint(grouping.template_of(m)) for m in messages]


def drain_labels(drain, messages: list[str]) -> list[int]:
    """Group messages by drain3 cluster, with a fresh miner at its default configuration."""
    template_miner, template_miner_config = drain
    # An explicit default config, so that a drain3.ini in the working directory is not read.
    miner = template_miner(config=template_miner_config())
    return [miner.add_log_message(m)["cluster_id"] for m in messages]


def best_time(work, messages: list[str]) -> float:
    """Return the best of REPEATS runs of work over messages, in µs per message."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        work(messages)
        best = min(best, time.perf_counter() - start)
    return best / len(messages) * 1e6


def time_ours(grouping, messages: list[str]) -> tuple[float, float]:
    """Return our µs per message (template + fingerprint) without and with the caches."""
    mask, digest = grouping.mask_line.__wrapped__, grouping.fingerprint.__wrapped__

    def cold(batch):
        """Template and fingerprint every message, bypassing the caches."""
        for m in batch:
            digest(mask(grouping.first_line(m)))

    def warm(batch):
        """Template and fingerprint every message, starting from empty caches."""
        grouping.mask_line.cache_clear()
        grouping.fingerprint.cache_clear()
        for m in batch:
            grouping.fingerprint(grouping.template_of(m))

    return best_time(cold, messages), best_time(warm, messages)


def time_drain(drain, messages: list[str]) -> float:
    """Return drain3's µs per message, a fresh miner per run."""
    return best_time(lambda batch: drain_labels(drain, batch), messages)


def fmt(value: float | None) -> str:
    """Format an accuracy, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def mean(values: list[float | None]) -> float | None:
    """Mean of the values, or None if any is missing."""
    return None if not values or None in values else statistics.fmean(values)


def text_row(cells: list[str]) -> str:
    """One row of the printed table: the file name, then right-aligned columns."""
    widths = (11, 9, 10, 8, 8)
    return f"{cells[0]:<{widths[0]}}" + "".join(
        f"{cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=False)
    )


def table_cells(rows: list[dict], ours_mean: float, drain_mean: float | None, with_drain: bool):
    """Header, one row per file and the means, as lists of cells."""
    header = ["file", "messages", "templates", "ours", "drain3"]
    body = [
        [r["name"], str(r["messages"]), str(r["templates"]), fmt(r["ours"]), fmt(r["drain3"])]
        for r in rows
    ]
    means = ["mean", "", "", fmt(ours_mean), fmt(drain_mean)]
    width = 5 if with_drain else 4
    return [cells[:width] for cells in [header, *body, means]]


def markdown_table(cells: list[list[str]]) -> str:
    """The table in Markdown, the means in bold."""
    header, *body, means = cells
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in body),
        "| " + " | ".join(f"**{cell}**" if cell else "" for cell in means) + " |",
    ]
    return "\n".join(lines)


def write_docs(table: str, timing: str) -> None:
    """Replace the table between the markers in docs/grouping.md."""
    text = DOCS.read_text(encoding="utf-8")
    head, start, rest = text.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise SystemExit(f"{DOCS}: markers {TABLE_START} / {TABLE_END} not found")
    DOCS.write_text(f"{head}{start}\n{table}\n\n{timing}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Score both groupings on every sample file and print the table."""
    args = parse_args(argv)
    files = sorted(args.data.glob("*_2k.log_structured.csv"))
    if not files:
        print(f"no *_2k.log_structured.csv in {args.data}", file=sys.stderr)
        return 2
    accuracy = load_module(args.data / "grouping_accuracy.py", "grouping_accuracy")
    grouping = load_grouping()
    drain = load_drain3()
    if drain is None:
        print("drain3 is not installed (pip install drain3): showing ours only")

    rows, everything = [], []
    for path in files:
        messages, truth = read_sample(path)
        everything += messages
        row = {
            "name": path.name.split("_")[0],
            "messages": len(messages),
            "templates": len(set(truth)),
            "ours": accuracy.grouping_accuracy(truth, our_labels(grouping, messages)),
            "drain3": None,
        }
        if drain is not None:
            row["drain3"] = accuracy.grouping_accuracy(truth, drain_labels(drain, messages))
        rows.append(row)

    ours_mean = mean([r["ours"] for r in rows])
    drain_mean = mean([r["drain3"] for r in rows])
    cells = table_cells(rows, ours_mean, drain_mean, with_drain=drain is not None)
    for row_cells in cells:
        print(text_row(row_cells))
    developed = [r["ours"] for r in rows if r["name"] in DEVELOPED_ON]
    held_out = [r["ours"] for r in rows if r["name"] not in DEVELOPED_ON]
    if developed and held_out:
        print(
            f"ours on the files the rules were developed on ({', '.join(DEVELOPED_ON)}): "
            f"{fmt(mean(developed))}; on the held-out files: {fmt(mean(held_out))}"
        )

    cold, warm = time_ours(grouping, everything)
    timing = (
        f"Ours: {cold:.1f} µs per message (template + fingerprint, no cache), {warm:.1f} µs "
        f"with the caches, over all {len(everything)} messages, best of {REPEATS}."
    )
    if drain is not None:
        timing += f" drain3: {time_drain(drain, everything):.1f} µs per message."
    print(timing)
    if args.write_docs:
        write_docs(markdown_table(cells), timing)
        print(f"table written to {DOCS}")
    print(f"mean grouping accuracy: ours {fmt(ours_mean)}, drain3 {fmt(drain_mean)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
