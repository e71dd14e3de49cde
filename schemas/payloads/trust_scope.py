"""Payloads of derived decisions about an agent: trust score changes and scope grants.

The agent concerned is the envelope's `agent_id` (required for these types). Changes made by a projection
(trust.changed, scope.narrowed, scope.widened) cite the policy they ran under and the events that caused
them, so every change can be explained and replayed (guarantee 8).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from schemas.envelope import HashStr, TimestampStr
from schemas.payloads.base import (
    KEYS_ARE_NAMES,
    LEVEL_ORDER,
    MAX_SAFE_INT,
    ActorKindName,
    ContextField,
    Count,
    EventIds,
    EventPayload,
    KeyName,
    Level,
    PolicyVersion,
    Score,
    ShortText,
    ToolName,
)

AGENT: frozenset[ContextField] = frozenset({"agent_id"})
Limits = Annotated[
    dict[KeyName, Annotated[float, Field(ge=0, le=MAX_SAFE_INT)]],
    Field(max_length=32, json_schema_extra=KEYS_ARE_NAMES),
]
CitedEvidence = Annotated[EventIds, Field(min_length=1)]

_LIMITS = "Limits in force after this event, e.g. {'max_calls_per_hour': 20}; they replace earlier ones."


class TrustChanged(EventPayload):
    """An agent's trust score on one dimension changes, citing the evidence and the policy."""

    event_type: ClassVar[str] = "trust.changed"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"policy", "system"})
    required_context: ClassVar[frozenset[ContextField]] = AGENT

    dimension: KeyName = Field(description="The trust dimension, e.g. 'reliability', 'safety'.")
    old_score: Score = Field(description="The score before (the policy's prior for a first change).")
    new_score: Score = Field(description="The score after.")
    evidence_count: Count | None = Field(default=None, description="How many events the new score rests on.")
    evidence_event_ids: CitedEvidence = Field(description="The events that caused the change.")
    policy_id: HashStr = Field(description="The policy the trust projection ran under.")
    policy_version: PolicyVersion = Field(description="Its version.")
    reason: ShortText | None = Field(default=None, description="Why, in words an operator understands.")


class ScopeGranted(EventPayload):
    """An agent is granted a tool or capability at a level, with limits."""

    event_type: ClassVar[str] = "scope.granted"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "policy", "system"})
    required_context: ClassVar[frozenset[ContextField]] = AGENT

    tool: ToolName = Field(description="The tool or capability granted.")
    level: Level = Field(description="The highest level it may be used at.")
    limits: Limits = Field(default_factory=dict, description=_LIMITS)
    reason: ShortText = Field(description="Why it is granted.")
    evidence_event_ids: EventIds = Field(default_factory=list, description="Events that justify the grant.")
    policy_id: HashStr | None = Field(default=None, description="The policy that granted it, if any.")
    policy_version: PolicyVersion | None = Field(default=None, description="Its version.")
    expires_at: TimestampStr | None = Field(default=None, description="When the grant lapses.")


class ScopeNarrowed(EventPayload):
    """A projection narrows an agent's grant (lower level or tighter limits) after failures or violations."""

    event_type: ClassVar[str] = "scope.narrowed"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"policy", "system"})
    required_context: ClassVar[frozenset[ContextField]] = AGENT

    tool: ToolName = Field(description="The tool or capability narrowed.")
    level: Level = Field(description="The level from now on; not above previous_level.")
    previous_level: Level = Field(description="The level before.")
    limits: Limits = Field(default_factory=dict, description=_LIMITS)
    reason: ShortText = Field(description="Why it is narrowed.")
    evidence_event_ids: CitedEvidence = Field(description="The events that caused it.")
    policy_id: HashStr = Field(description="The policy the scope projection ran under.")
    policy_version: PolicyVersion = Field(description="Its version.")

    @model_validator(mode="after")
    def _not_wider(self) -> Self:
        if LEVEL_ORDER[self.level] > LEVEL_ORDER[self.previous_level]:
            raise ValueError(f"narrowing cannot raise the level from {self.previous_level!r} to {self.level!r}")
        return self


class ScopeWidened(EventPayload):
    """A projection widens an agent's grant (higher level or looser limits) after sustained good evidence."""

    event_type: ClassVar[str] = "scope.widened"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"policy", "system"})
    required_context: ClassVar[frozenset[ContextField]] = AGENT

    tool: ToolName = Field(description="The tool or capability widened.")
    level: Level = Field(description="The level from now on; not below previous_level.")
    previous_level: Level = Field(description="The level before.")
    limits: Limits = Field(default_factory=dict, description=_LIMITS)
    reason: ShortText = Field(description="Why it is widened.")
    evidence_event_ids: CitedEvidence = Field(description="The events that earned it.")
    policy_id: HashStr = Field(description="The policy the scope projection ran under.")
    policy_version: PolicyVersion = Field(description="Its version.")

    @model_validator(mode="after")
    def _not_narrower(self) -> Self:
        if LEVEL_ORDER[self.level] < LEVEL_ORDER[self.previous_level]:
            raise ValueError(f"widening cannot lower the level from {self.previous_level!r} to {self.level!r}")
        return self


class ScopeRevoked(EventPayload):
    """An agent loses a tool or capability entirely."""

    event_type: ClassVar[str] = "scope.revoked"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "policy", "system"})
    required_context: ClassVar[frozenset[ContextField]] = AGENT

    tool: ToolName = Field(description="The tool or capability revoked.")
    reason: ShortText = Field(description="Why it is revoked.")
    evidence_event_ids: EventIds = Field(default_factory=list, description="Events that justify it.")
    policy_id: HashStr | None = Field(default=None, description="The policy that revoked it, if any.")
    policy_version: PolicyVersion | None = Field(default=None, description="Its version.")
