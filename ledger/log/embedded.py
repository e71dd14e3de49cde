"""The embedded log backend: one SQLite file through the `eventsourcing` SQLite recorder, no servers.

Mapping (DESIGN.md): a (tenant, stream) is an aggregate (originator_id = UUIDv5 of "tenant/stream"),
`originator_version` is `seq`, so the recorder's unique (originator_id, version) key makes a fork impossible;
the notification log (rowid order) is the total order consumers read. Beside it, in the same database and the
same transaction: the idempotency index, the Merkle nodes, signed checkpoints and rejected submissions.
Writers take SQLite's write lock (`BEGIN IMMEDIATE`) before reading any head, so several processes may append
to one data dir without a stale read (guarantee 3). Nothing outside `ledger/log/` imports this module's SQL.
"""

from __future__ import annotations

import functools
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteProcessRecorder

from ledger.errors import ConfigError, StaleExpectedSeq
from ledger.log.base import (
    Checkpointed,
    LogBackend,
    LogRecord,
    PartitionWriter,
    Rejection,
    SealedBatch,
    StreamHead,
)

DB_FILE = "ledger.sqlite"
STREAM_NAMESPACE = uuid.UUID("6f1c2a52-35f4-4a8e-9c55-0b7d4f7e3a10")
PARTITION = 0  # one SQLite file is one partition
# Merkle node hashes are stored TILE_WIDTH to a row per level (as in tlog tiles): a batch touches a row per
# level, not a row per node, and an append extends the last row in place.
TILE_WIDTH = 256
FULL_TILES_CACHED = 4096  # 32 MiB of complete tiles kept by a reader (proofs of many events share them)


@functools.lru_cache(maxsize=1 << 16)
def stream_originator_id(tenant: str, stream: str) -> uuid.UUID:
    return uuid.uuid5(STREAM_NAMESPACE, f"{tenant}/{stream}")


def _uuid_text(originator_id: uuid.UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, uuid.UUID) else originator_id


def _tree_size(cursor: SQLiteCursor, partition: int) -> int:
    """Leaves in the tree: the full level-0 tiles plus the hashes in the last one."""
    cursor.execute(
        "SELECT tile, length(hashes) FROM ledger_merkle_tiles WHERE partition=? AND level=0 ORDER BY tile DESC LIMIT 1",
        (partition,),
    )
    row = cursor.fetchone()
    return 0 if row is None else int(row[0]) * TILE_WIDTH + int(row[1]) // 32


class LedgerRecorder(SQLiteProcessRecorder):
    """The eventsourcing process recorder plus the ledger's own tables, created together."""

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **_: Any) -> Sequence[int]:
        """The recorder's insert, one `executemany` instead of a statement per event. The writer holds SQLite's
        write lock and the ledger never deletes, so the batch takes the consecutive rowids after the last one."""
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [(_uuid_text(s.originator_id), s.originator_version, s.topic, s.state) for s in stored_events],
        )
        c.execute("SELECT last_insert_rowid()")
        last: int = c.fetchone()[0]
        return range(last - len(stored_events) + 1, last + 1)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_event_ids (tenant TEXT, event_id TEXT, notification_id INTEGER,"
            " log_index INTEGER, PRIMARY KEY (tenant, event_id)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_merkle_tiles (partition INTEGER, level INTEGER, tile INTEGER,"
            " hashes BLOB NOT NULL, PRIMARY KEY (partition, level, tile)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_checkpoints (partition INTEGER, tree_size INTEGER,"
            " note TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (partition, tree_size)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_rejected (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " received_at TEXT, reason_code TEXT, message TEXT, tenant TEXT, event_id TEXT, raw BLOB)",
        ]


