"""Answering "may agent A call tool T at level L?" from the scope grants, now or at any past time.

`authorize` reads the grant in force, `authorize_at` the grant the history shows at a past time; both are
pure functions of the scope state, the question and the policy (DESIGN guarantee 8), so an answer can be
replayed. `decision_payload` turns an answer into the `policy.decision` payload the caller records; this
module never appends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from projections.policy import LEVELS, Policy
from projections.scope import CALL_LIMITS, AgentScope, GrantChange, ToolGrant, window_start
from projections.scoring import TIMESTAMP_FORMAT
from schemas.payloads.base import Level

Verdict = Literal["allow", "deny", "escalate"]
_LEVEL_OF: dict[str, Level] = {level: level for level in LEVELS}


@dataclass(frozen=True)
class Authorization:
    """The answer, the rule that gave it and why, and the grant it rests on."""

    decision: Verdict
    rule: str
    reason: str
    tool: str
    level: Level
    at: str
    granted_level: Level | None = None
    limits: dict[str, float] = field(default_factory=dict)
    expires_at: str | None = None


def authorize(scope: AgentScope | None, *, tool: str, level: str, at: str, policy: Policy) -> Authorization:
    """Whether the agent of `scope` may call `tool` at `level` at time `at`, under the grant in force now and
    its call limits (`CALL_LIMITS`: the calls requested in the window before `at`, this one not yet among them)."""
    grant = scope.tools.get(tool) if scope is not None else None
    change = None if grant is None else _current(grant)
    when = canonical_time(at)
    answer = _decide(change, tool=tool, level=_level(level), at=when, policy=policy)
    if grant is None or answer.decision == "deny":
        return answer
    for name, (window, label) in CALL_LIMITS.items():
        limit = grant.limits.get(name)
        if limit is None:
            continue
        made = grant.calls_since(window_start(when, window))
        if made >= limit:
            reason = f"{made} calls of {tool} in the {label} before {when}; the grant allows {limit:g} ({name})"
            return replace(answer, decision="deny", rule="scope.limit_exceeded", reason=reason)
    return answer


def authorize_at(scope: AgentScope | None, *, tool: str, level: str, at: str, policy: Policy) -> Authorization:
    """Whether the agent could have called `tool` at `level` at the past time `at`, from the grant history."""
    when = canonical_time(at)
    grant = scope.tools.get(tool) if scope is not None else None
    change = None if grant is None else grant.as_of(when)
    return _decide(change, tool=tool, level=_level(level), at=when, policy=policy)


def decision_payload(
    auth: Authorization, policy: Policy, *, call_id: str | None = None, request_event_id: str | None = None
) -> dict[str, Any]:
    """The `policy.decision` payload recording `auth` (its envelope needs the agent_id and a policy actor)."""
    payload: dict[str, Any] = {
        "decision": auth.decision,
        "tool": auth.tool,
        "level": auth.level,
        "rule": auth.rule,
        "policy_id": policy.policy_id,
        "policy_version": policy.version,
        "reason": auth.reason,
    }
    if call_id is not None:
        payload["call_id"] = call_id
    if request_event_id is not None:
        payload["request_event_id"] = request_event_id
    return payload


def canonical_time(text: str) -> str:
    """An RFC 3339 timestamp with an offset in the envelope's form "YYYY-MM-DDTHH:MM:SS.ffffffZ", which orders
    as text; a ValueError for anything else."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset, e.g. 'Z'")
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _current(grant: ToolGrant) -> GrantChange | None:
    if grant.changed_at is None:
        return None
    return GrantChange(grant.changed_at, grant.level, grant.limits, grant.expires_at, "", "")


def _decide(change: GrantChange | None, *, tool: str, level: Level, at: str, policy: Policy) -> Authorization:
    granted = None if change is None else change.level
    if change is None or granted is None:
        return Authorization("deny", "scope.no_grant", f"no grant of {tool} is in force", tool, level, at)
    verdict: Verdict
    if change.expires_at is not None and at >= change.expires_at:
        verdict, rule, reason = "deny", "scope.expired", f"the grant of {tool} expired at {change.expires_at}"
    elif LEVELS.index(level) > LEVELS.index(granted):
        verdict, rule, reason = "deny", "scope.above_grant", f"{tool} is granted up to {granted}, not {level}"
    elif level in policy.scope.escalate_at:
        verdict, rule = "escalate", "scope.escalate_at"
        levels = ", ".join(policy.scope.escalate_at)
        reason = f"{tool} at {level} needs a human approval (the policy escalates at {levels})"
    else:
        verdict, rule, reason = "allow", "scope.within_grant", f"{tool} is granted up to {granted}"
    return Authorization(verdict, rule, reason, tool, level, at, granted, dict(change.limits), change.expires_at)


def _level(text: str) -> Level:
    try:
        return _LEVEL_OF[text]
    except KeyError:
        raise ValueError(f"level {text!r} is not one of {', '.join(LEVELS)}") from None
