"""The intake client gives each waiting caller its own answer, even when two submissions share an event_id.

Kafka keeps idempotency per partition, so the same event_id on two streams of different partitions is two
events, whose answers may come back in either order. Answers pair by (tenant, event_id, stream): one stream is
one partition, answered in submission order.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from conftest import make_settings
from factories import step
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka

from ledger.log.kafka import partition_of, stream_key
from ledger.log.kafka_intake import IntakeClient
from ledger.sdk import Ledger
from schemas.envelope import Receipt

pytestmark = requires_kafka
PARTITIONS = 3


def missions_on_two_partitions() -> tuple[str, str]:
    by_partition: dict[int, str] = {}
    for n in range(100):
        by_partition.setdefault(partition_of(stream_key("acme", f"mission/m-{n}"), PARTITIONS), f"m-{n}")
    first, second, *_ = by_partition.values()
    return first, second


def test_two_streams_with_one_event_id_each_get_their_own_receipt(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, interval_ms=200)
    topics = fresh_topics(partitions=PARTITIONS)
    first, second = missions_on_two_partitions()
    sequencer = SequencerThread(settings, topics, tmp_path / "sequencer")
    try:
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics) as ledger:
            for round_ in range(5):
                shared = f"shared-{round_}"
                outcomes = ledger.append_batch(
                    [step(mission=first, event_id=shared), step(mission=second, event_id=shared)]
                )
                assert all(isinstance(outcome, Receipt) for outcome in outcomes), outcomes
                assert [o.stream for o in outcomes] == [f"mission/{first}", f"mission/{second}"]  # type: ignore[union-attr]
    finally:
        sequencer.stop()
    assert sequencer.error is None


def test_answers_arriving_in_the_other_order_still_reach_their_callers() -> None:
    topics = fresh_topics(partitions=PARTITIONS)
    first, second = missions_on_two_partitions()
    client = IntakeClient(BOOTSTRAP, topics=topics)
    try:
        futures = [client.submit(step(mission=mission, event_id="shared")) for mission in (first, second)]
        # The answers arrive second stream first (as they may, from two partitions).
        for index, mission in ((1, second), (0, first)):
            envelope = {
                "tenant": "acme",
                "stream": f"mission/{mission}",
                "seq": 1,
                "hash": "sha256:" + f"{index}" * 64,
                "event_id": "shared",
                "log": {"log_id": "test", "partition": index, "index": 0},
            }
            client._answer(topics.events, orjson.dumps(envelope))
        streams = [future.result(timeout=5).stream for future in futures]  # type: ignore[union-attr]
        assert streams == [f"mission/{first}", f"mission/{second}"]
    finally:
        client.close()
