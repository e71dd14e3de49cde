"""Events appended per second through the whole embedded write path, against a raw eventsourcing insert.

Ledger: `Ledger.append_batch` (validate, dedupe, chain, Merkle, checkpoint, one SQLite commit per batch)
into a fresh data dir with a generated key. Baseline, same run, same payload bytes: the `eventsourcing` SQLite
application recorder inserting `StoredEvent`s (originator_id = UUIDv5 of the stream, version = running seq)
in batches of the same size into a fresh file. Repetitions alternate which side runs first.

    python bench/embedded_append.py [--events 50000] [--repeat 5] [--batch-size 100] [--profile FILE]
"""

from __future__ import annotations

import cProfile
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import common
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger

BASELINE_NAMESPACE = uuid.UUID("0b3c4d5e-6f70-4182-93a4-b5c6d7e8f901")


def run_ledger(
    submissions: Sequence[bytes], batch_size: int, work_dir: Path, profiler: cProfile.Profile | None = None
) -> float:
    """Seconds to append every submission through `Ledger.append_batch` (open and close not timed)."""
    settings = common.fresh_settings(work_dir / "ledger")
    with Ledger.open(settings) as ledger:
        refused = 0
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for batch in common.batches(submissions, batch_size):
            outcomes = ledger.append_batch(batch)
            refused += sum(isinstance(outcome, SubmissionRefused) for outcome in outcomes)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
    if refused:
        raise SystemExit(f"embedded_append: {refused} submissions were refused; the workload is invalid")
    return elapsed


def run_baseline(submissions: Sequence[bytes], batch_size: int, work_dir: Path) -> float:
    """Seconds for a raw `SQLiteApplicationRecorder.insert_events` of the same bytes (setup not timed)."""
    keys = [common.stream_of(submission) for submission in submissions]
    datastore = SQLiteDatastore(str(work_dir / "baseline.sqlite"))
    try:
        recorder = SQLiteApplicationRecorder(datastore)
        recorder.create_table()
        heads: dict[str, int] = {}
        started = time.perf_counter()
        for start in range(0, len(submissions), batch_size):
            stored = []
            for (tenant, stream, topic), state in zip(
                keys[start : start + batch_size], submissions[start : start + batch_size], strict=True
            ):
                name = f"{tenant}/{stream}"
                seq = heads[name] = heads.get(name, 0) + 1
                stored.append(
                    StoredEvent(
                        originator_id=uuid.uuid5(BASELINE_NAMESPACE, name),
                        originator_version=seq,
                        topic=topic,
                        state=state,
                    )
                )
            recorder.insert_events(stored)
        return time.perf_counter() - started
    finally:
        datastore.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=50_000, repeat=5, tmp="the fresh stores", profiled="the ledger runs")
    parser.add_argument("--batch-size", type=int, default=100, help="submissions per append_batch (default 100)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.batch_size < 1 or args.missions < 1:
        parser.error("--events, --repeat, --batch-size and --missions must be positive")

    submissions = common.submissions(args.events, missions=args.missions)
    profiler = cProfile.Profile() if args.profile else None
    ledger_seconds: list[float] = []
    baseline_seconds: list[float] = []
    with common.progress() as bar:
        task = bar.add_task("embedded append", total=args.repeat * 2)
        for repetition in range(args.repeat):
            # Alternate the order so neither side always runs on a warmer (or busier) machine.
            order = ("baseline", "ledger") if repetition % 2 == 0 else ("ledger", "baseline")
            for side in order:
                with tempfile.TemporaryDirectory(prefix=f"bench-{side}-", dir=args.tmp_dir) as work_dir:
                    if side == "ledger":
                        ledger_seconds.append(run_ledger(submissions, args.batch_size, Path(work_dir), profiler))
                    else:
                        baseline_seconds.append(run_baseline(submissions, args.batch_size, Path(work_dir)))
                bar.advance(task)
    if profiler is not None:
        profiler.dump_stats(args.profile)

    sizes = sorted(len(submission) for submission in submissions)
    common.print_result(
        "embedded_append",
        params={
            "events": args.events,
            "repeat": args.repeat,
            "batch_size": args.batch_size,
            "missions": args.missions,
            "tmp_dir": str(args.tmp_dir or tempfile.gettempdir()),
            "submission_bytes_median": sizes[len(sizes) // 2],
            "event_types": list(common.CYCLE),
            "timed": "append_batch calls only; Ledger.open/close and key generation excluded",
        },
        figures={"path": "Ledger.append_batch", **common.rate_figures(args.events, ledger_seconds)},
        baseline={
            "path": "eventsourcing SQLiteApplicationRecorder.insert_events",
            **common.rate_figures(args.events, baseline_seconds),
        },
        targets={"events_per_s": 20_000, "ratio": 0.5},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
