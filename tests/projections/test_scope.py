"""Scope grants: an agent earns, loses and earns back a tool's scope, and `authorize` answers now and in the past."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import Fold, sequence

from consumers.policy_files import default_policy
from projections.authorize import authorize, authorize_at, canonical_time, decision_payload
from projections.base import Decision, Envelope, entity_key
from projections.policy import Policy, parse_policy
from projections.scope import AgentScope, ScopeProjection
from schemas.registry import parse_payload, spec_for

POLICY = default_policy()
DIGEST = "sha256:" + "cd" * 32
TOOL = "deploy.service"
_calls = iter(range(1_000_000))


def grant(level: str, *, tool: str = TOOL, agent: str = "a-1", tenant: str = "acme", **extra: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "stream": f"agent/{agent}",
        "type": "scope.granted",
        "actor": {"kind": "human", "id": "ops:alice"},
        "agent_id": agent,
        "payload": {"tool": tool, "level": level, "reason": "onboarding by the platform team"} | extra,
    }


def revoke(*, tool: str = TOOL) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "stream": "agent/a-1",
        "type": "scope.revoked",
        "actor": {"kind": "human", "id": "ops:alice"},
        "agent_id": "a-1",
        "payload": {"tool": tool, "reason": "agent retired from deployments"},
    }


def call(ok: bool, *, tool: str = TOOL, level: str = "sandbox", agent: str = "a-1") -> list[dict[str, Any]]:
    """An agent's tool call and the tool's report of it."""
    call_id = f"call-{next(_calls)}"
    context = {"tenant": "acme", "stream": "mission/m-1", "agent_id": agent, "mission_id": "m-1"}
    requested = context | {
        "type": "tool.call.requested",
        "actor": {"kind": "agent", "id": agent},
        "payload": {"call_id": call_id, "tool": tool, "level": level, "arguments": {"service": "billing"}},
    }
    result = context | {
        "event_id": f"{call_id}-{'ok' if ok else 'failed'}",
        "type": "tool.call.completed" if ok else "tool.call.failed",
        "actor": {"kind": "tool", "id": f"tool:{tool}"},
        "payload": {"call_id": call_id, "tool": tool, "duration_ms": 900},
    }
    if ok:
        result["payload"] |= {"output_digest": DIGEST}
    else:
        result["payload"] |= {
            "error_kind": "execution_error",
            "message": "rollout failed health checks",
            "retryable": False,
        }
    return [requested, result]


def calls(ok: bool, count: int, **options: Any) -> list[dict[str, Any]]:
    return [submission for _ in range(count) for submission in call(ok, **options)]


def denied_by_policy(*, tool: str = TOOL) -> dict[str, Any]:
    """The tool gateway records a denied call (a violation: the agent asked for what it may not do)."""
    return {
        "event_id": f"deny-{next(_calls)}",
        "tenant": "acme",
        "stream": "agent/a-1",
        "type": "policy.decision",
        "actor": {"kind": "policy", "id": "policy:gateway"},
        "agent_id": "a-1",
        "payload": {
            "decision": "deny",
            "tool": tool,
            "level": "production",
            "call_id": f"call-{next(_calls)}",
            "rule": "scope.above_grant",
            "policy_id": POLICY.policy_id,
            "policy_version": POLICY.version,
            "reason": "above grant",
        },
    }


def denied_by_human(*, tool: str = TOOL) -> list[dict[str, Any]]:
    """A call that asked for approval, and the human's denial."""
    call_id = f"call-{next(_calls)}"
    context = {"tenant": "acme", "stream": "mission/m-1", "agent_id": "a-1", "mission_id": "m-1"}
    return [
        context
        | {
            "type": "approval.requested",
            "actor": {"kind": "agent", "id": "a-1"},
            "payload": {
                "approval_id": f"ap-{call_id}",
                "subject": "drop the staging database",
                "call_id": call_id,
                "tool": tool,
                "level": "sandbox",
            },
        },
        context
        | {
            "event_id": f"ap-{call_id}-denied",
            "type": "approval.denied",
            "actor": {"kind": "human", "id": "ops:alice"},
            "payload": {"approval_id": f"ap-{call_id}", "call_id": call_id, "reason": "destructive and unneeded"},
        },
    ]


