"""Events per second replayed into all four projections by a rebuild, against a bare read of the same log.

Setup (not timed): the benchmark workload (`common.submissions`) appended to a fresh embedded ledger. Ledger
side: `consumers.rebuild.rebuild` under the shipped default policy into a fresh state dir: read every event,
decode it, fold it into the mission, memory, trust and scope projections, write the four shadow stores.
Baseline, same run, same log: read every event and decode it (`orjson.loads`), nothing else. Repetitions
alternate which side runs first.

    python bench/rebuild.py [--events 1000000] [--repeat 3] [--profile FILE]
"""

from __future__ import annotations

import cProfile
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import common
import orjson

from consumers.policy_files import default_policy
from consumers.rebuild import rebuild
from ledger.config import Settings
from ledger.log.base import LogBackend
from ledger.sdk import Ledger
from projections.registry import all_projections


def build_log(data_root: Path, count: int, missions: int) -> Settings:
    settings = common.fresh_settings(data_root / "ledger")
    submissions = common.submissions(count, missions=missions)
    with Ledger.open(settings) as ledger, common.progress() as bar:
        task = bar.add_task("building the log", total=count)
        for batch in common.batches(submissions, 1000):
            ledger.append_batch(batch)
            bar.advance(task, len(batch))
    return settings


def run_baseline(log: LogBackend) -> float:
    started = time.perf_counter()
    for record in log.read(0):
        orjson.loads(record.envelope_bytes)
    return time.perf_counter() - started


def run_rebuild(log: LogBackend, state_root: Path, profiler: cProfile.Profile | None) -> float:
    policy = default_policy()
    projections = all_projections()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    rebuild(log, state_root, policy, projections)
    if profiler is not None:
        profiler.disable()
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=1_000_000, repeat=3, tmp="the ledger and states", profiled="rebuilds")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeat < 1 or args.missions < 1:
        parser.error("--events, --repeat and --missions must be positive")
    profiler = cProfile.Profile() if args.profile else None
    rebuild_seconds: list[float] = []
    read_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-", dir=args.tmp_dir) as work:
        settings = build_log(Path(work), args.events, args.missions)
        with Ledger.open(settings, read_only=True) as ledger, common.progress() as bar:
            task = bar.add_task("rebuild vs bare read", total=args.repeat * 2)
            for repetition in range(args.repeat):
                order = ("baseline", "rebuild") if repetition % 2 == 0 else ("rebuild", "baseline")
                for side in order:
                    if side == "baseline":
                        read_seconds.append(run_baseline(ledger.log))
                    else:
                        state_root = Path(work) / f"state-{repetition}"
                        rebuild_seconds.append(run_rebuild(ledger.log, state_root, profiler))
                    bar.advance(task)
    if profiler is not None:
        profiler.dump_stats(args.profile)
    common.print_result(
        "rebuild",
        params={
            "events": args.events,
            "repeat": args.repeat,
            "missions": args.missions,
            "event_types": list(common.CYCLE),
            "projections": [projection.name for projection in all_projections()],
            "timed": "rebuild(): read, decode, fold into 4 projections, write 4 shadow stores; log building excluded",
        },
        figures={
            "path": "consumers.rebuild.rebuild (default policy)",
            **common.rate_figures(args.events, rebuild_seconds),
        },
        baseline={"path": "EmbeddedLog.read + orjson.loads", **common.rate_figures(args.events, read_seconds)},
        targets={"events_per_s": 30_000},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
