"""`KafkaLog.find_event` (behind receipts on Kafka) reads the log newest first, on a real broker.

Kafka has no index by event_id, so a lookup reads each partition's tail in widening windows: a recent event is
found without reading the whole log, and an old or unknown one still reads every record. The match is exact:
an id that is a prefix of another, or the same id in another tenant, is not the event asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from factories import step
from kafka_support import BOOTSTRAP, fresh_topics, requires_kafka, sequenced

from ledger.log import kafka as kafka_log
from ledger.log.base import LogBackend
from ledger.sdk import Ledger
from schemas.envelope import Receipt

pytestmark = requires_kafka


def test_find_event_reads_the_tail_first_and_matches_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path, interval_ms=200)
    topics = fresh_topics(partitions=2)
    with sequenced(settings, topics, tmp_path / "sequencer") as ledger:
        ids = [f"e-{n}" for n in range(1, 41)]  # e-1 is a prefix of e-10 .. e-19
        outcomes = ledger.append_batch([step(event_id=event_id) for event_id in ids])
        outcomes += ledger.append_batch([step(tenant="globex", event_id="e-1")])
        assert all(isinstance(outcome, Receipt) for outcome in outcomes), outcomes

    with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as reader:
        log: LogBackend = reader.log
        starts: list[tuple[int, int | None]] = []
        read_partition = kafka_log.read_partition

        def watched(
            consumer: Any, topic: str, partition: int, start: int | None = None, limit: int | None = None
        ) -> Iterator[Any]:
            starts.append((partition, start))
            return read_partition(consumer, topic, partition, start, limit)

        monkeypatch.setattr(kafka_log, "read_partition", watched)
        monkeypatch.setattr(kafka_log, "FIND_WINDOW", 4)

        latest = log.find_event("acme", "e-40")
        assert latest is not None and latest["event_id"] == "e-40" and latest["seq"] == 40
        acme = latest["log"]["partition"]
        read_of_acme = [start for partition, start in starts if partition == acme]
        assert read_of_acme and all(start is not None and start > 0 for start in read_of_acme)  # only its tail

        starts.clear()
        first = log.find_event("acme", "e-1")
        assert first is not None and (first["event_id"], first["seq"], first["tenant"]) == ("e-1", 1, "acme")
        other_tenant = log.find_event("globex", "e-1")
        assert other_tenant is not None and other_tenant["tenant"] == "globex"

        starts.clear()
        assert log.find_event("acme", "e-41") is None
        assert {partition for partition, start in starts if start == 0} == {
            partition for partition in range(log.partition_count) if log.size(partition)
        }  # an unknown id reads every partition that holds events down to its first record