class Loop:
    """The consumer loop in miniature: append submissions to a real ledger, fold them, append the decisions they
    produce (what the runner does) and fold those echoes too."""

    def __init__(self, root: Path, policy: Policy = POLICY) -> None:
        self.root = root
        self.policy = policy
        self.folded = Fold(ScopeProjection(), policy)
        self.log: list[Envelope] = []

    def run(self, submissions: list[dict[str, Any]]) -> list[Decision]:
        decisions = self._fold(submissions)
        for decision in decisions:
            parse_payload(spec_for(decision.type), decision.payload)  # raises on an invalid payload
        before = self.folded.encoded()
        assert self._fold([decision.submission() for decision in decisions]) == []  # sequence() checks acceptance
        assert self.folded.encoded() == before  # an echo is a no-op
        return decisions

    def _fold(self, submissions: list[dict[str, Any]]) -> list[Decision]:
        if not submissions:
            return []
        log = sequence(self.root, submissions)
        new, self.log = log[len(self.log) :], log
        return self.folded.apply(new)

    @property
    def scope(self) -> AgentScope:
        return self.folded.entities[entity_key("acme", "agent", "a-1")]

    def last(self, type: str) -> Envelope:
        return [event for event in self.log if event["type"] == type][-1]

    def may(self, level: str, *, at: str | None = None) -> str:
        when = at or self.log[-1]["recorded_at"]
        if at is None:
            return authorize(self.scope, tool=TOOL, level=level, at=when, policy=self.policy).decision
        return authorize_at(self.scope, tool=TOOL, level=level, at=when, policy=self.policy).decision


def ids(loop: Loop, type: str, count: int) -> list[str]:
    return [event["event_id"] for event in loop.log if event["type"] == type][-count:]


def test_an_agent_earns_loses_and_earns_back_its_scope(tmp_path: Path) -> None:
    loop = Loop(tmp_path)

    # (1) earns scope: granted sandbox, then sustained successes widen it to canary
    assert loop.run([grant("sandbox")]) == []
    granted_at = loop.log[-1]["recorded_at"]
    assert (loop.may("sandbox"), loop.may("canary")) == ("allow", "deny")
    assert loop.run(calls(True, 4)) == []
    before_widening = loop.log[-1]["recorded_at"]
    [widened] = loop.run(calls(True, 1))
    assert widened.type == "scope.widened" and widened.stream == "agent/a-1" and widened.agent_id == "a-1"
    assert widened.payload["level"] == "canary" and widened.payload["previous_level"] == "sandbox"
    assert widened.payload["evidence_event_ids"] == ids(loop, "tool.call.completed", 5)
    assert widened.cause_event_id == loop.last("tool.call.completed")["event_id"]
    grant_now = loop.scope.tools[TOOL]
    assert (grant_now.level, grant_now.successes, grant_now.failures) == ("canary", 0, 0)
    assert (loop.may("canary"), loop.may("production")) == ("allow", "deny")

    # (2) fails: one failure is tolerated, the second one of this scope narrows it
    assert loop.run(calls(False, 1, level="canary")) == []
    failing_at = loop.log[-1]["recorded_at"]
    assert loop.scope.tools[TOOL].failures == 1 and loop.may("canary") == "allow"
    [narrowed] = loop.run(calls(False, 1, level="canary"))

    # (3) loses scope: back to the sandbox, citing both failures
    assert narrowed.type == "scope.narrowed"
    assert (narrowed.payload["previous_level"], narrowed.payload["level"]) == ("canary", "sandbox")
    assert narrowed.payload["evidence_event_ids"] == ids(loop, "tool.call.failed", 2)
    assert "failed 2 times" in narrowed.payload["reason"]
    narrowed_at = loop.log[-1]["recorded_at"]
    assert (loop.may("sandbox"), loop.may("canary")) == ("allow", "deny")
    assert authorize(loop.scope, tool=TOOL, level="canary", at=narrowed_at, policy=POLICY).rule == "scope.above_grant"

    # (4) earns it back: five more successes, and the record (10 of 12) still bounds reliability above 0.5
    assert loop.run(calls(True, 4)) == []
    [rewidened] = loop.run(calls(True, 1))
    assert (rewidened.type, rewidened.payload["level"]) == ("scope.widened", "canary")
    assert loop.scope.reliability.count == 12
    assert loop.scope.reliability_score(POLICY) >= POLICY.scope.min_trust_to_widen
    assert loop.may("canary") == "allow"

    # the history answers for any past time
    history = loop.scope.tools[TOOL].history
    assert [change.level for change in history] == ["sandbox", "canary", "sandbox", "canary"]
    assert [change.event_id for change in history[1:]] == [widened.event_id, narrowed.event_id, rewidened.event_id]
    assert history[0].event_id == loop.log[0]["event_id"] and history[0].at == granted_at
    assert loop.may("sandbox", at="2000-01-01T00:00:00Z") == "deny"  # before any grant
    assert (loop.may("sandbox", at=before_widening), loop.may("canary", at=before_widening)) == ("allow", "deny")
    assert loop.may("canary", at=failing_at) == "allow"
    assert loop.may("canary", at=narrowed_at) == "deny"
    past = authorize_at(loop.scope, tool=TOOL, level="canary", at=before_widening, policy=POLICY)
    assert (past.rule, past.granted_level, past.at) == ("scope.above_grant", "sandbox", before_widening)

    # a rebuild from the whole log (echoes included) gives the same state and the same decisions
    rebuilt = Fold(ScopeProjection(), POLICY)
    rebuilt.apply(loop.log)
    assert rebuilt.encoded() == loop.folded.encoded()
    assert [d.event_id for d in rebuilt.decisions] == [d.event_id for d in loop.folded.decisions]


