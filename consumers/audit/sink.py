"""`audit`: the consumer that copies every sealed event, and every signed checkpoint, into the audit store.

Each batch of events lands as one Arrow insert, in the transaction that also stores the sink's position, so the
store holds each event exactly once (guarantee 7). Checkpoints and Parquet segments follow outside that
transaction, every few seconds and whenever the sink catches up: both are idempotent, keyed by tree size and
by log-index range, so a crash between them and the next batch repeats nothing and loses nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from consumers.audit.rows import event_rows, insert_rows
from consumers.audit.segments import SEGMENTS_DIR, SegmentPublisher
from consumers.audit.store import STORE_FILE, AuditStore, audit_tables
from consumers.base import Consumer, Envelope
from consumers.runner import ConsumerRunner
from ledger.checkpoint import Checkpoint
from ledger.log.base import LogBackend, LogRecord


@dataclass
class AuditOutputs:
    """What the sink keeps beside its events: the log's checkpoints, and the segments readers query."""

    store: AuditStore
    log: LogBackend
    segments: SegmentPublisher | None = None

    def sync(self) -> None:
        """Copy new checkpoints that the stored events reach, then publish segments (outside any batch)."""
        with self.store.transaction() as connection:
            for partition in range(self.log.partition_count):
                insert_checkpoints(connection, self.log, partition)
        if self.segments is not None:
            self.segments.publish()


def insert_checkpoints(connection: duckdb.DuckDBPyConnection, log: LogBackend, partition: int) -> int:
    """Insert the partition's checkpoints above the stored ones and within the stored events; return how many."""
    ((known, events),) = connection.execute(
        "SELECT (SELECT coalesce(max(tree_size), 0) FROM checkpoints WHERE partition=$p),"
        " (SELECT coalesce(max(log_index) + 1, 0) FROM events WHERE partition=$p)",
        {"p": partition},
    ).fetchall()
    if events <= known:
        return 0
    rows = []
    for stored in log.checkpoints(partition):
        if known < stored.tree_size <= events:
            body = stored.note.split("\n\n", 1)[0] + "\n"
            checkpoint = Checkpoint.parse(body)
            root = base64.b64encode(checkpoint.root_hash).decode()
            rows.append((partition, stored.tree_size, checkpoint.origin, root, stored.note, stored.recorded_at))
    if rows:
        connection.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


class AuditSink(Consumer[duckdb.DuckDBPyConnection]):
    name = "audit"
    version = 1
    batch_size = 10_000  # DuckDB favours few large transactions; a commit costs a WAL flush

    def __init__(self) -> None:
        self.outputs: AuditOutputs | None = None  # set by whoever runs the sink against a store and a log

    def schema(self) -> list[str]:
        return audit_tables()

    def apply(self, cursor: duckdb.DuckDBPyConnection, events: list[Envelope]) -> None:
        insert_rows(cursor, event_rows(events))

    def apply_records(
        self, cursor: duckdb.DuckDBPyConnection, events: list[Envelope], records: Sequence[LogRecord]
    ) -> None:
        insert_rows(cursor, event_rows(events, records))

    def after_commit(self) -> None:
        outputs = self.outputs
        if outputs is not None and outputs.segments is not None and outputs.segments.due():
            outputs.sync()

    def on_caught_up(self) -> None:
        if self.outputs is not None:
            self.outputs.sync()


def sink_summary(store: AuditStore) -> dict[str, Any]:
    """Counts for the end of a `consume audit` run."""
    ((events, tenants, checkpoints),) = store.connection.execute(
        "SELECT count(*), count(DISTINCT tenant), (SELECT count(*) FROM checkpoints) FROM events"
    ).fetchall()
    return {"events": int(events), "tenants": int(tenants), "checkpoints": int(checkpoints)}


@contextmanager
def audit_runner(
    log: LogBackend, directory: Path, *, batch_size: int | None = None, rows_per_segment: int = 250_000
) -> Iterator[ConsumerRunner[duckdb.DuckDBPyConnection]]:
    """The audit sink wired to its store `<directory>/audit.duckdb` and segments `<directory>/segments`."""
    with AuditStore(directory / STORE_FILE) as store:
        sink = AuditSink()
        segments = SegmentPublisher(
            store.connection, directory / SEGMENTS_DIR, log.log_id, rows_per_segment=rows_per_segment
        )
        sink.outputs = AuditOutputs(store, log, segments)
        yield ConsumerRunner(log, sink, store, batch_size=batch_size or sink.batch_size)
