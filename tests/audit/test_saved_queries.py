"""Saved audit queries: each one run over a real ledger, copied into DuckDB by the real sink, where the answer is known.

One module-scoped ledger holds every case side by side, each a positive and a negative one (a call with its
result and one without, an approved call and unapproved ones, a mission closed with its evidence and missions
closed without), in two tenants, so the tenant-scoped runs can show they never leak. Event ids are given by the
builders, so the expected rows name them; times and log positions are read back from the store. gaps-and-forks
is run on copies of the store edited with DuckDB after the sink closed it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import make_settings

from consumers.audit.queries import SAVED_QUERIES, SavedQuery, run_saved, saved_query
from consumers.audit.session import AuditSession, Source
from consumers.audit.sink import audit_runner
from consumers.audit.store import STORE_FILE
from ledger.errors import UsageError
from ledger.sdk import Ledger

ACME = "acme"
GLOBEX = "globex"
POLICY_1 = "sha256:" + "a1" * 32
POLICY_2 = "sha256:" + "b2" * 32
DIGEST = "sha256:" + "5e" * 32
ZERO = "sha256:" + "0" * 64
PARAMS = {"scope-changes": {"agent": "a-1"}, "mission-timeline": {"mission": "m-full"}}


# --- builders: schema-valid submissions with the event ids the expectations name ---------------------------------


def submission(
    kind: str,
    payload: dict[str, Any],
    *,
    event_id: str,
    stream: str,
    actor: tuple[str, str],
    tenant: str = ACME,
    agent: str | None = "a-1",
    mission: str | None = None,
    causation: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tenant": tenant,
        "stream": stream,
        "type": kind,
        "actor": {"kind": actor[0], "id": actor[1]},
        "agent_id": agent,
        "mission_id": mission,
        "causation_id": causation,
        "payload": payload,
    }


def requested(call_id: str, *, tenant: str = ACME, mission: str = "m-calls", approval: bool = False) -> dict[str, Any]:
    payload = {"call_id": call_id, "tool": "deploy", "level": "production", "arguments": {"target": "billing"}}
    if approval:
        payload["requires_approval"] = True
    return submission(
        "tool.call.requested",
        payload,
        event_id=f"{call_id}.requested",
        stream=f"mission/{mission}",
        actor=("agent", "a-1"),
        tenant=tenant,
        mission=mission,
    )


def result(call_id: str, *, ok: bool = True, tenant: str = ACME, mission: str = "m-calls") -> dict[str, Any]:
    payload: dict[str, Any] = {"call_id": call_id, "tool": "deploy", "duration_ms": 700}
    if ok:
        payload |= {"output_digest": DIGEST, "output_summary": "deployed billing"}
    else:
        payload |= {"error_kind": "execution_error", "message": "health checks failed", "retryable": False}
    kind = "tool.call.completed" if ok else "tool.call.failed"
    return submission(
        kind,
        payload,
        event_id=f"{call_id}.{kind.rsplit('.', 1)[1]}",
        stream=f"mission/{mission}",
        actor=("tool", "tool:deploy"),
        tenant=tenant,
        mission=mission,
        causation=f"{call_id}.requested",
    )


def call(call_id: str, *, ok: bool = True, tenant: str = ACME, mission: str = "m-calls") -> list[dict[str, Any]]:
    return [requested(call_id, tenant=tenant, mission=mission), result(call_id, ok=ok, tenant=tenant, mission=mission)]


def approval(
    kind: str, approval_id: str, *, call_id: str | None = None, mission: str = "m-calls", **fields: Any
) -> dict[str, Any]:
    """approval.requested (asked by the agent), approval.granted or approval.denied (by a human)."""
    payload: dict[str, Any] = {"approval_id": approval_id, **fields}
    if call_id is not None:
        payload["call_id"] = call_id
    if kind == "requested":
        payload["subject"] = "deploy billing to production"
    if kind == "denied":
        payload.setdefault("reason", "not during the freeze")
    return submission(
        f"approval.{kind}",
        payload,
        event_id=f"{approval_id}.{kind}",
        stream=f"mission/{mission}",
        actor=("agent", "a-1") if kind == "requested" else ("human", "ops:alice"),
        mission=mission,
    )


def decision(
    verdict: str,
    event_id: str,
    *,
    policy: tuple[str, int] = (POLICY_1, 1),
    tenant: str = ACME,
    **link: str,
) -> dict[str, Any]:
    """A policy.decision about a deploy call, linked by `call_id=` and/or `request_event_id=`."""
    payload = {
        "decision": verdict,
        "tool": "deploy",
        "level": "production",
        "rule": "scope.escalate_at" if verdict == "escalate" else f"scope.{verdict}",
        "policy_id": policy[0],
        "policy_version": policy[1],
        "reason": f"the scope grants say {verdict}",
        **link,
    }
    return submission(
        "policy.decision", payload, event_id=event_id, stream="agent/a-1", actor=("policy", "scope"), tenant=tenant
    )


def opened(mission: str, *, tenant: str = ACME) -> dict[str, Any]:
    payload = {"title": f"Fix {mission}", "objective": "Make the flaky suite pass", "owner_agent_id": "a-1"}
    return submission(
        "mission.opened",
        payload,
        event_id=f"{mission}.opened",
        stream=f"mission/{mission}",
        actor=("human", "ops:alice"),
        tenant=tenant,
        mission=mission,
    )


def criteria(mission: str, *items: dict[str, Any], tenant: str = ACME, event_id: str | None = None) -> dict[str, Any]:
    listed = list(items) or [
        {"criterion_id": "c-tests", "description": "the suite passes", "evidence_kinds": ["tool_output"]}
    ]
    return submission(
        "mission.criteria.set",
        {"criteria": listed},
        event_id=event_id or f"{mission}.criteria",
        stream=f"mission/{mission}",
        actor=("human", "ops:alice"),
        tenant=tenant,
        mission=mission,
    )


def evidence(mission: str, cited: str, *, kind: str = "tool_output", criterion: str = "c-tests") -> dict[str, Any]:
    return submission(
        "evidence.attached",
        {"criterion_id": criterion, "evidence_event_id": cited, "kind": kind},
        event_id=f"{mission}.evidence.{criterion}.{kind}",
        stream=f"mission/{mission}",
        actor=("agent", "a-1"),
        mission=mission,
    )


def closed(mission: str, *, status: str = "completed", tenant: str = ACME) -> dict[str, Any]:
    return submission(
        "mission.closed",
        {"status": status, "summary": "the suite is green"},
        event_id=f"{mission}.closed",
        stream=f"mission/{mission}",
        actor=("human", "ops:bob"),
        tenant=tenant,
        mission=mission,
    )


def scope(kind: str, event_id: str, *, agent: str = "a-1", tenant: str = ACME, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"tool": "deploy", "reason": f"{kind} by the test", **fields}
    derived = kind in ("scope.narrowed", "scope.widened")
    if derived:
        payload |= {"policy_id": POLICY_1, "policy_version": 1}
    causation = payload.pop("causation", None)
    return submission(
        kind,
        payload,
        event_id=event_id,
        stream=f"agent/{agent}",
        actor=("system", "scope-bot") if derived else ("human", "ops:alice"),
        tenant=tenant,
        agent=agent,
        causation=causation,
    )


def scenario() -> list[dict[str, Any]]:
    """Every case, in the order the log holds them."""
    events: list[dict[str, Any]] = []
    # calls-without-result: answered by a completion, answered by a failure, never answered.
    events += call("call-done") + call("call-failed", ok=False) + [requested("call-open")]
    # Another tenant's result does not answer a call.
    events += [requested("call-cross", tenant=GLOBEX), result("call-cross")]
    # calls-without-approval, each needing approval for a different reason, answered differently.
    events += [requested("call-approved", approval=True), approval("requested", "ap-approved", call_id="call-approved")]
    events += [approval("granted", "ap-approved"), result("call-approved")]  # linked through its request
    events += [requested("call-unasked", approval=True), result("call-unasked")]
    events += [
        requested("call-escalated"),
        decision("escalate", "dec-escalated", policy=(POLICY_2, 2), call_id="call-escalated"),
    ]
    events += [result("call-escalated"), approval("granted", "ap-late", call_id="call-escalated")]
    events += [requested("call-by-request")]
    events += [
        decision("escalate", "dec-by-request", policy=(POLICY_2, 2), request_event_id="call-by-request.requested")
    ]
    events += [result("call-by-request")]
    events += [requested("call-denied", approval=True), approval("requested", "ap-denied", call_id="call-denied")]
    events += [approval("denied", "ap-denied"), result("call-denied")]
    events += [requested("call-expired", approval=True)]
    events += [approval("granted", "ap-expired", call_id="call-expired", valid_until="2020-01-01T00:00:00.000000Z")]
    events += [result("call-expired")]
    events += [requested("call-valid", approval=True)]
    events += [approval("granted", "ap-valid", call_id="call-valid", valid_until="2999-01-01T00:00:00.000000Z")]
    events += [result("call-valid")]
    events += [requested("call-pending", approval=True), approval("requested", "ap-pending", call_id="call-pending")]
    events += [result("call-pending")]
    events += [requested("call-regranted", approval=True), approval("requested", "ap-r1", call_id="call-regranted")]
    events += [approval("denied", "ap-r1"), approval("requested", "ap-r2", call_id="call-regranted")]
    events += [approval("granted", "ap-r2"), result("call-regranted")]
    events += [
        requested("call-allowed"),
        decision("allow", "dec-allowed", call_id="call-allowed"),
        result("call-allowed"),
    ]
    events += [requested("call-unasked", tenant=GLOBEX, approval=True), result("call-unasked", tenant=GLOBEX)]
    # decisions-by-policy: P1 is published in acme only.
    events += [
        submission(
            "policy.published",
            {
                "policy_id": POLICY_1,
                "name": "default",
                "version": 1,
                "content": {"scope": {"escalate_at": ["production"]}},
            },
            event_id="policy-1.published",
            stream="policy/default",
            actor=("human", "ops:alice"),
            agent=None,
        ),
        decision("allow", "dec-precheck"),
        decision("deny", "dec-denied", call_id="call-open"),
        decision("allow", "dec-globex", tenant=GLOBEX),
    ]
    # missions-closed-without-evidence
    events += [opened("m-full"), criteria("m-full"), *call("call-tests", mission="m-full")]
    events += [evidence("m-full", "call-tests.completed"), closed("m-full")]
    events += [opened("m-none"), criteria("m-none"), closed("m-none")]
    events += [
        opened("m-wrongkind"),
        criteria("m-wrongkind"),
        evidence("m-wrongkind", "m-wrongkind.opened", kind="model_output"),
    ]
    events += [closed("m-wrongkind")]
    events += [opened("m-late"), criteria("m-late"), closed("m-late"), evidence("m-late", "call-tests.completed")]
    events += [opened("m-nocriteria"), closed("m-nocriteria")]
    events += [opened("m-failed"), criteria("m-failed"), closed("m-failed", status="failed")]
    signoff = {"criterion_id": "c-signoff", "description": "a human signs off", "requires_approval": True}
    events += [opened("m-signoff"), criteria("m-signoff", signoff)]
    events += [approval("granted", "ap-signoff", mission="m-signoff", reason="looks good")]
    events += [evidence("m-signoff", "ap-signoff.granted", kind="human_approval", criterion="c-signoff")]
    events += [closed("m-signoff")]
    events += [opened("m-forged"), criteria("m-forged", signoff)]
    events += [
        evidence("m-forged", "m-forged.opened", kind="human_approval", criterion="c-signoff"),
        closed("m-forged"),
    ]
    events += [opened("m-unapproved"), criteria("m-unapproved", signoff)]
    events += [evidence("m-unapproved", "m-unapproved.opened", kind="document", criterion="c-signoff")]
    events += [closed("m-unapproved")]
    old = {"criterion_id": "c-old", "description": "the old criterion"}
    new = {"criterion_id": "c-new", "description": "the new criterion", "evidence_kinds": ["document", "tool_output"]}
    events += [
        opened("m-replaced"),
        criteria("m-replaced", old),
        criteria("m-replaced", new, event_id="m-replaced.criteria.2"),
    ]
    events += [evidence("m-replaced", "m-replaced.opened", kind="document", criterion="c-new"), closed("m-replaced")]
    events += [opened("m-none", tenant=GLOBEX), criteria("m-none", tenant=GLOBEX), closed("m-none", tenant=GLOBEX)]
    # scope-changes of a-1, with their causes; a-2's change and the unknown cited event must not confuse it.
    events += [
        scope("scope.granted", "grant-deploy", level="production"),
        scope("scope.granted", "grant-a2", agent="a-2", level="sandbox"),
        scope(
            "scope.narrowed",
            "narrow-deploy",
            level="canary",
            previous_level="production",
            evidence_event_ids=["call-failed.failed"],
            causation="call-failed.failed",
        ),
        scope(
            "scope.widened",
            "widen-deploy",
            level="production",
            previous_level="canary",
            evidence_event_ids=["call-done.completed", "ev-not-logged", "call-approved.completed"],
        ),
        scope("scope.revoked", "revoke-deploy"),
        scope("scope.granted", "grant-deploy", tenant=GLOBEX, level="sandbox"),
        # Cites an event id that exists in acme only: the cause must not be found across tenants.
        scope(
            "scope.narrowed",
            "narrow-deploy",
            tenant=GLOBEX,
            level="sandbox",
            previous_level="sandbox",
            evidence_event_ids=["call-failed.failed"],
            causation="call-failed.failed",
        ),
    ]
    # mission-timeline: a globex mission with the same id.
    events += [opened("m-full", tenant=GLOBEX)]
    return events


# --- the store --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Where an event landed: read back from the audit store, so expectations need not guess times."""

    recorded_at: datetime
    occurred_at: datetime
    partition: int
    log_index: int
    seq: int
    stream: str


