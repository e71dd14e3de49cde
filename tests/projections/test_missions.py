"""Mission state: the fold of a realistic mission, evidence-gated closure, hand-offs, echoes and tenant isolation.

Every event goes through the real embedded write path (`sequence`), so the projection sees exactly what the log
holds, and every decision it derives is checked against the real schema and appended back through the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Fold, sequence

from consumers.policy_files import default_policy
from projections.base import Decision, Envelope, entity_key
from projections.missions import Mission, MissionProjection, close_check, mission_view
from projections.policy import Policy, parse_policy
from schemas.registry import spec_for

TENANT = "acme"
MISSION = "m-1"
KEY = entity_key(TENANT, "mission", MISSION)
DIGEST = "sha256:" + "ab" * 32


# --- submission builders -----------------------------------------------------------------------------------


def submission(
    type: str,
    payload: dict[str, Any],
    event_id: str,
    *,
    actor: tuple[str, str] = ("agent", "a-1"),
    tenant: str = TENANT,
    mission_id: str = MISSION,
    agent_id: str | None = "a-1",
    stream: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tenant": tenant,
        "stream": stream or f"mission/{mission_id}",
        "type": type,
        "actor": {"kind": actor[0], "id": actor[1]},
        "agent_id": agent_id,
        "mission_id": mission_id,
        "occurred_at": "2026-11-25T12:00:00Z",
        "payload": payload,
    }


def opened(event_id: str = "ev-open", owner: str = "a-1", **context: Any) -> dict[str, Any]:
    payload = {"title": "Fix flaky payments test", "objective": "Make CI green again.", "owner_agent_id": owner}
    return submission("mission.opened", payload, event_id, **context)


def criteria(event_id: str, *items: dict[str, Any], **context: Any) -> dict[str, Any]:
    return submission("mission.criteria.set", {"criteria": list(items)}, event_id, **context)


def criterion(cid: str, *kinds: str, requires_approval: bool = False) -> dict[str, Any]:
    return {
        "criterion_id": cid,
        "description": f"criterion {cid}",
        "requires_approval": requires_approval,
        "evidence_kinds": list(kinds),
    }


def step(event_id: str, step_id: str, status: str, *criterion_ids: str) -> dict[str, Any]:
    payload = {"step_id": step_id, "summary": f"step {step_id}", "status": status, "criterion_ids": list(criterion_ids)}
    return submission("mission.step.recorded", payload, event_id)


def call(
    event_id: str, call_id: str, tool: str = "pytest", level: str = "sandbox", *, approval: bool = False, **context: Any
) -> dict[str, Any]:
    payload = {"call_id": call_id, "tool": tool, "arguments": {"k": "v"}, "level": level, "requires_approval": approval}
    context.setdefault("stream", "agent/a-1")  # tool calls live on the agent's stream; mission_id ties them here
    return submission("tool.call.requested", payload, event_id, **context)


def completed(event_id: str, call_id: str, tool: str = "pytest", **context: Any) -> dict[str, Any]:
    payload = {"call_id": call_id, "tool": tool, "output_digest": DIGEST, "duration_ms": 1200}
    context.setdefault("stream", "agent/a-1")
    return submission("tool.call.completed", payload, event_id, actor=("tool", tool), **context)


def failed(event_id: str, call_id: str, tool: str = "pytest") -> dict[str, Any]:
    payload = {"call_id": call_id, "tool": tool, "error_kind": "timeout", "message": "timed out", "retryable": True}
    return submission("tool.call.failed", payload, event_id, actor=("tool", tool), stream="agent/a-1")


def approval_requested(event_id: str, approval_id: str, call_id: str | None) -> dict[str, Any]:
    payload = {"approval_id": approval_id, "subject": "Deploy the fix to production", "call_id": call_id}
    return submission("approval.requested", payload, event_id, actor=("policy", "gateway"))


def granted(event_id: str, approval_id: str, call_id: str | None = None) -> dict[str, Any]:
    payload = {"approval_id": approval_id, "call_id": call_id}
    return submission("approval.granted", payload, event_id, actor=("human", "h-alice"))


def denied(event_id: str, approval_id: str) -> dict[str, Any]:
    payload = {"approval_id": approval_id, "reason": "Not during the freeze."}
    return submission("approval.denied", payload, event_id, actor=("human", "h-alice"))


def evidence(event_id: str, cid: str, cited: str, kind: str, **context: Any) -> dict[str, Any]:
    payload = {"criterion_id": cid, "evidence_event_id": cited, "kind": kind}
    return submission("evidence.attached", payload, event_id, **context)


def offered(event_id: str, from_agent: str, to_agent: str | None, expires_at: str | None = None) -> dict[str, Any]:
    payload = {"from_agent_id": from_agent, "to_agent_id": to_agent, "reason": "end of shift", "expires_at": expires_at}
    return submission("handoff.offered", payload, event_id, actor=("agent", from_agent), agent_id=from_agent)


def accepted(event_id: str, offer: str, owner: str) -> dict[str, Any]:
    payload = {"offer_event_id": offer, "owner_agent_id": owner}
    return submission("handoff.accepted", payload, event_id, actor=("agent", owner), agent_id=owner)


def close(event_id: str, status: str = "completed", **context: Any) -> dict[str, Any]:
    return submission("mission.close.requested", {"status": status, "summary": "done"}, event_id, **context)


# --- fixtures and helpers -----------------------------------------------------------------------------------


@pytest.fixture
def policy() -> Policy:
    return default_policy()


def fold(policy: Policy, events: list[Envelope]) -> Fold[Mission]:
    folded = Fold(MissionProjection(), policy)
    folded.apply(events)
    return folded


def mission_of(folded: Fold[Mission], key: str = KEY) -> Mission:
    return folded.entities[key]


def only(decisions: list[Decision]) -> Decision:
    assert len(decisions) == 1, decisions
    return decisions[0]


# --- a realistic mission, step by step ----------------------------------------------------------------------


def test_realistic_mission_state_after_each_event(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria(
                "ev-criteria",
                criterion("tests-pass", "tool_output"),
                criterion("deploy-approved", "human_approval", requires_approval=True),
            ),
            step("ev-step-1", "s-1", "in_progress", "tests-pass"),
            call("ev-call-1", "c-tests"),
            completed("ev-done-1", "c-tests"),
            evidence("ev-evidence-1", "tests-pass", "ev-done-1", "tool_output"),
            call("ev-call-2", "c-deploy", "deployer", "production", approval=True),
            approval_requested("ev-ask", "ap-1", "c-deploy"),
            granted("ev-grant", "ap-1"),  # names no call: linked through the request's call_id
            completed("ev-done-2", "c-deploy", "deployer"),
            evidence("ev-evidence-2", "deploy-approved", "ev-grant", "human_approval"),
            step("ev-step-2", "s-1", "completed", "tests-pass"),
            close("ev-close"),
        ],
    )
    folded = Fold(MissionProjection(), policy)
    feed: Iterator[Envelope] = iter(events)

    def next_event() -> tuple[Mission, list[Decision]]:
        decisions = folded.apply([next(feed)])
        return folded.entities[KEY], decisions

    mission, _ = next_event()
    assert (mission.status, mission.owner_agent_id, mission.title) == ("open", "a-1", "Fix flaky payments test")
    assert mission.opened_event_id == "ev-open" and mission.opened_at == events[0]["recorded_at"]

    mission, _ = next_event()
    assert mission.status == "open"
    assert [c.criterion_id for c in mission.criteria] == ["tests-pass", "deploy-approved"]
    assert mission.criteria[1].requires_approval and mission.criteria[1].evidence_kinds == ["human_approval"]

    mission, _ = next_event()
    assert mission.status == "in_progress"
    assert mission.steps["s-1"].status == "in_progress" and mission.steps["s-1"].criterion_ids == ["tests-pass"]

    mission, _ = next_event()
    assert mission.tool_calls["c-tests"].result == "pending" and mission.tool_calls["c-tests"].agent_id == "a-1"
    assert mission.status == "in_progress"

    mission, _ = next_event()
    assert mission.tool_calls["c-tests"].result == "completed"
    assert mission.tool_calls["c-tests"].result_event_id == "ev-done-1"

    mission, _ = next_event()
    assert mission_view(mission)["criteria"][0]["has_evidence"] is True

    mission, _ = next_event()
    deploy = mission.tool_calls["c-deploy"]
    assert (deploy.tool, deploy.level, deploy.requires_approval, deploy.approval) == (
        "deployer",
        "production",
        True,
        "none",
    )
    assert mission.status == "blocked"  # a call that needs a human approval nobody has granted yet

    mission, _ = next_event()
    assert mission.tool_calls["c-deploy"].approval == "pending" and mission.status == "blocked"
    assert mission_view(mission)["pending_approvals"] == ["ap-1"]

    mission, _ = next_event()
    assert mission.tool_calls["c-deploy"].approval == "granted"
    assert mission.approvals["ap-1"].answered_by == "h-alice" and mission.approvals["ap-1"].call_id == "c-deploy"
    assert mission.status == "in_progress"
    assert mission_view(mission)["unresolved_tool_calls"] == ["c-deploy"]  # approved but has no result yet

    mission, _ = next_event()
    assert mission_view(mission)["unresolved_tool_calls"] == []

    mission, _ = next_event()
    view = mission_view(mission)
    assert view["criteria"][1]["has_evidence"] is True and view["criteria"][1]["approved"] is True
    assert close_check(mission, policy.missions).passed

    mission, _ = next_event()
    assert mission.steps["s-1"].status == "completed"
    assert mission.steps["s-1"].first_recorded_at == events[2]["recorded_at"]

    mission, decisions = next_event()
    closed = only(decisions)
    assert closed.type == "mission.closed"
    assert closed.payload == {"status": "completed", "summary": "done", "request_event_id": "ev-close"}
    assert mission.status == "completed"
    assert mission.closure is not None and mission.closure.event_id == closed.event_id
    assert mission.closure.requested_by == "a-1" and mission.refusals == []
    assert mission.updated_at == events[-1]["recorded_at"] and mission.last_event_id == "ev-close"


# --- evidence-gated closure ---------------------------------------------------------------------------------


def test_close_with_one_missing_tool_result_is_refused_in_decisions_and_state(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output")),
            call("ev-call-1", "c-tests"),
            completed("ev-done-1", "c-tests"),
            evidence("ev-evidence-1", "tests-pass", "ev-done-1", "tool_output"),
            call("ev-call-2", "c-lint", "ruff"),  # never answered
            close("ev-close"),
        ],
    )
    folded = fold(policy, events)

    refusal = only(folded.decisions)
    assert refusal.type == "mission.close.refused"
    assert refusal.stream == "mission/m-1" and refusal.cause_event_id == "ev-close"
    assert refusal.payload["request_event_id"] == "ev-close"
    assert refusal.payload["unresolved_tool_calls"] == ["c-lint"]
    assert refusal.payload["missing_criteria"] == []
    assert refusal.payload["reasons"] == [
        "Tool call 'c-lint' (ruff at sandbox) has no result: neither tool.call.completed nor tool.call.failed "
        "was recorded."
    ]
    assert refusal.payload["policy_id"] == policy.policy_id and refusal.payload["policy_version"] == policy.version

    mission = mission_of(folded)
    assert mission.status == "in_progress" and mission.closure is None
    (recorded,) = mission.refusals
    assert recorded.request_event_id == "ev-close" and recorded.refusal_event_id == refusal.event_id
    assert recorded.unresolved_tool_calls == ["c-lint"] and recorded.reasons == refusal.payload["reasons"]
    assert recorded.requested_status == "completed" and recorded.refused_by == "projection:mission"
    assert mission_view(mission)["refusals"][0]["request_event_id"] == "ev-close"


def test_a_failed_result_resolves_the_call_and_a_later_close_passes(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass")),
            evidence("ev-evidence-1", "tests-pass", "ev-some-output", "model_output"),
            call("ev-call-1", "c-tests"),
            close("ev-close-1"),
            failed("ev-failed", "c-tests"),
            close("ev-close-2"),
        ],
    )
    folded = fold(policy, events)

    assert [d.type for d in folded.decisions] == ["mission.close.refused", "mission.closed"]
    mission = mission_of(folded)
    assert mission.tool_calls["c-tests"].result == "failed" and mission.tool_calls["c-tests"].error_kind == "timeout"
    assert mission.status == "completed"
    assert [r.request_event_id for r in mission.refusals] == ["ev-close-1"]
    assert mission.closure is not None and mission.closure.request_event_id == "ev-close-2"


def test_close_refused_when_a_criterion_has_no_evidence(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output"), criterion("docs-updated")),
            call("ev-call-1", "c-tests"),
            completed("ev-done-1", "c-tests"),
            evidence("ev-evidence-1", "tests-pass", "ev-done-1", "tool_output"),
            close("ev-close"),
        ],
    )
    refusal = only(fold(policy, events).decisions)

    assert refusal.type == "mission.close.refused"
    assert refusal.payload["missing_criteria"] == ["docs-updated"]
    assert refusal.payload["unresolved_tool_calls"] == []
    assert refusal.payload["reasons"] == ["Criterion 'docs-updated' has no evidence attached (it accepts any kind)."]


def test_evidence_of_a_kind_the_criterion_does_not_accept_does_not_count(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output", "outcome")),
            evidence("ev-evidence-1", "tests-pass", "ev-model-said-so", "model_output"),
            close("ev-close"),
        ],
    )
    folded = fold(policy, events)
    refusal = only(folded.decisions)

    assert refusal.payload["missing_criteria"] == ["tests-pass"]
    assert refusal.payload["reasons"] == [
        "Criterion 'tests-pass' has no evidence of a kind it accepts (tool_output, outcome); attached: model_output."
    ]
    view = mission_view(mission_of(folded))
    assert view["criteria"][0]["has_evidence"] is False
    assert [e["counts"] for e in view["criteria"][0]["evidence"]] == [False]


def test_unapproved_call_requiring_approval_blocks_the_mission_and_refuses_close(
    tmp_path: Path, policy: Policy
) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("deployed")),
            call("ev-call", "c-deploy", "deployer", "production", approval=True),
            completed("ev-done", "c-deploy", "deployer"),  # it ran anyway: the result is there, the approval is not
            evidence("ev-evidence", "deployed", "ev-done", "tool_output"),
            close("ev-close-1"),
            approval_requested("ev-ask", "ap-1", "c-deploy"),
            denied("ev-deny", "ap-1"),
            close("ev-close-2"),
        ],
    )
    folded = Fold(MissionProjection(), policy)

    first = only(folded.apply(events[:6]))
    assert mission_of(folded).status == "blocked"
    assert first.payload["unresolved_tool_calls"] == ["c-deploy"]
    assert first.payload["reasons"] == [
        "Tool call 'c-deploy' (deployer at production) requires a human approval and none was asked for."
    ]

    folded.apply(events[6:7])
    assert mission_of(folded).tool_calls["c-deploy"].approval == "pending"
    assert mission_of(folded).status == "blocked"

    second = only(folded.apply(events[7:]))
    mission = mission_of(folded)
    assert mission.status == "blocked" and mission.tool_calls["c-deploy"].approval == "denied"
    assert mission.approvals["ap-1"].reason == "Not during the freeze."
    assert second.payload["reasons"] == [
        "Tool call 'c-deploy' (deployer at production) requires a human approval and it was denied."
    ]
    assert [r.request_event_id for r in mission.refusals] == ["ev-close-1", "ev-close-2"]


def test_approval_requested_for_an_unflagged_call_binds_it(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [opened(), call("ev-call", "c-1"), approval_requested("ev-ask", "ap-1", "c-1")],
    )
    mission = mission_of(fold(policy, events))
    assert mission.tool_calls["c-1"].needs_approval and mission.status == "blocked"


def test_criterion_requiring_approval_needs_a_granted_approval_of_this_mission(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("signed-off", requires_approval=True)),
            # An agent claims a human approval that the ledger never saw granted: it does not count.
            evidence("ev-forged", "signed-off", "ev-open", "human_approval"),
            close("ev-close-1"),
            approval_requested("ev-ask", "ap-1", None),
            granted("ev-grant", "ap-1"),
            evidence("ev-real", "signed-off", "ev-grant", "human_approval"),
            close("ev-close-2"),
        ],
    )
    folded = fold(policy, events)
    refusal, closed = folded.decisions

    assert refusal.type == "mission.close.refused"
    assert refusal.payload["missing_criteria"] == ["signed-off"]
    assert refusal.payload["reasons"] == [
        "Criterion 'signed-off' has no evidence of a kind it accepts (any kind); attached: "
        "1 human_approval not citing a granted approval of this mission.",
        "Criterion 'signed-off' requires a human approval: attach a granted approval of this mission as "
        "human_approval evidence.",
    ]
    assert closed.type == "mission.closed" and mission_of(folded).status == "completed"


def test_close_without_criteria_is_refused(tmp_path: Path, policy: Policy) -> None:
    events = sequence(tmp_path, [opened(), step("ev-step", "s-1", "completed"), close("ev-close")])
    refusal = only(fold(policy, events).decisions)
    assert refusal.payload["reasons"] == [
        "The mission has no done criteria; set them with mission.criteria.set before closing."
    ]


def test_policy_switches_turn_checks_off(tmp_path: Path, policy: Policy) -> None:
    lenient = parse_policy(
        {**policy.document, "missions": {"require_tool_results": False, "require_approvals": False}}, "test"
    )
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("done")),
            evidence("ev-evidence", "done", "ev-x", "document"),
            call("ev-call", "c-deploy", "deployer", "production", approval=True),
            close("ev-close"),
        ],
    )
    assert only(fold(policy, events).decisions).type == "mission.close.refused"
    closed = only(fold(lenient, events).decisions)
    assert closed.type == "mission.closed" and closed.policy_id == lenient.policy_id != policy.policy_id


def test_successful_close_derives_mission_closed(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output")),
            call("ev-call", "c-tests"),
            completed("ev-done", "c-tests"),
            evidence("ev-evidence", "tests-pass", "ev-done", "tool_output"),
            close("ev-close"),
        ],
    )
    folded = fold(policy, events)
    closed = only(folded.decisions)

    assert closed.type == "mission.closed" and closed.stream == "mission/m-1"
    assert (closed.tenant, closed.mission_id, closed.agent_id) == (TENANT, MISSION, "a-1")
    assert closed.cause_event_id == "ev-close" and closed.cause_time == events[-1]["recorded_at"]
    mission = mission_of(folded)
    assert mission.status == "completed" and mission.refusals == []
    assert mission_view(mission)["closure"]["status"] == "completed"


@pytest.mark.parametrize("status", ["failed", "abandoned"])
def test_failing_or_abandoning_needs_no_evidence(tmp_path: Path, policy: Policy, status: str) -> None:
    events = sequence(
        tmp_path,
        [opened(), criteria("ev-criteria", criterion("x")), call("ev-call", "c-1"), close("ev-close", status)],
    )
    folded = fold(policy, events)
    closed = only(folded.decisions)
    assert closed.type == "mission.closed" and closed.payload["status"] == status
    assert mission_of(folded).status == status


def test_close_request_on_a_closed_mission_is_refused(tmp_path: Path, policy: Policy) -> None:
    events = sequence(tmp_path, [opened(), close("ev-close-1", "abandoned"), close("ev-close-2", "completed")])
    folded = fold(policy, events)
    closed, refusal = folded.decisions
    assert closed.type == "mission.closed"
    assert refusal.type == "mission.close.refused"
    assert refusal.payload["reasons"] == ["The mission is already closed as abandoned."]
    assert mission_of(folded).status == "abandoned"


def test_close_written_by_a_human_or_the_system_is_applied_as_a_fact(tmp_path: Path, policy: Policy) -> None:
    human_close = submission(
        "mission.closed",
        {"status": "completed", "summary": "closed by the lead", "request_event_id": "ev-close"},
        "ev-human-close",
        actor=("human", "h-lead"),
    )
    system_refusal = submission(
        "mission.close.refused",
        {"request_event_id": "ev-close-0", "reasons": ["The release train has left."]},
        "ev-system-refusal",
        actor=("system", "release-bot"),
    )
    events = sequence(tmp_path, [opened(), system_refusal, human_close])
    folded = fold(policy, events)

    assert folded.decisions == []
    mission = mission_of(folded)
    assert mission.status == "completed"
    assert mission.closure is not None and mission.closure.closed_by == "h-lead"
    assert mission.closure.event_id == "ev-human-close"
    (refusal,) = mission.refusals
    assert refusal.refused_by == "release-bot" and refusal.reasons == ["The release train has left."]


# --- ownership ----------------------------------------------------------------------------------------------


def test_handoff_moves_ownership_to_exactly_one_agent(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            offered("ev-offer-1", "a-1", "a-2"),
            accepted("ev-accept-wrong", "ev-offer-1", "a-3"),  # offered to a-2, not a-3
            accepted("ev-accept-1", "ev-offer-1", "a-2"),
            accepted("ev-accept-again", "ev-offer-1", "a-2"),  # an offer is accepted once
            offered("ev-offer-stale", "a-1", None),  # a-1 no longer owns the mission
            offered("ev-offer-2", "a-2", None),
            offered("ev-offer-3", "a-2", "a-4"),
            accepted("ev-accept-2", "ev-offer-2", "a-3"),
            accepted("ev-accept-3", "ev-offer-3", "a-4"),  # superseded when a-3 took the mission
        ],
    )
    folded = Fold(MissionProjection(), policy)
    folded.apply(events[:2])
    assert mission_of(folded).owner_agent_id == "a-1" and mission_of(folded).handoffs[0].status == "offered"
    folded.apply(events[2:4])
    assert mission_of(folded).owner_agent_id == "a-2"
    folded.apply(events[4:])

    mission = mission_of(folded)
    assert mission.owner_agent_id == "a-3"
    assert [(h.offer_event_id, h.status, h.accepted_by) for h in mission.handoffs] == [
        ("ev-offer-1", "accepted", "a-2"),
        ("ev-offer-2", "accepted", "a-3"),
        ("ev-offer-3", "superseded", None),
    ]
    assert [(a.event_id, a.reason) for a in mission.anomalies] == [
        ("ev-accept-wrong", "offer ev-offer-1 was made to a-2, not a-3"),
        ("ev-accept-again", "offer ev-offer-1 is accepted by a-2"),
        ("ev-offer-stale", "a-1 offered a mission owned by a-2"),
        ("ev-accept-3", "offer ev-offer-3 is superseded"),
    ]
    assert mission.status == "open"  # hand-offs are not work


def test_expired_offer_cannot_be_accepted(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            offered("ev-offer", "a-1", "a-2", expires_at="2001-01-01T00:00:00.000000Z"),
            accepted("ev-accept", "ev-offer", "a-2"),
        ],
    )
    mission = mission_of(fold(policy, events))
    assert mission.owner_agent_id == "a-1"
    assert mission.anomalies[0].reason == "offer ev-offer expired at 2001-01-01T00:00:00.000000Z"


# --- decisions and their echoes -----------------------------------------------------------------------------


def _refused_then_closed(tmp_path: Path) -> list[Envelope]:
    return sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output")),
            call("ev-call", "c-tests"),
            close("ev-close-1"),
            completed("ev-done", "c-tests"),
            evidence("ev-evidence", "tests-pass", "ev-done", "tool_output"),
            close("ev-close-2"),
        ],
    )


def test_decisions_validate_against_their_schemas_and_are_accepted_by_the_ledger(
    tmp_path: Path, policy: Policy
) -> None:
    events = _refused_then_closed(tmp_path)
    decisions = fold(policy, events).decisions
    assert [d.type for d in decisions] == ["mission.close.refused", "mission.closed"]

    for decision in decisions:
        spec = spec_for(decision.type)
        spec.payload_model.model_validate(decision.payload)
        assert decision.submission()["actor"]["kind"] in spec.actor_kinds

    appended = sequence(tmp_path, [d.submission() for d in decisions])[len(events) :]
    assert [e["event_id"] for e in appended] == [d.event_id for d in decisions]
    assert [e["causation_id"] for e in appended] == ["ev-close-1", "ev-close-2"]
    assert all(e["actor"] == {"kind": "policy", "id": "projection:mission"} for e in appended)
    assert all(e["stream"] == "mission/m-1" and e["mission_id"] == MISSION for e in appended)
    assert [e["payload"] for e in appended] == [d.payload for d in decisions]


def test_echoes_of_own_decisions_leave_the_state_unchanged(tmp_path: Path, policy: Policy) -> None:
    events = _refused_then_closed(tmp_path)
    without_echo = fold(policy, events)
    echoes = sequence(tmp_path, [d.submission() for d in without_echo.decisions])[len(events) :]

    with_echo = fold(policy, [*events, *echoes])
    assert with_echo.encoded() == without_echo.encoded()
    assert [d.event_id for d in with_echo.decisions] == [d.event_id for d in without_echo.decisions]
    assert len(mission_of(with_echo).refusals) == 1

    # Applied directly too: no decision, no change, not even the last-event bookkeeping.
    projection = MissionProjection()
    before = projection.encode(mission_of(with_echo))
    for echo in echoes:
        assert projection.apply(with_echo.entities, echo, policy) == []
    assert projection.encode(mission_of(with_echo)) == before


def test_a_replay_derives_decisions_with_the_same_ids(tmp_path: Path, policy: Policy) -> None:
    events = _refused_then_closed(tmp_path)
    first, second = fold(policy, events), fold(policy, events)
    assert first.decisions == second.decisions
    assert first.encoded() == second.encoded()


# --- entities -----------------------------------------------------------------------------------------------


def test_encode_decode_round_trips_a_full_mission_through_json(tmp_path: Path, policy: Policy) -> None:
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output"), criterion("ok", requires_approval=True)),
            step("ev-step", "s-1", "in_progress", "tests-pass"),
            call("ev-call-1", "c-tests"),
            completed("ev-done", "c-tests"),
            evidence("ev-evidence", "tests-pass", "ev-done", "tool_output"),
            call("ev-call-2", "c-deploy", "deployer", "production", approval=True),
            approval_requested("ev-ask", "ap-1", "c-deploy"),
            denied("ev-deny", "ap-1"),
            offered("ev-offer", "a-1", "a-2"),
            accepted("ev-accept", "ev-offer", "a-2"),
            accepted("ev-accept-again", "ev-offer", "a-2"),
            close("ev-close-1"),
            close("ev-close-2", "failed"),
        ],
    )
    projection = MissionProjection()
    mission = mission_of(fold(policy, events))
    assert mission.refusals and mission.closure and mission.anomalies and mission.handoffs  # every part is filled

    encoded = projection.encode(mission)
    through_json = json.loads(json.dumps(encoded))
    assert through_json == encoded
    decoded = projection.decode(through_json)
    assert decoded == mission
    assert projection.encode(decoded) == encoded
    assert mission_view(decoded) == mission_view(mission)


def test_events_without_a_mission_or_of_other_types_are_not_this_projections_business(
    tmp_path: Path, policy: Policy
) -> None:
    events = sequence(
        tmp_path,
        [
            call("ev-call", "c-1", mission_id=MISSION) | {"mission_id": None},
            submission(
                "model.output.recorded", {"model": "m", "output_digest": DIGEST}, "ev-model", actor=("model", "m")
            ),
        ],
    )
    projection = MissionProjection()
    assert [list(projection.keys(e)) for e in events] == [[], []]
    assert fold(policy, events).entities == {}


def test_tenants_with_the_same_mission_id_stay_separate(tmp_path: Path, policy: Policy) -> None:
    other = {"tenant": "globex"}
    events = sequence(
        tmp_path,
        [
            opened(),
            criteria("ev-criteria", criterion("tests-pass", "tool_output")),
            opened(owner="b-1", **other),
            criteria("ev-criteria", criterion("docs", "document"), **other),
            call("ev-call", "c-1", **other),
            close("ev-close"),
        ],
    )
    folded = fold(policy, events)

    acme, globex = folded.entities[KEY], folded.entities[entity_key("globex", "mission", MISSION)]
    assert set(folded.entities) == {KEY, entity_key("globex", "mission", MISSION)}
    assert (acme.tenant, acme.owner_agent_id, [c.criterion_id for c in acme.criteria]) == (
        "acme",
        "a-1",
        ["tests-pass"],
    )
    assert (globex.tenant, globex.owner_agent_id, [c.criterion_id for c in globex.criteria]) == (
        "globex",
        "b-1",
        ["docs"],
    )
    assert acme.tool_calls == {} and list(globex.tool_calls) == ["c-1"]
    refusal = only(folded.decisions)
    assert refusal.tenant == "acme" and refusal.payload["missing_criteria"] == ["tests-pass"]
    assert refusal.payload["unresolved_tool_calls"] == []  # globex's open call is not acme's business
    assert globex.refusals == [] and globex.status == "in_progress"
