"""Payloads of a mission's life: opening, done criteria, steps, hand-offs of ownership and closure.

The mission an event is about is the envelope's `mission_id` (required for these types). A close request is
answered by `mission.closed` or by `mission.close.refused` naming what is missing; agents cannot emit either
answer, so a mission is never closed without the mission-state projection's check (or a human's).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from schemas.envelope import EventIdStr, HashStr, IdStr, TimestampStr
from schemas.payloads.base import (
    DISTINCT,
    KEYS_ARE_NAMES,
    UNIQUE,
    ActorKindName,
    ContextField,
    EventPayload,
    EvidenceKind,
    Ids,
    KeyName,
    LongText,
    PayloadPart,
    PolicyVersion,
    ShortText,
    Title,
)

MISSION: frozenset[ContextField] = frozenset({"mission_id"})
CloseStatus = Literal["completed", "failed", "abandoned"]


class Criterion(PayloadPart):
    """One explicit done criterion of a mission."""

    criterion_id: IdStr = Field(description="Stable id the evidence refers to.")
    description: ShortText = Field(description="What must be true for the mission to be done.")
    requires_approval: bool = Field(
        default=False, description="Whether a human approval must be among the evidence for this criterion."
    )
    evidence_kinds: Annotated[list[EvidenceKind], Field(max_length=5, json_schema_extra=UNIQUE), DISTINCT] = Field(
        default_factory=list, description="Kinds of evidence that count for it; empty means any kind."
    )


class MissionOpened(EventPayload):
    """A mission starts, with its objective and the agent that owns it."""

    event_type: ClassVar[str] = "mission.opened"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    title: Title = Field(description="Short title of the mission.")
    objective: LongText = Field(description="What the mission must achieve.")
    owner_agent_id: IdStr = Field(description="The agent that owns the mission at opening.")
    parent_mission_id: IdStr | None = Field(default=None, description="The mission this one is a part of.")
    requested_by: IdStr | None = Field(default=None, description="The human or system that asked for it.")
    due_at: TimestampStr | None = Field(default=None, description="When it should be done by.")
    labels: Annotated[dict[KeyName, Title], Field(max_length=32, json_schema_extra=KEYS_ARE_NAMES)] = Field(
        default_factory=dict, description="Free labels for filtering, e.g. {'team': 'payments'}."
    )


class MissionCriteriaSet(EventPayload):
    """The mission's done criteria are set; this list replaces any earlier one."""

    event_type: ClassVar[str] = "mission.criteria.set"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    criteria: Annotated[list[Criterion], Field(min_length=1, max_length=100)] = Field(
        description="The complete list of done criteria, each with a distinct criterion_id."
    )

    @model_validator(mode="after")
    def _distinct_criterion_ids(self) -> Self:
        seen: set[str] = set()
        for criterion in self.criteria:
            if criterion.criterion_id in seen:
                raise ValueError(f"criterion_id {criterion.criterion_id!r} appears twice")
            seen.add(criterion.criterion_id)
        return self


class MissionStepRecorded(EventPayload):
    """A step of the mission's plan is recorded or changes status (same step_id: latest wins)."""

    event_type: ClassVar[str] = "mission.step.recorded"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    step_id: IdStr = Field(description="Stable id of the step within the mission.")
    summary: ShortText = Field(description="What the step does or did.")
    status: Literal["planned", "in_progress", "completed", "failed", "skipped"] = Field(
        description="Where the step stands."
    )
    criterion_ids: Ids = Field(default_factory=list, description="The criteria this step works towards.")


class MissionCloseRequested(EventPayload):
    """Someone asks to close the mission with a final status; the mission-state projection answers."""

    event_type: ClassVar[str] = "mission.close.requested"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    status: CloseStatus = Field(description="The status asked for.")
    summary: ShortText = Field(description="What was achieved, or why it stops.")


class MissionClosed(EventPayload):
    """The mission is closed: every criterion had evidence and every tool call its result and approval."""

    event_type: ClassVar[str] = "mission.closed"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"policy", "system", "human"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    status: CloseStatus = Field(description="The final status.")
    summary: ShortText = Field(description="What was achieved, or why it stopped.")
    request_event_id: EventIdStr | None = Field(
        default=None, description="The `mission.close.requested` event this closure answers."
    )


class MissionCloseRefused(EventPayload):
    """A close request is refused, naming the criteria without evidence and the unresolved tool calls."""

    event_type: ClassVar[str] = "mission.close.refused"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"policy", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    request_event_id: EventIdStr = Field(description="The `mission.close.requested` event refused.")
    reasons: Annotated[list[ShortText], Field(min_length=1, max_length=100)] = Field(
        description="Every reason, one sentence each."
    )
    missing_criteria: Ids = Field(default_factory=list, description="Criteria that lack evidence.")
    unresolved_tool_calls: Ids = Field(
        default_factory=list, description="call_ids without a result, or without a needed approval."
    )
    policy_id: HashStr | None = Field(default=None, description="The policy the check ran under.")
    policy_version: PolicyVersion | None = Field(default=None, description="Its version.")


class HandoffOffered(EventPayload):
    """The owner of a mission offers it to another agent (or to any agent when to_agent_id is null)."""

    event_type: ClassVar[str] = "handoff.offered"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    from_agent_id: IdStr = Field(description="The current owner.")
    to_agent_id: IdStr | None = Field(default=None, description="The agent offered the mission; null: any.")
    reason: ShortText = Field(description="Why the mission is handed off.")
    context_memory_ids: Ids = Field(default_factory=list, description="Memory items the new owner should read first.")
    expires_at: TimestampStr | None = Field(default=None, description="When the offer lapses.")


class HandoffAccepted(EventPayload):
    """An agent accepts a hand-off offer and becomes the mission's owner (append with expected_seq)."""

    event_type: ClassVar[str] = "handoff.accepted"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})
    required_context: ClassVar[frozenset[ContextField]] = MISSION

    offer_event_id: EventIdStr = Field(description="The `handoff.offered` event accepted.")
    owner_agent_id: IdStr = Field(description="The new owner of the mission.")
    note: ShortText | None = Field(default=None, description="Anything the new owner wants on record.")
