"""The Kafka sequencer worker: drains the `ledger.intake` partitions it owns and seals them into `ledger.events`.

Guarantee 3: each owned partition p has one transactional producer, id `<group>-p<p>`; creating it fences every
older instance, so a zombie cannot append. One batch is one Kafka transaction: the chained events (events p),
a due checkpoint (checkpoints p), the refusals (rejected) and the intake offset (`send_offsets_to_transaction`).
Heads, the idempotency index and Merkle nodes live in a local SQLite replica per partition, rebuilt from
`ledger.events` on assignment (bounded memory, guarantee 4). After an ambiguous error the producer is recreated
and the replica caught up from the log; nothing is retried blindly. Every intake record must be signed by the
ledger key or a producer key registered to its tenant (guarantee 9); refusals commit with the batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, InvalidProducerEpochError, KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from ledger.canonical import event_hash
from ledger.checkpoint import open_checkpoint, origin_for
from ledger.errors import ConfigError, SubmissionRefused, VerificationFailed
from ledger.intake import Limits
from ledger.keys import SignerKey
from ledger.log.base import (
    Checkpointed,
    PartitionWriter,
    Rejection,
    SealedBatch,
    StreamHead,
)
from ledger.log.embedded import EmbeddedLog
from ledger.log.kafka import (
    Topics,
    checkpoint_record,
    kafka_log_id,
    partition_of,
    read_partition,
    reader,
    rejection_record,
    stream_key,
)
from ledger.log.kafka_keys import ProducerKeyRegistry
from ledger.merkle import CompactRange, event_leaf
from ledger.producer_auth import admit
from ledger.sealer import seal_tick_s
from ledger.sequencer import CheckpointPolicy, Sequencer
from schemas.envelope import ZERO_HASH

log = logging.getLogger("agent_ledger.sequencer")
FENCED = (ProducerFencedError, InvalidProducerEpochError)
# kafka-python often reports a fence or a lost group membership as a plain KafkaError naming it.
FENCED_NAMES = ("ProducerFenced", "InvalidProducerEpoch", "UnknownMemberId", "IllegalGeneration", "FencedInstanceId")


def is_fenced(error: BaseException) -> bool:
    """True when a newer owner or the group has taken the partition: give it up, never re-initialise."""
    if isinstance(error, (*FENCED, CommitFailedError)):
        return True
    text = f"{error!r} {error.__cause__!r} {error.__context__!r}"
    return any(name in text for name in FENCED_NAMES)


REPLICA_CHUNK = 1000
# Records wait for the commit, which flushes at once: one produce request per transaction, not one per 2 ms of
# sending (fewer requests for this process and the broker to handle).
TRANSACTIONAL_PRODUCER: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "linger_ms": 500,
    "batch_size": 1 << 20,
}


@dataclass
class OwnedPartition:
    partition: int
    replica: EmbeddedLog
    producer: KafkaProducer
    next_intake_offset: int | None = None


class KafkaPartitionWriter(PartitionWriter):
    """Reads from the replica under its lock; `write` commits the Kafka transaction, then the replica."""

    def __init__(self, worker: KafkaSequencer, owned: OwnedPartition, replica_writer: PartitionWriter) -> None:
        self._worker = worker
        self._owned = owned
        self._replica = replica_writer

    @property
    def size(self) -> int:
        return self._replica.size

    def stream_heads(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StreamHead]:
        return self._replica.stream_heads(keys)

    def known_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return self._replica.known_events(keys)

    def get_node(self, level: int, index: int) -> bytes:
        return self._replica.get_node(level, index)

    def last_checkpoint(self) -> Checkpointed | None:
        return self._replica.last_checkpoint()

    def read_event(self, tenant: str, event_id: str) -> dict[str, Any]:
        return self._replica.read_event(tenant, event_id)

    def write(self, batch: SealedBatch) -> None:
        topics, partition, producer = self._worker.topics, self._owned.partition, self._owned.producer
        producer.begin_transaction()
        sent = [
            producer.send(
                topics.events,
                key=stream_key(envelope["tenant"], envelope["stream"]),
                value=encoded,
                partition=partition,
            )
            for envelope, encoded in batch.events
        ]
        if batch.checkpoint is not None:
            producer.send(topics.checkpoints, value=checkpoint_record(batch.checkpoint), partition=partition)
        for rejection in batch.rejections:
            producer.send(topics.rejected, value=rejection_record(rejection))
        if self._owned.next_intake_offset is not None:
            producer.send_offsets_to_transaction(
                {TopicPartition(topics.intake, partition): OffsetAndMetadata(self._owned.next_intake_offset, "", -1)},
                self._worker.group_metadata(),
            )
        producer.commit_transaction()
        if sent:
            batch.positions["events_offset"] = sent[-1].get(timeout=30).offset
        self._replica.write(batch)


class _SequencingLog:
    """The sequencer's view of the partitions this worker owns (the `WritableLog` protocol)."""

    def __init__(self, worker: KafkaSequencer) -> None:
        self._worker = worker
        self.log_id = worker.log_id
        self.partition_count = worker.partition_count

    def partition_for(self, tenant: str, stream: str) -> int:
        return partition_of(stream_key(tenant, stream), self.partition_count)

    @contextmanager
    def writer(self, partition: int) -> Iterator[PartitionWriter]:
        owned = self._worker.owned(partition)
        with owned.replica.writer(0) as replica_writer:
            yield KafkaPartitionWriter(self._worker, owned, replica_writer)

    def record_rejections(self, rejections: Sequence[Rejection]) -> None:
        raise ConfigError("the Kafka sequencer records refusals inside its partition transaction")


