"""The Kafka log backend, read side: events, checkpoints and rejections from the four ledger topics.

`ledger.events` partition p is log partition p (its own Merkle tree); `ledger.checkpoints` partition p holds
its signed checkpoints. Every read is `read_committed`, so an aborted sequencer transaction is never seen
(guarantee 3). Only `agent-ledger sequencer` writes events (`kafka_sequencer.py`); this class refuses to.
Nothing outside `ledger/log/` imports kafka-python.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from ledger.errors import ConfigError
from ledger.log.base import Checkpointed, LogBackend, LogRecord, PartitionWriter, Rejection
from ledger.log.kafka_topics import Topics as Topics  # re-exported: readers name topics through this module
from ledger.log.kafka_topics import cluster_id
from ledger.merkle import MemoryNodes, event_leaf

POLL_MS = 200
FIND_WINDOW = 1_000  # records of each partition's tail that `find_event` reads first


def stream_key(tenant: str, stream: str) -> bytes:
    return f"{tenant}/{stream}".encode()


@functools.lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, positive, modulo): producers in any language agree with it."""
    partition: int = (murmur2(key) & 0x7FFFFFFF) % partitions
    return partition


def reader(bootstrap: str, **config: Any) -> KafkaConsumer:
    """A group-less consumer that sees only committed records."""
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            request_timeout_ms=30_000,
            bootstrap_timeout_ms=10_000,
            **config,
        )
    except KafkaError as exc:
        raise ConfigError(f"cannot reach Kafka at {bootstrap}: {exc}") from None


