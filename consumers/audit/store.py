"""The audit store: one DuckDB file with the audit tables and the sink's log positions, changed together.

A batch of events and the sink's new position commit in one DuckDB transaction (DESIGN guarantee 7). DuckDB lets
one process open a file for writing, so while `consume audit` runs, readers use the Parquet segments it
publishes (`segments.py`); when it is stopped, `session.py` may attach this file read-only instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from consumers.audit.schema import create_table
from consumers.base import Consumer
from consumers.store import StoredPosition
from ledger.errors import ConfigError

STORE_FILE = "audit.duckdb"
STORE_TABLES = [
    "CREATE TABLE IF NOT EXISTS consumer_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS consumer_positions (partition INTEGER PRIMARY KEY, position BIGINT NOT NULL,"
    " log_index BIGINT NOT NULL)",
]


def connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open an audit store file, or a ConfigError that says who holds it."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise ConfigError(
                f"audit store {path} is open for writing by another process (a running `consume audit`?)"
            ) from None
        raise ConfigError(f"cannot open audit store {path}: {exc}") from None


class AuditStore:
    """The sink's DuckDB file. One writer process; its transactions are serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = connect(self.path, read_only=False)
        self._lock = threading.RLock()
        with self.transaction() as connection:
            for statement in STORE_TABLES:
                connection.execute(statement)

    def prepare(self, consumer: Consumer[Any], log_id: str) -> None:
        """Create the audit tables and bind the file to (consumer, version, log_id), or check that binding."""
        wanted = {"consumer": consumer.name, "version": str(consumer.version), "log_id": log_id}
        with self.transaction() as connection:
            meta = dict(connection.execute("SELECT key, value FROM consumer_meta").fetchall())
            if not meta:
                for statement in consumer.schema():
                    connection.execute(statement)
                connection.executemany("INSERT INTO consumer_meta VALUES (?, ?)", sorted(wanted.items()))
                return
        for key, value in wanted.items():
            if meta.get(key) != value:
                raise ConfigError(
                    f"audit store {self.path} was built with {key} {meta.get(key)!r}, not {value!r};"
                    " use a fresh state dir (or delete the file to rebuild it from the log)"
                )

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            self.connection.begin()
            try:
                yield self.connection
                self.connection.commit()
            except BaseException:
                self.connection.rollback()
                raise

    @staticmethod
    def stored_position(cursor: duckdb.DuckDBPyConnection, partition: int) -> StoredPosition | None:
        rows = cursor.execute(
            "SELECT position, log_index FROM consumer_positions WHERE partition=?", [partition]
        ).fetchall()  # fetchall: DuckDB refuses other work on a connection while a result is unfinished
        return StoredPosition(int(rows[0][0]), int(rows[0][1])) if rows else None

    @staticmethod
    def save_position(cursor: duckdb.DuckDBPyConnection, partition: int, position: int, log_index: int) -> None:
        cursor.execute(
            "INSERT INTO consumer_positions VALUES (?, ?, ?) ON CONFLICT (partition) DO UPDATE"
            " SET position=excluded.position, log_index=excluded.log_index",
            [partition, position, log_index],
        )

    def progress(self) -> dict[int, StoredPosition]:
        with self._lock:
            rows = self.connection.execute(
                "SELECT partition, position, log_index FROM consumer_positions ORDER BY partition"
            ).fetchall()
        return {int(row[0]): StoredPosition(int(row[1]), int(row[2])) for row in rows}

    def positions(self) -> dict[int, int]:
        return {partition: stored.position for partition, stored in self.progress().items()}

    def close(self) -> None:
        with self._lock:
            self.connection.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def audit_tables() -> list[str]:
    return [create_table("events"), create_table("checkpoints")]
