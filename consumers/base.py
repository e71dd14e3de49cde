"""The interface a consumer implements: the tables of its state and a fold of event batches into them.

A consumer is logic only; `consumers/runner.py` owns reading the log, positions and transactions, so that
state and position always move together (DESIGN guarantee 7). `apply` must touch nothing but the cursor it is
given: no clock, no randomness, no other I/O, or a rebuild from zero would not give the same state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from ledger.log.base import LogRecord

Envelope = dict[str, Any]
CursorT = TypeVar("CursorT")  # what the consumer's store hands `apply`: a sqlite3 cursor, a DuckDB connection


class Consumer(ABC, Generic[CursorT]):
    """Folds the log, in log order, into tables of the consumer's own store.

    `name` names the store file and the registry entry. Bump `version` whenever `schema` or the meaning of
    `apply` changes: a store built by another version is refused, so stale state is rebuilt, never mixed.
    Table names starting with `consumer_` are the store's own and are reserved.
    """

    name: str
    version: int = 1
    batch_size: int = 500  # events per transaction unless the runner is told otherwise

    @abstractmethod
    def schema(self) -> list[str]:
        """CREATE TABLE (and CREATE INDEX) statements of the state, run once when the store is first built."""

    @abstractmethod
    def apply(self, cursor: CursorT, events: list[Envelope]) -> None:
        """Fold one batch of sequenced envelopes (log order, one partition) into the state through `cursor`.

        Runs inside the transaction that also stores the new position; raising rolls both back.
        """

    def apply_records(self, cursor: CursorT, events: list[Envelope], records: Sequence[LogRecord]) -> None:
        """`apply`, for a consumer that also needs the stored bytes of each event (`records[i]` is `events[i]`)."""
        self.apply(cursor, events)

    def after_commit(self) -> None:
        """Called outside any transaction after each batch was applied and committed (e.g. to flush an outbox)."""

    def on_caught_up(self) -> None:
        """Called outside any transaction each time the runner reaches the end of the log after applying events."""
