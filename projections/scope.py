"""Scope grants: which tools each agent may use, at which level and with which limits, now and at any past time.

Grants come from explicit `scope.granted` / `scope.revoked` events. Under `policy.scope` the fold then narrows
a tool after failures or a violation (below sandbox: revoked) and widens it after sustained successes when the
agent's reliability bound allows, returning each change as a decision citing its evidence. A decision updates
the state at once, so its echo in the log is a no-op. Pure (DESIGN guarantee 8): time is the events' time.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from projections.base import Decision, Envelope, Projection, entity_key
from projections.policy import LEVELS, Policy
from projections.scoring import TIMESTAMP_FORMAT, DecayedEvidence, Effect, is_derived, parse_time
from schemas.payloads.base import Level

SCOPE_EVENTS = frozenset(
    {
        "scope.granted",
        "scope.revoked",
        "scope.narrowed",
        "scope.widened",
        "tool.call.requested",
        "tool.call.completed",
        "tool.call.failed",
        "approval.requested",
        "approval.denied",
        "policy.decision",
    }
)
MAX_CITED = 100
"""A decision cites at most this many events (the schemas' limit on evidence_event_ids)."""
MAX_OPEN_CALLS = 1_000
"""Open calls remembered per agent (to find the tool of a denied approval); the oldest are forgotten first."""
CALL_LIMITS = {"max_calls_per_hour": (timedelta(hours=1), "hour"), "max_calls_per_day": (timedelta(days=1), "day")}
"""The limits `authorize` enforces, by name, with their windows; any other limit is kept and returned as given."""
MAX_RECENT_CALLS = 10_000
"""Call times remembered per grant for the limits (the last day's, newest first to go beyond this)."""
_LEVEL_OF: dict[str, Level] = {level: level for level in LEVELS}


@dataclass(frozen=True)
class GrantChange:
    """One change of a grant: from `at` on, the tool is granted at `level` (None: not at all)."""

    at: str
    level: Level | None
    limits: dict[str, float]
    expires_at: str | None
    event_id: str  # the explicit event, or the derived decision's event id
    why: str

    def encode(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "level": self.level,
            "limits": dict(self.limits),
            "expires_at": self.expires_at,
            "event_id": self.event_id,
            "why": self.why,
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> GrantChange:
        return cls(
            at=data["at"],
            level=_level_or_none(data["level"]),
            limits=_limits(data["limits"]),
            expires_at=data["expires_at"],
            event_id=data["event_id"],
            why=data["why"],
        )


@dataclass
class ToolGrant:
    """An agent's grant of one tool: in force now, evidence since its last change, and every change so far."""

    tool: str
    level: Level | None = None
    limits: dict[str, float] = field(default_factory=dict)
    expires_at: str | None = None
    changed_at: str | None = None
    successes: int = 0  # since the last change
    failures: int = 0  # since the last change, violations included
    success_event_ids: list[str] = field(default_factory=list)  # the latest MAX_CITED of them
    failure_event_ids: list[str] = field(default_factory=list)
    history: list[GrantChange] = field(default_factory=list)
    recent_calls: list[str] = field(default_factory=list)  # times of the tool.call.requested of the last day

    def in_force(self, at: str) -> bool:
        """Whether the grant allows anything at event time `at`."""
        return self.level is not None and (self.expires_at is None or at < self.expires_at)

    def as_of(self, at: str) -> GrantChange | None:
        """The change in force at time `at` (the last one at or before it), or None before the first."""
        found = None
        for change in self.history:
            if change.at <= at:
                found = change
        return found

    def encode(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "level": self.level,
            "limits": dict(self.limits),
            "expires_at": self.expires_at,
            "changed_at": self.changed_at,
            "successes": self.successes,
            "failures": self.failures,
            "success_event_ids": list(self.success_event_ids),
            "failure_event_ids": list(self.failure_event_ids),
            "history": [change.encode() for change in self.history],
            "recent_calls": list(self.recent_calls),
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> ToolGrant:
        return cls(
            tool=data["tool"],
            level=_level_or_none(data["level"]),
            limits=_limits(data["limits"]),
            expires_at=data["expires_at"],
            changed_at=data["changed_at"],
            successes=int(data["successes"]),
            failures=int(data["failures"]),
            success_event_ids=list(data["success_event_ids"]),
            failure_event_ids=list(data["failure_event_ids"]),
            history=[GrantChange.decode(change) for change in data["history"]],
            recent_calls=list(data["recent_calls"]),
        )

    def calls_since(self, start: str) -> int:
        """Calls requested at or after `start` (the times are in log order, so oldest first)."""
        return len(self.recent_calls) - bisect_left(self.recent_calls, start)

    def remember_call(self, at: str) -> None:
        """Count a requested call against the limits; keep only the last day's (the longest window)."""
        if self.recent_calls and self.recent_calls[-1] > at:
            insort(self.recent_calls, at)  # another partition's event can arrive late
        else:
            self.recent_calls.append(at)
        if self.recent_calls[0][:10] != at[:10]:  # only a new day can leave calls outside the window
            del self.recent_calls[: bisect_left(self.recent_calls, window_start(at, timedelta(days=1)))]
        del self.recent_calls[:-MAX_RECENT_CALLS]


@dataclass
class AgentScope:
    """The grants of one agent in one tenant, its tool reliability evidence, and its calls awaiting a result."""

    tenant: str
    agent_id: str
    tools: dict[str, ToolGrant] = field(default_factory=dict)
    reliability: DecayedEvidence = field(default_factory=DecayedEvidence)
    open_calls: dict[str, str] = field(default_factory=dict)  # call_id -> tool

    def reliability_score(self, policy: Policy) -> float:
        """The Wilson lower bound of the agent's tool results (all tools), under the policy's trust model."""
        return self.reliability.score(policy.trust)


class ScopeProjection(Projection[AgentScope]):
    """Folds grants and tool evidence into `AgentScope` entities keyed `<tenant>/agent/<agent_id>`."""

    name = "scope"
    version = 2  # v2: each grant keeps its recent call times (call limits)

    def keys(self, event: Envelope) -> Iterable[str]:
        # Derived decisions (this projection's echoes included) already changed the state when they were decided.
        agent_id = event.get("agent_id")
        if event["type"] not in SCOPE_EVENTS or agent_id is None or is_derived(event):
            return []
        return [entity_key(event["tenant"], "agent", agent_id)]

    def apply(self, entities: dict[str, AgentScope], event: Envelope, policy: Policy) -> list[Decision]:
        keys = list(self.keys(event))
        if not keys:
            return []
        scope = entities.setdefault(keys[0], AgentScope(tenant=event["tenant"], agent_id=event["agent_id"]))
        payload: dict[str, Any] = event["payload"]
        kind: str = event["type"]
        if kind in ("scope.granted", "scope.revoked", "scope.narrowed", "scope.widened"):
            self._explicit(scope, event)
        elif kind in ("tool.call.requested", "approval.requested"):
            if payload.get("call_id") is not None and payload.get("tool") is not None:
                _remember_call(scope, payload["call_id"], payload["tool"])
            grant = scope.tools.get(payload["tool"]) if kind == "tool.call.requested" else None
            if grant is not None:  # limits count from the first grant on
                grant.remember_call(event["recorded_at"])
        elif kind in ("tool.call.completed", "tool.call.failed"):
            scope.open_calls.pop(payload["call_id"], None)
            effect: Effect = "success" if kind == "tool.call.completed" else "failure"
            return self._result(scope, event, policy, payload["tool"], effect)
        elif kind == "approval.denied":
            tool = scope.open_calls.pop(payload["call_id"], None) if payload.get("call_id") is not None else None
            if tool is not None:
                return self._violation(scope, event, policy, tool, f"a human denied approval of a {tool} call")
        elif kind == "policy.decision" and payload["decision"] == "deny" and _decides_a_call(payload):
            # Only a denied attempt is a violation; a recorded pre-check ("could it?") names no call.
            if payload.get("call_id") is not None:
                scope.open_calls.pop(payload["call_id"], None)
            why = f"policy denied a {payload['tool']} call ({payload['rule']})"
            return self._violation(scope, event, policy, payload["tool"], why)
        return []

    def _explicit(self, scope: AgentScope, event: Envelope) -> None:
        """A grant, revocation or change made by a human, the system or a policy outside this projection."""
        payload = event["payload"]
        grant = scope.tools.setdefault(payload["tool"], ToolGrant(tool=payload["tool"]))
        if event["type"] == "scope.revoked":
            level, limits, expires_at = None, {}, None
        else:
            level, limits = _LEVEL_OF[payload["level"]], _limits(payload.get("limits", {}))
            # Only a grant sets the expiry; narrowing or widening an existing grant keeps it.
            expires_at = payload.get("expires_at") if event["type"] == "scope.granted" else grant.expires_at
        _change(grant, level, limits, expires_at, event["recorded_at"], event["event_id"], payload["reason"])

    def _result(self, scope: AgentScope, event: Envelope, policy: Policy, tool: str, effect: Effect) -> list[Decision]:
        at: str = event["recorded_at"]
        scope.reliability = scope.reliability.add(effect, 1.0, at, policy.trust.half_life_days)
        grant = scope.tools.get(tool)
        if grant is None or grant.level is None or not grant.in_force(at):
            return []  # nothing granted to narrow or widen; a new grant starts its counts afresh anyway
        level, rules = grant.level, policy.scope
        if effect == "failure":
            _count(grant, "failure", event["event_id"])
            if grant.failures < rules.failures_to_narrow:
                return []
            why = (
                f"{tool} failed {grant.failures} times since its last scope change "
                f"(the policy narrows at {rules.failures_to_narrow})"
            )
            cited = grant.failure_event_ids[-min(rules.failures_to_narrow, MAX_CITED) :]
            return [self._move(scope, grant, level, -1, event, policy, cited, why)]
        _count(grant, "success", event["event_id"])
        reliability = scope.reliability_score(policy)
        ceiling = LEVELS.index(rules.max_auto_level)
        if (
            grant.successes < rules.successes_to_widen
            or reliability < rules.min_trust_to_widen
            or LEVELS.index(level) >= ceiling
        ):
            return []
        why = (
            f"{tool} succeeded {grant.successes} times since its last scope change and the agent's reliability "
            f"bound is {reliability:.3f} (policy: {rules.successes_to_widen} and {rules.min_trust_to_widen})"
        )
        cited = grant.success_event_ids[-min(rules.successes_to_widen, MAX_CITED) :]
        return [self._move(scope, grant, level, +1, event, policy, cited, why)]

    def _violation(self, scope: AgentScope, event: Envelope, policy: Policy, tool: str, why: str) -> list[Decision]:
        grant = scope.tools.get(tool)
        if grant is None or grant.level is None or not grant.in_force(event["recorded_at"]):
            return []
        level, rules = grant.level, policy.scope
        _count(grant, "failure", event["event_id"])
        if rules.narrow_on_violation:
            return [self._move(scope, grant, level, -1, event, policy, [event["event_id"]], why)]
        if grant.failures >= rules.failures_to_narrow:  # otherwise a violation counts as one more failure
            cited = grant.failure_event_ids[-min(rules.failures_to_narrow, MAX_CITED) :]
            why = f"{why}; {grant.failures} failures since its last scope change"
            return [self._move(scope, grant, level, -1, event, policy, cited, why)]
        return []

    def _move(
        self,
        scope: AgentScope,
        grant: ToolGrant,
        previous: Level,
        step: int,
        event: Envelope,
        policy: Policy,
        cited: list[str],
        why: str,
    ) -> Decision:
        """Narrow (`step` -1) or widen (+1) `grant` one level from `previous`; narrowing below sandbox revokes."""
        payload: dict[str, Any] = {"tool": grant.tool, "reason": why, "evidence_event_ids": cited}
        payload |= {"policy_id": policy.policy_id, "policy_version": policy.version}
        index = LEVELS.index(previous) + step
        if index < 0:  # narrowing below sandbox leaves nothing
            decision = self._decide(scope, event, policy, "scope.revoked", payload)
            _change(grant, None, {}, None, event["recorded_at"], decision.event_id, why)
            return decision
        level = LEVELS[index]
        payload |= {"level": level, "previous_level": previous, "limits": dict(grant.limits)}
        decision = self._decide(scope, event, policy, "scope.widened" if step > 0 else "scope.narrowed", payload)
        _change(grant, level, grant.limits, grant.expires_at, event["recorded_at"], decision.event_id, why)
        return decision

    def _decide(
        self, scope: AgentScope, event: Envelope, policy: Policy, type: str, payload: dict[str, Any]
    ) -> Decision:
        return self.decision(
            event,
            policy,
            type,
            payload,
            stream=f"agent/{scope.agent_id}",
            key=payload["tool"],
            agent_id=scope.agent_id,
        )

    def summary(self, entity: AgentScope) -> dict[str, str | float | int | None]:
        """`tool:<name>` -> the level in force (None: not granted); `projections promote` records each change."""
        return {f"tool:{tool}": grant.level for tool, grant in sorted(entity.tools.items())}

    def encode(self, entity: AgentScope) -> dict[str, Any]:
        return {
            "tenant": entity.tenant,
            "agent_id": entity.agent_id,
            "tools": {tool: grant.encode() for tool, grant in entity.tools.items()},
            "reliability": entity.reliability.encode(),
            # A list, not an object: eviction takes the oldest, so the order must survive a store's sorted keys.
            "open_calls": [[call_id, tool] for call_id, tool in entity.open_calls.items()],
        }

    def decode(self, data: dict[str, Any]) -> AgentScope:
        return AgentScope(
            tenant=data["tenant"],
            agent_id=data["agent_id"],
            tools={tool: ToolGrant.decode(grant) for tool, grant in data["tools"].items()},
            reliability=DecayedEvidence.decode(data["reliability"]),
            open_calls={str(call_id): str(tool) for call_id, tool in data["open_calls"]},
        )


def _change(
    grant: ToolGrant,
    level: Level | None,
    limits: dict[str, float],
    expires_at: str | None,
    at: str,
    event_id: str,
    why: str,
) -> None:
    """Put a change in force: the counts start again, since they measure the agent at the new scope."""
    grant.level, grant.limits, grant.expires_at, grant.changed_at = level, dict(limits), expires_at, at
    grant.successes = grant.failures = 0
    grant.success_event_ids, grant.failure_event_ids = [], []
    grant.history.append(GrantChange(at, level, dict(limits), expires_at, event_id, why))


def _count(grant: ToolGrant, effect: Effect, event_id: str) -> None:
    cited = grant.success_event_ids if effect == "success" else grant.failure_event_ids
    if effect == "success":
        grant.successes += 1
    else:
        grant.failures += 1
    if event_id not in cited:
        cited.append(event_id)
        del cited[:-MAX_CITED]


def _decides_a_call(payload: dict[str, Any]) -> bool:
    return payload.get("call_id") is not None or payload.get("request_event_id") is not None


def _remember_call(scope: AgentScope, call_id: str, tool: str) -> None:
    scope.open_calls.pop(call_id, None)
    scope.open_calls[call_id] = tool
    while len(scope.open_calls) > MAX_OPEN_CALLS:
        del scope.open_calls[next(iter(scope.open_calls))]


def window_start(at: str, window: timedelta) -> str:
    """The envelope timestamp `window` before `at`."""
    return (parse_time(at) - window).strftime(TIMESTAMP_FORMAT)


def _limits(data: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in data.items()}


def _level_or_none(value: str | None) -> Level | None:
    return None if value is None else _LEVEL_OF[value]
