"""Events verified per second by `agent-ledger verify`, against the floor cost of touching every stored event.

A ledger of --events realistic events is built first (not timed). Then, each --repeat times: the library
call the command makes (`Ledger.verify`: hashes, chains, indexes, Merkle roots, checkpoint signatures) and,
as the same-run baseline, a plain sequential SQLite read of the same rows with one SHA-256 of each stored
row. The real `agent-ledger verify --data DIR` subprocess is timed once, start-up included.

    python bench/verify.py [--events 200000] [--repeat 3] [--profile FILE]
"""

from __future__ import annotations

import cProfile
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common

from ledger.config import Settings
from ledger.keys import load_verifier
from ledger.log.embedded import DB_FILE
from ledger.sdk import Ledger


def build(settings: Settings, events: int, missions: int, batch_size: int) -> None:
    """Append `events` submissions and seal the ledger (not timed)."""
    submissions = common.submissions(events, missions=missions)
    with common.progress() as bar, Ledger.open(settings) as ledger:
        task = bar.add_task("building ledger", total=events)
        for batch in common.batches(submissions, batch_size):
            ledger.append_batch(batch)
            bar.advance(task, len(batch))


def run_library(settings: Settings, events: int, profiler: cProfile.Profile | None = None) -> float:
    """Seconds for `Ledger.verify` with the pinned verifier key, as `agent-ledger verify` calls it."""
    with Ledger.open(settings, create=False, read_only=True) as ledger:
        verifier = load_verifier(settings.verifier_key_path)
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = ledger.verify(verifier)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
    if report.events != events or report.sealed.get(0) != events:
        raise SystemExit(f"verify: expected {events} sealed events, the report says {report}")
    return elapsed


def run_baseline(database: Path, events: int) -> float:
    """Seconds to read every stored event in log order and SHA-256 each row: the floor of any verify."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        cursor = connection.execute("SELECT state FROM stored_events ORDER BY rowid")
        count = 0
        sha256 = hashlib.sha256
        while rows := cursor.fetchmany(2048):
            for (state,) in rows:
                sha256(state).digest()
            count += len(rows)
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if count != events:
        raise SystemExit(f"verify baseline: read {count} rows, expected {events}")
    return elapsed


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("agent-ledger")
    if script.exists():
        return [str(script)]
    found = shutil.which("agent-ledger")
    return [found] if found else [sys.executable, "-m", "ledger.cli.main"]


def run_command(data_dir: Path) -> dict[str, Any]:
    """Wall seconds of the real command once, and of its bare start-up (`--help`) for comparison."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_LEDGER_")}
    started = time.perf_counter()
    subprocess.run([*_cli(), "--help"], env=env, check=True, capture_output=True)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    done = subprocess.run([*_cli(), "verify", "--data", str(data_dir)], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"agent-ledger verify exited {done.returncode}: {done.stderr.strip()}")
    return {"seconds": elapsed, "startup_seconds": startup, "output": done.stdout.strip()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=200_000, repeat=3, tmp="the ledger files", profiled="Ledger.verify")
    parser.add_argument("--batch-size", type=int, default=100, help="append batch size while building (default 100)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.batch_size < 1 or args.missions < 1:
        parser.error("--events, --repeat, --batch-size and --missions must be positive")

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="bench-verify-", dir=args.tmp_dir) as work_dir:
        settings = common.fresh_settings(Path(work_dir) / "ledger")
        started = time.perf_counter()
        build(settings, args.events, args.missions, args.batch_size)
        build_seconds = time.perf_counter() - started
        database = settings.data_dir / DB_FILE
        library_seconds: list[float] = []
        baseline_seconds: list[float] = []
        with common.progress() as bar:
            task = bar.add_task("verify", total=args.repeat * 2)
            for repetition in range(args.repeat):
                order = ("baseline", "library") if repetition % 2 == 0 else ("library", "baseline")
                for side in order:
                    if side == "library":
                        library_seconds.append(run_library(settings, args.events, profiler))
                    else:
                        baseline_seconds.append(run_baseline(database, args.events))
                    bar.advance(task)
        command = run_command(settings.data_dir)
        database_bytes = database.stat().st_size
    if profiler is not None:
        profiler.dump_stats(args.profile)

    command_seconds = float(command["seconds"])
    common.print_result(
        "verify",
        params={
            "events": args.events,
            "repeat": args.repeat,
            "batch_size": args.batch_size,
            "missions": args.missions,
            "tmp_dir": str(args.tmp_dir or tempfile.gettempdir()),
            "database_bytes": database_bytes,
            "build_seconds": round(build_seconds, 2),
            "timed": "Ledger.verify only (open and key load excluded); the command line is timed whole",
        },
        figures={"path": "Ledger.verify", **common.rate_figures(args.events, library_seconds)},
        baseline={
            "path": "sqlite3 sequential SELECT state ORDER BY rowid + hashlib.sha256(state) per row",
            **common.rate_figures(args.events, baseline_seconds),
        },
        targets={"events_per_s": 50_000},
        extra={
            "command_line": {
                "path": "agent-ledger verify --data DIR (subprocess, once)",
                "seconds": round(command_seconds, 4),
                "events_per_s": round(args.events / command_seconds, 1),
                "startup_seconds": round(float(command["startup_seconds"]), 4),
                "output": command["output"],
            }
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
