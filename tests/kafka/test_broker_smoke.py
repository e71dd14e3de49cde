"""Smoke tests against a real Apache Kafka broker: what the Kafka backend relies on, checked with kafka-python.

Needs AGENT_LEDGER_KAFKA=host:port (for example from ``scripts/kafka-local start``, which prints
``KAFKA=127.0.0.1:19092``); skipped when it is unset. Every test uses fresh topic, group and
transactional ids, so the suite can run again and again against the same broker.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

kafka = pytest.importorskip("kafka", reason="kafka-python is not installed")

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.errors import InvalidProducerEpochError, KafkaError, ProducerFencedError  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

BOOTSTRAP = os.environ.get("AGENT_LEDGER_KAFKA", "")

pytestmark = pytest.mark.skipif(
    not BOOTSTRAP,
    reason="AGENT_LEDGER_KAFKA (host:port of a real Kafka broker) is not set; "
    "start one with `scripts/kafka-local start` and export AGENT_LEDGER_KAFKA=127.0.0.1:19092",
)

TIMEOUT_MS = 30_000

MakeTopic = Callable[..., str]


def _name(prefix: str) -> str:
    return f"smoke.{prefix}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def admin() -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="smoke-admin", request_timeout_ms=TIMEOUT_MS)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_topic(admin: KafkaAdminClient) -> Iterator[MakeTopic]:
    created: list[str] = []

    def make(prefix: str = "topic", partitions: int = 1) -> str:
        name = _name(prefix)
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=TIMEOUT_MS,
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    yield make
    if created:
        with contextlib.suppress(KafkaError):  # best effort: names are unique anyway
            admin.delete_topics(created, timeout_ms=TIMEOUT_MS)


def _transactional_producer(transactional_id: str) -> KafkaProducer:
    producer = KafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=TIMEOUT_MS,
        max_block_ms=TIMEOUT_MS,
    )
    producer.init_transactions()
    return producer


def _read_all(topic: str, *, isolation_level: str, group_id: str | None = None, expect: int | None = None) -> list[Any]:
    """Read a topic from the beginning until `expect` records arrived or the topic stays quiet."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
        consumer_timeout_ms=3_000 if expect is None else 15_000,
    )
    records: list[Any] = []
    try:
        for record in consumer:
            records.append(record)
            if expect is not None and len(records) >= expect:
                break
    finally:
        consumer.close()
    return records


def test_admin_client_creates_a_topic_with_the_requested_partitions(
    admin: KafkaAdminClient, make_topic: MakeTopic
) -> None:
    topic = make_topic("admin", partitions=3)

    assert topic in admin.list_topics()
    [described] = admin.describe_topics([topic])
    assert described["error_code"] == 0
    assert len(described["partitions"]) == 3


def test_topics_are_not_auto_created_by_producing(admin: KafkaAdminClient) -> None:
    topic = _name("auto")
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, max_block_ms=3_000)
    try:
        with pytest.raises(KafkaError):
            producer.send(topic, b"x").get(timeout=5)
    finally:
        producer.close(timeout=5)
    assert topic not in admin.list_topics()


def test_committed_transaction_is_read_by_a_read_committed_consumer(make_topic: MakeTopic) -> None:
    topic = make_topic("commit")
    producer = _transactional_producer(_name("tx"))
    try:
        producer.begin_transaction()
        for i in range(3):
            producer.send(topic, key=b"tenant/stream", value=f"event-{i}".encode())
        producer.commit_transaction()
    finally:
        producer.close()

    records = _read_all(topic, isolation_level="read_committed", expect=3)

    assert [r.value for r in records] == [b"event-0", b"event-1", b"event-2"]
    assert all(r.key == b"tenant/stream" for r in records)


def test_aborted_transaction_is_invisible_to_read_committed_but_visible_to_read_uncommitted(
    make_topic: MakeTopic,
) -> None:
    topic = make_topic("abort")
    producer = _transactional_producer(_name("tx"))
    try:
        producer.begin_transaction()
        producer.send(topic, value=b"aborted")
        producer.flush()
        producer.abort_transaction()
        producer.begin_transaction()
        producer.send(topic, value=b"committed")
        producer.commit_transaction()
    finally:
        producer.close()

    committed = _read_all(topic, isolation_level="read_committed")
    uncommitted = _read_all(topic, isolation_level="read_uncommitted")

    assert [r.value for r in committed] == [b"committed"]
    assert [r.value for r in uncommitted] == [b"aborted", b"committed"]


