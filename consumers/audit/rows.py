"""Sealed events as an Arrow batch of audit rows: the typed columns, the payload JSON and the hashed bytes.

The canonical bytes are cut out of the stored record, not re-encoded: what the audit store keeps is what the log
holds, so a record changed in the log fails the hash check in DuckDB instead of being silently repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from consumers.audit.schema import EVENT_COLUMNS
from ledger.canonical import canonical_bytes
from ledger.log.base import LogRecord

_HASH_KEY = b',"hash":"'
_HASH_FIELD = len(_HASH_KEY) + len("sha256:") + 64 + 1  # ,"hash":"sha256:<64 hex>"
_PAYLOAD_KEY = b',"payload":'
_PAYLOAD_END = b',"prev_hash":"'

_ARROW_TYPES = {"INTEGER": pa.int32(), "BIGINT": pa.int64()}  # every other column travels as text
ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES.get(kind, pa.string())) for name, kind in EVENT_COLUMNS])


def canonical_of(record_bytes: bytes, event: dict[str, Any]) -> bytes:
    """The bytes that were hashed: the stored record without its "hash" member.

    A sealed record is canonical JSON, where "hash" sorts right before "log" and nothing before it can hold the
    text `,"hash":"` (DESIGN hashing contract); a record of any other shape is encoded again from its fields.
    """
    cut = record_bytes.find(_HASH_KEY)
    if cut > 0 and record_bytes.startswith(b',"log":', cut + _HASH_FIELD):
        return record_bytes[:cut] + record_bytes[cut + _HASH_FIELD :]
    return canonical_bytes({key: value for key, value in event.items() if key != "hash"})


def payload_of(canonical: bytes) -> bytes:
    """The payload object as it sits in the canonical bytes ("payload" sorts right before "prev_hash")."""
    start = canonical.index(_PAYLOAD_KEY) + len(_PAYLOAD_KEY)
    return canonical[start : canonical.rindex(_PAYLOAD_END)]


def event_rows(events: Sequence[dict[str, Any]], records: Sequence[LogRecord] | None = None) -> pa.Table:
    """One Arrow row per event, columns in `EVENT_COLUMNS` order (times as text; the INSERT casts them)."""
    columns: list[list[Any]] = [[] for _ in EVENT_COLUMNS]
    # One bound `append` per column: this loop runs for every event of the log, so no lookups inside it.
    (partition, log_index, tenant, stream, seq, prev_hash, hash_, event_id, type_, schema_version, actor_kind,
     actor_id, agent_id, mission_id, causation_id, trace_id, span_id, occurred_at, recorded_at, log_id, payload,
     canonical_column) = (column.append for column in columns)  # fmt: skip
    for position, event in enumerate(events):
        canonical = canonical_of(records[position].envelope_bytes if records is not None else b"", event)
        log = event["log"]
        actor = event["actor"]
        correlation = event.get("correlation") or {}
        partition(log["partition"])
        log_index(log["index"])
        tenant(event["tenant"])
        stream(event["stream"])
        seq(event["seq"])
        prev_hash(event["prev_hash"])
        hash_(event["hash"])
        event_id(event["event_id"])
        type_(event["type"])
        schema_version(event["schema_version"])
        actor_kind(actor["kind"])
        actor_id(actor["id"])
        agent_id(event["agent_id"])
        mission_id(event["mission_id"])
        causation_id(event["causation_id"])
        trace_id(correlation.get("trace_id"))
        span_id(correlation.get("span_id"))
        occurred_at(event["occurred_at"])
        recorded_at(event["recorded_at"])
        log_id(log["log_id"])
        payload(payload_of(canonical).decode())
        canonical_column(canonical.decode())
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, ARROW_SCHEMA, strict=True)],
        schema=ARROW_SCHEMA,
    )


def insert_rows(connection: Any, table: pa.Table, name: str = "events") -> None:
    """Append an Arrow batch of event rows to `name` in one statement (DuckDB scans the Arrow table directly)."""
    connection.register("audit_batch", table)
    try:
        connection.execute(f"INSERT INTO {name} SELECT * FROM audit_batch")
    finally:
        connection.unregister("audit_batch")
