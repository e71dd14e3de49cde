"""The shape of every projection: a pure fold of sequenced events into keyed entities, under a policy.

A projection never reads a clock, draws randomness or does I/O (DESIGN guarantee 8): time comes from the
events, the policy is an argument, and the entities it may touch are handed to it. Its state is a set of
entities, each under a string key, so a runner can load just the entities an event touches, fold, and store
them back (`consumers/projection.py`), while a rebuild folds the whole log in memory. Decisions a projection
derives (closure refused, trust changed, scope narrowed or widened) are returned, never appended here.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from projections.policy import Policy

Envelope = dict[str, Any]
E = TypeVar("E")


@dataclass(frozen=True)
class Decision:
    """An event a projection derives from the log; the runner appends it through the normal append path.

    `cause` is the event that made it necessary (its `event_id` becomes `causation_id`). The event id is a
    digest of (projection, policy, cause, key), so a restart or a replay derives the same id and the ledger's
    idempotency turns a second append into a duplicate: a decision is appended once.
    """

    projection: str
    type: str
    tenant: str
    stream: str
    agent_id: str | None
    mission_id: str | None
    payload: dict[str, Any]
    cause_event_id: str
    cause_hash: str
    cause_time: str  # the cause's recorded_at: a decision happens at the time of its evidence
    policy_id: str
    key: str  # tells apart several decisions of one projection about one cause

    @property
    def event_id(self) -> str:
        material = "\n".join((self.projection, self.policy_id, self.cause_hash, self.type, self.key))
        return f"derived:{self.projection}:{hashlib.sha256(material.encode()).hexdigest()[:40]}"

    def submission(self) -> dict[str, Any]:
        """The submission to append, exactly as a producer would send it."""
        return {
            "event_id": self.event_id,
            "tenant": self.tenant,
            "stream": self.stream,
            "type": self.type,
            "actor": {"kind": "policy", "id": f"projection:{self.projection}"},
            "agent_id": self.agent_id,
            "mission_id": self.mission_id,
            "causation_id": self.cause_event_id,
            "occurred_at": self.cause_time,
            "payload": self.payload,
        }


class Projection(ABC, Generic[E]):
    """A deterministic fold of events into entities of type `E`, each under a key that names its tenant.

    `keys(event)` names every entity `apply` may read or change for that event (none: the event is not this
    projection's business). `apply` receives those that exist in `entities`, changes or adds them in place, and
    returns its decisions. Keys start with "<tenant>/" so no fold can reach another tenant's entities.
    Bump `version` when the meaning of the state changes: stored state of another version is rebuilt.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1

    @abstractmethod
    def keys(self, event: Envelope) -> Iterable[str]: ...

    @abstractmethod
    def apply(self, entities: dict[str, E], event: Envelope, policy: Policy) -> list[Decision]: ...

    @abstractmethod
    def encode(self, entity: E) -> dict[str, Any]:
        """The entity as a JSON object (what the consumer store keeps and `projections diff` compares)."""

    @abstractmethod
    def decode(self, data: dict[str, Any]) -> E: ...

    def summary(self, entity: E) -> dict[str, str | float | int | None]:
        """The few facts of an entity an operator compares across policies (`projections diff`), e.g. a
        mission's status or an agent's level per tool. Empty: the policy cannot change this entity."""
        return {}

    def decision(
        self,
        event: Envelope,
        policy: Policy,
        type: str,
        payload: dict[str, Any],
        *,
        stream: str,
        key: str = "",
        agent_id: str | None = None,
        mission_id: str | None = None,
    ) -> Decision:
        """A decision caused by `event`, in the cause's tenant, citing `policy`. `agent_id` and `mission_id`
        default to the cause's."""
        return Decision(
            projection=self.name,
            type=type,
            tenant=event["tenant"],
            stream=stream,
            agent_id=agent_id if agent_id is not None else event.get("agent_id"),
            mission_id=mission_id if mission_id is not None else event.get("mission_id"),
            payload=payload,
            cause_event_id=event["event_id"],
            cause_hash=event["hash"],
            cause_time=event["recorded_at"],
            policy_id=policy.policy_id,
            key=key,
        )


def entity_key(tenant: str, *parts: str) -> str:
    """The key of an entity: its tenant first, so keys of two tenants never meet."""
    return "/".join((tenant, *parts))


def fold_event(
    projection: Projection[E],
    entities: dict[str, E],
    event: Envelope,
    policy: Policy,
    keys: Iterable[str] | None = None,
) -> list[Decision]:
    """One fold step: hand the projection the entities `event` names (`keys`, if already known), keep those it
    creates, and return its decisions."""
    named = list(projection.keys(event) if keys is None else keys)
    if not named:
        return []
    touched = {key: entities[key] for key in named if key in entities}
    decisions = projection.apply(touched, event, policy)
    entities.update(touched)
    return decisions
