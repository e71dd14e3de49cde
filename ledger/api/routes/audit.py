"""Audit and compliance over HTTP: read-only SQL and saved queries over the audit store, and signed export bundles.

Every route reads through an `AuditSession` scoped to the path tenant, whose `events` view holds only that
tenant's rows, and auditors' SQL passes the session's guard (one SELECT over the views; no writes, files or other
tables), so no statement reaches another tenant's rows (DESIGN guarantee 9). Before reading, the route waits
until the audit data covers the log as it stood when the request arrived, catching the sink up itself when no
worker of this process runs it. It reads the Parquet segments the sink publishes, never the store file, so
queries never hold the sink up.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from consumers.audit.queries import SAVED_QUERIES, run_saved
from consumers.audit.segments import SEGMENTS_DIR, Manifest, read_manifest, write_manifest
from consumers.audit.selection import Selection, select_events
from consumers.audit.session import AuditSession, audit_dir
from consumers.audit.sink import audit_runner
from ledger.api.auth import allow
from ledger.api.errors import ERROR_RESPONSES, ErrorBody, NotFound, error_responses
from ledger.api.service import Service, ServiceDep
from ledger.api.workers import EmbeddedWorkers
from ledger.bundle.build import build_bundle
from ledger.bundle.format import DsseEnvelope
from ledger.errors import ConfigError, LedgerError, UsageError
from ledger.keys import load_signer

log = logging.getLogger("agent_ledger.api")

DEFAULT_ROWS = 1000
MAX_ROWS = 100_000
AUDIT_WAIT_S = 10.0
"""How long a request waits for a sink of another thread or process to cover the log before answering 503."""

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["audit"], responses=ERROR_RESPONSES)
READING: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The audit store is still catching up with the log; retry shortly"}
}
"""Declared on the routes that read the audit data."""
QUERYING = {**READING, **error_responses(408)}
"""Declared on the routes that run an auditor's query, which the time limit may stop."""


class AuditBehind(LedgerError):
    """The audit data does not yet cover the log as it stood when the request arrived."""

    reason_code = "audit_behind"
    http_status = 503


# -- models ---------------------------------------------------------------------------------------------------


class AuditQuery(BaseModel):
    """One read-only SELECT over the views `events` and `checkpoints` (docs/audit.md lists their columns)."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, examples=["SELECT type, count(*) FROM events GROUP BY ALL"])
    limit: int = Field(default=DEFAULT_ROWS, ge=1, le=MAX_ROWS, description="At most this many rows are returned.")


class AuditColumn(BaseModel):
    name: str
    type: str = Field(description="The DuckDB type, e.g. VARCHAR, BIGINT, TIMESTAMP WITH TIME ZONE, JSON.")


class AuditAnswer(BaseModel):
    """The answer as columns and rows (one array per row, in column order)."""

    tenant: str = Field(description="Only this tenant's events were visible to the query.")
    columns: list[AuditColumn]
    rows: list[list[Any]] = Field(
        description="Times as RFC 3339 text, JSON columns as JSON, BLOBs as base64, DECIMALs as text (exact)."
    )
    row_count: int = Field(description="len(rows).")
    truncated: bool = Field(description="True when the answer had more rows than `limit`; rows holds the first ones.")


class SavedQueryInfo(BaseModel):
    name: str
    title: str
    description: str = Field(description="Exactly what the query counts (docs/audit-queries.md).")
    parameters: list[str] = Field(description="The parameters it needs, each given as a string.")


class SavedQueryRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, str] = Field(default_factory=dict, description="The saved query's parameters.")
    limit: int = Field(default=DEFAULT_ROWS, ge=1, le=MAX_ROWS)


class ExportRequest(BaseModel):
    """Which events to export, as `agent-ledger export` selects them; always within the path tenant. Criteria
    combine with AND; no criterion at all exports the whole tenant. `sql` replaces the criteria."""

    model_config = ConfigDict(extra="forbid")

    mission: str | None = Field(default=None, description="Events of this mission (mission_id).")
    stream: str | None = Field(default=None, description="Events of this stream, e.g. agent/a-7.")
    agent: str | None = Field(default=None, description="Events about this agent (agent_id).")
    since: str | None = Field(default=None, description="Recorded at or after this RFC 3339 time.")
    until: str | None = Field(default=None, description="Recorded before this RFC 3339 time.")
    sql: str | None = Field(
        default=None, description="Audit SQL returning the columns partition and log_index of the events to export."
    )


# -- reading the audit data -----------------------------------------------------------------------------------


def _workers(request: Request) -> EmbeddedWorkers | None:
    workers: EmbeddedWorkers | None = getattr(request.app.state, "workers", None)
    return workers


WorkersDep = Annotated[EmbeddedWorkers | None, Depends(_workers)]


@contextmanager
def audit_session(service: Service, workers: EmbeddedWorkers | None, tenant: str) -> Iterator[AuditSession]:
    """A session over the tenant's audit data, once that data covers every event the log held on entry."""
    ledger_log = service.ledger.log
    with service.reading():
        wanted = {partition: ledger_log.size(partition) for partition in range(ledger_log.partition_count)}
    directory = audit_dir(service.projections.state_root)
    refusal = None
    if workers is None or not workers.running:
        # No sink of this process runs (tests, `serve` without workers, Kafka): catch it up here.
        refusal = _catch_up(service, directory)
    # Else the workers' sink holds the store open; a second writer in this process would collide with it.
    try:
        manifest = _published(directory / SEGMENTS_DIR, wanted, ledger_log.log_id)
    except AuditBehind:
        if refusal is not None:  # no sink published in time, and this one could not run: say why
            raise refusal from None
        raise
    limit_s = service.http_limits.audit_query_s
    with (
        _source(directory, manifest, ledger_log.log_id) as readable,
        AuditSession(readable, tenant=tenant, source="segments", timeout_s=limit_s) as session,
    ):
        yield session