class EmbeddedWriter(PartitionWriter):
    """The writer of the one partition while this process holds SQLite's write lock."""

    def __init__(self, log: EmbeddedLog, cursor: SQLiteCursor) -> None:
        self._log = log
        self._cursor = cursor
        self._size = _tree_size(cursor, PARTITION)

    @property
    def size(self) -> int:
        return self._size

    def stream_heads(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StreamHead]:
        # Heads this process wrote are reused only if no one appended since: the size read under the write
        # lock must equal the size at this process's last commit (guarantee 3: never a stale read).
        cache = self._log._heads
        if self._log._heads_size != self._size:
            cache.clear()
        heads = {}
        for tenant, stream in keys:
            cached = cache.get((tenant, stream))
            if cached is not None:
                heads[(tenant, stream)] = cached
                continue
            self._cursor.execute(
                "SELECT originator_version, state FROM stored_events WHERE originator_id=?"
                " ORDER BY originator_version DESC LIMIT 1",
                (stream_originator_id(tenant, stream).hex,),
            )
            row = self._cursor.fetchone()
            if row is not None:
                heads[(tenant, stream)] = StreamHead(row[0], orjson.loads(row[1])["hash"])
        return heads

    def known_events(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        by_tenant: dict[str, list[str]] = {}
        for tenant, event_id in keys:
            by_tenant.setdefault(tenant, []).append(event_id)
        known = set()
        for tenant, event_ids in by_tenant.items():
            for start in range(0, len(event_ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = event_ids[start : start + 500]
                self._cursor.execute(
                    "SELECT event_id FROM ledger_event_ids"
                    f" WHERE tenant=? AND event_id IN ({','.join('?' * len(chunk))})",
                    (tenant, *chunk),
                )
                for row in self._cursor.fetchall():
                    known.add((tenant, row[0]))
        return known

    def get_node(self, level: int, index: int) -> bytes:
        return self._log._get_node(self._cursor, PARTITION, level, index)

    def last_checkpoint(self) -> Checkpointed | None:
        return self._log._last_checkpoint(self._cursor, PARTITION)

    def read_event(self, tenant: str, event_id: str) -> dict[str, Any]:
        self._cursor.execute(
            "SELECT e.state FROM ledger_event_ids i JOIN stored_events e ON e.rowid = i.notification_id"
            " WHERE i.tenant=? AND i.event_id=?",
            (tenant, event_id),
        )
        row = self._cursor.fetchone()
        if row is None:
            raise ConfigError(f"event {tenant}/{event_id} is in the idempotency index but not in the store")
        event: dict[str, Any] = orjson.loads(row[0])
        return event

    def _append_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Extend each level's last tile with the batch's new nodes (each level only grows at its right end)."""
        grouped: dict[tuple[int, int], list[bytes]] = {}
        first_slot: dict[tuple[int, int], int] = {}
        for level, index, node in nodes:
            tile, slot = divmod(index, TILE_WIDTH)
            grouped.setdefault((level, tile), []).append(node)
            first_slot.setdefault((level, tile), slot)
        rows = []
        for (level, tile), hashes in grouped.items():
            stored = b""
            if first_slot[(level, tile)]:
                self._cursor.execute(
                    "SELECT hashes FROM ledger_merkle_tiles WHERE partition=? AND level=? AND tile=?",
                    (PARTITION, level, tile),
                )
                row = self._cursor.fetchone()
                stored = b"" if row is None else bytes(row[0])
            if len(stored) != first_slot[(level, tile)] * 32:
                raise ConfigError(f"Merkle tile (level {level}, tile {tile}) does not end where the tree does")
            rows.append((PARTITION, level, tile, stored + b"".join(hashes)))
        self._cursor.executemany("INSERT OR REPLACE INTO ledger_merkle_tiles VALUES (?,?,?,?)", rows)

    def write(self, batch: SealedBatch) -> None:
        cursor = self._cursor
        stored = [
            StoredEvent(
                originator_id=stream_originator_id(envelope["tenant"], envelope["stream"]),
                originator_version=envelope["seq"],
                topic=envelope["type"],
                state=encoded,
            )
            for envelope, encoded in batch.events
        ]
        try:
            notification_ids = self._log.recorder._insert_events(cursor, stored)
        except (IntegrityError, sqlite3.IntegrityError) as exc:  # the unique key refused a fork
            raise StaleExpectedSeq(f"concurrent append to the same stream was refused: {exc}") from None
        cursor.executemany(
            "INSERT INTO ledger_event_ids (tenant, event_id, notification_id, log_index) VALUES (?,?,?,?)",
            [
                (envelope["tenant"], envelope["event_id"], notification_id, envelope["log"]["index"])
                for (envelope, _), notification_id in zip(batch.events, notification_ids, strict=True)
            ],
        )
        self._append_nodes(batch.merkle_nodes)
        if batch.checkpoint is not None:
            cp = batch.checkpoint
            cursor.execute(
                "INSERT INTO ledger_checkpoints VALUES (?,?,?,?)",
                (cp.partition, cp.tree_size, cp.note, cp.recorded_at),
            )
        self._log._insert_rejections(cursor, batch.rejections)
        cursor.executemany(
            "INSERT OR REPLACE INTO ledger_meta VALUES (?, ?)", [(k, str(v)) for k, v in batch.positions.items()]
        )
        self._size += len(batch.events)
        if batch.events:
            if self._log._heads_size != self._size - len(batch.events):
                self._log._heads.clear()
            for envelope, _ in batch.events:
                self._log._heads[(envelope["tenant"], envelope["stream"])] = StreamHead(
                    envelope["seq"], envelope["hash"]
                )
            self._log._heads_size = self._size  # valid once the commit that follows succeeds; a failure clears it


class EmbeddedLog(LogBackend):
    """A ledger in one data directory: `ledger.sqlite` (WAL mode)."""

    partition_count = 1

    def __init__(
        self,
        data_dir: Path,
        *,
        create: bool = True,
        lock_timeout_s: int = 60,
        log_id: str | None = None,
        durable: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        path = self.data_dir / DB_FILE
        if not path.exists() and not create:
            raise ConfigError(f"no ledger at {self.data_dir} (missing {DB_FILE}); append something first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.datastore = SQLiteDatastore(str(path), lock_timeout=lock_timeout_s)
        self.recorder = LedgerRecorder(self.datastore)
        # A Kafka replica is a cache rebuilt from the log, so it may skip the fsync per commit; a ledger may not.
        self._synchronous = "PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL"
        self._heads: dict[tuple[str, str], StreamHead] = {}  # stream heads as of this process's last commit
        self._heads_size: int | None = None  # the log size they are valid for
        self._full_tiles: dict[tuple[int, int, int], bytes] = {}
        if create:
            self.recorder.create_table()
        self._upgrade()
        self.log_id = self._log_id(create, log_id)
        if log_id is not None and self.log_id != log_id:
            raise ConfigError(f"{path} belongs to log {self.log_id}, not {log_id}")

    def meta(self, key: str) -> str | None:
        with self._read() as cursor:
            cursor.execute("SELECT value FROM ledger_meta WHERE key=?", (key,))
            row = cursor.fetchone()
            return None if row is None else str(row[0])

    def _upgrade(self) -> None:
        """Move a file written before Merkle tiles (one row per node) to tiles, once, under the write lock."""
        with self._read() as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_merkle_nodes'")
            if cursor.fetchone() is None:
                return
        self.recorder.create_table()
        with self._write() as cursor:
            cursor.execute(
                "SELECT level, idx, hash FROM ledger_merkle_nodes WHERE partition=? ORDER BY level, idx", (PARTITION,)
            )
            nodes = [(row[0], row[1], bytes(row[2])) for row in cursor.fetchall()]
            writer = EmbeddedWriter(self, cursor)
            writer._append_nodes(nodes)
            cursor.execute("DROP TABLE ledger_merkle_nodes")

    def _log_id(self, create: bool, wanted: str | None) -> str:
        if not create:  # readers never take the write lock
            with self._read() as cursor:
                cursor.execute("SELECT value FROM ledger_meta WHERE key='log_id'")
                row = cursor.fetchone()
            if row is None:
                raise ConfigError(f"{self.data_dir / DB_FILE} is not an initialised ledger")
            return str(row[0])
        with self._write() as cursor:
            cursor.execute("SELECT value FROM ledger_meta WHERE key='log_id'")
            row = cursor.fetchone()
            if row is not None:
                return str(row[0])
            log_id = wanted or f"agent-ledger.local/{secrets.token_hex(4)}"
            cursor.execute("INSERT INTO ledger_meta VALUES ('log_id', ?)", (log_id,))
            return log_id

    @contextmanager
    def _write(self) -> Iterator[SQLiteCursor]:
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            cursor.execute(self._synchronous)
            cursor.execute("BEGIN IMMEDIATE")  # take the write lock before reading anything
            try:
                yield cursor
                connection.commit()
            except BaseException:
                self._heads_size = None
                connection.rollback()
                raise
            finally:
                cursor.sqlite_cursor.close()

    @contextmanager
    def _read(self) -> Iterator[SQLiteCursor]:
        with self.datastore.transaction(commit=False) as cursor:
            yield cursor

    def partition_for(self, tenant: str, stream: str) -> int:
        return PARTITION

    @contextmanager
    def writer(self, partition: int) -> Iterator[PartitionWriter]:
        with self._write() as cursor:
            yield EmbeddedWriter(self, cursor)

    def read(self, partition: int, start: int = 0, limit: int | None = None) -> Iterator[LogRecord]:
        """Events in notification order from log index `start` (index = notification order, 0-based)."""
        with self._read() as cursor:
            cursor.execute(
                "SELECT rowid, state FROM stored_events ORDER BY rowid LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, start),
            )
            while rows := cursor.sqlite_cursor.fetchmany(2048):
                for row in rows:
                    yield LogRecord(PARTITION, row[0], row[1])

    def records_after(self, partition: int, position: int | None, limit: int) -> list[LogRecord]:
        with self._read() as cursor:
            cursor.execute(
                "SELECT rowid, state FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (0 if position is None else position, limit),
            )
            return [LogRecord(PARTITION, row[0], row[1]) for row in cursor.fetchall()]

    def end_position(self, partition: int) -> int | None:
        with self._read() as cursor:
            last: int | None = self.recorder._max_notification_id(cursor)
            return last

    def size(self, partition: int) -> int:
        with self._read() as cursor:
            return _tree_size(cursor, partition)

    def checkpoints(self, partition: int) -> Sequence[Checkpointed]:
        with self._read() as cursor:
            cursor.execute(
                "SELECT partition, tree_size, note, recorded_at FROM ledger_checkpoints WHERE partition=?"
                " ORDER BY tree_size",
                (partition,),
            )
            return [Checkpointed(row[0], row[1], row[2], row[3]) for row in cursor.fetchall()]

    def latest_checkpoint(self, partition: int) -> Checkpointed | None:
        return self._checkpoint_where("partition=? ORDER BY tree_size DESC", (partition,))

    def covering_checkpoint(self, partition: int, index: int) -> Checkpointed | None:
        return self._checkpoint_where("partition=? AND tree_size>? ORDER BY tree_size", (partition, index))

    def _checkpoint_where(self, condition: str, parameters: tuple[int, ...]) -> Checkpointed | None:
        with self._read() as cursor:
            cursor.execute(
                f"SELECT partition, tree_size, note, recorded_at FROM ledger_checkpoints WHERE {condition} LIMIT 1",
                parameters,
            )
            row = cursor.fetchone()
            return None if row is None else Checkpointed(row[0], row[1], row[2], row[3])

    def find_event(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        with self._read() as cursor:
            cursor.execute(
                "SELECT e.state FROM ledger_event_ids i JOIN stored_events e ON e.rowid = i.notification_id"
                " WHERE i.tenant=? AND i.event_id=?",
                (tenant, event_id),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            event: dict[str, Any] = orjson.loads(row[0])
            return event

    def get_node(self, partition: int, level: int, index: int) -> bytes:
        tile, slot = divmod(index, TILE_WIDTH)
        key = (partition, level, tile)
        hashes = self._full_tiles.get(key)
        if hashes is None:
            with self._read() as cursor:
                cursor.execute("SELECT hashes FROM ledger_merkle_tiles WHERE partition=? AND level=? AND tile=?", key)
                row = cursor.fetchone()
            hashes = b"" if row is None else bytes(row[0])
            if len(hashes) == TILE_WIDTH * 32:  # a full tile never changes again: proofs reuse it
                if len(self._full_tiles) >= FULL_TILES_CACHED:
                    self._full_tiles.clear()
                self._full_tiles[key] = hashes
        node = hashes[slot * 32 : slot * 32 + 32]
        if len(node) != 32:
            raise ConfigError(f"Merkle node (level {level}, index {index}) is missing from the store")
        return node

    @staticmethod
    def _get_node(cursor: SQLiteCursor, partition: int, level: int, index: int) -> bytes:
        tile, slot = divmod(index, TILE_WIDTH)
        cursor.execute(
            "SELECT substr(hashes, ?, 32) FROM ledger_merkle_tiles WHERE partition=? AND level=? AND tile=?",
            (slot * 32 + 1, partition, level, tile),
        )
        row = cursor.fetchone()
        if row is None or len(row[0]) != 32:
            raise ConfigError(f"Merkle node (level {level}, index {index}) is missing from the store")
        return bytes(row[0])

    @staticmethod
    def _last_checkpoint(cursor: SQLiteCursor, partition: int) -> Checkpointed | None:
        # One file is one partition; a Kafka replica keeps the Kafka partition number in the column.
        cursor.execute(
            "SELECT partition, tree_size, note, recorded_at FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        row = cursor.fetchone()
        return None if row is None else Checkpointed(row[0], row[1], row[2], row[3])

    @staticmethod
    def _insert_rejections(cursor: SQLiteCursor, rejections: Sequence[Rejection]) -> None:
        cursor.executemany(
            "INSERT INTO ledger_rejected (received_at, reason_code, message, tenant, event_id, raw)"
            " VALUES (?,?,?,?,?,?)",
            [(r.received_at, r.reason_code, r.message, r.tenant, r.event_id, r.raw) for r in rejections],
        )

    def record_rejections(self, rejections: Sequence[Rejection]) -> None:
        with self._write() as cursor:
            self._insert_rejections(cursor, rejections)

    def rejections(self, limit: int = 100) -> list[Rejection]:
        with self._read() as cursor:
            cursor.execute(
                "SELECT received_at, reason_code, message, tenant, event_id, raw FROM ledger_rejected"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            return [Rejection(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in cursor.fetchall()]

    def reader_opener(self) -> Callable[[], LogBackend]:
        # A fresh connection per process: an SQLite connection must never cross a fork.
        return functools.partial(EmbeddedLog, self.data_dir, create=False, log_id=self.log_id)

    def close(self) -> None:
        self.datastore.close()
