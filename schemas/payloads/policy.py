"""Payloads of policies: publishing a policy document, activating it, and each decision made under it.

A policy enters the log as `policy.published`, with its whole canonical document, before it is used, so a
projection rebuilt from the log alone can replay any past decision (guarantees 7 and 8). The policy id is
the digest of that canonical content; checking it is the policy loader's job, not this schema's.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from schemas.envelope import EventIdStr, HashStr, IdStr
from schemas.payloads.base import (
    ActorKindName,
    ContextField,
    EventPayload,
    Level,
    PolicyVersion,
    ShortText,
    Title,
    ToolName,
    UriStr,
)

PolicyDocument = Annotated[dict[str, Any], Field(min_length=1, max_length=1000)]


class PolicyPublished(EventPayload):
    """A versioned policy document enters the log, identified by the digest of its canonical content."""

    event_type: ClassVar[str] = "policy.published"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "system"})

    policy_id: HashStr = Field(description="Digest of the canonical policy document: its identity.")
    name: Title = Field(description="The policy's name, e.g. 'default'; versions of one name succeed each other.")
    version: PolicyVersion = Field(description="The author's version number of this policy name.")
    content: PolicyDocument = Field(description="The canonical policy document as a JSON object.")
    source: UriStr | None = Field(default=None, description="Where the document came from, e.g. a file URI.")
    changelog: ShortText | None = Field(default=None, description="What changed since the previous version.")


class PolicyActivated(EventPayload):
    """A published policy becomes the one in force for its name, replacing the previous one."""

    event_type: ClassVar[str] = "policy.activated"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"human", "system"})

    policy_id: HashStr = Field(description="The policy id of a `policy.published` event.")
    name: Title = Field(description="The policy name this activation applies to.")
    version: PolicyVersion = Field(description="The version being activated.")
    previous_policy_id: HashStr | None = Field(default=None, description="The policy it replaces, if any.")
    rebuild_id: IdStr | None = Field(
        default=None, description="The shadow rebuild whose diff was reviewed before this promotion."
    )
    reason: ShortText | None = Field(default=None, description="Why the policy is activated now.")


class PolicyDecision(EventPayload):
    """The answer to "may this agent call this tool?": allow, deny or escalate, with the deciding rule."""

    event_type: ClassVar[str] = "policy.decision"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"policy"})
    required_context: ClassVar[frozenset[ContextField]] = frozenset({"agent_id"})

    decision: Literal["allow", "deny", "escalate"] = Field(
        description="allow: go ahead; deny: refused; escalate: a human approval is needed first."
    )
    tool: ToolName = Field(description="The tool or capability asked about.")
    level: Level | None = Field(default=None, description="The level the call would run at.")
    call_id: IdStr | None = Field(default=None, description="The tool call decided on, when there is one.")
    rule: Title = Field(description="The id of the policy rule that decided.")
    policy_id: HashStr = Field(description="The policy in force.")
    policy_version: PolicyVersion = Field(description="Its version.")
    request_event_id: EventIdStr | None = Field(
        default=None, description="The `tool.call.requested` event decided on, when there is one."
    )
    reason: ShortText = Field(description="Why, in words an operator understands.")
