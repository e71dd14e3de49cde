"""Every client mistake is a JSON 4xx `{"error": reason_code, "message": ...}`; never a 500 for a client's fault.

`LedgerError` subclasses carry their own status (`ledger.errors`). FastAPI's validation errors and Starlette's
HTTP errors are mapped to the same body shape, so a client parses one error format everywhere. A bug (any other
exception) is still answered in that shape, as a 500 `internal` that names no detail, and is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ledger.errors import DuplicateEventId, LedgerError

log = logging.getLogger("agent_ledger.api")


class NotFound(LedgerError):
    """The named resource does not exist for this tenant (or at all: the answer does not say which)."""

    reason_code = "not_found"
    http_status = 404


class ErrorBody(BaseModel):
    """The body of every 4xx answer."""

    error: str = Field(description="Stable reason code, e.g. schema_violation, forbidden, stale_expected_seq.")
    message: str = Field(description="One line saying what was wrong.")
    receipt: dict[str, Any] | None = Field(
        default=None, description="For duplicate_event_id: the receipt of the original event."
    )


def error_body(error: LedgerError) -> dict[str, Any]:
    body = error.to_json()
    if isinstance(error, DuplicateEventId):
        body["receipt"] = dict(error.original_receipt)
    return body


def _where(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "request"


async def _ledger_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None  # RFC 9110 for a 401
    return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()[:5])
    return JSONResponse({"error": "invalid_request", "message": problems}, status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "oversized"}.get(exc.status_code, "http")
    return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # A bug, never a client's mistake: log it whole, tell the client nothing it could use to probe.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal", "message": "internal error; it was logged"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request",
    401: "No valid API key",
    403: "The key's tenant or role does not allow this",
    404: "No such resource (or path)",
    408: "The audit query ran past the server's time limit (`serve --audit-timeout`) and was stopped",
    409: "Conflict: stale expected_seq, event_id reused, or a duplicate (with the original receipt)",
    413: "The body or a payload is over its size limit",
    422: "The request or submission is invalid",
    504: "Kafka: no receipt in time (the submission may still be sequenced; resend it, it is idempotent)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the one error body."""
    return {status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = error_responses(400, 401, 403, 404, 413, 422)
"""Declared on every /v1 route so the OpenAPI spec documents the error answers (add more with error_responses).
413 is among them because every request body is bounded (`raw_body.BodyLimit`)."""
