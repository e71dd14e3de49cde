"""`agent-ledger sequencer`: a Kafka-mode sequencer worker (run one or more; the consumer group shares partitions)."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from ledger.cli.common import add_store_options, kafka_from, settings_from, warn
from ledger.keys import load_signer
from ledger.log.kafka_sequencer import KafkaSequencer


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("sequencer", help="Kafka-mode sequencer worker")
    add_store_options(parser)
    parser.add_argument("--state", type=Path, default=None, help="replica dir (default <data>/sequencer)")
    parser.add_argument("--max-batch", type=int, default=500, help="intake records per transaction")
    parser.add_argument(
        "--session-timeout-ms", type=int, default=10_000, help="group session timeout: failover time (default 10000)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    bootstrap, topics = kafka_from(args, required=True)
    assert bootstrap is not None
    settings = settings_from(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("agent_ledger").setLevel(logging.INFO)
    worker = KafkaSequencer(
        bootstrap,
        load_signer(settings.private_key_path),
        args.state or settings.data_dir / "sequencer",
        topics=topics,
        limits=settings.limits,
        checkpoint_policy=settings.checkpoint_policy,
        max_batch=args.max_batch,
        session_timeout_ms=args.session_timeout_ms,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    warn(f"sequencer for {worker.log_id} on {bootstrap} (group {worker.group_id}) started")
    _tune_collector()
    worker.run(stop)
    warn(f"sequencer stopped after {worker.sequenced} submissions; owned partitions sealed")
    return 0


def _tune_collector() -> None:
    """This process is the worker's own, so it sets Python's cyclic collector for a long-running sealing loop.

    Its start-up heap (modules, schemas, clients) is frozen, so full collections stop walking it; their walks
    showed as receipt latency. A young collection runs every 20,000 allocations, not every 700: sealing an
    event allocates a few hundred short-lived objects, nearly all freed by reference counting before any pass
    would see them. Both cut the worker's CPU per event in alternating runs of bench/kafka_ingest.py (README,
    Kafka figures). Objects made later are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
