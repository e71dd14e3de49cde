"""Test support for the real Kafka broker: fresh topic namespaces and an in-process sequencer worker.

Tests that need Kafka use AGENT_LEDGER_KAFKA (host:port, started by `scripts/test` via `scripts/kafka-local`) and
are skipped with a clear reason when it is unset. Each test gets its own topic prefix, so tests never share state.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ledger.config import Settings
from ledger.keys import load_signer
from ledger.log.kafka_sequencer import KafkaSequencer
from ledger.log.kafka_topics import TopicPlan, Topics, ensure_topics
from ledger.sdk import Ledger

BOOTSTRAP = os.environ.get("AGENT_LEDGER_KAFKA", "")
requires_kafka = pytest.mark.skipif(
    not BOOTSTRAP,
    reason="AGENT_LEDGER_KAFKA (host:port of a real Kafka broker) is not set; `scripts/test` starts one",
)


def fresh_topics(partitions: int = 2) -> Topics:
    """A fresh namespace of the four topics, created by the same code as `agent-ledger kafka init`."""
    topics = Topics(f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(BOOTSTRAP, TopicPlan(partitions=partitions), prefix=topics.prefix)
    return topics


class SequencerThread:
    """An `agent-ledger sequencer` worker running in this process until `stop()`."""

    def __init__(self, settings: Settings, topics: Topics, state_dir: Path, **options: Any) -> None:
        self.worker = KafkaSequencer(
            BOOTSTRAP,
            load_signer(settings.private_key_path),
            state_dir,
            topics=topics,
            checkpoint_policy=settings.checkpoint_policy,
            **options,
        )
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self._stop)
        except BaseException as exc:  # kept for the test to assert on
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def wait_sealed(ledger: Ledger, timeout_s: float = 30.0) -> None:
    """Wait until every partition's latest checkpoint covers all its events (the workers seal on a timer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sealed = True
        for partition in range(ledger.log.partition_count):
            size = ledger.log.size(partition)
            latest = ledger.log.latest_checkpoint(partition)
            if size and (latest is None or latest.tree_size < size):
                sealed = False
        if sealed:
            return
        time.sleep(0.1)
    raise AssertionError("the sequencer did not seal the log in time")


@contextmanager
def sequenced(settings: Settings, topics: Topics, state_dir: Path) -> Iterator[Ledger]:
    """A ledger on `topics` whose appends a sequencer worker in this process seals; when the block ends the log
    is sealed, the worker stops, and an error the worker met fails the test."""
    sequencer = SequencerThread(settings, topics, state_dir)
    try:
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics) as ledger:
            yield ledger
            wait_sealed(ledger)
    finally:
        sequencer.stop()
    assert sequencer.error is None, sequencer.error