def read_partition(
    consumer: KafkaConsumer, topic: str, partition: int, start_offset: int | None = None, limit: int | None = None
) -> Iterator[Any]:
    """Committed records of one partition from `start_offset` (None: the beginning) up to the end seen now."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    if start_offset is None:
        consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, start_offset)
    produced = 0
    while consumer.position(tp) < end:
        for record in consumer.poll(timeout_ms=POLL_MS).get(tp, []):
            if record.offset >= end:
                return
            yield record
            produced += 1
            if limit is not None and produced >= limit:
                return


class KafkaLog(LogBackend):
    """Reads a Kafka-backed ledger: verify, tail, receipts and consumer runners use it."""

    def __init__(self, bootstrap: str, *, topics: Topics | None = None, log_id: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = topics or Topics()
        self._consumer = reader(bootstrap)
        partitions = self._consumer.partitions_for_topic(self.topics.events)
        if not partitions:
            raise ConfigError(
                f"topic {self.topics.events} does not exist on {bootstrap}; run `agent-ledger kafka init`"
            )
        self.partition_count = len(partitions)
        self.log_id = log_id or kafka_log_id(bootstrap, self.topics)
        self._trees: dict[int, tuple[MemoryNodes, int | None]] = {}  # partition -> (tree, offset of its last leaf)
        self._producer: KafkaProducer | None = None

    def partition_for(self, tenant: str, stream: str) -> int:
        return partition_of(stream_key(tenant, stream), self.partition_count)

    def writer(self, partition: int) -> AbstractContextManager[PartitionWriter]:
        raise ConfigError("a Kafka ledger is written only by `agent-ledger sequencer` (through ledger.intake)")

    def read(self, partition: int, start: int = 0, limit: int | None = None) -> Iterator[LogRecord]:
        skipped = 0
        for record in read_partition(self._consumer, self.topics.events, partition):
            if skipped < start:
                skipped += 1
                continue
            yield LogRecord(partition, record.offset, record.value)
            if limit is not None:
                limit -= 1
                if limit <= 0:
                    return

    def records_after(self, partition: int, position: int | None, limit: int) -> list[LogRecord]:
        start = 0 if position is None else position + 1
        return [
            LogRecord(partition, record.offset, record.value)
            for record in read_partition(self._consumer, self.topics.events, partition, start, limit)
        ]

    def _last_record(self, partition: int) -> Any | None:
        """The last committed record of an events partition. Transaction markers take offsets too, so look back
        in widening windows until a data record shows up."""
        end = self._end_offset(partition)
        window = 64
        while end > 0:
            last = None
            for record in read_partition(self._consumer, self.topics.events, partition, max(0, end - window)):
                last = record
            if last is not None or window >= end:
                return last
            window *= 64
        return None

    def end_position(self, partition: int) -> int | None:
        last = self._last_record(partition)
        return None if last is None else int(last.offset)

    def size(self, partition: int) -> int:
        last = self._last_record(partition)
        return 0 if last is None else int(orjson.loads(last.value)["log"]["index"]) + 1

    def checkpoints(self, partition: int) -> Sequence[Checkpointed]:
        stored = [
            Checkpointed(**orjson.loads(record.value))
            for record in read_partition(self._consumer, self.topics.checkpoints, partition)
        ]
        return sorted(stored, key=lambda cp: cp.tree_size)

    def latest_checkpoint(self, partition: int) -> Checkpointed | None:
        tp = TopicPartition(self.topics.checkpoints, partition)
        self._consumer.assign([tp])
        end = self._consumer.end_offsets([tp])[tp]
        # The newest checkpoint is the last record; transaction markers take offsets too, so read a short tail.
        for tail in (16, 1024, end):
            start = max(0, end - tail)
            found = [
                Checkpointed(**orjson.loads(record.value))
                for record in read_partition(self._consumer, self.topics.checkpoints, partition, start)
            ]
            if found or start == 0:
                return max(found, key=lambda cp: cp.tree_size) if found else None
        return None

    def find_event(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        """Kafka has no index by event_id, so this reads the log newest first: each partition's unread tail in
        windows that grow 16-fold, since a receipt is mostly asked for a recent event. An old or unknown
        event still costs a read of the whole log; producers get their receipts from the SDK instead."""
        needle = b'"event_id":' + orjson.dumps(event_id)  # canonical JSON writes the id exactly so
        unread = {p: self._end_offset(p) for p in range(self.partition_count)}  # partition -> [0, stop) unread
        window = FIND_WINDOW
        while any(unread.values()):
            for partition, stop in unread.items():
                if not stop:
                    continue
                start = max(0, stop - window)
                # `stop - start` records span at least the offsets up to `stop` (markers take offsets too)
                for record in read_partition(self._consumer, self.topics.events, partition, start, stop - start):
                    if needle in record.value:
                        envelope: dict[str, Any] = orjson.loads(record.value)
                        if envelope["event_id"] == event_id and envelope["tenant"] == tenant:
                            return envelope
                unread[partition] = start
            window *= 16
        return None

    def _end_offset(self, partition: int) -> int:
        tp = TopicPartition(self.topics.events, partition)
        end: int = self._consumer.end_offsets([tp])[tp]
        return end

    def get_node(self, partition: int, level: int, index: int) -> bytes:
        size_needed = (index + 1) << level
        tree, offset = self._trees.get(partition) or (MemoryNodes(), None)
        if tree.size < size_needed:
            # The log only grows, so the cached tree is extended from the record after the last one it holds:
            # a proof of a new event reads the new records, not the whole partition again.
            while records := self.records_after(partition, offset, 10_000):
                for record in records:
                    tree.append(event_leaf(record.envelope()["hash"]))
                offset = records[-1].position
            self._trees[partition] = (tree, offset)
        return tree.get_node(level, index)

    def record_rejections(self, rejections: Sequence[Rejection]) -> None:
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        for rejection in rejections:
            self._producer.send(self.topics.rejected, value=rejection_record(rejection))
        self._producer.flush()

    def rejections(self, limit: int = 100) -> list[Rejection]:
        found: list[Rejection] = []
        partitions = self._consumer.partitions_for_topic(self.topics.rejected) or set()
        for partition in sorted(partitions):
            found.extend(
                rejection_from_record(record.value)
                for record in read_partition(self._consumer, self.topics.rejected, partition)
            )
        found.sort(key=lambda rejection: rejection.received_at, reverse=True)
        return found[:limit]

    def reader_opener(self) -> Callable[[], LogBackend]:
        return functools.partial(KafkaLog, self.bootstrap, topics=self.topics, log_id=self.log_id)

    def close(self) -> None:
        self._consumer.close()
        if self._producer is not None:
            self._producer.close()


def kafka_log_id(bootstrap: str, topics: Topics) -> str:
    """A Kafka ledger's log id: the cluster id (and topic prefix), so every reader and sequencer agrees on it."""
    namespace = f"/{topics.prefix.rstrip('.')}" if topics.prefix else ""
    return f"agent-ledger.kafka/{cluster_id(bootstrap)}{namespace}"


def rejection_record(rejection: Rejection) -> bytes:
    return orjson.dumps(
        {
            "received_at": rejection.received_at,
            "reason": rejection.reason_code,
            "message": rejection.message,
            "tenant": rejection.tenant,
            "event_id": rejection.event_id,
            "raw_b64": base64.b64encode(rejection.raw).decode(),
            "detail": rejection.detail,
        }
    )


def rejection_from_record(value: bytes) -> Rejection:
    fields = orjson.loads(value)
    return Rejection(
        fields["received_at"],
        fields["reason"],
        fields["message"],
        fields["tenant"],
        fields["event_id"],
        base64.b64decode(fields["raw_b64"]),
        fields.get("detail"),
    )


def checkpoint_record(checkpoint: Checkpointed) -> bytes:
    return orjson.dumps(
        {
            "partition": checkpoint.partition,
            "tree_size": checkpoint.tree_size,
            "note": checkpoint.note,
            "recorded_at": checkpoint.recorded_at,
        }
    )
