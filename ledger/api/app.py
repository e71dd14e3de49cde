"""The FastAPI application: every router, the error handlers, the body limit, metrics and the OpenAPI metadata.

`create_app(service)` is what `agent-ledger serve` runs with uvicorn and what the tests drive with TestClient.
Embedded, its lifespan runs the in-process workers (sealer, projections, audit sink) and stops them on shutdown;
on Kafka they are separate processes. The caller that opened the service closes it (which seals a last
checkpoint).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ledger.api.errors import install_error_handlers
from ledger.api.metrics import ApiMetrics
from ledger.api.openapi import add_components
from ledger.api.raw_body import BodyLimit
from ledger.api.routes import audit, checkpoints, events, operations, state
from ledger.api.service import Service
from ledger.api.workers import EmbeddedWorkers
from schemas.envelope import Submission


def create_app(service: Service, *, workers: bool | None = None, worker_interval_s: float = 0.5) -> FastAPI:
    """The app over `service`. `workers` (default: when embedded) runs the sealer and consumers in process."""
    run_workers = service.kafka is None if workers is None else workers
    if run_workers and service.kafka:
        raise ValueError("on Kafka the sequencer and consumers run as their own processes")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = EmbeddedWorkers(service, interval_s=worker_interval_s) if run_workers else None
        app.state.workers = background
        if background is not None:
            background.start()
        try:
            yield
        finally:
            if background is not None:
                await run_in_threadpool(background.stop)

    app = FastAPI(
        title="Agent Ledger",
        version="1",
        summary="The trust boundary for autonomous AI agents: append, prove, authorize, audit and export.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.workers = None
    app.state.metrics = ApiMetrics(service, _audit_progress(app))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=service.settings.limits.max_submission_bytes, exempt=events.INTAKE_PATHS)
    for module in (events, checkpoints, state, audit, operations):
        app.include_router(module.router)
    add_components(app, Submission)
    return app


def _audit_progress(app: FastAPI) -> Callable[[], dict[int, int] | None]:
    def progress() -> dict[int, int] | None:
        background: EmbeddedWorkers | None = app.state.workers
        return None if background is None else background.audit_progress()

    return progress
