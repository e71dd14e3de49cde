"""The producer submission and the sequenced event envelope: the public contract of DESIGN.md.

`Submission` is what a producer sends; `Envelope` is what the sequencer seals (every field of the
"Event envelope and hashing" section, nothing else). Payloads are validated per type by `schemas.registry`.
This module only describes shapes; it never hashes, stores or talks to a backend.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SPEC = "agent-ledger/v1"
ZERO_HASH = "sha256:" + "0" * 64

HashStr = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
TimestampStr = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")]
TenantStr = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
StreamStr = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}/[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
EventIdStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")]
IdStr = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
TypeStr = Annotated[str, StringConstraints(pattern=r"^[a-z]+(\.[a-z]+)+$")]


class ActorKind(StrEnum):
    agent = "agent"
    model = "model"
    tool = "tool"
    human = "human"
    policy = "policy"
    system = "system"


class Actor(BaseModel):
    """Who caused the event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ActorKind
    id: IdStr


class Correlation(BaseModel):
    """OpenTelemetry trace context where the producer has one."""

    model_config = ConfigDict(extra="forbid")

    trace_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    span_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = None


class LogPosition(BaseModel):
    """Where a sealed event sits: log, partition and gapless 0-based index in that partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_id: str
    partition: int = Field(ge=0)
    index: int = Field(ge=0)


class Submission(BaseModel):
    """An event as a producer submits it. The sequencer assigns seq, prev_hash, log, recorded_at and hash.

    `expected_seq`, when given, is the seq the stream's head must have now (0 for a stream with no events);
    the event is then appended as `expected_seq + 1`, or refused with a conflict.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: EventIdStr | None = Field(default=None, description="Idempotency key; UUIDv7 assigned when absent.")
    tenant: TenantStr
    stream: StreamStr
    type: TypeStr
    schema_version: int | None = Field(default=None, ge=1, description="Defaults to the newest version of type.")
    actor: Actor
    agent_id: IdStr | None = None
    mission_id: IdStr | None = None
    causation_id: EventIdStr | None = None
    correlation: Correlation | None = None
    occurred_at: str | None = Field(default=None, description="RFC 3339; normalised to UTC microseconds.")
    payload: dict[str, Any]
    expected_seq: int | None = Field(default=None, ge=0)


class Envelope(BaseModel):
    """A sequenced, sealed event exactly as hashed (plus its `hash`)."""

    model_config = ConfigDict(extra="forbid")

    spec: Literal["agent-ledger/v1"]
    tenant: TenantStr
    stream: StreamStr
    seq: int = Field(ge=1)
    prev_hash: HashStr
    event_id: EventIdStr
    type: TypeStr
    schema_version: int = Field(ge=1)
    actor: Actor
    agent_id: IdStr | None
    mission_id: IdStr | None
    causation_id: EventIdStr | None
    correlation: Correlation | None
    occurred_at: TimestampStr
    recorded_at: TimestampStr
    payload: dict[str, Any]
    log: LogPosition
    hash: HashStr


class Receipt(BaseModel):
    """What a producer gets back for an appended (or already appended) event."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    tenant: str
    stream: str
    seq: int
    hash: HashStr
    log: LogPosition
    duplicate: bool = False
    checkpoint: str | None = Field(default=None, description="Signed tlog-checkpoint note covering the event.")
    inclusion_proof: list[str] | None = Field(default=None, description="Base64 RFC 9162 inclusion proof.")
