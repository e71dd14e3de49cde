"""`counts`: events per (tenant, type) and the head of every (tenant, stream) chain — the template consumer.

It shows the shape every consumer follows (DESIGN guarantee 7): tables declared in `schema`, a fold that uses
only the cursor it is given, so a rebuild from zero gives the same rows. It also refuses a stream whose `seq`
or `prev_hash` does not continue its stored head (guarantee 2): it must never count an event twice or skip one.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass

from consumers.base import Consumer, Envelope
from consumers.store import ConsumerStore
from ledger.errors import VerificationFailed
from schemas.envelope import ZERO_HASH


class EventCounts(Consumer[sqlite3.Cursor]):
    name = "counts"
    version = 1

    def schema(self) -> list[str]:
        return [
            "CREATE TABLE event_counts (tenant TEXT NOT NULL, type TEXT NOT NULL, events INTEGER NOT NULL,"
            " PRIMARY KEY (tenant, type)) WITHOUT ROWID",
            "CREATE TABLE stream_heads (tenant TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,"
            " hash TEXT NOT NULL, PRIMARY KEY (tenant, stream)) WITHOUT ROWID",
        ]

    def apply(self, cursor: sqlite3.Cursor, events: list[Envelope]) -> None:
        heads: dict[tuple[str, str], tuple[int, str]] = {}
        for event in events:
            key = (event["tenant"], event["stream"])
            if key not in heads:
                cursor.execute("SELECT seq, hash FROM stream_heads WHERE tenant=? AND stream=?", key)
                row = cursor.fetchone()
                heads[key] = (0, ZERO_HASH) if row is None else (int(row[0]), str(row[1]))
            seq, head_hash = heads[key]
            if event["seq"] != seq + 1 or event["prev_hash"] != head_hash:
                raise VerificationFailed(
                    f"consumer 'counts': stream {key[0]}/{key[1]} is at seq {seq}, but event {event['event_id']}"
                    f" has seq {event['seq']} (log index {event['log']['index']}) or does not link to its head"
                )
            heads[key] = (event["seq"], event["hash"])
        by_type = Counter((event["tenant"], event["type"]) for event in events)
        cursor.executemany(
            "INSERT INTO event_counts VALUES (?, ?, ?)"
            " ON CONFLICT (tenant, type) DO UPDATE SET events = events + excluded.events",
            [(tenant, event_type, n) for (tenant, event_type), n in by_type.items()],
        )
        cursor.executemany(
            "INSERT INTO stream_heads VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tenant, stream) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            [(tenant, stream, seq, head_hash) for (tenant, stream), (seq, head_hash) in heads.items()],
        )


@dataclass(frozen=True)
class CountsView:
    """What the `counts` store says, as plain dictionaries."""

    by_type: dict[tuple[str, str], int]  # (tenant, type) -> events
    stream_heads: dict[tuple[str, str], int]  # (tenant, stream) -> seq of its last event

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


def query(store: ConsumerStore, tenant: str | None = None) -> CountsView:
    """Read the counts (of one tenant, or all) from one consistent snapshot of the store."""
    where, params = ("WHERE tenant=?", (tenant,)) if tenant is not None else ("", ())
    with store.read() as cursor:
        cursor.execute(f"SELECT tenant, type, events FROM event_counts {where}", params)
        by_type = {(str(row[0]), str(row[1])): int(row[2]) for row in cursor.fetchall()}
        cursor.execute(f"SELECT tenant, stream, seq FROM stream_heads {where}", params)
        heads = {(str(row[0]), str(row[1])): int(row[2]) for row in cursor.fetchall()}
    return CountsView(by_type, heads)