def test_open_transaction_blocks_read_committed_consumers_until_commit(make_topic: MakeTopic) -> None:
    topic = make_topic("open")
    producer = _transactional_producer(_name("tx"))
    try:
        producer.begin_transaction()
        producer.send(topic, value=b"pending")
        producer.flush()
        assert _read_all(topic, isolation_level="read_committed") == []
        producer.commit_transaction()
    finally:
        producer.close()

    assert [r.value for r in _read_all(topic, isolation_level="read_committed", expect=1)] == [b"pending"]


def test_send_offsets_to_transaction_commits_the_consumer_group_offsets_atomically(make_topic: MakeTopic) -> None:
    source, sink = make_topic("source"), make_topic("sink")
    group_id = _name("group")
    tp = TopicPartition(source, 0)

    seed = _transactional_producer(_name("seed"))
    try:
        seed.begin_transaction()
        for i in range(4):
            seed.send(source, value=f"in-{i}".encode())
        seed.commit_transaction()
    finally:
        seed.close()

    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producer = _transactional_producer(_name("tx"))
    try:
        consumer.assign([tp])
        batch: list[Any] = []
        for _ in range(30):
            for records in consumer.poll(timeout_ms=500).values():
                batch.extend(records)
            if len(batch) >= 4:
                break
        assert [r.value for r in batch] == [b"in-0", b"in-1", b"in-2", b"in-3"]

        # consume -> produce -> commit offsets, all in one transaction (first attempt aborted)
        group = consumer.group_metadata() if hasattr(consumer, "group_metadata") else group_id
        next_offset = {tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)}
        producer.begin_transaction()
        producer.send(sink, value=b"aborted-output")
        producer.send_offsets_to_transaction({tp: OffsetAndMetadata(1, "", -1)}, group)
        producer.abort_transaction()
        assert consumer.committed(tp) is None

        producer.begin_transaction()
        for record in batch:
            producer.send(sink, value=record.value.replace(b"in-", b"out-"))
        producer.send_offsets_to_transaction(next_offset, group)
        producer.commit_transaction()
    finally:
        producer.close()
        consumer.close()

    # a new member of the group resumes after the committed input (4 = next offset to read)
    checker = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group_id, enable_auto_commit=False)
    try:
        committed = checker.committed(tp)
    finally:
        checker.close()
    assert committed == 4
    outputs = _read_all(sink, isolation_level="read_committed", expect=4)
    assert [r.value for r in outputs] == [b"out-0", b"out-1", b"out-2", b"out-3"]


def test_a_new_producer_with_the_same_transactional_id_fences_the_old_one(make_topic: MakeTopic) -> None:
    topic = make_topic("fence")
    transactional_id = _name("tx")
    zombie = _transactional_producer(transactional_id)
    successor = None
    try:
        zombie.begin_transaction()
        zombie.send(topic, value=b"zombie")
        zombie.flush()

        successor = _transactional_producer(transactional_id)  # bumps the epoch, aborts the zombie's transaction
        successor.begin_transaction()
        successor.send(topic, value=b"successor")
        successor.commit_transaction()

        # the broker refuses the zombie's write (kafka-python 3.0 against Kafka 4.4 with transaction.version 2:
        # InvalidProducerEpochError at produce time) and its commit
        with pytest.raises((ProducerFencedError, InvalidProducerEpochError)):
            zombie.send(topic, value=b"late").get(timeout=10)
        with pytest.raises(KafkaError):
            zombie.commit_transaction()
    finally:
        zombie.close(timeout=5)
        if successor is not None:
            successor.close()

    assert [r.value for r in _read_all(topic, isolation_level="read_committed")] == [b"successor"]
    assert b"late" not in [r.value for r in _read_all(topic, isolation_level="read_uncommitted")]
