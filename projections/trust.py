"""Trust scores: per agent and dimension, decayed evidence from the events the policy names, and its score.

Which events count, on which dimension, for good or bad and how much, is `policy.trust.signals`; the model
(decay, Wilson lower bound, prior) is `projections.scoring`. When a score moves at least `min_change` from the
last score recorded in the log, a `trust.changed` decision is returned. A pure fold (DESIGN guarantee 8): it
never counts this system's own derived decisions as evidence, and never reads a clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from projections.base import Decision, Envelope, Projection, entity_key
from projections.policy import Policy, TrustSignal
from projections.scoring import SCORE_DIGITS, DecayedEvidence, is_derived, prior_score


@dataclass
class DimensionTrust:
    """One dimension of one agent: its decayed evidence, the score now, and the score last recorded in the log."""

    evidence: DecayedEvidence
    score: float
    recorded_score: float

    def encode(self) -> dict[str, Any]:
        return {"evidence": self.evidence.encode(), "score": self.score, "recorded_score": self.recorded_score}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> DimensionTrust:
        return cls(
            evidence=DecayedEvidence.decode(data["evidence"]),
            score=float(data["score"]),
            recorded_score=float(data["recorded_score"]),
        )


@dataclass
class AgentTrust:
    """The trust of one agent in one tenant, by dimension (a dimension without evidence is absent)."""

    tenant: str
    agent_id: str
    dimensions: dict[str, DimensionTrust] = field(default_factory=dict)

    def score(self, dimension: str, policy: Policy) -> float:
        """The score after the last evidence; the prior's for a dimension without any."""
        found = self.dimensions.get(dimension)
        return found.score if found is not None else prior_score(policy.trust)

    def score_at(self, dimension: str, at: str, policy: Policy) -> float:
        """The score at event time `at`: the evidence decayed to then, so it drifts back toward the prior."""
        found = self.dimensions.get(dimension)
        if found is None:
            return prior_score(policy.trust)
        return found.evidence.as_of(at, policy.trust.half_life_days).score(policy.trust)


class TrustProjection(Projection[AgentTrust]):
    """Folds evidence about agents into `AgentTrust` entities keyed `<tenant>/agent/<agent_id>`."""

    name = "trust"

    def __init__(self) -> None:
        self._by_policy: dict[str, tuple[dict[str, list[TrustSignal]], frozenset[str]]] = {}

    def keys(self, event: Envelope) -> Iterable[str]:
        # Which types are evidence depends on the policy, which keys() does not see: every event about an agent
        # is a candidate, and apply() creates nothing for one that no signal matches.
        agent_id = event.get("agent_id")
        if agent_id is None or is_derived(event):
            return []
        return [entity_key(event["tenant"], "agent", agent_id)]

    def apply(self, entities: dict[str, AgentTrust], event: Envelope, policy: Policy) -> list[Decision]:
        if event.get("agent_id") is None or is_derived(event):
            return []
        signals, known = self._signals(policy)
        # A dimension the policy does not list (say an evaluation of 'style') is not part of its trust model.
        matches = [
            (dimension, signal)
            for signal in signals.get(event["type"], ())
            if (dimension := _dimension(signal, event)) is not None and dimension in known
        ]
        if not matches:
            return []
        agent_id: str = event["agent_id"]
        agent = entities.setdefault(
            entity_key(event["tenant"], "agent", agent_id), AgentTrust(tenant=event["tenant"], agent_id=agent_id)
        )
        trust = policy.trust
        for dimension, signal in matches:
            current = agent.dimensions.get(dimension)
            if current is None:
                prior = prior_score(trust)
                current = agent.dimensions[dimension] = DimensionTrust(DecayedEvidence(), prior, prior)
            current.evidence = current.evidence.add(
                signal.effect, signal.weight, event["recorded_at"], trust.half_life_days
            )
            current.score = current.evidence.score(trust)
        decisions = []
        for dimension in dict.fromkeys(dimension for dimension, _ in matches):
            current = agent.dimensions[dimension]
            # Compare with the last *recorded* score, so many small moves still add up to a recorded change.
            if round(abs(current.score - current.recorded_score), SCORE_DIGITS) < trust.min_change:
                continue
            decisions.append(self._changed(event, policy, agent_id, dimension, current))
            current.recorded_score = current.score
        return decisions

    def _signals(self, policy: Policy) -> tuple[dict[str, list[TrustSignal]], frozenset[str]]:
        """The policy's signals by event type, and its dimensions, worked out once per policy."""
        found = self._by_policy.get(policy.policy_id)
        if found is None:
            by_type: dict[str, list[TrustSignal]] = {}
            for signal in policy.trust.signals:
                by_type.setdefault(signal.event, []).append(signal)
            found = self._by_policy[policy.policy_id] = (by_type, frozenset(policy.trust.dimensions))
        return found

    def _changed(
        self, event: Envelope, policy: Policy, agent_id: str, dimension: str, current: DimensionTrust
    ) -> Decision:
        direction = "rose" if current.score > current.recorded_score else "fell"
        reason = (
            f"{dimension} trust {direction} from {current.recorded_score:.3f} to {current.score:.3f} "
            f"on {current.evidence.count} evidence events, the last a {event['type']}"
        )
        payload = {
            "dimension": dimension,
            "old_score": current.recorded_score,
            "new_score": current.score,
            "evidence_count": current.evidence.count,
            "evidence_event_ids": [event["event_id"]],
            "policy_id": policy.policy_id,
            "policy_version": policy.version,
            "reason": reason,
        }
        return self.decision(
            event, policy, "trust.changed", payload, stream=f"agent/{agent_id}", key=dimension, agent_id=agent_id
        )

    def summary(self, entity: AgentTrust) -> dict[str, str | float | int | None]:
        return {dimension: found.score for dimension, found in sorted(entity.dimensions.items())}

    def encode(self, entity: AgentTrust) -> dict[str, Any]:
        return {
            "tenant": entity.tenant,
            "agent_id": entity.agent_id,
            "dimensions": {name: dimension.encode() for name, dimension in entity.dimensions.items()},
        }

    def decode(self, data: dict[str, Any]) -> AgentTrust:
        return AgentTrust(
            tenant=data["tenant"],
            agent_id=data["agent_id"],
            dimensions={name: DimensionTrust.decode(value) for name, value in data["dimensions"].items()},
        )


def _dimension(signal: TrustSignal, event: Envelope) -> str | None:
    """The dimension `signal` counts `event` on, or None when it does not match."""
    if signal.event != event["type"]:
        return None
    payload = event["payload"]
    for field_name, wanted in signal.when.items():
        if payload.get(field_name) is None or (wanted != "*" and _as_text(payload[field_name]) != wanted):
            return None
    if signal.dimension != "$dimension":
        return signal.dimension
    dimension = payload.get("dimension")
    return dimension if isinstance(dimension, str) else None


def _as_text(value: object) -> str:
    """A payload value as `when` spells it: strings as they are, anything else as JSON (true, 3, null)."""
    return value if isinstance(value, str) else json.dumps(value)