def test_a_violation_narrows_at_once_and_below_sandbox_revokes(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("canary", limits={"max_calls_per_hour": 20})])
    [narrowed] = loop.run([denied_by_policy()])
    assert (narrowed.type, narrowed.payload["level"]) == ("scope.narrowed", "sandbox")
    assert narrowed.payload["evidence_event_ids"] == [loop.last("policy.decision")["event_id"]]
    assert narrowed.payload["limits"] == {"max_calls_per_hour": 20.0}  # limits stay in force
    [revoked] = loop.run(denied_by_human())
    assert revoked.type == "scope.revoked"
    assert revoked.payload["evidence_event_ids"] == [loop.last("approval.denied")["event_id"]]
    assert "denied approval" in revoked.payload["reason"]
    assert loop.scope.tools[TOOL].level is None
    answer = authorize(loop.scope, tool=TOOL, level="sandbox", at=loop.log[-1]["recorded_at"], policy=POLICY)
    assert (answer.decision, answer.rule, answer.granted_level) == ("deny", "scope.no_grant", None)
    # successes never grant from nothing: only a human or the system grants
    assert loop.run(calls(True, 8)) == []
    assert loop.scope.tools[TOOL].level is None


def test_without_narrow_on_violation_a_violation_counts_as_a_failure(tmp_path: Path) -> None:
    lenient = POLICY.model_copy(update={"scope": POLICY.scope.model_copy(update={"narrow_on_violation": False})})
    loop = Loop(tmp_path, lenient)
    loop.run([grant("canary")])
    assert loop.run([denied_by_policy()]) == []
    assert loop.scope.tools[TOOL].failures == 1
    [narrowed] = loop.run(calls(False, 1, level="canary"))
    assert narrowed.payload["evidence_event_ids"] == [
        loop.last("policy.decision")["event_id"],
        loop.last("tool.call.failed")["event_id"],
    ]
    assert narrowed.policy_id == lenient.policy_id != POLICY.policy_id


def test_failures_in_the_sandbox_revoke_the_grant(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("sandbox")])
    [revoked] = loop.run(calls(False, 2))
    assert revoked.type == "scope.revoked"
    assert revoked.payload["evidence_event_ids"] == ids(loop, "tool.call.failed", 2)
    assert loop.may("sandbox") == "deny"


