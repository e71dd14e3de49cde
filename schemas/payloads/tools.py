"""Payloads of a tool call: the agent's request, and the tool's result or failure.

`call_id` ties the three together (and to `policy.decision` and approvals). Only a tool actor may report a
result, so tool output is evidence distinct by construction from model output and human approval. Arguments
may be recorded as a digest alone when they carry secrets: the log is immutable.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from schemas.envelope import HashStr, IdStr
from schemas.payloads.base import (
    ActorKindName,
    ContextField,
    Count,
    EventPayload,
    Level,
    Millis,
    ShortText,
    ToolName,
    UriStr,
    any_of_required,
    require_any,
)

ErrorKind = Literal[
    "invalid_arguments",
    "permission_denied",
    "not_found",
    "conflict",
    "rate_limited",
    "timeout",
    "unavailable",
    "cancelled",
    "execution_error",
    "internal",
]


class ToolCallRequested(EventPayload):
    """An agent asks to call a tool at a level; a policy.decision (and maybe an approval) follows."""

    model_config = ConfigDict(json_schema_extra=any_of_required("arguments", "arguments_digest"))

    event_type: ClassVar[str] = "tool.call.requested"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human"})
    required_context: ClassVar[frozenset[ContextField]] = frozenset({"agent_id"})

    call_id: IdStr = Field(description="Id of this call, repeated by its decision, approval and result.")
    tool: ToolName = Field(description="The tool to call.")
    arguments: Annotated[dict[str, Any], Field(max_length=256)] | None = Field(
        default=None, description="The call's arguments; may be omitted in favour of arguments_digest."
    )
    arguments_digest: HashStr | None = Field(
        default=None, description="Digest of the canonical arguments (alone when they must not be logged)."
    )
    level: Level = Field(description="The level the call runs at: sandbox, canary or production.")
    requires_approval: bool = Field(
        default=False, description="Whether the agent or harness asks for a human approval before running."
    )
    purpose: ShortText | None = Field(default=None, description="Why the agent makes this call.")

    @model_validator(mode="after")
    def _arguments_recorded(self) -> Self:
        require_any(self, "arguments", "arguments_digest")
        return self


class ToolCallCompleted(EventPayload):
    """The tool reports a call's result: the digest of its output, and where to find it."""

    event_type: ClassVar[str] = "tool.call.completed"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"tool"})

    call_id: IdStr = Field(description="The call_id of the `tool.call.requested` event.")
    tool: ToolName = Field(description="The tool that ran.")
    output_digest: HashStr = Field(description="Digest of the complete output.")
    output_summary: ShortText | None = Field(default=None, description="A short human-readable summary.")
    output_uri: UriStr | None = Field(default=None, description="Where the complete output is stored.")
    output_bytes: Count | None = Field(default=None, description="Size of the complete output.")
    duration_ms: Millis = Field(description="Wall time the call took, in milliseconds.")


class ToolCallFailed(EventPayload):
    """The tool reports that a call failed, how, and whether retrying may help."""

    event_type: ClassVar[str] = "tool.call.failed"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"tool"})

    call_id: IdStr = Field(description="The call_id of the `tool.call.requested` event.")
    tool: ToolName = Field(description="The tool that failed.")
    error_kind: ErrorKind = Field(description="The class of failure.")
    message: ShortText = Field(description="The error message.")
    retryable: bool = Field(description="Whether the same call may succeed if retried.")
    duration_ms: Millis | None = Field(default=None, description="Wall time until the failure, in milliseconds.")
