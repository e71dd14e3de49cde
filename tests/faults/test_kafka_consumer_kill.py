"""A consumer of a Kafka-backed ledger killed with SIGKILL mid-catch-up, then restarted (guarantee 7).

The consumer stores the Kafka offset it applied in the same SQLite transaction as its state; after `kill -9`
and a restart through `agent-ledger consume counts --once --kafka`, its state equals a fresh rebuild and the true
counts of the log: every event counted exactly once, across several partitions.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import make_settings
from factories import step
from kafka_support import BOOTSTRAP, fresh_topics, requires_kafka, sequenced
from test_consumer_kill import CONSUMER, kill_9, read_until

from consumers.counts import CountsView, EventCounts, query
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.log.base import LogBackend
from ledger.sdk import Ledger

pytestmark = requires_kafka
EVENTS = 1500


def true_counts(log: LogBackend) -> CountsView:
    by_type: Counter[tuple[str, str]] = Counter()
    heads: dict[tuple[str, str], int] = {}
    for partition in range(log.partition_count):
        for record in log.read(partition):
            envelope = record.envelope()
            by_type[(envelope["tenant"], envelope["type"])] += 1
            heads[(envelope["tenant"], envelope["stream"])] = envelope["seq"]
    return CountsView(dict(by_type), heads)


def test_kill_9_of_a_kafka_consumer_then_restart_counts_every_event_exactly_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, interval_ms=200)
    topics = fresh_topics(partitions=3)
    with sequenced(settings, topics, tmp_path / "sequencer") as ledger:
        for start in range(0, EVENTS, 500):
            ledger.append_batch([step(mission=f"m-{n % 17}") for n in range(start, start + 500)])

    state = tmp_path / "consumers" / "counts.sqlite"
    kafka = ["--kafka", BOOTSTRAP, "--topic-prefix", topics.prefix]
    slow = subprocess.Popen(
        [sys.executable, CONSUMER, str(settings.data_dir), str(state), "25", "--sleep-ms", "20", *kafka],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    read_until(slow, "done", committed_at_least=300)
    kill_9(slow)

    with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as ledger:
        log = ledger.log
        with ConsumerStore(state) as store:
            stood = sum(position.log_index + 1 for position in store.progress().values())
            assert 300 <= stood < EVENTS  # killed mid-run, with state and positions committed together
            assert query(store).total == stood

        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "ledger.cli.main",
                "consume",
                "counts",
                "--once",
                "--state",
                str(state.parent),
                "--data",
                str(settings.data_dir),
                *kafka,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.startswith(f"counts: applied {EVENTS - stood} events;")

        rebuilt = ConsumerRunner(log, EventCounts(), ConsumerStore(tmp_path / "rebuilt.sqlite"), batch_size=500)
        assert rebuilt.catch_up() == EVENTS
        with ConsumerStore(state) as store:
            assert store.dump() == rebuilt.store.dump()
            assert query(store) == true_counts(log)
            assert query(store).total == EVENTS
        rebuilt.store.close()