def test_widening_needs_the_agents_own_reliability(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("sandbox")])
    # failures with another tool, one the agent has no grant for, still make it less reliable
    loop.run(calls(False, 3, tool="db.migrate"))
    assert loop.run(calls(True, 5)) == []
    assert loop.scope.tools[TOOL].successes == 5
    assert loop.scope.reliability_score(POLICY) < POLICY.scope.min_trust_to_widen
    assert "db.migrate" not in loop.scope.tools


def test_a_stricter_policy_does_not_widen_on_the_same_evidence(tmp_path: Path) -> None:
    strict = parse_policy(POLICY.document | {"scope": POLICY.document["scope"] | {"min_trust_to_widen": 0.9}})
    loop = Loop(tmp_path, strict)
    loop.run([grant("sandbox")])
    assert loop.run(calls(True, 10)) == []
    assert loop.scope.tools[TOOL].level == "sandbox"


def test_widening_stops_at_max_auto_level_and_production_escalates(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("canary")])
    assert loop.run(calls(True, 12, level="canary")) == []  # canary is the default ceiling
    assert loop.scope.tools[TOOL].level == "canary"

    bold = parse_policy(POLICY.document | {"scope": POLICY.document["scope"] | {"max_auto_level": "production"}})
    other = Loop(tmp_path / "bold", bold)
    other.run([grant("canary")])
    [widened] = other.run(calls(True, 5, level="canary"))
    assert (widened.payload["previous_level"], widened.payload["level"]) == ("canary", "production")
    answer = authorize(other.scope, tool=TOOL, level="production", at=other.log[-1]["recorded_at"], policy=bold)
    assert (answer.decision, answer.rule, answer.granted_level) == ("escalate", "scope.escalate_at", "production")
    assert other.may("canary") == "allow"


def test_an_expired_grant_allows_nothing_and_is_not_widened(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("sandbox", expires_at="2030-01-01T00:00:00.000000Z", limits={"max_calls_per_hour": 5})])
    answer = authorize(loop.scope, tool=TOOL, level="sandbox", at="2029-12-31T23:59:59Z", policy=POLICY)
    assert (answer.decision, answer.limits) == ("allow", {"max_calls_per_hour": 5.0})
    assert answer.expires_at == "2030-01-01T00:00:00.000000Z"
    expired = authorize(loop.scope, tool=TOOL, level="sandbox", at="2030-01-01T01:00:00+01:00", policy=POLICY)
    assert (expired.decision, expired.rule) == ("deny", "scope.expired")  # the same instant, written in +01:00

    late = Loop(tmp_path / "late")
    late.run([grant("sandbox", expires_at="2001-01-01T00:00:00.000000Z")])
    assert late.run(calls(True, 6)) == []
    assert late.scope.tools[TOOL].level == "sandbox" and late.scope.tools[TOOL].successes == 0
    assert late.may("sandbox") == "deny"


def test_an_explicit_revocation_and_regrant_are_history(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("canary"), *calls(True, 3, level="canary"), revoke()])
    assert loop.scope.tools[TOOL].successes == 0 and loop.may("sandbox") == "deny"
    revoked_at = loop.log[-1]["recorded_at"]
    loop.run([grant("sandbox")])
    history = loop.scope.tools[TOOL].history
    assert [(change.level, change.why) for change in history] == [
        ("canary", "onboarding by the platform team"),
        (None, "agent retired from deployments"),
        ("sandbox", "onboarding by the platform team"),
    ]
    assert loop.may("sandbox", at=revoked_at) == "deny" and loop.may("sandbox") == "allow"


