"""What an operator's tooling calls: `/healthz` (no key, nothing tenant-specific) and `/metrics` (Prometheus).

Both live outside /v1: load balancers and Prometheus expect these paths. `/metrics` needs a key with the
`metrics` permission (operators), because lag and refusal counts describe the whole deployment.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ledger.api.auth import allow_any_tenant
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.metrics import ApiMetrics
from ledger.api.service import service_of
from ledger.api.workers import EmbeddedWorkers
from ledger.apikeys import ApiKey
from schemas.http import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers, and its backend")
def healthz(request: Request) -> Health:
    service = service_of(request)
    workers: EmbeddedWorkers | None = request.app.state.workers
    running = workers is not None and workers.running
    state = "external" if service.kafka else "running" if running else "stopped"
    return Health(status="ok", backend=service.backend, workers=state)


@router.get(
    "/metrics",
    summary="Prometheus metrics: appends, refusals by reason, consumer lag, checkpoint age",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **ERROR_RESPONSES,
    },
)
def metrics(request: Request, key: Annotated[ApiKey, Depends(allow_any_tenant("metrics"))]) -> Response:
    exposition: ApiMetrics = request.app.state.metrics
    return Response(exposition.exposition(), media_type=CONTENT_TYPE_LATEST)
