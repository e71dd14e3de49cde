"""Payloads of the agent lifecycle: registration and every later revision of an agent.

The agent an event is about is the envelope's `agent_id` (required for these types). A revision of model,
prompt or tool manifest is always its own event, so self-modification is never hidden (DESIGN taxonomy).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import ConfigDict, Field, model_validator

from schemas.envelope import HashStr, IdStr
from schemas.payloads.base import (
    DISTINCT,
    UNIQUE,
    ActorKindName,
    ContextField,
    EventPayload,
    ModelName,
    ShortText,
    Title,
    ToolName,
    any_of_required,
    require_any,
)

ToolManifest = Annotated[list[ToolName], Field(max_length=500, json_schema_extra=UNIQUE), DISTINCT]


class AgentRegistered(EventPayload):
    """A new agent joins the tenant with its model, prompt digest, tool manifest and accountable owner."""

    event_type: ClassVar[str] = "agent.registered"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "system", "agent"})
    required_context: ClassVar[frozenset[ContextField]] = frozenset({"agent_id"})

    name: Title = Field(description="Display name of the agent.")
    model: ModelName = Field(description="Model the agent runs on, e.g. 'anthropic/claude-sonnet-4-5'.")
    prompt_digest: HashStr = Field(description="Digest of the system prompt the agent runs with.")
    tool_manifest: ToolManifest = Field(description="Tools the agent is wired to call (distinct names).")
    tool_manifest_digest: HashStr | None = Field(
        default=None, description="Digest of the full tool definitions, so a changed definition is visible."
    )
    owner: IdStr = Field(description="The human or team accountable for the agent.")
    role: Title | None = Field(default=None, description="What the agent is for, e.g. 'planner', 'coder'.")
    parent_agent_id: IdStr | None = Field(
        default=None, description="The agent that spawned this one, for swarms and sub-agents."
    )


class AgentRevised(EventPayload):
    """An agent's model, prompt or tool manifest changes; only the changed fields are given."""

    model_config = ConfigDict(
        json_schema_extra=any_of_required("model", "prompt_digest", "tool_manifest", "tool_manifest_digest")
    )

    event_type: ClassVar[str] = "agent.revised"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "system", "agent"})
    required_context: ClassVar[frozenset[ContextField]] = frozenset({"agent_id"})

    model: ModelName | None = Field(default=None, description="The new model, when it changed.")
    prompt_digest: HashStr | None = Field(default=None, description="The new prompt digest, when it changed.")
    tool_manifest: ToolManifest | None = Field(
        default=None, description="The complete new tool manifest, when it changed."
    )
    tool_manifest_digest: HashStr | None = Field(
        default=None, description="The new digest of the full tool definitions, when it changed."
    )
    reason: ShortText = Field(description="Why the agent was revised.")

    @model_validator(mode="after")
    def _something_changed(self) -> Self:
        require_any(self, "model", "prompt_digest", "tool_manifest", "tool_manifest_digest")
        return self
