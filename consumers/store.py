"""A consumer's own store: one SQLite file holding its state tables and its log positions side by side.

State and position change in one `transaction()` (BEGIN IMMEDIATE ... COMMIT), so after a crash both are
exactly as of the last committed batch (DESIGN guarantee 7). The store is bound to one ledger (its `log_id`) and
one consumer name and version on first use, and refuses any other. It never touches the ledger's own store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from consumers.base import Consumer
from ledger.errors import ConfigError

RESERVED_PREFIX = "consumer_"
STORE_TABLES = [
    "CREATE TABLE IF NOT EXISTS consumer_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS consumer_positions (partition INTEGER PRIMARY KEY, position INTEGER NOT NULL,"
    " log_index INTEGER NOT NULL)",
]


@dataclass(frozen=True)
class StoredPosition:
    """Where a consumer stands in one partition: the backend position and `log.index` of its last applied event."""

    position: int
    log_index: int


CursorT = TypeVar("CursorT")


class PositionStore(Protocol[CursorT]):
    """What the runner needs of a consumer's store, whatever its engine (SQLite here, DuckDB for the audit sink):
    one transaction that holds both the state and the positions."""

    def prepare(self, consumer: Consumer[Any], log_id: str) -> None: ...

    def transaction(self) -> AbstractContextManager[CursorT]: ...

    def stored_position(self, cursor: CursorT, partition: int) -> StoredPosition | None: ...

    def save_position(self, cursor: CursorT, partition: int, position: int, log_index: int) -> None: ...

    def progress(self) -> dict[int, StoredPosition]: ...

    def positions(self) -> dict[int, int]: ...


class ConsumerStore:
    """One consumer's SQLite file. Thread-safe: one lock serialises its transactions and reads."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            # WAL + NORMAL: a killed process loses nothing committed; a power cut may lose the last commits,
            # but state and position always roll back together, which is all exactly-once needs.
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open consumer store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        with self.transaction() as cursor:
            for statement in STORE_TABLES:
                cursor.execute(statement)

    def prepare(self, consumer: Consumer[Any], log_id: str) -> None:
        """Create the consumer's tables and bind the store to (consumer, version, log_id), or check the binding."""
        wanted = {"consumer": consumer.name, "version": str(consumer.version), "log_id": log_id}
        with self.transaction() as cursor:
            cursor.execute("SELECT key, value FROM consumer_meta")
            meta = dict(cursor.fetchall())
            if not meta:
                for statement in consumer.schema():
                    cursor.execute(statement)
                cursor.executemany("INSERT INTO consumer_meta VALUES (?, ?)", sorted(wanted.items()))
                return
        if meta.get("log_id") != log_id:
            raise ConfigError(
                f"consumer store {self.path} was built from log {meta.get('log_id')}, not {log_id};"
                " use a fresh state dir for this ledger"
            )
        if meta.get("consumer") != consumer.name:
            raise ConfigError(
                f"consumer store {self.path} belongs to consumer '{meta.get('consumer')}', not '{consumer.name}'"
            )
        if meta.get("version") != wanted["version"]:
            raise ConfigError(
                f"consumer store {self.path} was built by {consumer.name} v{meta.get('version')}, this is"
                f" v{consumer.version}; delete it to rebuild from the log"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """Hold the store's write lock; commit on success, roll back everything on any exception."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.rollback()
                raise
            finally:
                cursor.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Cursor]:
        """A cursor over one consistent snapshot of the store (a deferred, read-only transaction)."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN")
                yield cursor
            finally:
                if self._connection.in_transaction:
                    self._connection.rollback()
                cursor.close()

    @staticmethod
    def stored_position(cursor: sqlite3.Cursor, partition: int) -> StoredPosition | None:
        cursor.execute("SELECT position, log_index FROM consumer_positions WHERE partition=?", (partition,))
        row = cursor.fetchone()
        return None if row is None else StoredPosition(int(row[0]), int(row[1]))

    @staticmethod
    def save_position(cursor: sqlite3.Cursor, partition: int, position: int, log_index: int) -> None:
        """Record the last applied event of `partition`; call it inside the transaction that applied it."""
        cursor.execute(
            "INSERT INTO consumer_positions VALUES (?, ?, ?) ON CONFLICT (partition) DO UPDATE"
            " SET position=excluded.position, log_index=excluded.log_index",
            (partition, position, log_index),
        )

    def progress(self) -> dict[int, StoredPosition]:
        with self.read() as cursor:
            cursor.execute("SELECT partition, position, log_index FROM consumer_positions ORDER BY partition")
            return {int(row[0]): StoredPosition(int(row[1]), int(row[2])) for row in cursor.fetchall()}

    def positions(self) -> dict[int, int]:
        """partition -> backend position of the last applied event (partitions never consumed are absent)."""
        return {partition: stored.position for partition, stored in self.progress().items()}

    def dump(self) -> str:
        """Every table, schema and rows in a canonical order: two stores with equal dumps hold the same state."""
        lines: list[str] = []
        with self.read() as cursor:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type='table' ORDER BY name")
            for name, sql in cursor.fetchall():
                lines.append(f"{sql};")
                cursor.execute(f'PRAGMA table_info("{name}")')
                order = ", ".join(str(column) for column in range(1, len(cursor.fetchall()) + 1))
                cursor.execute(f'SELECT * FROM "{name}" ORDER BY {order}')
                lines.extend(f"{name}\t{row!r}" for row in cursor.fetchall())
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> ConsumerStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
