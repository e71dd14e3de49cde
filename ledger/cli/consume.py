"""`agent-ledger consume NAME`: run a registered consumer (`consumers/registry.py`) against the ledger.

With `--once` it catches up and prints one summary line; otherwise it follows the log until SIGINT/SIGTERM,
reporting lag on stderr. State and position commit together in the consumer's store (DESIGN guarantee 7), so a
killed consumer simply resumes. `counts` keeps `<state>/counts.sqlite` and never appends. The projections
(mission, memory, trust, scope) keep `<state>/projections/NAME.sqlite` (the live generation) and append their
decisions from the store's outbox through the normal append path, once each. `audit` keeps the DuckDB store
`<state>/audit/audit.duckdb` and publishes Parquet segments beside it for auditors to query while it runs.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from consumers.audit.session import audit_dir
from consumers.audit.sink import AuditSink, audit_runner
from consumers.audit.store import STORE_FILE
from consumers.generations import consumer_lock, live_dir, state_root_of
from consumers.projection import OutboxPublisher, ProjectionConsumer
from consumers.registry import consumer_for, known_consumers
from consumers.runner import ConsumerRunner, RunnerProgress
from consumers.store import ConsumerStore
from ledger.cli.common import add_store_options, open_ledger, progress_bar, settings_from, warn
from ledger.errors import UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "consume",
        help="run a consumer (projection feeder) against the log",
        description=f"Feed a consumer from the log into its own store. Consumers: {', '.join(known_consumers())}.",
    )
    parser.add_argument("name", metavar="NAME", help=f"consumer name ({', '.join(known_consumers())})")
    add_store_options(parser)  # --data, --keys, --kafka, --topic-prefix
    parser.add_argument("--state", type=Path, default=None, help="consumer store dir (default <data>/consumers)")
    parser.add_argument("--once", action="store_true", help="catch up, print a summary and exit")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="events per transaction (default 500; audit 10000)"
    )
    parser.add_argument("--poll-ms", type=int, default=200, help="poll interval once caught up (default 200)")
    parser.add_argument("--report-s", type=float, default=10.0, help="seconds between lag reports (default 10)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.batch_size is not None and args.batch_size < 1) or args.poll_ms < 1 or args.report_s <= 0:
        raise UsageError("--batch-size, --poll-ms and --report-s must be positive")
    consumer = consumer_for(args.name)
    settings = settings_from(args)
    state_root = state_root_of(settings.data_dir, args.state)
    projection = isinstance(consumer, ProjectionConsumer)
    with ExitStack() as stack:
        if projection:
            stack.enter_context(consumer_lock(state_root))
            state_path = live_dir(state_root) / f"{consumer.name}.sqlite"
        elif isinstance(consumer, AuditSink):
            state_path = audit_dir(state_root) / STORE_FILE
        else:
            state_path = state_root / f"{consumer.name}.sqlite"
        ledger = stack.enter_context(open_ledger(args, read_only=not projection))
        runner: ConsumerRunner[Any]
        if isinstance(consumer, AuditSink):
            runner = stack.enter_context(audit_runner(ledger.log, state_path.parent, batch_size=args.batch_size))
        else:
            store = stack.enter_context(ConsumerStore(state_path))
            if isinstance(consumer, ProjectionConsumer):
                consumer.publisher = OutboxPublisher(store, ledger.append_batch)
            runner = ConsumerRunner(ledger.log, consumer, store, batch_size=args.batch_size or consumer.batch_size)
        if args.once:
            applied = _catch_up_with_progress_bar(runner)
        else:
            applied = _follow(runner, poll_interval_s=args.poll_ms / 1000, report_s=args.report_s)
        progress = runner.store.progress()
        lag = runner.total_lag()
    stood = ", ".join(f"p{p}={s.position} (log index {s.log_index})" for p, s in progress.items()) or "none"
    print(f"{consumer.name}: applied {applied} events; positions {stood}; lag {lag}; store {state_path}")
    return 0


def _catch_up_with_progress_bar(runner: ConsumerRunner[Any]) -> int:
    with progress_bar(f"consuming into {runner.consumer.name}") as bar:
        task = bar.add_task("consume", total=runner.total_lag())
        runner.on_progress = lambda progress: bar.update(task, completed=progress.applied)
        return runner.catch_up()


def _follow(runner: ConsumerRunner[Any], *, poll_interval_s: float, report_s: float) -> int:
    stop = threading.Event()
    last_report = time.monotonic()

    def report(progress: RunnerProgress) -> None:
        nonlocal last_report
        now = time.monotonic()
        if progress.caught_up or now - last_report >= report_s:
            last_report = now
            state = "caught up" if progress.caught_up else "catching up"
            warn(f"consume {runner.consumer.name}: {state}, applied {progress.applied}, lag {progress.total_lag}")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    runner.on_progress = report
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return runner.run(stop, poll_interval_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
