"""Payloads of human approvals: the request, and a human's grant or denial.

Only a human actor may grant or deny, so a human approval is evidence distinct by construction; the approver
is the envelope's actor (kind "human") and is not repeated here. `approval_id` ties request and answer.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.envelope import IdStr, TimestampStr
from schemas.payloads.base import ActorKindName, EventPayload, Ids, Level, ShortText, Title, ToolName


class ApprovalRequested(EventPayload):
    """A human approval is asked for, usually before a tool call runs."""

    event_type: ClassVar[str] = "approval.requested"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "policy", "system"})

    approval_id: IdStr = Field(description="Id of this approval, repeated by the answer.")
    subject: ShortText = Field(description="What is to be approved, in words the approver reads.")
    call_id: IdStr | None = Field(default=None, description="The tool call awaiting it, if any.")
    tool: ToolName | None = Field(default=None, description="The tool of that call.")
    level: Level | None = Field(default=None, description="The level of that call.")
    reason: ShortText | None = Field(default=None, description="Why approval is needed, e.g. the policy rule.")
    approvers: Ids = Field(default_factory=list, description="Humans or groups who may answer; empty: any.")
    expires_at: TimestampStr | None = Field(default=None, description="When the request lapses unanswered.")


class ApprovalGranted(EventPayload):
    """A human grants an approval."""

    event_type: ClassVar[str] = "approval.granted"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human"})

    approval_id: IdStr = Field(description="The approval_id of the request.")
    call_id: IdStr | None = Field(default=None, description="The tool call approved, if any.")
    approver_role: Title | None = Field(default=None, description="The capacity the human acts in.")
    reason: ShortText | None = Field(default=None, description="Why, or any conditions attached.")
    valid_until: TimestampStr | None = Field(default=None, description="When the approval stops counting.")


class ApprovalDenied(EventPayload):
    """A human denies an approval, saying why."""

    event_type: ClassVar[str] = "approval.denied"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human"})

    approval_id: IdStr = Field(description="The approval_id of the request.")
    call_id: IdStr | None = Field(default=None, description="The tool call denied, if any.")
    approver_role: Title | None = Field(default=None, description="The capacity the human acts in.")
    reason: ShortText = Field(description="Why it is denied.")
