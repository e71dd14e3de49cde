"""A rebuild of a Kafka ledger shared out over two processes writes exactly what one process writes.

Each process opens its own Kafka reader (`KafkaLog.reader_opener`) and replays the same range of every
partition; the stores' table dumps must be equal to those of a rebuild in one process.
"""

from __future__ import annotations

from pathlib import Path

from agent_events import close_requested, grant, memory_written, mission_opened, tool_call
from conftest import make_settings
from kafka_support import BOOTSTRAP, fresh_topics, requires_kafka, sequenced

from consumers.policy_files import default_policy
from consumers.rebuild import rebuild, store_path
from consumers.store import ConsumerStore
from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger
from projections.registry import all_projections

pytestmark = requires_kafka


def test_a_kafka_rebuild_over_two_processes_equals_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, interval_ms=200)
    topics = fresh_topics(partitions=3)
    with sequenced(settings, topics, tmp_path / "sequencer") as ledger:
        for n in range(8):
            agent, mission = f"a-{n % 3}", f"m-{n}"
            batch = [grant(agent, "ci.run_tests", "sandbox"), *mission_opened(mission, agent)]
            batch += [s for k in range(5) for s in tool_call(agent, "ci.run_tests", k % 3 != 0, mission=mission)]
            batch += [memory_written(f"mem-{n}", agent, mission=mission), close_requested(mission, agent)]
            assert not [o for o in ledger.append_batch(batch) if isinstance(o, SubmissionRefused)]

    with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as ledger:
        assert ledger.log.reader_opener() is not None
        assert sum(1 for p in range(ledger.log.partition_count) if ledger.log.size(p)) > 1, "spread the log"
        alone = rebuild(ledger.log, tmp_path / "one", default_policy(), all_projections(), workers=1)
        shared = rebuild(ledger.log, tmp_path / "two", default_policy(), all_projections(), workers=2)
    assert shared.events == alone.events > 100 and shared.entities == alone.entities
    for projection in all_projections():
        with (
            ConsumerStore(store_path(tmp_path / "one" / alone.generation, projection.name)) as one,
            ConsumerStore(store_path(tmp_path / "two" / shared.generation, projection.name)) as two,
        ):
            assert one.dump() == two.dump(), projection.name