def sequencer_group_id(topics: Topics) -> str:
    """The consumer group the sequencer workers of a topic namespace share (unless told another)."""
    return f"{topics.prefix}agent-ledger-sequencer"


class KafkaSequencer(ConsumerRebalanceListener):  # type: ignore[misc]
    """One sequencer instance of the consumer group over `ledger.intake`."""

    def __init__(
        self,
        bootstrap: str,
        signer: SignerKey,
        state_dir: Path,
        *,
        topics: Topics | None = None,
        group_id: str | None = None,
        limits: Limits | None = None,
        checkpoint_policy: CheckpointPolicy | None = None,
        max_batch: int = 500,
        session_timeout_ms: int = 10_000,
        key_refresh_s: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics or Topics()
        self.group_id = group_id or sequencer_group_id(self.topics)
        self.state_dir = Path(state_dir)
        self.log_id = kafka_log_id(bootstrap, self.topics)
        self._catch_up_reader = reader(bootstrap)
        partitions = self._catch_up_reader.partitions_for_topic(self.topics.events)
        if not partitions:
            raise ConfigError(f"topic {self.topics.events} does not exist; run `agent-ledger kafka init`")
        self.partition_count = len(partitions)
        self._owned: dict[int, OwnedPartition] = {}
        self._retry: set[int] = set()  # ours by assignment, but recovery failed: take again on a later poll
        self._refused: VerificationFailed | None = None  # a partition's log failed its checks: stop
        self.verifier = signer.verifier()
        self.max_batch = max_batch
        # Every transaction that carries events also carries the checkpoint covering them, so catch-up can tell
        # sequenced events from records written around the sequencer.
        policy = checkpoint_policy or CheckpointPolicy()
        self.sequencer = Sequencer(
            _SequencingLog(self),
            signer,
            limits=limits,
            checkpoint_policy=CheckpointPolicy(every_events=1, interval_ms=policy.interval_ms),
        )
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=max_batch,
            fetch_max_wait_ms=20,  # latency over batching: a receipt waits for intake to reach the sequencer
            # A dead or frozen sequencer's partitions move to a live one after this long.
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 3),
        )
        # The group's first assignment uses this consumer's metadata: without the intake partitions in it the
        # assignor gives this member nothing until the next metadata refresh (minutes).
        deadline = time.monotonic() + 60
        while not self._consumer.partitions_for_topic(self.topics.intake):
            if time.monotonic() > deadline:
                raise ConfigError(f"topic {self.topics.intake} does not exist; run `agent-ledger kafka init`")
            time.sleep(0.2)
        self._consumer.subscribe([self.topics.intake], listener=self)
        self.sequenced = 0
        # Who may write: the ledger key and the producer keys registered in the log (any partition).
        self.producer_keys = ProducerKeyRegistry(bootstrap, self.topics, self.verifier, refresh_s=key_refresh_s)
        self.producer_keys.refresh()

    # -- ownership ---------------------------------------------------------------------------------------

    def owned(self, partition: int) -> OwnedPartition:
        owned = self._owned.get(partition)
        if owned is None:
            raise ConfigError(f"this sequencer does not own partition {partition}")
        return owned

    def group_metadata(self) -> Any:
        return self._consumer.group_metadata()

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        for tp in assigned:
            self._retry.discard(tp.partition)
            try:
                self._take(tp.partition)
            except VerificationFailed as exc:  # fail closed, with the reason, not from inside kafka-python
                self._refused = exc
                return

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self._retry.discard(tp.partition)
            self._release(tp.partition)

    def _producer(self, partition: int) -> KafkaProducer:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            transactional_id=f"{self.group_id}-p{partition}",
            request_timeout_ms=30_000,
            max_block_ms=60_000,
            **TRANSACTIONAL_PRODUCER,
        )
        producer.init_transactions()  # fences any older instance and resolves its open transaction
        return producer

    def _take(self, partition: int) -> None:
        replica = EmbeddedLog(self.state_dir / f"partition-{partition}", log_id=self.log_id, durable=False)
        owned = OwnedPartition(partition, replica, self._producer(partition))
        self._catch_up(owned)
        self._owned[partition] = owned
        log.info("took partition %d at log size %d", partition, replica.size(0))

    def _release(self, partition: int) -> None:
        owned = self._owned.pop(partition, None)
        if owned is not None:
            owned.producer.close(timeout=5)
            owned.replica.close()

    # -- replica -----------------------------------------------------------------------------------------

    def _catch_up(self, owned: OwnedPartition) -> None:
        """Bring the replica to the end of the committed log: events, then checkpoints."""
        replica, partition = owned.replica, owned.partition
        start = int(replica.meta("events_offset") or -1) + 1
        chunk: list[Any] = []
        for record in read_partition(self._catch_up_reader, self.topics.events, partition, start):
            chunk.append(record)
            if len(chunk) >= REPLICA_CHUNK:
                self._replicate_events(owned, chunk)
                chunk = []
        if chunk:
            self._replicate_events(owned, chunk)
        start = int(replica.meta("checkpoints_offset") or -1) + 1
        for record in read_partition(self._catch_up_reader, self.topics.checkpoints, partition, start):
            checkpoint = Checkpointed(**orjson.loads(record.value))
            with replica.writer(0) as writer:
                last = writer.last_checkpoint()
                newer = last is None or checkpoint.tree_size > last.tree_size
                writer.write(
                    SealedBatch(
                        checkpoint=checkpoint if newer else None, positions={"checkpoints_offset": record.offset}
                    )
                )
        self._check_sealed(owned)

    def _replicate_events(self, owned: OwnedPartition, records: list[Any]) -> None:
        with owned.replica.writer(0) as writer:
            right_edge = CompactRange.from_nodes(writer.size, writer.get_node)
            keys = {(e["tenant"], e["stream"]) for e in (orjson.loads(r.value) for r in records)}
            heads = writer.stream_heads(keys)
            batch = SealedBatch(positions={"events_offset": records[-1].offset})
            for record in records:
                envelope = orjson.loads(record.value)
                index = envelope["log"]["index"]
                if index < right_edge.size:
                    continue  # already in the replica
                self._check_replicated(owned.partition, envelope, right_edge.size, heads)
                batch.events.append((envelope, record.value))
                batch.merkle_nodes.extend(right_edge.append(event_leaf(envelope["hash"])))
            writer.write(batch)

    def _check_sealed(self, owned: OwnedPartition) -> None:
        """Every event must be covered by a signed checkpoint: a sequencer seals each transaction that carries
        events, so an uncovered tail was written outside a sequencer. Refuse to build on it (guarantee 1)."""
        replica, partition = owned.replica, owned.partition
        size = replica.size(0)
        latest = replica.latest_checkpoint(partition)
        covered = latest.tree_size if latest is not None else 0
        if covered != size:
            raise VerificationFailed(
                f"ledger.events partition {partition}: {size - covered} event(s) from log index {covered} on are not "
                "covered by a signed checkpoint (written outside a sequencer); refusing to sequence on top of them"
            )
        if latest is not None and size:
            checkpoint = open_checkpoint(latest.note, self.verifier, expected_origin=origin_for(self.log_id, partition))
            root = CompactRange.from_nodes(size, lambda level, index: replica.get_node(0, level, index)).root()
            if checkpoint.root_hash != root:
                raise VerificationFailed(
                    f"ledger.events partition {partition}: its events do not match their checkpoint"
                )

    def _check_replicated(
        self, partition: int, envelope: dict[str, Any], size: int, heads: dict[tuple[str, str], StreamHead]
    ) -> None:
        """Refuse to build on a log that is not what sequencers wrote (fail closed)."""
        where = f"ledger.events partition {partition} log index {envelope['log']['index']}"
        if envelope["log"] != {"log_id": self.log_id, "partition": partition, "index": size}:
            raise VerificationFailed(f"{where}: expected index {size} of {self.log_id}/{partition}")
        if event_hash(envelope) != envelope["hash"]:
            raise VerificationFailed(f"{where}: stored hash does not match its content")
        key = (envelope["tenant"], envelope["stream"])
        head = heads.get(key) or StreamHead(0, ZERO_HASH)
        if envelope["seq"] != head.seq + 1 or envelope["prev_hash"] != head.hash:
            raise VerificationFailed(f"{where}: breaks the chain of {key[0]}/{key[1]} after seq {head.seq}")
        heads[key] = StreamHead(envelope["seq"], envelope["hash"])

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Sequence until `stop` is set; then seal what this instance owns and leave the group."""
        tick_s = seal_tick_s(self.sequencer.checkpoint_policy.interval_ms)
        next_seal = time.monotonic() + tick_s
        # Partitions are independent (own producer, own replica): their transactions overlap on a thread pool,
        # while the consumer itself is only touched here, between polls.
        pool = ThreadPoolExecutor(max_workers=self.partition_count, thread_name_prefix="agent-ledger-partition")
        self.producer_keys.start()  # revocations reach a running worker within `key_refresh_s`
        try:
            while not stop.is_set():
                self._retake_after_failed_recovery()
                polled = self._consumer.poll(timeout_ms=100)
                if self._refused is not None:
                    raise self._refused
                work = {
                    tp.partition: pool.submit(self._sequence, tp.partition, records)
                    for tp, records in polled.items()
                    if tp.partition in self._owned
                }
                for partition, future in work.items():
                    self._settle(partition, *future.result())
                if time.monotonic() >= next_seal:
                    self._seal(pool)
                    next_seal = time.monotonic() + tick_s
            self._seal(pool, overdue_only=False)
        finally:
            pool.shutdown(wait=True)
            self.close()

    def _sequence(self, partition: int, records: list[Any]) -> tuple[str, int]:
        """Sequence one partition's polled records, at most about `max_batch` submissions per transaction (a
        record may be a signed batch); say how it went (runs on the pool)."""
        owned = self._owned[partition]
        lookup = self.producer_keys.batch_lookup()
        now = datetime.now(UTC)
        limits = self.sequencer.limits
        submissions: list[bytes | dict[str, Any]] = []
        refused: list[tuple[bytes | dict[str, Any], SubmissionRefused]] = []
        sequenced = 0
        try:
            for number, record in enumerate(records, start=1):
                admission = admit(record.value or b"", record.headers or (), lookup, limits, now)
                submissions.extend(admission.submissions)
                refused.extend(admission.refused)
                if len(submissions) + len(refused) < self.max_batch and number < len(records):
                    continue
                owned.next_intake_offset = record.offset + 1
                self.sequencer.sequence(submissions, partition=partition, refused=refused)
                sequenced += len(submissions) + len(refused)
                submissions, refused = [], []
            return "committed", sequenced
        except KafkaError as exc:
            if is_fenced(exc):
                return "fenced", sequenced
            log.warning("partition %d: %s; recreating the producer and catching up", partition, exc)
            return "ambiguous", sequenced
        finally:
            owned.next_intake_offset = None

    def _settle(self, partition: int, outcome: str, sequenced: int) -> None:
        self.sequenced += sequenced
        if outcome == "fenced":
            # A newer owner exists, so a rebalance took the partition: only the group may give it back (through
            # on_partitions_assigned). Retaking it here would fence the rightful owner in turn.
            log.warning("partition %d: fenced by a newer owner; giving it up", partition)
            self._release(partition)
        elif outcome == "ambiguous":
            try:
                self._recover(partition)
            except KafkaError as exc:  # e.g. the broker is still away; still ours, so retry on a later poll
                log.warning("partition %d: recovery failed (%s); will retry", partition, exc)
                self._release(partition)
                self._retry.add(partition)

    def _rewind(self, tp: TopicPartition) -> None:
        committed = self._consumer.committed(tp)
        if committed is None:
            self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek(tp, committed)

    def _retake_after_failed_recovery(self) -> None:
        for partition in sorted(self._retry):
            tp = TopicPartition(self.topics.intake, partition)
            if tp not in self._consumer.assignment():
                self._retry.discard(partition)
                continue
            try:
                self._take(partition)
            except KafkaError as exc:
                log.warning("partition %d: cannot take it back yet (%s)", partition, exc)
                continue
            self._retry.discard(partition)
            self._rewind(tp)

    def _recover(self, partition: int) -> None:
        """After an ambiguous failure: new producer (aborts what was open), replica from the log, seek intake."""
        owned = self._owned.get(partition)
        if owned is None:
            return
        owned.producer.close(timeout=5)
        owned.producer = self._producer(partition)
        self._catch_up(owned)
        self._rewind(TopicPartition(self.topics.intake, partition))

    def _seal(self, pool: ThreadPoolExecutor, *, overdue_only: bool = True) -> None:
        """Checkpoint the owned partitions whose tail went quiet (all grown ones on shutdown), in parallel."""
        work = {
            partition: pool.submit(self.sequencer.seal, [partition], overdue_only=overdue_only)
            for partition in list(self._owned)
        }
        for partition, future in work.items():
            try:
                future.result()
            except KafkaError as exc:
                if not is_fenced(exc):
                    log.warning("partition %d: sealing failed (%s); recovering", partition, exc)
                self._settle(partition, "fenced" if is_fenced(exc) else "ambiguous", 0)

    def close(self) -> None:
        for partition in list(self._owned):
            self._release(partition)
        self._consumer.close(autocommit=False)
        self._catch_up_reader.close()
        self.producer_keys.close()
