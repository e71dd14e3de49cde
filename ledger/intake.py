"""Intake: turn one raw submission (bytes, text or a parsed object) into a validated, normalised submission.

This is where bad input is caught before sequencing: malformed JSON, an oversized payload, a field only the
sequencer may set, a schema violation, an unknown type or version, the wrong actor kind or the wrong tenant.
Each raises the precise `SubmissionRefused` subclass; the sequencer records it with its reason (guarantee 6).
Intake never reads the store: idempotency and `expected_seq` are the sequencer's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from ledger.canonical import canonical_bytes, has_only_exact_scalars
from ledger.clock import normalise_timestamp, uuid7
from ledger.errors import (
    ForgedField,
    MalformedJson,
    OversizedSubmission,
    SchemaViolation,
    WrongTenant,
)
from schemas.envelope import Correlation, Submission
from schemas.registry import check_actor, check_context, describe_problems, spec_for, validate_payload

SEQUENCER_FIELDS = ("hash", "seq", "prev_hash", "log", "recorded_at", "spec")


@dataclass(frozen=True)
class Limits:
    """Size limits for one submission; both are configurable (`--max-payload-bytes`, `--max-submission-bytes`)."""

    max_payload_bytes: int = 64 * 1024
    max_submission_bytes: int = 1024 * 1024


@dataclass(slots=True)
class ValidSubmission:
    """A submission that passed intake, with the values the envelope will carry."""

    event_id: str
    tenant: str
    stream: str
    type: str
    schema_version: int
    actor: dict[str, str]
    agent_id: str | None
    mission_id: str | None
    causation_id: str | None
    correlation: dict[str, str] | None
    occurred_at: str | None
    payload: dict[str, Any]
    expected_seq: int | None
    payload_exact: bool  # no float or big integer in the payload: its envelope takes the fast path
    payload_canonical: bytes  # RFC 8785 bytes of the payload, measured against the limit and reused when sealing


def check_producer_tenant(sent: str, tenant: str | None) -> None:
    """A producer bound to `tenant` writes only that tenant (guarantee 9)."""
    if tenant is not None and sent != tenant:
        raise WrongTenant(f"submission for tenant '{sent}' refused: this producer writes '{tenant}'")


def raw_bytes(raw: bytes | str | dict[str, Any]) -> bytes:
    """A submission as it was sent, for the record of a refusal."""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return orjson.dumps(raw, default=str)


def text_field(raw: bytes | str | dict[str, Any], name: str) -> str | None:
    """A string field of a submission as it was sent, read without trusting it (None: not a JSON object, or no
    such string in it)."""
    if isinstance(raw, bytes | str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    value = raw.get(name) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def decode_submission(raw: bytes | str | dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Parse raw JSON into an object, refusing malformed or oversized input before any other work."""
    if isinstance(raw, dict):
        return raw
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > limits.max_submission_bytes:
        raise OversizedSubmission(f"submission is {size} bytes; the limit is {limits.max_submission_bytes} bytes")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedJson(f"a submission must be a JSON object, not {type(value).__name__}")
    return value


def validate_submission(
    raw: bytes | str | dict[str, Any], limits: Limits, tenant: str | None = None
) -> ValidSubmission:
    """Run every intake check on one submission. `tenant`, when given, is the only tenant it may write."""
    fields = decode_submission(raw, limits)
    forged = [name for name in SEQUENCER_FIELDS if name in fields]
    if forged:
        raise ForgedField(f"field '{forged[0]}' is assigned by the sequencer and must not be submitted")
    try:
        submission = Submission.model_validate(fields)
    except ValidationError as exc:
        raise SchemaViolation(describe_problems("submission", exc)) from None
    check_producer_tenant(submission.tenant, tenant)
    spec = spec_for(submission.type, submission.schema_version)
    payload_exact = has_only_exact_scalars(submission.payload)
    payload_bytes = canonical_bytes(submission.payload, exact=payload_exact)
    payload_size = len(payload_bytes)
    if payload_size > limits.max_payload_bytes:
        raise OversizedSubmission(f"payload is {payload_size} bytes; the limit is {limits.max_payload_bytes} bytes")
    validate_payload(spec, submission.payload)
    actor_kind = submission.actor.kind.value
    check_actor(spec, actor_kind)
    check_context(spec, agent_id=submission.agent_id, mission_id=submission.mission_id)
    correlation = submission.correlation
    return ValidSubmission(
        event_id=submission.event_id or uuid7(),
        tenant=submission.tenant,
        stream=submission.stream,
        type=submission.type,
        schema_version=spec.version,
        actor={"kind": actor_kind, "id": submission.actor.id},
        agent_id=submission.agent_id,
        mission_id=submission.mission_id,
        causation_id=submission.causation_id,
        correlation=_correlation(correlation) if correlation else None,
        occurred_at=normalise_timestamp(submission.occurred_at) if submission.occurred_at else None,
        payload=submission.payload,
        expected_seq=submission.expected_seq,
        payload_exact=payload_exact,
        payload_canonical=payload_bytes,
    )


def _correlation(correlation: Correlation) -> dict[str, str] | None:
    fields = {"trace_id": correlation.trace_id, "span_id": correlation.span_id}
    return {name: value for name, value in fields.items() if value is not None} or None