def test_decision_payload_is_a_valid_policy_decision_the_ledger_accepts(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("sandbox")])
    at = loop.log[-1]["recorded_at"]
    answers = [authorize(loop.scope, tool=TOOL, level=level, at=at, policy=POLICY) for level in ("sandbox", "canary")]
    answers.append(authorize(None, tool="shell.exec", level="sandbox", at=at, policy=POLICY))
    assert [(a.decision, a.rule) for a in answers] == [
        ("allow", "scope.within_grant"),
        ("deny", "scope.above_grant"),
        ("deny", "scope.no_grant"),
    ]
    payloads = [decision_payload(a, POLICY, call_id=f"call-x{n}") for n, a in enumerate(answers)]
    for payload in payloads:
        parse_payload(spec_for("policy.decision"), payload)
    recorded = [
        {
            "event_id": f"decision-{n}",
            "tenant": "acme",
            "stream": "agent/a-1",
            "type": "policy.decision",
            "actor": {"kind": "policy", "id": "policy:gateway"},
            "agent_id": "a-1",
            "payload": payload,
        }
        for n, payload in enumerate(payloads)
    ]
    # a recorded deny is a violation: asking for canary with a sandbox grant loses the sandbox too
    decisions = loop.run(recorded)
    assert [(d.type, d.cause_event_id) for d in decisions] == [("scope.revoked", "decision-1")]
    assert decisions[0].payload["evidence_event_ids"] == ["decision-1"]


def test_bad_questions_are_refused() -> None:
    with pytest.raises(ValueError, match="level 'staging'"):
        authorize(None, tool=TOOL, level="staging", at="2026-01-01T00:00:00Z", policy=POLICY)
    with pytest.raises(ValueError, match="UTC offset"):
        authorize_at(None, tool=TOOL, level="sandbox", at="2026-01-01T00:00:00", policy=POLICY)
    with pytest.raises(ValueError, match="RFC 3339"):
        canonical_time("yesterday")
    assert canonical_time("2026-01-01T02:00:00+02:00") == "2026-01-01T00:00:00.000000Z"


def test_grants_are_per_tenant(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("canary"), grant("sandbox", tenant="globex")])
    assert set(loop.folded.entities) == {"acme/agent/a-1", "globex/agent/a-1"}
    acme = loop.folded.entities["acme/agent/a-1"]
    globex = loop.folded.entities["globex/agent/a-1"]
    assert (acme.tools[TOOL].level, globex.tools[TOOL].level) == ("canary", "sandbox")
    at = loop.log[-1]["recorded_at"]
    assert authorize(globex, tool=TOOL, level="canary", at=at, policy=POLICY).decision == "deny"
    assert list(ScopeProjection().keys(loop.log[-1])) == ["globex/agent/a-1"]


def test_encode_decode_round_trips_exactly(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("sandbox", limits={"max_calls_per_hour": 20}, expires_at="2099-01-01T00:00:00.000000Z")])
    loop.run([*calls(True, 5), *calls(False, 1, level="canary"), *denied_by_human()[:1]])
    projection = ScopeProjection()
    entity = loop.scope
    assert entity.open_calls and entity.tools[TOOL].history and entity.reliability.count == 6
    encoded = projection.encode(entity)
    assert projection.decode(encoded) == entity
    assert projection.decode(json.loads(json.dumps(encoded))) == entity
    assert projection.encode(projection.decode(encoded)) == encoded


def test_a_recorded_pre_check_that_names_no_call_is_not_a_violation(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.run([grant("sandbox")])
    check = denied_by_policy()
    del check["payload"]["call_id"]  # `agent-ledger authorize` asked, no call was attempted
    assert loop.run([check]) == []
    assert loop.scope.tools[TOOL].level == "sandbox" and loop.scope.tools[TOOL].failures == 0
    attempt = loop.run([denied_by_policy()])  # a denied attempt is a violation: below sandbox is revoked
    assert [decision.type for decision in attempt] == ["scope.revoked"]


def test_open_calls_keep_their_order_through_a_store_that_sorts_keys() -> None:
    # Eviction drops the oldest open call; a store that sorts object keys must not turn that into the smallest id.
    scope = AgentScope(tenant="acme", agent_id="a-1", open_calls={"call-9": "x", "call-10": "y", "call-1": "z"})
    projection = ScopeProjection()
    stored = json.loads(json.dumps(projection.encode(scope), sort_keys=True))
    assert list(projection.decode(stored).open_calls) == ["call-9", "call-10", "call-1"]
