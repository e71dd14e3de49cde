"""Payloads of agent memory: writes with provenance and scope, reads, and revocations.

Scope "tenant" is visible to every agent of the tenant, "mission" to agents working on the envelope's
mission, "agent" to the envelope's agent only, "shared" to the agents listed in `shared_with`. Memory views
never cross tenants (guarantee 9). Content may be given as a digest alone when it must not be logged.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonDict

from schemas.envelope import HashStr, IdStr, TimestampStr
from schemas.payloads.base import (
    ActorKindName,
    EventIds,
    EventPayload,
    Ids,
    ShortText,
    Title,
    UriStr,
    any_of_required,
    require_any,
)

MemoryScope = Literal["tenant", "mission", "agent", "shared"]
MemoryContent = Annotated[str, StringConstraints(min_length=1, max_length=32768)]

_SHARED_WITH_RULE: JsonDict = {
    "if": {"properties": {"scope": {"const": "shared"}}, "required": ["scope"]},
    "then": {"properties": {"shared_with": {"minItems": 1}}, "required": ["shared_with"]},
    "else": {"properties": {"shared_with": {"maxItems": 0}}},
}


class MemoryWritten(EventPayload):
    """A memory item is written, with its scope, provenance and expiry."""

    model_config = ConfigDict(json_schema_extra={**any_of_required("content", "content_digest"), **_SHARED_WITH_RULE})

    event_type: ClassVar[str] = "memory.written"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "system"})

    memory_id: IdStr = Field(description="Id of this memory item.")
    key: Title = Field(description="What the item is about; a later item with the same key and scope supersedes it.")
    content: MemoryContent | None = Field(default=None, description="The remembered text.")
    content_digest: HashStr | None = Field(default=None, description="Digest of the content (alone when unlogged).")
    content_uri: UriStr | None = Field(default=None, description="Where content kept out of the log is stored.")
    scope: MemoryScope = Field(description="Who may read it: tenant, mission, agent or shared.")
    shared_with: Ids = Field(
        default_factory=list,
        description="Agent ids that may read it; required for and only for scope 'shared'.",
    )
    source_event_ids: EventIds = Field(
        default_factory=list, description="Provenance: the events this item was derived from."
    )
    expires_at: TimestampStr | None = Field(default=None, description="When the item becomes stale.")

    @model_validator(mode="after")
    def _content_and_sharing(self) -> Self:
        require_any(self, "content", "content_digest")
        if self.scope == "shared" and not self.shared_with:
            raise ValueError("scope 'shared' needs at least one agent in 'shared_with'")
        if self.scope != "shared" and self.shared_with:
            raise ValueError(f"'shared_with' must be empty for scope {self.scope!r}")
        return self


class MemoryRead(EventPayload):
    """An agent reads memory items into its context, so what it saw is on record."""

    event_type: ClassVar[str] = "memory.read"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "system"})

    memory_ids: Annotated[Ids, Field(min_length=1)] = Field(description="The items read.")
    purpose: ShortText | None = Field(default=None, description="What the agent read them for.")


class MemoryRevoked(EventPayload):
    """A memory item is revoked: it is excluded from every later context packet."""

    event_type: ClassVar[str] = "memory.revoked"
    actor_kinds: ClassVar[frozenset[ActorKindName]] = frozenset({"agent", "human", "policy", "system"})

    memory_id: IdStr = Field(description="The item revoked.")
    reason: ShortText = Field(description="Why, e.g. wrong, poisoned, or withdrawn consent.")
