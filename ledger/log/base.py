"""The one interface every log backend implements: sequence a batch, read from a position, positions.

A backend owns durability and the single-writer rule (DESIGN guarantee 3); the sequencer owns the rules of
sealing (`ledger/sequencer.py`). `PartitionWriter` is the sequencer's view of one partition while it holds
the exclusive right to write it: heads, idempotency index, Merkle right edge, and an atomic `write`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True)
class StreamHead:
    seq: int
    hash: str


@dataclass
class Rejection:
    """A refused submission as it is recorded (embedded: rejected table; Kafka: ledger.rejected)."""

    received_at: str
    reason_code: str
    message: str
    tenant: str | None
    event_id: str | None
    raw: bytes
    detail: dict[str, Any] | None = None  # e.g. the original receipt of a duplicate


@dataclass(frozen=True)
class LogRecord:
    """One stored event: the canonical bytes of its envelope (hash included) and where the store keeps it."""

    partition: int
    position: int  # the backend's own order (embedded notification id, Kafka offset)
    envelope_bytes: bytes

    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.envelope_bytes)
        return value


@dataclass(frozen=True)
class Checkpointed:
    partition: int
    tree_size: int
    note: str
    recorded_at: str


@dataclass
class SealedBatch:
    """Everything one sequencing step persists atomically."""

    events: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)  # (envelope, canonical bytes)
    merkle_nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    checkpoint: Checkpointed | None = None
    rejections: list[Rejection] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # source positions a replica records with the batch


class PartitionWriter(ABC):
    """The sequencer's exclusive view of one partition for the span of one batch."""

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def stream_heads(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StreamHead]: ...

    @abstractmethod
    def known_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of the (tenant, event_id) keys that are already in the log (the idempotency index)."""

    @abstractmethod
    def get_node(self, level: int, index: int) -> bytes: ...

    @abstractmethod
    def last_checkpoint(self) -> Checkpointed | None: ...

    @abstractmethod
    def read_event(self, tenant: str, event_id: str) -> dict[str, Any]: ...

    @abstractmethod
    def write(self, batch: SealedBatch) -> None: ...


class WritableLog(Protocol):
    """What the sequencer needs of a log: its id, its partitioning, exclusive writers, a refusal sink."""

    log_id: str
    partition_count: int

    def partition_for(self, tenant: str, stream: str) -> int: ...

    def writer(self, partition: int) -> AbstractContextManager[PartitionWriter]: ...

    def record_rejections(self, rejections: Sequence[Rejection]) -> None: ...


class LogBackend(ABC):
    """A durable, ordered, partitioned event log."""

    log_id: str
    partition_count: int

    @abstractmethod
    def partition_for(self, tenant: str, stream: str) -> int: ...

    @abstractmethod
    def writer(self, partition: int) -> AbstractContextManager[PartitionWriter]:
        """Hold the exclusive right to write `partition` (a lock, or a fenced transaction) for one batch."""

    @abstractmethod
    def read(self, partition: int, start: int = 0, limit: int | None = None) -> Iterator[LogRecord]:
        """Events of a partition in log-index order, from log index `start`."""

    @abstractmethod
    def records_after(self, partition: int, position: int | None, limit: int) -> list[LogRecord]:
        """Up to `limit` committed records whose backend position is greater than `position` (None: from the
        start), in log order. Consumers store the last position they applied (guarantee 7)."""

    @abstractmethod
    def end_position(self, partition: int) -> int | None:
        """The backend position of the last committed record of `partition` (None when empty): lag is the
        distance from a consumer's stored position to this."""

    @abstractmethod
    def size(self, partition: int) -> int: ...

    @abstractmethod
    def checkpoints(self, partition: int) -> Sequence[Checkpointed]: ...

    def latest_checkpoint(self, partition: int) -> Checkpointed | None:
        """The newest checkpoint of `partition` (None before the first); backends answer without reading all."""
        stored = self.checkpoints(partition)
        return stored[-1] if stored else None

    def covering_checkpoint(self, partition: int, index: int) -> Checkpointed | None:
        """The smallest checkpoint of `partition` whose tree holds log index `index` (None: none yet)."""
        return next((cp for cp in self.checkpoints(partition) if cp.tree_size > index), None)

    @abstractmethod
    def find_event(self, tenant: str, event_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def get_node(self, partition: int, level: int, index: int) -> bytes: ...

    @abstractmethod
    def record_rejections(self, rejections: Sequence[Rejection]) -> None: ...

    @abstractmethod
    def rejections(self, limit: int = 100) -> list[Rejection]: ...

    @abstractmethod
    def close(self) -> None: ...

    def reader_opener(self) -> Callable[[], LogBackend] | None:
        """A picklable callable that opens another reader of this log in another process (None: no such way,
        so work that would fan out over processes stays in this one)."""
        return None
