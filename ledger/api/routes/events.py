"""Append over HTTP, one submission or a batch, and fetch a receipt with its proof.

The body reaches the ledger's own intake as the bytes that were sent (`Ledger.append_batch(raws, tenant=...)`,
the CLI's code path), so every refusal (malformed JSON, unknown type, schema violation, oversized payload,
wrong tenant, stale `expected_seq`, duplicate) is decided and recorded with its reason there (guarantees 4-6,
9). Only a body over the size limit is refused here, before it is read whole, and recorded here.
"""

from __future__ import annotations

import re
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ledger.api.auth import allow
from ledger.api.errors import ERROR_RESPONSES, NotFound, error_body, error_responses
from ledger.api.metrics import ApiMetrics
from ledger.api.openapi import component_ref, json_body
from ledger.api.raw_body import OversizedBody, read_bounded
from ledger.api.service import service_of
from ledger.apikeys import ApiKey
from ledger.clock import utc_now
from ledger.errors import MalformedJson, OversizedSubmission, SubmissionRefused
from ledger.log.base import Rejection
from ledger.sequencer import Outcome, RawSubmission
from schemas.envelope import Receipt, Submission
from schemas.examples import EXAMPLES
from schemas.http import BatchOutcome, BatchResult

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["events"])

INTAKE_PATHS = re.compile(r"^/v1/tenants/[^/]+/events(/batch)?/?$")
"""The routes that bound and record their own bodies (`raw_body.BodyLimit` leaves them alone)."""

APPEND_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 504)
EXAMPLE = EXAMPLES["mission.step.recorded"].submission()


def _metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def _refuse(request: Request, tenant: str, raw: bytes, refusal: SubmissionRefused) -> SubmissionRefused:
    """Record a refusal decided before the intake saw the submission, and count it (guarantee 6)."""
    rejection = Rejection(utc_now(), refusal.reason_code, refusal.message, tenant, None, raw)
    await run_in_threadpool(service_of(request).record_refusals, [rejection])
    _metrics(request).refused(refusal)
    return refusal


async def _body(request: Request, tenant: str, limit: int, what: str) -> bytes:
    try:
        return await read_bounded(request, limit)
    except OversizedBody as oversized:
        raise await _refuse(request, tenant, oversized.prefix, oversized.refusal(what)) from None


async def _append(request: Request, tenant: str, raws: list[RawSubmission]) -> list[Outcome]:
    outcomes = await run_in_threadpool(service_of(request).append_batch, raws, tenant=tenant)
    _metrics(request).count(outcomes)
    return outcomes


@router.post(
    "/events",
    status_code=201,
    response_model=Receipt,
    response_model_exclude_none=True,
    summary="Append one event",
    responses=APPEND_ERRORS,
    openapi_extra=json_body(
        component_ref(Submission),
        "One submission. It is checked by the ledger's intake exactly as sent; a refusal is recorded with its"
        " reason. A duplicate `event_id` answers 409 with the original receipt.",
        EXAMPLE,
    ),
)
async def append_event(tenant: str, request: Request, key: Annotated[ApiKey, Depends(allow("append"))]) -> Receipt:
    limit = service_of(request).settings.limits.max_submission_bytes
    raw = await _body(request, tenant, limit, "the submission")
    (outcome,) = await _append(request, tenant, [raw])
    if isinstance(outcome, SubmissionRefused):
        raise outcome
    return outcome


def _batch_items(body: bytes, max_items: int) -> list[RawSubmission] | SubmissionRefused:
    """The submissions of a batch body (a JSON array), each re-encoded so intake checks it as if sent alone."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return MalformedJson(f"malformed JSON: {exc}")
    if not isinstance(items, list):
        return MalformedJson(f"a batch must be a JSON array of submissions, not {type(items).__name__}")
    if len(items) > max_items:
        return OversizedSubmission(f"batch of {len(items)} submissions; the limit is {max_items}")
    return [orjson.dumps(item) for item in items]


def _batch_outcome(outcome: Outcome) -> BatchOutcome:
    if isinstance(outcome, Receipt):
        return BatchOutcome(status=201, receipt=outcome)
    return BatchOutcome.model_validate({"status": outcome.http_status, **error_body(outcome)})


@router.post(
    "/events/batch",
    response_model=BatchResult,
    response_model_exclude_none=True,
    summary="Append a batch of events",
    responses=APPEND_ERRORS,
    openapi_extra=json_body(
        {"type": "array", "items": component_ref(Submission)},
        "A JSON array of submissions, appended in order; each gets its own outcome (a receipt, or the refusal"
        " the single-event endpoint would answer). Refusals are recorded with their reasons.",
        [EXAMPLE],
    ),
)
async def append_batch(tenant: str, request: Request, key: Annotated[ApiKey, Depends(allow("append"))]) -> BatchResult:
    limits = service_of(request).http_limits
    body = await _body(request, tenant, limits.max_batch_bytes, "the batch")
    items = await run_in_threadpool(_batch_items, body, limits.max_batch_items)  # megabytes: off the event loop
    if isinstance(items, SubmissionRefused):
        raise await _refuse(request, tenant, body, items)
    outcomes = await _append(request, tenant, items) if items else []
    refused = sum(isinstance(outcome, SubmissionRefused) for outcome in outcomes)
    return BatchResult(
        outcomes=[_batch_outcome(outcome) for outcome in outcomes],
        appended=len(outcomes) - refused,
        refused=refused,
    )


@router.get(
    "/receipts/{event_id:path}",
    response_model=Receipt,
    response_model_exclude_none=True,
    summary="The receipt of an event, with checkpoint and inclusion proof once sealed",
    responses=ERROR_RESPONSES,
)
def get_receipt(
    tenant: str, event_id: str, request: Request, key: Annotated[ApiKey, Depends(allow("receipt"))]
) -> Receipt:
    service = service_of(request)
    with service.reading():
        receipt = service.ledger.receipt(tenant, event_id)
    if receipt is None:
        raise NotFound(f"no event with event_id '{event_id[:200]}' in tenant '{tenant}'")
    return receipt
