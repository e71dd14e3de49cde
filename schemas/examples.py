"""One realistic, valid example of every registered event type, for tests, docs and the demo.

The examples tell one story: agent `a-coder-7` fixes a flaky checkout test in mission `m-42` of tenant
`acme`, under policy `default` v3, with human `h-alice` approving the pull request. Each example carries the
actor kind and envelope context (agent_id, mission_id, stream) its type requires. Callers get fresh copies
from `submission()`; the module-level payloads must never be mutated.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ledger.canonical import digest


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


AGENT_ID = "a-coder-7"
REVIEWER_ID = "a-reviewer-2"
MISSION_ID = "m-42"
HUMAN_ID = "h-alice"
CALL_ID = "call-0193"

POLICY_CONTENT: dict[str, Any] = {
    "name": "default",
    "version": 3,
    "trust": {"prior": 0.5, "half_life_events": 200, "min_evidence": 5},
    "scope": {"narrow_after_failures": 3, "widen_after_successes": 20},
    "tools": {
        "github.create_pull_request": {"max_level": "canary", "requires_approval": True},
        "ci.run_tests": {"max_level": "production", "requires_approval": False},
    },
}
POLICY_ID = digest(POLICY_CONTENT)
PREVIOUS_POLICY_ID = _sha("policy default v2")

TOOL_ARGUMENTS: dict[str, Any] = {
    "repo": "acme/payments-service",
    "head": "fix/flaky-checkout-test",
    "base": "main",
    "title": "Stabilise checkout test: wait for the ledger write before asserting",
}

# Event ids the examples cite (UUIDv7, as the ledger assigns when a producer gives none).
REQUEST_EVENT_ID = "01932f5e-7c10-7a51-9d2e-3c8b1f6a0a11"
DECISION_EVENT_ID = "01932f5e-7c4a-7b02-8f11-5d2a9c0e4b27"
COMPLETED_EVENT_ID = "01932f5e-9e31-7c44-a3b9-0f6e2d1c8a55"
FAILED_EVENT_ID = "01932f5d-11aa-7d10-b6c2-7a9e3f0d2c81"
APPROVAL_EVENT_ID = "01932f5e-8d02-7e90-9a7c-2b4f6e8d1a33"
MODEL_OUTPUT_EVENT_ID = "01932f5e-6b77-7f21-8c3d-9e0a1b2c3d4e"
OUTCOME_EVENT_ID = "01932f5f-0a12-7a33-b4c5-d6e7f8091a2b"
CLOSE_REQUEST_EVENT_ID = "01932f5f-1b23-7b44-85d6-e7f8091a2b3c"
OFFER_EVENT_ID = "01932f5f-2c34-7c55-96e7-f8091a2b3c4d"


@dataclass(frozen=True)
class EventExample:
    """A valid example of one event type: its payload and the envelope facts it needs."""

    type: str
    actor_kind: str
    actor_id: str
    stream: str
    payload: Mapping[str, Any]
    agent_id: str | None = None
    mission_id: str | None = None
    version: int = 1

    def submission(self, tenant: str = "acme") -> dict[str, Any]:
        """A submission dict for this example (a deep copy: safe to change)."""
        return {
            "tenant": tenant,
            "stream": self.stream,
            "type": self.type,
            "schema_version": self.version,
            "actor": {"kind": self.actor_kind, "id": self.actor_id},
            "agent_id": self.agent_id,
            "mission_id": self.mission_id,
            "payload": copy.deepcopy(dict(self.payload)),
        }


def _agent(type: str, actor_kind: str, actor_id: str, payload: dict[str, Any]) -> EventExample:
    return EventExample(type, actor_kind, actor_id, f"agent/{AGENT_ID}", payload, agent_id=AGENT_ID)


def _mission(
    type: str, actor_kind: str, actor_id: str, payload: dict[str, Any], agent_id: str | None = AGENT_ID
) -> EventExample:
    return EventExample(
        type, actor_kind, actor_id, f"mission/{MISSION_ID}", payload, agent_id=agent_id, mission_id=MISSION_ID
    )


def _policy(type: str, actor_kind: str, actor_id: str, payload: dict[str, Any]) -> EventExample:
    return EventExample(type, actor_kind, actor_id, "policy/default", payload)


def _key(type: str, actor_kind: str, actor_id: str, payload: dict[str, Any]) -> EventExample:
    return EventExample(type, actor_kind, actor_id, "keys/acme", payload)


_EXAMPLES: tuple[EventExample, ...] = (
    _agent(
        "agent.registered",
        "human",
        HUMAN_ID,
        {
            "name": "Coder 7",
            "model": "anthropic/claude-sonnet-4-5",
            "prompt_digest": _sha("You are a careful software engineer on the payments team..."),
            "tool_manifest": ["github.create_pull_request", "ci.run_tests", "repo.read_file"],
            "tool_manifest_digest": _sha("tool definitions 2025-01-30"),
            "owner": "team-payments",
            "role": "coder",
        },
    ),
    _agent(
        "agent.revised",
        "agent",
        AGENT_ID,
        {
            "tool_manifest": ["github.create_pull_request", "ci.run_tests", "repo.read_file", "repo.search"],
            "reason": "Added code search to find the other callers of the flaky fixture.",
        },
    ),
    _policy(
        "policy.published",
        "human",
        HUMAN_ID,
        {
            "policy_id": POLICY_ID,
            "name": "default",
            "version": 3,
            "content": POLICY_CONTENT,
            "source": "file:///etc/agent-ledger/policies/default.toml",
            "changelog": "Pull requests need a human approval; CI may run in production.",
        },
    ),
    _policy(
        "policy.activated",
        "human",
        HUMAN_ID,
        {
            "policy_id": POLICY_ID,
            "name": "default",
            "version": 3,
            "previous_policy_id": PREVIOUS_POLICY_ID,
            "rebuild_id": "rebuild-2025-01-31-1",
            "reason": "Shadow rebuild reviewed: two scope changes, no mission status changes.",
        },
    ),
    _mission(
        "mission.opened",
        "human",
        HUMAN_ID,
        {
            "title": "Fix flaky checkout test",
            "objective": "test_checkout_commits_payment fails about 1 run in 20 on main; make it "
            "deterministic without weakening what it asserts.",
            "owner_agent_id": AGENT_ID,
            "requested_by": HUMAN_ID,
            "due_at": "2025-02-03T17:00:00.000000Z",
            "labels": {"team": "payments", "service": "payments-service"},
        },
    ),
    _mission(
        "mission.criteria.set",
        "agent",
        AGENT_ID,
        {
            "criteria": [
                {
                    "criterion_id": "c-green",
                    "description": "The checkout test passes 200 consecutive CI runs.",
                    "evidence_kinds": ["tool_output"],
                },
                {
                    "criterion_id": "c-reviewed",
                    "description": "The fix is merged through an approved pull request.",
                    "requires_approval": True,
                },
            ]
        },
    ),
    _mission(
        "mission.step.recorded",
        "agent",
        AGENT_ID,
        {
            "step_id": "s-2",
            "summary": "Reproduced the race: the assertion runs before the ledger write commits.",
            "status": "completed",
            "criterion_ids": ["c-green"],
        },
    ),
    _mission(
        "mission.close.requested",
        "agent",
        AGENT_ID,
        {"status": "completed", "summary": "Test fixed and merged; 200/200 green runs."},
    ),
    _mission(
        "mission.closed",
        "policy",
        "mission-state",
        {
            "status": "completed",
            "summary": "Test fixed and merged; 200/200 green runs.",
            "request_event_id": CLOSE_REQUEST_EVENT_ID,
        },
    ),
    _mission(
        "mission.close.refused",
        "policy",
        "mission-state",
        {
            "request_event_id": CLOSE_REQUEST_EVENT_ID,
            "reasons": [
                "criterion 'c-reviewed' has no evidence",
                f"tool call '{CALL_ID}' has no result",
            ],
            "missing_criteria": ["c-reviewed"],
            "unresolved_tool_calls": [CALL_ID],
            "policy_id": POLICY_ID,
            "policy_version": 3,
        },
    ),
    _mission(
        "tool.call.requested",
        "agent",
        AGENT_ID,
        {
            "call_id": CALL_ID,
            "tool": "github.create_pull_request",
            "arguments": TOOL_ARGUMENTS,
            "arguments_digest": digest(TOOL_ARGUMENTS),
            "level": "canary",
            "requires_approval": True,
            "purpose": "Propose the fix for review.",
        },
    ),
    _mission(
        "policy.decision",
        "policy",
        "scope-grants",
        {
            "decision": "escalate",
            "tool": "github.create_pull_request",
            "level": "canary",
            "call_id": CALL_ID,
            "rule": "tools.github.create_pull_request.requires_approval",
            "policy_id": POLICY_ID,
            "policy_version": 3,
            "request_event_id": REQUEST_EVENT_ID,
            "reason": "Pull requests need a human approval under policy default v3.",
        },
    ),
    _mission(
        "tool.call.completed",
        "tool",
        "github-gateway",
        {
            "call_id": CALL_ID,
            "tool": "github.create_pull_request",
            "output_digest": _sha('{"number": 1871, "state": "open"}'),
            "output_summary": "Opened acme/payments-service#1871.",
            "output_uri": "https://github.example/acme/payments-service/pull/1871",
            "output_bytes": 2143,
            "duration_ms": 812,
        },
    ),
    _mission(
        "tool.call.failed",
        "tool",
        "ci-gateway",
        {
            "call_id": "call-0188",
            "tool": "ci.run_tests",
            "error_kind": "timeout",
            "message": "CI run exceeded its 15 minute budget.",
            "retryable": True,
            "duration_ms": 900000,
        },
    ),
    _mission(
        "approval.requested",
        "policy",
        "scope-grants",
        {
            "approval_id": "appr-77",
            "subject": "Open a pull request on acme/payments-service (fix/flaky-checkout-test -> main).",
            "call_id": CALL_ID,
            "tool": "github.create_pull_request",
            "level": "canary",
            "reason": "rule tools.github.create_pull_request.requires_approval",
            "approvers": ["team-payments-leads"],
            "expires_at": "2025-02-01T09:00:00.000000Z",
        },
    ),
    _mission(
        "approval.granted",
        "human",
        HUMAN_ID,
        {
            "approval_id": "appr-77",
            "call_id": CALL_ID,
            "approver_role": "payments tech lead",
            "reason": "Diff is small and the test still asserts the committed payment.",
        },
    ),
    _mission(
        "approval.denied",
        "human",
        HUMAN_ID,
        {
            "approval_id": "appr-78",
            "call_id": "call-0201",
            "approver_role": "payments tech lead",
            "reason": "Do not skip the test; fix the race instead.",
        },
    ),
    _mission(
        "model.output.recorded",
        "model",
        "anthropic/claude-sonnet-4-5",
        {
            "model": "anthropic/claude-sonnet-4-5",
            "output_digest": _sha("Plan: 1. reproduce 2. await the ledger write 3. run CI 200x"),
            "summary": "Plan: reproduce, await the ledger write before asserting, run CI 200 times.",
            "input_digest": _sha("prompt + context packet for m-42"),
            "tokens_in": 18342,
            "tokens_out": 611,
            "latency_ms": 4210,
        },
    ),
    _mission(
        "memory.written",
        "agent",
        AGENT_ID,
        {
            "memory_id": "mem-301",
            "key": "payments-service/checkout-test/race",
            "content": "test_checkout_commits_payment must await ledger.flush() before asserting.",
            "scope": "shared",
            "shared_with": [AGENT_ID, REVIEWER_ID],
            "source_event_ids": [MODEL_OUTPUT_EVENT_ID, COMPLETED_EVENT_ID],
            "expires_at": "2025-05-01T00:00:00.000000Z",
        },
    ),
    _mission(
        "memory.read",
        "agent",
        REVIEWER_ID,
        {"memory_ids": ["mem-301"], "purpose": "Context for reviewing pull request #1871."},
        agent_id=REVIEWER_ID,
    ),
    _mission(
        "memory.revoked",
        "human",
        HUMAN_ID,
        {"memory_id": "mem-288", "reason": "Wrong: the retry decorator is not the cause."},
    ),
    _mission(
        "evidence.attached",
        "agent",
        AGENT_ID,
        {
            "criterion_id": "c-green",
            "evidence_event_id": COMPLETED_EVENT_ID,
            "kind": "tool_output",
            "digest": _sha("ci report: 200/200 passed"),
            "uri": "https://ci.example/acme/payments-service/runs/98812",
            "note": "200 consecutive green runs of the checkout suite.",
        },
    ),
    _mission(
        "outcome.recorded",
        "system",
        "mission-runner",
        {
            "outcome": "success",
            "summary": "Flaky checkout test fixed; merged in #1871.",
            "metrics": {"ci_runs": 200, "ci_failures": 0, "cost_usd": 1.84},
        },
    ),
    _mission(
        "evaluation.recorded",
        "model",
        "jury:code-review@3",
        {
            "evaluator": "jury:code-review@3",
            "subject_event_id": COMPLETED_EVENT_ID,
            "dimension": "correctness",
            "verdict": "pass",
            "score": 0.92,
            "rationale": "Fix removes the race without weakening the assertion.",
        },
    ),
    _agent(
        "trust.changed",
        "policy",
        "trust-scores",
        {
            "dimension": "reliability",
            "old_score": 0.61,
            "new_score": 0.67,
            "evidence_count": 14,
            "evidence_event_ids": [OUTCOME_EVENT_ID, APPROVAL_EVENT_ID],
            "policy_id": POLICY_ID,
            "policy_version": 3,
            "reason": "Mission m-42 succeeded with approved changes.",
        },
    ),
    _agent(
        "scope.granted",
        "human",
        HUMAN_ID,
        {
            "tool": "ci.run_tests",
            "level": "sandbox",
            "limits": {"max_calls_per_hour": 30},
            "reason": "New agent starts in the sandbox.",
        },
    ),
    _agent(
        "scope.narrowed",
        "policy",
        "scope-grants",
        {
            "tool": "ci.run_tests",
            "level": "sandbox",
            "previous_level": "canary",
            "limits": {"max_calls_per_hour": 10},
            "reason": "3 consecutive timeouts.",
            "evidence_event_ids": [FAILED_EVENT_ID],
            "policy_id": POLICY_ID,
            "policy_version": 3,
        },
    ),
    _agent(
        "scope.widened",
        "policy",
        "scope-grants",
        {
            "tool": "github.create_pull_request",
            "level": "canary",
            "previous_level": "sandbox",
            "limits": {"max_calls_per_hour": 5},
            "reason": "20 successful calls with approvals and no denials.",
            "evidence_event_ids": [COMPLETED_EVENT_ID, APPROVAL_EVENT_ID],
            "policy_id": POLICY_ID,
            "policy_version": 3,
        },
    ),
    _agent(
        "scope.revoked",
        "human",
        HUMAN_ID,
        {
            "tool": "repo.force_push",
            "reason": "Never needed for this agent's role.",
        },
    ),
    _mission(
        "handoff.offered",
        "agent",
        AGENT_ID,
        {
            "from_agent_id": AGENT_ID,
            "to_agent_id": REVIEWER_ID,
            "reason": "Fix is up for review; the reviewer takes it to merge.",
            "context_memory_ids": ["mem-301"],
            "expires_at": "2025-02-01T12:00:00.000000Z",
        },
    ),
    _mission(
        "handoff.accepted",
        "agent",
        REVIEWER_ID,
        {"offer_event_id": OFFER_EVENT_ID, "owner_agent_id": REVIEWER_ID},
        agent_id=REVIEWER_ID,
    ),
    _key(
        "key.registered",
        "system",
        "ledger-admin",
        {
            "key_id": "acme-harness-1",
            "purpose": "producer",
            "algorithm": "ed25519",
            "public_key": "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=",
            "name": "acme agent harness",
            "valid_from": "2025-01-01T00:00:00.000000Z",
        },
    ),
    _key(
        "subject.key.destroyed",
        "human",
        "h-dpo",
        {
            "subject_id": "customer-55120",
            "key_id": "subject-key-55120",
            "reason": "GDPR art. 17 erasure request.",
            "request_ref": "dsr-4411",
        },
    ),
)

EXAMPLES: Mapping[str, EventExample] = MappingProxyType({example.type: example for example in _EXAMPLES})
"""type -> its example (schema version 1)."""