@dataclass(frozen=True)
class Built:
    audit: Path
    stored: dict[tuple[str, str], Stored]  # (tenant, event_id) -> where it is

    def at(self, event_id: str, tenant: str = ACME) -> Stored:
        return self.stored[(tenant, event_id)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("saved")
    with Ledger.open(make_settings(root, every_events=1000)) as ledger:
        for item in scenario():
            ledger.append(item)  # one batch each, so the log order is the order of the scenario
        ledger.seal()
        with audit_runner(ledger.log, root / "audit", batch_size=500) as runner:  # the real sink, as consume runs it
            runner.catch_up()
    with AuditSession(root / "audit", source="store") as session:
        rows = session.execute(
            "SELECT tenant, event_id, recorded_at, occurred_at, partition, log_index, seq, stream FROM events"
        ).fetchall()
    return Built(root / "audit", {(row[0], row[1]): Stored(*row[2:]) for row in rows})


def answer(
    audit: Path, name: str, tenant: str | None = None, *, source: Source = "store", **params: str
) -> list[dict[str, Any]]:
    with AuditSession(audit, tenant=tenant, source=source) as session:
        relation = run_saved(session, name, params)
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


def picked(rows: list[dict[str, Any]], *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(row[column] for column in columns) for row in rows]


# --- calls-without-result ---------------------------------------------------------------------------------------


def test_calls_without_result_lists_each_unanswered_request_once(built: Built) -> None:
    rows = answer(built.audit, "calls-without-result")
    open_call, cross = built.at("call-open.requested"), built.at("call-cross.requested", GLOBEX)
    expected = [
        {
            "tenant": ACME,
            "call_id": "call-open",
            "tool": "deploy",
            "level": "production",
            "agent_id": "a-1",
            "mission_id": "m-calls",
            "requested_event_id": "call-open.requested",
            "occurred_at": open_call.occurred_at,
            "recorded_at": open_call.recorded_at,
            "partition": open_call.partition,
            "log_index": open_call.log_index,
        },
        # Its result was recorded in acme: another tenant's result answers nothing here.
        {
            "tenant": GLOBEX,
            "call_id": "call-cross",
            "tool": "deploy",
            "level": "production",
            "agent_id": "a-1",
            "mission_id": "m-calls",
            "requested_event_id": "call-cross.requested",
            "occurred_at": cross.occurred_at,
            "recorded_at": cross.recorded_at,
            "partition": cross.partition,
            "log_index": cross.log_index,
        },
    ]
    assert rows == expected


# --- calls-without-approval -------------------------------------------------------------------------------------


def test_calls_without_approval_names_why_approval_was_needed_and_what_became_of_it(built: Built) -> None:
    rows = answer(built.audit, "calls-without-approval")
    assert picked(rows, "tenant", "call_id", "needed_because", "approval") == [
        (ACME, "call-unasked", "requires_approval", "never requested"),
        (ACME, "call-escalated", "escalated by rule scope.escalate_at", "granted only after completion"),
        (ACME, "call-by-request", "escalated by rule scope.escalate_at", "never requested"),
        (ACME, "call-denied", "approval.denied; approval.requested; requires_approval", "denied"),
        (ACME, "call-expired", "requires_approval", "granted, but it expired at 2020-01-01T00:00:00.000000Z"),
        (ACME, "call-pending", "approval.requested; requires_approval", "requested, not answered before completion"),
        (GLOBEX, "call-unasked", "requires_approval", "never requested"),
    ]
    # Approved (through the request's approval_id, or by the latest of two answers), still valid, or never
    # needing approval: call-approved, call-regranted, call-valid, call-allowed, call-done are absent above.
    first = rows[0]
    done = built.at("call-unasked.completed")
    assert first == {
        "tenant": ACME,
        "call_id": "call-unasked",
        "tool": "deploy",
        "agent_id": "a-1",
        "mission_id": "m-calls",
        "needed_because": "requires_approval",
        "approval": "never requested",
        "completed_event_id": "call-unasked.completed",
        "completed_at": done.recorded_at,
        "partition": done.partition,
        "log_index": done.log_index,
    }


# --- missions-closed-without-evidence ---------------------------------------------------------------------------


def test_missions_closed_without_evidence_lists_each_criterion_that_lacks_it(built: Built) -> None:
    rows = answer(built.audit, "missions-closed-without-evidence")
    columns = ("tenant", "mission_id", "closed_event_id", "closed_by", "criterion_id", "problem")
    assert picked(rows, *columns, "accepted_kinds", "attached_kinds") == [
        (ACME, "m-none", "m-none.closed", "human:ops:bob", "c-tests", "no evidence", ["tool_output"], []),
        (
            ACME,
            "m-wrongkind",
            "m-wrongkind.closed",
            "human:ops:bob",
            "c-tests",
            "no evidence that counts",
            ["tool_output"],
            ["model_output"],
        ),
        # The evidence came after the close.
        (ACME, "m-late", "m-late.closed", "human:ops:bob", "c-tests", "no evidence", ["tool_output"], []),
        (ACME, "m-nocriteria", "m-nocriteria.closed", "human:ops:bob", None, "no done criteria", None, None),
        # A human_approval evidence citing something that is not a granted approval does not count.
        (
            ACME,
            "m-forged",
            "m-forged.closed",
            "human:ops:bob",
            "c-signoff",
            "no evidence that counts",
            [],
            ["human_approval"],
        ),
        (
            ACME,
            "m-unapproved",
            "m-unapproved.closed",
            "human:ops:bob",
            "c-signoff",
            "no granted approval",
            [],
            ["document"],
        ),
        (GLOBEX, "m-none", "m-none.closed", "human:ops:bob", "c-tests", "no evidence", ["tool_output"], []),
    ]
    # m-full (tool output attached), m-signoff (a granted approval cited), m-replaced (only the latest criteria
    # count) and m-failed (not closed as completed) are absent.
    close = built.at("m-none.closed")
    assert (rows[0]["closed_at"], rows[0]["partition"], rows[0]["log_index"]) == (
        close.recorded_at,
        close.partition,
        close.log_index,
    )


# --- scope-changes ----------------------------------------------------------------------------------------------


def test_scope_changes_of_an_agent_come_in_order_with_their_causes(built: Built) -> None:
    rows = answer(built.audit, "scope-changes", agent="a-1")
    columns = ("tenant", "event_id", "type", "level", "previous_level", "actor", "policy_version")
    causes = ("causation_id", "causation_type", "evidence_event_ids", "evidence_types")
    assert picked(rows, *columns, *causes) == [
        (ACME, "grant-deploy", "scope.granted", "production", None, "human:ops:alice", None, None, None, [], []),
        (
            ACME,
            "narrow-deploy",
            "scope.narrowed",
            "canary",
            "production",
            "system:scope-bot",
            1,
            "call-failed.failed",
            "tool.call.failed",
            ["call-failed.failed"],
            ["tool.call.failed"],
        ),
        (
            ACME,
            "widen-deploy",
            "scope.widened",
            "production",
            "canary",
            "system:scope-bot",
            1,
            None,
            None,
            ["call-done.completed", "ev-not-logged", "call-approved.completed"],
            ["tool.call.completed", None, "tool.call.completed"],  # the order of the payload; unknown is NULL
        ),
        (ACME, "revoke-deploy", "scope.revoked", None, None, "human:ops:alice", None, None, None, [], []),
        (GLOBEX, "grant-deploy", "scope.granted", "sandbox", None, "human:ops:alice", None, None, None, [], []),
        # The cited event exists in acme only.
        (
            GLOBEX,
            "narrow-deploy",
            "scope.narrowed",
            "sandbox",
            "sandbox",
            "system:scope-bot",
            1,
            "call-failed.failed",
            None,
            ["call-failed.failed"],
            [None],
        ),
    ]
    narrowed = built.at("narrow-deploy")
    row = rows[1]
    assert (row["tool"], row["reason"], row["recorded_at"], row["occurred_at"], row["log_index"]) == (
        "deploy",
        "scope.narrowed by the test",
        narrowed.recorded_at,
        narrowed.occurred_at,
        narrowed.log_index,
    )
    assert answer(built.audit, "scope-changes", agent="a-2")[0]["event_id"] == "grant-a2"
    assert answer(built.audit, "scope-changes", agent="a-nobody") == []


# --- decisions-by-policy ----------------------------------------------------------------------------------------


def test_decisions_by_policy_count_each_verdict_per_policy_version(built: Built) -> None:
    rows = answer(built.audit, "decisions-by-policy")
    times = {
        key: (built.at(first, tenant).recorded_at, built.at(last, tenant).recorded_at)
        for key, (tenant, first, last) in {
            "allow": (ACME, "dec-allowed", "dec-precheck"),
            "deny": (ACME, "dec-denied", "dec-denied"),
            "escalate": (ACME, "dec-escalated", "dec-by-request"),
            "globex": (GLOBEX, "dec-globex", "dec-globex"),
        }.items()
    }
    assert picked(
        rows,
        "tenant",
        "policy_id",
        "policy_version",
        "policy_name",
        "decision",
        "decisions",
        "first_recorded_at",
        "last_recorded_at",
    ) == [
        (ACME, POLICY_1, 1, "default", "allow", 2, *times["allow"]),
        (ACME, POLICY_1, 1, "default", "deny", 1, *times["deny"]),
        (ACME, POLICY_2, 2, None, "escalate", 2, *times["escalate"]),
        # P1 is published in acme only, so globex has no name for it.
        (GLOBEX, POLICY_1, 1, None, "allow", 1, *times["globex"]),
    ]


# --- mission-timeline -------------------------------------------------------------------------------------------


def test_mission_timeline_lists_every_event_of_the_mission_with_a_summary(built: Built) -> None:
    rows = answer(built.audit, "mission-timeline", mission="m-full")
    assert picked(rows, "tenant", "type", "actor", "summary", "event_id") == [
        (ACME, "mission.opened", "human:ops:alice", "Fix m-full (owner a-1)", "m-full.opened"),
        (ACME, "mission.criteria.set", "human:ops:alice", "criteria c-tests", "m-full.criteria"),
        (ACME, "tool.call.requested", "agent:a-1", "call-tests deploy at production", "call-tests.requested"),
        (
            ACME,
            "tool.call.completed",
            "tool:tool:deploy",
            "call-tests completed: deployed billing",
            "call-tests.completed",
        ),
        (
            ACME,
            "evidence.attached",
            "agent:a-1",
            "tool_output for c-tests: call-tests.completed",
            "m-full.evidence.c-tests.tool_output",
        ),
        (ACME, "mission.closed", "human:ops:bob", "closed as completed: the suite is green", "m-full.closed"),
        (GLOBEX, "mission.opened", "human:ops:alice", "Fix m-full (owner a-1)", "m-full.opened"),
    ]
    for row in rows:
        stored = built.at(row["event_id"], row["tenant"])
        assert (row["occurred_at"], row["recorded_at"], row["seq"], row["stream"]) == (
            stored.occurred_at,
            stored.recorded_at,
            stored.seq,
            stored.stream,
        )
    assert answer(built.audit, "mission-timeline", mission="m-nobody") == []


def test_mission_timeline_summarises_calls_decisions_and_approvals(built: Built) -> None:
    summaries = {row["event_id"]: row["summary"] for row in answer(built.audit, "mission-timeline", mission="m-calls")}
    assert summaries["call-unasked.requested"] == "call-unasked deploy at production, requires approval"
    assert summaries["call-failed.failed"] == "call-failed failed (execution_error): health checks failed"
    assert summaries["ap-denied.requested"] == "ap-denied for call-denied: deploy billing to production"
    assert summaries["ap-denied.denied"] == "ap-denied denied: not during the freeze"
    assert summaries["ap-expired.granted"] == "ap-expired granted for call-expired"
    # Decisions are on the agent's stream without a mission_id: not part of the mission.
    assert "dec-escalated" not in summaries


# --- tenant scoping ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(SAVED_QUERIES) - {"gaps-and-forks"}))
@pytest.mark.parametrize("tenant", [ACME, GLOBEX])
def test_a_tenant_scoped_session_sees_only_its_tenant_in_every_saved_query(
    built: Built, name: str, tenant: str
) -> None:
    everyone = answer(built.audit, name, **PARAMS.get(name, {}))
    assert {row["tenant"] for row in everyone} == {ACME, GLOBEX}  # so the scoped run below has something to leak
    scoped = answer(built.audit, name, tenant, **PARAMS.get(name, {}))
    assert scoped and {row["tenant"] for row in scoped} == {tenant}
    assert scoped == [row for row in everyone if row["tenant"] == tenant]


@pytest.mark.parametrize("name", sorted(SAVED_QUERIES))
def test_every_saved_query_answers_the_same_over_the_parquet_segments(built: Built, name: str) -> None:
    """Auditors read the segments while `consume audit` holds the store: same rows, same types."""
    over_store = answer(built.audit, name, **PARAMS.get(name, {}))
    assert answer(built.audit, name, source="segments", **PARAMS.get(name, {})) == over_store


# --- gaps-and-forks: edit the store file the way someone with write access could ----------------------------------


@pytest.fixture
def audit_copy(built: Built, tmp_path: Path) -> Path:
    copy = tmp_path / "audit"
    shutil.copytree(built.audit, copy)
    return copy


def tamper(audit: Path, *statements: str) -> None:
    with duckdb.connect(str(audit / STORE_FILE)) as db:
        for statement in statements:
            db.execute(statement)


def problems(audit: Path, tenant: str | None = None) -> list[tuple[Any, ...]]:
    rows = answer(audit, "gaps-and-forks", tenant)
    return picked(rows, "partition", "log_index", "tenant", "stream", "seq", "problem", "detail")


def test_gaps_and_forks_finds_nothing_in_an_untouched_store(built: Built) -> None:
    assert problems(built.audit) == []
    assert problems(built.audit, ACME) == []


def test_gaps_and_forks_reports_a_deleted_event_in_its_partition_and_its_stream(built: Built, audit_copy: Path) -> None:
    gone, after = built.at("call-open.requested"), built.at("call-cross.requested", GLOBEX)
    next_in_stream = built.at("call-cross.completed")  # the next acme event of mission/m-calls
    tamper(audit_copy, "DELETE FROM events WHERE tenant = 'acme' AND event_id = 'call-open.requested'")
    assert after.log_index == gone.log_index + 1 and next_in_stream.seq == gone.seq + 1
    stream = "mission/m-calls"
    assert problems(audit_copy) == [
        (0, after.log_index, GLOBEX, stream, after.seq, "index gap", f"log index {gone.log_index} missing"),
        (0, next_in_stream.log_index, ACME, stream, next_in_stream.seq, "seq gap", f"seq {gone.seq} missing"),
    ]
    # Scoped to a tenant, other tenants' rows fill the index sequence: only the tenant's own chains are judged.
    assert problems(audit_copy, GLOBEX) == []
    assert problems(audit_copy, ACME) == [
        (0, next_in_stream.log_index, ACME, stream, next_in_stream.seq, "seq gap", f"seq {gone.seq} missing")
    ]


def test_gaps_and_forks_reports_a_duplicated_seq_as_a_fork(built: Built, audit_copy: Path) -> None:
    requested_, completed_ = built.at("call-done.requested"), built.at("call-done.completed")
    failed = built.at("call-failed.requested")
    assert (completed_.seq, failed.seq) == (requested_.seq + 1, requested_.seq + 2)
    # call-done.completed takes the seq of call-done.requested: two events claim it, and its own seq is gone.
    tamper(
        audit_copy,
        f"UPDATE events SET seq = {requested_.seq} WHERE tenant = 'acme' AND event_id = 'call-done.completed'",
    )
    assert problems(audit_copy) == [
        (
            0,
            completed_.log_index,
            ACME,
            "mission/m-calls",
            requested_.seq,
            "fork",
            f"seq {requested_.seq} appears again",
        ),
        (0, failed.log_index, ACME, "mission/m-calls", failed.seq, "seq gap", f"seq {completed_.seq} missing"),
    ]


def test_gaps_and_forks_reports_a_prev_hash_that_is_not_the_previous_hash(built: Built, audit_copy: Path) -> None:
    target = built.at("call-failed.requested")
    tamper(
        audit_copy,
        f"UPDATE events SET prev_hash = '{ZERO}' WHERE tenant = 'acme' AND event_id = 'call-failed.requested'",
    )
    assert problems(audit_copy) == [
        (
            0,
            target.log_index,
            ACME,
            "mission/m-calls",
            target.seq,
            "broken link",
            f"prev_hash is not the hash of seq {target.seq - 1}",
        )
    ]
    with duckdb.connect(str(audit_copy / STORE_FILE)) as db:  # the first event's link: to the zero hash
        db.execute("UPDATE events SET prev_hash = hash WHERE tenant = 'acme' AND event_id = 'm-none.opened'")
    first = built.at("m-none.opened")
    assert (
        0,
        first.log_index,
        ACME,
        "mission/m-none",
        1,
        "broken link",
        "seq 1 must have the zero prev_hash",
    ) in problems(audit_copy)


def test_gaps_and_forks_reports_every_event_holding_a_repeated_log_index(built: Built, audit_copy: Path) -> None:
    requested_, moved = built.at("call-done.requested"), built.at("call-done.completed")
    after = built.at("call-failed.requested")
    # The moved event also loses its link: that problem is its own, not the other holder's of the index.
    tamper(
        audit_copy,
        f"UPDATE events SET log_index = {requested_.log_index}, prev_hash = '{ZERO}'"
        " WHERE tenant = 'acme' AND event_id = 'call-done.completed'",
    )
    repeated = f"log index {requested_.log_index} is held by more than one event"
    stream = "mission/m-calls"
    found = problems(audit_copy)
    assert found == [
        (
            0,
            requested_.log_index,
            ACME,
            stream,
            moved.seq,
            "broken link",
            f"prev_hash is not the hash of seq {requested_.seq}",
        ),
        (0, requested_.log_index, ACME, stream, requested_.seq, "index repeated", repeated),
        (0, requested_.log_index, ACME, stream, moved.seq, "index repeated", repeated),
        (0, after.log_index, ACME, stream, after.seq, "index gap", f"log index {moved.log_index} missing"),
    ]
    assert problems(audit_copy, ACME) == found[:3]  # a repeat shows within one tenant too


def test_gaps_and_forks_reports_events_cut_off_the_end_of_a_checkpointed_partition(
    built: Built, audit_copy: Path
) -> None:
    last = max(stored.log_index for stored in built.stored.values())
    tamper(audit_copy, f"DELETE FROM events WHERE log_index >= {last - 1}")
    assert problems(audit_copy) == [
        (
            0,
            None,
            None,
            None,
            None,
            "index gap",
            f"log index {last - 1}..{last} missing (the checkpoint of tree size {last + 1} covers it)",
        )
    ]


# --- names and parameters ---------------------------------------------------------------------------------------


def test_every_saved_query_is_documented_and_declares_its_parameters() -> None:
    for name, query in SAVED_QUERIES.items():
        assert isinstance(query, SavedQuery) and query.name == name and saved_query(name) is query
        assert query.title and len(query.description) > 80
        for param in (*query.params, *query.session_params):
            assert f"${param}" in query.sql
    docs = (Path(__file__).parents[2] / "docs" / "audit-queries.md").read_text()
    for name in SAVED_QUERIES:
        assert f"## {name}" in docs


def test_an_unknown_saved_query_is_a_usage_error_listing_the_known_ones(built: Built) -> None:
    with pytest.raises(UsageError) as caught:
        saved_query("calls-without-receipt")
    assert str(caught.value).startswith("no saved query 'calls-without-receipt'; known: calls-without-approval,")
    with AuditSession(built.audit, source="store") as session, pytest.raises(UsageError, match="mission-timeline"):
        run_saved(session, "calls-without-receipt", {})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("scope-changes", {}, "saved query 'scope-changes' needs the parameter 'agent' (--param agent=VALUE)"),
        (
            "scope-changes",
            {"agent": ""},
            "saved query 'scope-changes' needs the parameter 'agent' (--param agent=VALUE)",
        ),
        (
            "mission-timeline",
            {"mision": "m-1"},
            "saved query 'mission-timeline' has no parameter 'mision'; it takes mission",
        ),
        (
            "gaps-and-forks",
            {"whole_log": "false"},
            "saved query 'gaps-and-forks' has no parameter 'whole_log'; it takes none",
        ),
    ],
)
def test_a_missing_or_unknown_parameter_is_a_usage_error_naming_it(
    built: Built, name: str, params: dict[str, str], message: str
) -> None:
    with AuditSession(built.audit, source="store") as session, pytest.raises(UsageError) as caught:
        run_saved(session, name, params)
    assert str(caught.value) == message