def _catch_up(service: Service, directory: Path) -> ConfigError | None:
    """Catch the audit sink up with the log; the ConfigError when the store cannot be opened here (a running
    `agent-ledger consume audit` holds it: its publications are then what there is to read)."""
    with service.lock:  # one writer of the store at a time among this process's requests
        try:
            with audit_runner(service.ledger.log, directory) as runner:
                runner.catch_up()  # it publishes the segments on reaching the end of the log
        except ConfigError as refusal:
            log.debug("audit sink not run by this request: %s", refusal)
            return refusal
    return None


def _published(segments: Path, wanted: dict[int, int], log_id: str) -> Manifest | None:
    """The manifest once its segments hold the first `wanted[p]` events of each partition p; AuditBehind when the
    sink has not got there within AUDIT_WAIT_S."""
    deadline = time.monotonic() + AUDIT_WAIT_S
    while True:
        manifest = read_manifest(segments)
        if manifest is not None and manifest.log_id != log_id:
            raise ConfigError(f"the audit data here is of log {manifest.log_id}, not of this ledger's {log_id}")
        behind = sum(
            max(0, size - (0 if manifest is None else manifest.last("events", partition) + 1))
            for partition, size in wanted.items()
        )
        if behind == 0:
            return manifest
        if time.monotonic() >= deadline:
            raise AuditBehind(f"the audit store is {behind} events behind the log; retry shortly")
        time.sleep(0.05)


@contextmanager
def _source(directory: Path, manifest: Manifest | None, log_id: str) -> Iterator[Path]:
    """`directory`, or while the log is still empty (nothing published yet) an empty publication of the same
    shape, so a query answers no rows rather than an error. Nothing is written beside the sink's own files."""
    if manifest is not None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="agent-ledger-audit-") as empty:
        (Path(empty) / SEGMENTS_DIR).mkdir()
        write_manifest(Path(empty) / SEGMENTS_DIR, Manifest(log_id))
        yield Path(empty)


def _answer(tenant: str, session: AuditSession, relation: duckdb.DuckDBPyRelation, limit: int) -> AuditAnswer:
    try:
        types = [str(kind) for kind in relation.types]
        columns = [AuditColumn(name=name, type=kind) for name, kind in zip(relation.columns, types, strict=True)]
        with session.time_limit():
            rows = relation.limit(limit + 1).fetchall()  # one more than asked says whether there were more
    except duckdb.Error as exc:  # many errors (a failed cast, say) surface only when the rows are computed
        raise UsageError(f"query failed: {str(exc).strip().splitlines()[0]}") from None
    json_columns = [kind == "JSON" for kind in types]
    shown = [[_cell(value, is_json) for value, is_json in zip(row, json_columns, strict=True)] for row in rows[:limit]]
    return AuditAnswer(tenant=tenant, columns=columns, rows=shown, row_count=len(shown), truncated=len(rows) > limit)


