"""The backend-independent sequencer: validate, dedupe, check `expected_seq`, chain, Merkle, checkpoint.

For each batch it takes the exclusive writer of a partition from the log backend, reads the stream heads,
the idempotency index and the Merkle right edge *under that lock* (never from a stale cache, guarantee 3),
seals each accepted submission into an envelope, and hands one `SealedBatch` to the backend to persist
atomically. Every refusal is returned to the caller and recorded with its reason (guarantees 2, 4, 5, 6).
It never touches SQLite or Kafka directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.canonical import canonical_with_payload, seal_canonical
from ledger.checkpoint import Checkpoint, origin_for, sign_checkpoint
from ledger.clock import parse_timestamp, utc_now
from ledger.errors import (
    ConfigError,
    DuplicateEventId,
    EventIdConflict,
    MisroutedSubmission,
    StaleExpectedSeq,
    SubmissionRefused,
)
from ledger.intake import Limits, ValidSubmission, raw_bytes, text_field, validate_submission
from ledger.keys import SignerKey
from ledger.log.base import (
    Checkpointed,
    PartitionWriter,
    Rejection,
    SealedBatch,
    StreamHead,
    WritableLog,
)
from ledger.merkle import CompactRange, event_leaf
from schemas.envelope import SPEC, ZERO_HASH, Receipt

RawSubmission = bytes | str | dict[str, Any]
Outcome = Receipt | SubmissionRefused
Sealed = dict[str, Any]  # an envelope as sealed in this batch; its receipt is built only for a caller that wants it
RECEIPT_FIELDS = ("event_id", "tenant", "stream", "seq", "hash", "log")
# What the producer decides; a resend must match the original in each (occurred_at only when it was given).
PRODUCER_FIELDS = (
    "tenant",
    "stream",
    "type",
    "schema_version",
    "actor",
    "agent_id",
    "mission_id",
    "causation_id",
    "correlation",
    "payload",
)


@dataclass(frozen=True)
class CheckpointPolicy:
    """Seal a signed checkpoint once `every_events` new events or `interval_ms` have passed, and on close."""

    every_events: int = 1000
    interval_ms: int = 1000


def receipt_for(envelope: dict[str, Any], *, duplicate: bool = False) -> Receipt:
    fields = {name: envelope[name] for name in RECEIPT_FIELDS}
    return Receipt.model_validate({**fields, "duplicate": duplicate})  # one validator call, nested log included


def _text_field(raw: RawSubmission, name: str) -> str | None:
    """A field of a raw submission for the rejection record: oversized input is recorded whole but not parsed
    again, and a long value is cut."""
    if isinstance(raw, bytes | str) and len(raw) > 1 << 20:
        return None
    value = text_field(raw, name)
    return None if value is None else value[:200]


class Sequencer:
    """Seals submissions into the log. Thread-safe as far as the backend's writer is exclusive."""

    def __init__(
        self,
        log: WritableLog,
        signer: SignerKey,
        *,
        limits: Limits | None = None,
        checkpoint_policy: CheckpointPolicy | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.log = log
        self.signer = signer
        self.limits = limits or Limits()
        self.checkpoint_policy = checkpoint_policy or CheckpointPolicy()
        self.clock = clock

    def append(self, raw: RawSubmission, *, tenant: str | None = None) -> Receipt:
        """Append one submission; raise its `SubmissionRefused` (a duplicate carries the original receipt)."""
        (outcome,) = self.append_batch([raw], tenant=tenant)
        if isinstance(outcome, SubmissionRefused):
            raise outcome
        return outcome

    def append_batch(self, raws: Sequence[RawSubmission], *, tenant: str | None = None) -> list[Outcome]:
        """Append a batch; the result has one receipt or refusal per submission, in order."""
        return [receipt_for(item) if isinstance(item, dict) else item for item in self._append(raws, tenant=tenant)]

    def sequence(
        self,
        raws: Sequence[RawSubmission],
        *,
        partition: int,
        refused: Sequence[tuple[RawSubmission, SubmissionRefused]] = (),
    ) -> list[Sealed | SubmissionRefused]:
        """Append the batch a Kafka sequencer drained from intake `partition`; return each sealed envelope or
        refusal. Its producers read their answers from the log, so no receipt is built here.

        Every submission must belong to that partition, and the partition's writer is opened even when all were
        refused, so the refusals commit in the same transaction as the intake position. `refused` are
        submissions the caller already refused (an intake record that failed producer authentication): recorded
        with the batch, not returned.
        """
        return self._append(raws, partition=partition, refused=refused)

    def _append(
        self,
        raws: Sequence[RawSubmission],
        *,
        tenant: str | None = None,
        partition: int | None = None,
        refused: Sequence[tuple[RawSubmission, SubmissionRefused]] = (),
    ) -> list[Sealed | SubmissionRefused]:
        """Seal and write a batch; one sealed envelope or refusal per submission, in order."""
        received_at = self.clock()
        outcomes: list[Sealed | SubmissionRefused | None] = [None] * len(raws)
        rejections = [self._rejection(received_at, refusal, raw) for raw, refusal in refused]
        by_partition: dict[int, list[tuple[int, ValidSubmission]]] = {} if partition is None else {partition: []}
        for slot, raw in enumerate(raws):
            try:
                valid = validate_submission(raw, self.limits, tenant)
                owner = self.log.partition_for(valid.tenant, valid.stream)
                if partition is not None and owner != partition:
                    raise MisroutedSubmission(
                        f"stream {valid.tenant}/{valid.stream} belongs to partition {owner}, "
                        f"not intake partition {partition}"
                    )
            except SubmissionRefused as refusal:
                outcomes[slot] = refusal
                rejections.append(self._rejection(received_at, refusal, raw))
                continue
            by_partition.setdefault(owner, []).append((slot, valid))

        for partition, items in by_partition.items():
            with self.log.writer(partition) as writer:
                batch, right_edge = self._seal(partition, writer, items, raws, outcomes, received_at)
                batch.rejections.extend(rejections)  # intake refusals commit with the first batch
                rejections = []
                batch.checkpoint = self._checkpoint_if_due(partition, writer, batch, right_edge)
                writer.write(batch)
        if rejections:
            self.log.record_rejections(rejections)
        return [outcome for outcome in outcomes if outcome is not None]

    def _seal(
        self,
        partition: int,
        writer: PartitionWriter,
        items: list[tuple[int, ValidSubmission]],
        raws: Sequence[RawSubmission],
        outcomes: list[Sealed | SubmissionRefused | None],
        recorded_at: str,
    ) -> tuple[SealedBatch, CompactRange]:
        batch = SealedBatch()
        known = writer.known_events({(item.tenant, item.event_id) for _, item in items})
        heads = writer.stream_heads({(item.tenant, item.stream) for _, item in items})
        right_edge = CompactRange.from_nodes(writer.size, writer.get_node)
        sealed_here: dict[tuple[str, str], dict[str, Any]] = {}
        for slot, item in items:
            id_key = (item.tenant, item.event_id)
            try:
                if id_key in sealed_here or id_key in known:
                    original = sealed_here.get(id_key) or writer.read_event(*id_key)
                    raise self._duplicate(item, original)
                stream_key = (item.tenant, item.stream)
                head = heads.get(stream_key) or StreamHead(0, ZERO_HASH)
                if item.expected_seq is not None and item.expected_seq != head.seq:
                    raise StaleExpectedSeq(
                        f"stream {item.tenant}/{item.stream} is at seq {head.seq}, "
                        f"not the expected_seq {item.expected_seq}"
                    )
            except SubmissionRefused as refusal:
                outcomes[slot] = refusal
                rejection = self._rejection(recorded_at, refusal, raws[slot], item)
                if isinstance(refusal, DuplicateEventId):
                    rejection.detail = {"receipt": refusal.original_receipt}
                batch.rejections.append(rejection)
                continue
            envelope, encoded = self._envelope(item, head, partition, right_edge.size, recorded_at)
            batch.merkle_nodes.extend(right_edge.append(event_leaf(envelope["hash"])))
            batch.events.append((envelope, encoded))
            heads[stream_key] = StreamHead(envelope["seq"], envelope["hash"])
            sealed_here[id_key] = envelope
            outcomes[slot] = envelope
        return batch, right_edge

    def _envelope(
        self, item: ValidSubmission, head: StreamHead, partition: int, log_index: int, recorded_at: str
    ) -> tuple[dict[str, Any], bytes]:
        envelope: dict[str, Any] = {
            "spec": SPEC,
            "tenant": item.tenant,
            "stream": item.stream,
            "seq": head.seq + 1,
            "prev_hash": head.hash,
            "event_id": item.event_id,
            "type": item.type,
            "schema_version": item.schema_version,
            "actor": item.actor,
            "agent_id": item.agent_id,
            "mission_id": item.mission_id,
            "causation_id": item.causation_id,
            "correlation": item.correlation,
            "occurred_at": item.occurred_at or recorded_at,
            "recorded_at": recorded_at,
            "payload": item.payload,
            "log": {"log_id": self.log.log_id, "partition": partition, "index": log_index},
        }
        canonical = canonical_with_payload(envelope, item.payload_canonical, exact=item.payload_exact)
        envelope["hash"], encoded = seal_canonical(canonical)
        return envelope, encoded

    @staticmethod
    def _duplicate(item: ValidSubmission, original: dict[str, Any]) -> SubmissionRefused:
        where = f"{original['tenant']}/{original['stream']} seq {original['seq']}"
        same = all(getattr(item, name) == original[name] for name in PRODUCER_FIELDS) and (
            item.occurred_at is None or item.occurred_at == original["occurred_at"]
        )
        if not same:
            return EventIdConflict(f"event_id '{item.event_id}' was already used for a different submission ({where})")
        return DuplicateEventId(
            f"duplicate event_id '{item.event_id}': already appended as {where}; original receipt returned",
            receipt_for(original, duplicate=True).model_dump(mode="json"),
        )

    @staticmethod
    def _rejection(
        received_at: str, refusal: SubmissionRefused, raw: RawSubmission, item: ValidSubmission | None = None
    ) -> Rejection:
        """The refused submission exactly as it was sent, with its reason (guarantee 6)."""
        tenant = item.tenant if item else _text_field(raw, "tenant")
        event_id = item.event_id if item else _text_field(raw, "event_id")
        return Rejection(received_at, refusal.reason_code, refusal.message, tenant, event_id, raw_bytes(raw))

    def _checkpoint_if_due(
        self, partition: int, writer: PartitionWriter, batch: SealedBatch, right_edge: CompactRange
    ) -> Checkpointed | None:
        if not batch.events:
            return None
        size = writer.size + len(batch.events)
        last = writer.last_checkpoint()
        now = self.clock()
        if last is not None:
            grown = size - last.tree_size
            if grown < self.checkpoint_policy.every_events and not self._overdue(last, now):
                return None
        return self._sign(partition, size, right_edge.root(), now)

    def _overdue(self, last: Checkpointed, now: str) -> bool:
        waited_ms = (parse_timestamp(now) - parse_timestamp(last.recorded_at)).total_seconds() * 1000
        return waited_ms >= self.checkpoint_policy.interval_ms

    def _sign(self, partition: int, size: int, root: bytes, now: str) -> Checkpointed:
        checkpoint = Checkpoint(origin=origin_for(self.log.log_id, partition), size=size, root_hash=root)
        return Checkpointed(partition, size, sign_checkpoint(checkpoint, self.signer), now)

    def seal(self, partitions: Sequence[int] | None = None, *, overdue_only: bool = False) -> list[Checkpointed]:
        """Checkpoint every partition whose tree grew since its last checkpoint (called on clean shutdown).

        `overdue_only` (the timer) skips a partition checkpointed less than `interval_ms` ago: while events flow,
        the batches carry the checkpoints, and the timer only seals a tail that went quiet.
        """
        sealed = []
        for partition in range(self.log.partition_count) if partitions is None else partitions:
            with self.log.writer(partition) as writer:
                last = writer.last_checkpoint()
                if overdue_only and last is not None and not self._overdue(last, self.clock()):
                    continue
                if last is not None and writer.size < last.tree_size:
                    raise ConfigError(
                        f"partition {partition} holds {writer.size} leaves but was checkpointed at {last.tree_size};"
                        " the store lost events (run `agent-ledger verify`)"
                    )
                if writer.size == 0 or (last is not None and last.tree_size == writer.size):
                    continue
                root = CompactRange.from_nodes(writer.size, writer.get_node).root()
                checkpoint = self._sign(partition, writer.size, root, self.clock())
                writer.write(SealedBatch(checkpoint=checkpoint))
                sealed.append(checkpoint)
        return sealed

    def close(self) -> None:
        self.seal()
