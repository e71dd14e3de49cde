"""Which events an export takes: by mission, stream, agent, tenant, time range, or the rows of any audit SQL.

Selections run over the audit session's `events` view, so they see only what the session may see (one tenant
with `--tenant`). A SQL selection is auditors' SQL (guarded) that must return `partition` and `log_index`; the
events named are then read back whole. Each event comes out exactly as sealed: the hashed canonical bytes plus
its `hash`. With no audit store yet, `scan_events` reads the log itself (criteria only, no SQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import pyarrow as pa

from consumers.audit.session import AuditSession
from ledger.clock import normalise_timestamp
from ledger.errors import UsageError
from ledger.log.base import LogBackend

_CRITERIA = {"mission": "mission_id", "stream": "stream", "agent": "agent_id", "tenant": "tenant"}


@dataclass(frozen=True)
class Selection:
    """What to export. Criteria combine with AND; `since`/`until` bound `recorded_at` (the sequencer's clock)."""

    mission: str | None = None
    stream: str | None = None
    agent: str | None = None
    tenant: str | None = None
    since: str | None = None
    until: str | None = None
    sql: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:  # a bad time is a SchemaViolation naming the option (exit 2)
                object.__setattr__(self, name, normalise_timestamp(value, f"--{name}"))
        if self.sql is not None and any(
            getattr(self, name) for name in (*_CRITERIA, "since", "until") if name != "tenant"
        ):
            raise UsageError("give either --sql or criteria (--mission, --stream, --agent, --since, --until), not both")
        if not any(asdict(self).values()):
            raise UsageError("say what to export: --mission, --stream, --agent, --tenant, --since/--until or --sql")

    def described(self) -> dict[str, str]:
        """The selection as recorded in the bundle."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def select_events(session: AuditSession, selection: Selection) -> list[dict[str, Any]]:
    """The selected events from the audit store, in log order."""
    if selection.sql is not None:
        return _events_of_answer(session, selection.sql)
    where, params = _where(selection)
    rows = session.execute(
        f"SELECT canonical, hash FROM events WHERE {where} ORDER BY partition, log_index", params
    ).fetchall()
    return [_sealed(canonical, hash_) for canonical, hash_ in rows]


def _events_of_answer(session: AuditSession, sql: str) -> list[dict[str, Any]]:
    answer = session.query(sql)
    missing = {"partition", "log_index"} - set(answer.columns)
    if missing:
        raise UsageError(
            f"an exported query must return the columns partition and log_index (missing: {', '.join(sorted(missing))})"
        )
    picked = answer.select("partition, log_index").distinct().to_arrow_table()
    session.connection.register("picked_events", pa.table(picked))
    try:
        rows = session.execute(
            "SELECT canonical, hash FROM events WHERE (partition, log_index) IN"
            " (SELECT (partition, log_index) FROM picked_events) ORDER BY partition, log_index"
        ).fetchall()
    finally:
        session.connection.unregister("picked_events")
    return [_sealed(canonical, hash_) for canonical, hash_ in rows]


def _where(selection: Selection) -> tuple[str, dict[str, object]]:
    clauses, params = [], {}
    for name, column in _CRITERIA.items():
        value = getattr(selection, name)
        if value is not None:
            clauses.append(f"{column} = ${name}")
            params[name] = value
    if selection.since is not None:
        clauses.append("recorded_at >= CAST($since AS TIMESTAMPTZ)")
        params["since"] = selection.since
    if selection.until is not None:
        clauses.append("recorded_at < CAST($until AS TIMESTAMPTZ)")
        params["until"] = selection.until
    return " AND ".join(clauses) or "true", params


def _sealed(canonical: str, hash_: str) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(canonical)
    event["hash"] = hash_
    return event


def scan_events(
    log: LogBackend, selection: Selection, on_progress: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """The selected events read straight from the log (no audit store needed; criteria only)."""
    if selection.sql is not None:
        raise UsageError("--sql selects over the audit store; run `agent-ledger consume audit` first")
    matches = _matcher(selection)
    return [event for event in _all_events(log, on_progress) if matches(event)]


def _all_events(log: LogBackend, on_progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    seen = 0
    for partition in range(log.partition_count):
        for record in log.read(partition):
            seen += 1
            if on_progress is not None and seen % 1000 == 0:
                on_progress(seen)
            yield record.envelope()


def _matcher(selection: Selection) -> Callable[[dict[str, Any]], bool]:
    wanted = {column: getattr(selection, name) for name, column in _CRITERIA.items() if getattr(selection, name)}

    def matches(event: dict[str, Any]) -> bool:
        if any(event.get(column) != value for column, value in wanted.items()):
            return False
        if selection.since is not None and event["recorded_at"] < selection.since:
            return False
        return selection.until is None or event["recorded_at"] < selection.until

    return matches