def _cell(value: Any, is_json: bool) -> Any:
    """A DuckDB value as JSON, as `agent-ledger audit --format json` writes it: a JSON column as JSON, not as
    text. Times, UUIDs and decimals are left to the response model (RFC 3339 with Z, text, exact text)."""
    if is_json and isinstance(value, str):
        return orjson.loads(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


# -- routes ---------------------------------------------------------------------------------------------------


@router.post(
    "/audit/query",
    dependencies=[Depends(allow("audit"))],
    responses=QUERYING,
    summary="One read-only SELECT over the tenant's events and the checkpoints",
)
def audit_query(tenant: str, query: AuditQuery, service: ServiceDep, workers: WorkersDep) -> AuditAnswer:
    with audit_session(service, workers, tenant) as session:
        return _answer(tenant, session, session.query(query.sql), query.limit)


@router.get(
    "/audit/saved",
    dependencies=[Depends(allow("audit"))],
    summary="The saved queries: the auditors' common questions, with their parameters",
)
def saved_queries(tenant: str) -> list[SavedQueryInfo]:
    return [
        SavedQueryInfo(name=query.name, title=query.title, description=query.description, parameters=list(query.params))
        for query in SAVED_QUERIES.values()
    ]


_SAVED_PARAMETERS = sorted({param for query in SAVED_QUERIES.values() for param in query.params})


@router.get(
    "/audit/saved/{name}",
    dependencies=[Depends(allow("audit"))],
    summary="Run a saved query; its parameters go in the query string",
    responses=QUERYING,
    openapi_extra={
        # The parameters depend on the query named, so they are read from the query string, and listed here.
        "parameters": [
            {
                "name": param,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "Needed by: "
                + ", ".join(query.name for query in SAVED_QUERIES.values() if param in query.params),
            }
            for param in _SAVED_PARAMETERS
        ]
    },
)
def run_saved_query(
    tenant: str,
    name: str,
    request: Request,
    service: ServiceDep,
    workers: WorkersDep,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="At most this many rows.")] = DEFAULT_ROWS,
) -> AuditAnswer:
    params = {key: value for key, value in request.query_params.items() if key != "limit"}
    return _run_saved(tenant, name, params, limit, service, workers)


@router.post(
    "/audit/saved/{name}",
    dependencies=[Depends(allow("audit"))],
    summary="Run a saved query with its parameters in the body",
    responses=QUERYING,
)
def run_saved_query_posted(
    tenant: str, name: str, run: SavedQueryRun, service: ServiceDep, workers: WorkersDep
) -> AuditAnswer:
    return _run_saved(tenant, name, run.params, run.limit, service, workers)


def _run_saved(
    tenant: str, name: str, params: dict[str, str], limit: int, service: Service, workers: EmbeddedWorkers | None
) -> AuditAnswer:
    if name not in SAVED_QUERIES:
        raise NotFound(f"no saved query '{name[:200]}'; known: {', '.join(sorted(SAVED_QUERIES))}")
    with audit_session(service, workers, tenant) as session:
        return _answer(tenant, session, run_saved(session, name, params), limit)


@router.post(
    "/exports",
    dependencies=[Depends(allow("export"))],
    summary="Export the selected events of this tenant as a signed bundle (DSSE envelope of an in-toto Statement)",
    response_class=Response,
    responses={
        **READING,
        200: {
            "model": DsseEnvelope,
            "description": "The bundle, exactly as `agent-ledger export` writes it; check it offline with "
            "`agent-ledger verify-bundle` and the verifier key (docs/bundle.md).",
        },
    },
)
def export(tenant: str, wanted: ExportRequest, service: ServiceDep, workers: WorkersDep) -> Response:
    selection = Selection(tenant=tenant, **wanted.model_dump())  # a bad time or a mix of sql and criteria: 4xx
    if service.backend == "embedded":
        # Seal what is unsealed, so the bundle proves every event up to this request, not only up to the timer's
        # last checkpoint. On Kafka the sequencer workers seal.
        with service.append_lock:
            service.ledger.seal()
    signer = load_signer(service.settings.private_key_path)
    with audit_session(service, workers, tenant) as session:
        events = select_events(session, selection)
    if not events:
        raise NotFound(f"the selection {selection.described()} matches no events")
    with service.reading():
        # build_bundle checks every proof against its signed root before it signs
        bundle = build_bundle(service.ledger.log, events, signer, selection=selection.described())
    return Response(bundle, media_type="application/json")
