"""Feeds a consumer from any log backend: read after the stored position, apply, store the new position.

Each batch is applied and its position stored in ONE transaction of the consumer's store, so a crash at any
instant resumes exactly after the last committed batch, and a rebuild from zero gives the same state (DESIGN
guarantee 7). Within a partition `log.index` must run on by exactly one: a gap or a repeat is refused, never
skipped. It depends only on `LogBackend`; it never reads the ledger's SQLite or Kafka directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

import orjson

from consumers.base import Consumer, CursorT, Envelope
from consumers.store import PositionStore, StoredPosition
from ledger.errors import UsageError, VerificationFailed
from ledger.log.base import LogBackend, LogRecord


@dataclass(frozen=True)
class RunnerProgress:
    """Reported after every pass that applied events, and on arriving at the end of the log (`caught_up`)."""

    applied: int  # events applied since catch_up() or run() started
    lag: dict[int, int] = field(default_factory=dict)  # partition -> positions behind the end of the log
    caught_up: bool = False

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


ProgressCallback = Callable[[RunnerProgress], None]


class ConsumerRunner(Generic[CursorT]):
    """Runs one consumer over one log into its store. One runner (thread or process) per store at a time is
    expected; a second one is still safe, because each batch re-reads its position under the store's write lock."""

    def __init__(
        self,
        log: LogBackend,
        consumer: Consumer[CursorT],
        store: PositionStore[CursorT],
        batch_size: int = 500,
        on_progress: ProgressCallback | None = None,
        until: dict[int, int] | None = None,
    ) -> None:
        """`until` (partition -> position) stops the runner there: a partition it does not name is not read."""
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {batch_size}")
        self.log = log
        self.consumer = consumer
        self.store = store
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.until = until
        self._first_positions: dict[int, int] = {}  # the log is append-only: its first position never changes
        self._caught_up_pending = True  # the hook fires on the first arrival at the end, then after new events
        store.prepare(consumer, log.log_id)

    def run_once(self) -> int:
        """Apply at most one batch per partition; return how many events were applied."""
        applied = sum(self._apply_batch(partition) for partition in range(self.log.partition_count))
        if applied:
            self._caught_up_pending = True
        return applied

    def catch_up(self) -> int:
        """Apply batches until the log has no more; return how many events were applied."""
        applied = 0
        while True:
            while batch := self.run_once():
                applied += batch
                self._report(applied, caught_up=False)
            self._arrived(applied)
            # The arrival hook may append (a projection's decisions), and those come back through the log.
            more = self.run_once()
            if not more:
                return applied
            applied += more

    def run(self, stop: threading.Event, poll_interval_s: float = 0.2) -> int:
        """Follow the log until `stop` is set, polling every `poll_interval_s` once caught up."""
        applied = 0
        while not stop.is_set():
            batch = self.run_once()
            if batch:
                applied += batch
                self._report(applied, caught_up=False)
                continue
            self._arrived(applied)
            stop.wait(poll_interval_s)
        return applied

    def lag(self) -> dict[int, int]:
        """partition -> how many positions the stored position is behind the log's end (0 when caught up)."""
        positions = self.store.positions()
        return {
            partition: self._lag(partition, positions.get(partition)) for partition in range(self.log.partition_count)
        }

    def total_lag(self) -> int:
        return sum(self.lag().values())

    def _apply_batch(self, partition: int) -> int:
        with self.store.transaction() as cursor:
            stored = self.store.stored_position(cursor, partition)  # read under the store's write lock
            end = self._end(partition)
            if end is None or (stored is not None and stored.position >= end):
                return 0  # at the end: asking for more would wait out a Kafka poll for nothing
            records = self.log.records_after(partition, None if stored is None else stored.position, self.batch_size)
            if self.until is not None:
                records = [record for record in records if record.position <= end]
            if not records:
                return 0
            events = self._checked_events(partition, stored, records)
            self.consumer.apply_records(cursor, events, records)
            self.store.save_position(cursor, partition, records[-1].position, events[-1]["log"]["index"])
        self.consumer.after_commit()
        return len(events)

    def _end(self, partition: int) -> int | None:
        end = self.log.end_position(partition)
        if self.until is None or end is None:
            return end
        bound = self.until.get(partition)
        return None if bound is None else min(end, bound)

    def _checked_events(
        self, partition: int, stored: StoredPosition | None, records: list[LogRecord]
    ) -> list[Envelope]:
        """Decode a batch and prove it continues the stored position exactly (guarantee 2 as seen by a consumer)."""
        name = self.consumer.name
        expected = 0 if stored is None else stored.log_index + 1
        after = None if stored is None else stored.position
        events: list[Envelope] = []
        for record in records:
            where = f"consumer '{name}': partition {partition} position {record.position}"
            if record.partition != partition or (after is not None and record.position <= after):
                raise VerificationFailed(f"{where}: the log returned a record out of order (after position {after})")
            try:
                envelope: Envelope = orjson.loads(record.envelope_bytes)
                log = envelope["log"]
                log_id, log_partition, index = log["log_id"], log["partition"], log["index"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise VerificationFailed(f"{where}: not a sequenced event envelope") from None
            if log_id != self.log.log_id or log_partition != partition:
                raise VerificationFailed(
                    f"{where}: event belongs to {log_id} partition {log_partition}, not {self.log.log_id} partition"
                    f" {partition}"
                )
            if index != expected:
                if isinstance(index, int) and index > expected:
                    missing = (
                        f"log index {expected}" if index == expected + 1 else f"log indexes {expected}..{index - 1}"
                    )
                    raise VerificationFailed(f"{where}: gap in the log, {missing} missing before log index {index}")
                raise VerificationFailed(
                    f"{where}: log index {index!r} where {expected} was expected (repeat or reorder)"
                )
            events.append(envelope)
            expected += 1
            after = record.position
        return events

    def _lag(self, partition: int, position: int | None) -> int:
        end = self._end(partition)
        if end is None:
            return 0
        if position is not None:
            return max(0, end - position)
        first = self._first_positions.get(partition)
        if first is None:
            head = self.log.records_after(partition, None, 1)
            if not head:
                return 0
            first = self._first_positions[partition] = head[0].position
        return max(0, end - first + 1)

    def _arrived(self, applied: int) -> None:
        """At the end of the log: the first time, and after new events, report it and call the consumer's hook."""
        if not self._caught_up_pending:
            return
        self._caught_up_pending = False
        self._report(applied, caught_up=True)
        self.consumer.on_caught_up()

    def _report(self, applied: int, *, caught_up: bool) -> None:
        if self.on_progress is not None:
            self.on_progress(RunnerProgress(applied, self.lag(), caught_up))
