"""Mission state: missions, done criteria, steps, evidence, tool calls, approvals, owners and evidence-gated closure.

A pure fold of the log under `policy.missions` (DESIGN guarantee 8: time comes only from `recorded_at`; no clock,
randomness or I/O). One entity per mission, keyed by tenant, so two tenants' missions never meet (guarantee 9). A
`mission.close.requested` asking for "completed" is answered with a `mission.close.refused` decision naming what
is missing, or with `mission.closed`; those answers come back through the log and are never applied twice.

Status rules (`derive_status`), first match wins:
  completed / failed / abandoned  the mission was closed (by this projection or by a human/system `mission.closed`);
  blocked      a tool call needs a human approval that is not granted (awaited, never asked, or denied);
  in_progress  any step, tool call, approval, evidence or close request is recorded;
  open         nothing but opening, criteria and hand-offs so far.
Events reach a mission only when their envelope carries its `mission_id`; approvals and tool calls without it are
not seen here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson

from projections.base import Decision, Envelope, Projection, entity_key
from projections.policy import MissionPolicy, Policy
from schemas.payloads.approvals import ApprovalDenied, ApprovalGranted, ApprovalRequested
from schemas.payloads.evidence import EvidenceAttached
from schemas.payloads.missions import (
    HandoffAccepted,
    HandoffOffered,
    MissionClosed,
    MissionCloseRefused,
    MissionCloseRequested,
    MissionCriteriaSet,
    MissionOpened,
    MissionStepRecorded,
)
from schemas.payloads.tools import ToolCallCompleted, ToolCallFailed, ToolCallRequested

# The events that can change whether some tool call of a mission lacks its approval.
_APPROVAL_CHANGES = frozenset({"tool.call.requested", "approval.requested", "approval.granted", "approval.denied"})
MissionStatus = Literal["open", "in_progress", "blocked", "completed", "failed", "abandoned"]
CallResult = Literal["pending", "completed", "failed"]
CallApproval = Literal["none", "pending", "granted", "denied"]
ApprovalStatus = Literal["requested", "granted", "denied"]
HandoffStatus = Literal["offered", "accepted", "superseded"]

HUMAN_APPROVAL = "human_approval"
# The refusal schema's list limits: a refusal must always be appendable, however much is missing.
MAX_REASONS = 100
MAX_IDS = 500
# mission.closed is only derived when its schema lets a policy actor emit it (Decision.submission() uses "policy").
CLOSED_BY_POLICY = "policy" in MissionClosed.actor_kinds


# --- entities ---------------------------------------------------------------------------------------------


@dataclass
class CriterionState:
    """One done criterion as last set by `mission.criteria.set`."""

    criterion_id: str
    description: str
    requires_approval: bool
    evidence_kinds: list[str]  # empty: any kind counts


@dataclass
class EvidenceRecord:
    """One `evidence.attached`; whether it counts is decided against the criteria when asked, not when attached."""

    event_id: str
    criterion_id: str
    evidence_event_id: str
    kind: str
    attached_by: str
    attached_at: str
    note: str | None


@dataclass
class StepState:
    """A plan step; a later `mission.step.recorded` with the same step_id replaces it."""

    step_id: str
    summary: str
    status: str
    criterion_ids: list[str]
    first_recorded_at: str
    updated_at: str
    event_id: str


@dataclass
class ToolCallState:
    """A tool call of the mission, from the first event naming its call_id (request, result or approval)."""

    call_id: str
    first_seen_at: str
    tool: str | None = None
    level: str | None = None
    agent_id: str | None = None
    requires_approval: bool = False
    requested_event_id: str | None = None
    requested_at: str | None = None
    result: CallResult = "pending"
    result_event_id: str | None = None
    result_at: str | None = None
    error_kind: str | None = None
    approval: CallApproval = "none"  # the latest approval event about this call decides
    approval_id: str | None = None

    @property
    def needs_approval(self) -> bool:
        # An approval asked for the call (e.g. after a policy escalation) binds it even if the agent did not flag it.
        return self.requires_approval or self.approval != "none"

    @property
    def lacks_approval(self) -> bool:
        return self.needs_approval and self.approval != "granted"


@dataclass
class ApprovalState:
    """A human approval, by approval_id; the answer may name the call itself or inherit it from the request."""

    approval_id: str
    first_seen_at: str
    call_id: str | None = None
    subject: str | None = None
    status: ApprovalStatus = "requested"
    requested_event_id: str | None = None
    answer_event_id: str | None = None
    answered_by: str | None = None
    answered_at: str | None = None
    reason: str | None = None


@dataclass
class HandoffState:
    """A hand-off offer and what became of it."""

    offer_event_id: str
    from_agent_id: str
    to_agent_id: str | None
    reason: str
    offered_at: str
    expires_at: str | None
    status: HandoffStatus = "offered"
    accepted_by: str | None = None
    accept_event_id: str | None = None
    accepted_at: str | None = None


@dataclass
class RefusalRecord:
    """A refused close request, keyed by request_event_id (so an echo of the refusal is not recorded twice)."""

    request_event_id: str
    refusal_event_id: str | None
    refused_by: str
    refused_at: str
    requested_status: str | None
    reasons: list[str]
    missing_criteria: list[str]
    unresolved_tool_calls: list[str]
    policy_id: str | None
    policy_version: int | None


@dataclass
class ClosureRecord:
    """How the mission was closed; the first closure stands."""

    status: str
    summary: str
    closed_by: str
    closed_at: str
    requested_by: str | None  # the actor of the close request, when there was one
    event_id: str | None  # the mission.closed event (derived: its decision's event id)
    request_event_id: str | None


@dataclass
class AnomalyRecord:
    """An event that is in the log but could not take effect (e.g. accepting an offer already accepted)."""

    event_id: str
    type: str
    reason: str


@dataclass
class Mission:
    """Everything the ledger knows about one mission of one tenant."""

    tenant: str
    mission_id: str
    status: MissionStatus = "open"
    title: str | None = None
    objective: str | None = None
    opened_event_id: str | None = None
    opened_at: str | None = None
    parent_mission_id: str | None = None
    requested_by: str | None = None
    due_at: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    owner_agent_id: str | None = None
    criteria: list[CriterionState] = field(default_factory=list)
    criteria_event_id: str | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    evidence: list[EvidenceRecord] = field(default_factory=list)
    tool_calls: dict[str, ToolCallState] = field(default_factory=dict)
    approvals: dict[str, ApprovalState] = field(default_factory=dict)
    handoffs: list[HandoffState] = field(default_factory=list)
    refusals: list[RefusalRecord] = field(default_factory=list)
    closure: ClosureRecord | None = None
    anomalies: list[AnomalyRecord] = field(default_factory=list)
    updated_at: str | None = None
    last_event_id: str | None = None


# --- pure queries -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseCheck:
    """What a close as "completed" lacks right now under a mission policy; it passes when `reasons` is empty."""

    reasons: list[str]
    missing_criteria: list[str]
    unresolved_tool_calls: list[str]

    @property
    def passed(self) -> bool:
        return not self.reasons


def granted_approval_event_ids(mission: Mission) -> set[str]:
    """The `approval.granted` events of this mission whose approval still stands (not denied later)."""
    return {
        approval.answer_event_id
        for approval in mission.approvals.values()
        if approval.status == "granted" and approval.answer_event_id is not None
    }


def evidence_for(mission: Mission, criterion_id: str) -> list[EvidenceRecord]:
    return [record for record in mission.evidence if record.criterion_id == criterion_id]


def evidence_counts(record: EvidenceRecord, criterion: CriterionState, granted: set[str]) -> bool:
    """Whether one evidence counts for its criterion: a kind the criterion accepts, and, for a human approval, a
    citation of a granted approval of this mission (the one kind an agent could otherwise claim to bypass a human)."""
    if criterion.evidence_kinds and record.kind not in criterion.evidence_kinds:
        return False
    return record.kind != HUMAN_APPROVAL or record.evidence_event_id in granted


def criterion_approved(mission: Mission, criterion: CriterionState, granted: set[str]) -> bool:
    """A criterion requiring approval needs human_approval evidence citing a granted approval of this mission."""
    return any(
        record.kind == HUMAN_APPROVAL and record.evidence_event_id in granted
        for record in evidence_for(mission, criterion.criterion_id)
    )


def unresolved_tool_calls(mission: Mission) -> list[ToolCallState]:
    """Calls without a result or without a needed approval, by call_id."""
    return [call for _, call in sorted(mission.tool_calls.items()) if call.result == "pending" or call.lacks_approval]


def derive_status(mission: Mission, *, rescan_calls: bool = True) -> MissionStatus:
    """The status by the rules in the module docstring. `rescan_calls=False` keeps the blocked-or-not of the
    current status: only a tool call request or an approval event can change whether a call lacks approval."""
    if mission.closure is not None:
        return cast(MissionStatus, mission.closure.status)
    blocked = (
        any(call.lacks_approval for call in mission.tool_calls.values())
        if rescan_calls
        else mission.status == "blocked"
    )
    if blocked:
        return "blocked"
    if mission.steps or mission.tool_calls or mission.approvals or mission.evidence or mission.refusals:
        return "in_progress"
    return "open"


def close_check(mission: Mission, rules: MissionPolicy) -> CloseCheck:
    """Check a close as "completed" against `rules` (the policy's `missions` section), in operator words."""
    reasons: list[str] = []
    missing: list[str] = []
    unresolved: list[str] = []
    if mission.closure is not None:
        already = f"The mission is already closed as {mission.closure.status}."
        return CloseCheck(reasons=[already], missing_criteria=[], unresolved_tool_calls=[])
    granted = granted_approval_event_ids(mission)
    if rules.require_criteria_evidence and not mission.criteria:
        # Explicit done criteria are the point of closure: without them nothing shows the mission is done.
        reasons.append("The mission has no done criteria; set them with mission.criteria.set before closing.")
    for criterion in mission.criteria:
        cid = criterion.criterion_id
        attached = evidence_for(mission, cid)
        if rules.require_criteria_evidence and not any(evidence_counts(r, criterion, granted) for r in attached):
            missing.append(cid)
            reasons.append(_missing_evidence_reason(criterion, attached, granted))
        needs_approval = rules.require_approvals and criterion.requires_approval
        if needs_approval and not criterion_approved(mission, criterion, granted):
            if cid not in missing:
                missing.append(cid)
            reasons.append(
                f"Criterion '{cid}' requires a human approval: attach a granted approval of this mission "
                "as human_approval evidence."
            )
    for call_id, call in sorted(mission.tool_calls.items()):
        what = f"Tool call '{call_id}'{_call_label(call)}"
        if rules.require_tool_results and call.result == "pending":
            unresolved.append(call_id)
            reasons.append(f"{what} has no result: neither tool.call.completed nor tool.call.failed was recorded.")
        if rules.require_approvals and call.lacks_approval:
            if call_id not in unresolved:
                unresolved.append(call_id)
            answer = {"none": "none was asked for", "pending": "it is still awaited", "denied": "it was denied"}
            reasons.append(f"{what} requires a human approval and {answer[call.approval]}.")
    if len(reasons) > MAX_REASONS:
        reasons = [*reasons[: MAX_REASONS - 1], f"And {len(reasons) - MAX_REASONS + 1} more problems."]
    return CloseCheck(reasons=reasons, missing_criteria=missing[:MAX_IDS], unresolved_tool_calls=unresolved[:MAX_IDS])


def mission_view(mission: Mission) -> dict[str, Any]:
    """The mission as a JSON object for the CLI and SDK: status, owner, criteria with their evidence, calls that
    still lack a result or approval, hand-offs, refusals and closure. Pure; ordered for stable display."""
    granted = granted_approval_event_ids(mission)
    criteria = []
    for criterion in mission.criteria:
        attached = evidence_for(mission, criterion.criterion_id)
        criteria.append(
            {
                "criterion_id": criterion.criterion_id,
                "description": criterion.description,
                "requires_approval": criterion.requires_approval,
                "evidence_kinds": list(criterion.evidence_kinds),
                "has_evidence": any(evidence_counts(r, criterion, granted) for r in attached),
                "approved": criterion_approved(mission, criterion, granted) if criterion.requires_approval else None,
                "evidence": [
                    {**dataclasses.asdict(r), "counts": evidence_counts(r, criterion, granted)} for r in attached
                ],
            }
        )
    steps = sorted(mission.steps.values(), key=lambda s: (s.first_recorded_at, s.step_id))
    calls = sorted(mission.tool_calls.values(), key=lambda c: (c.first_seen_at, c.call_id))
    return {
        "tenant": mission.tenant,
        "mission_id": mission.mission_id,
        "title": mission.title,
        "objective": mission.objective,
        "status": mission.status,
        "owner_agent_id": mission.owner_agent_id,
        "opened_at": mission.opened_at,
        "updated_at": mission.updated_at,
        "criteria": criteria,
        "steps": [dataclasses.asdict(step) for step in steps],
        "tool_calls": [
            {**dataclasses.asdict(call), "needs_approval": call.needs_approval, "lacks_approval": call.lacks_approval}
            for call in calls
        ],
        "unresolved_tool_calls": [call.call_id for call in unresolved_tool_calls(mission)],
        "pending_approvals": sorted(a.approval_id for a in mission.approvals.values() if a.status == "requested"),
        "handoffs": [dataclasses.asdict(handoff) for handoff in mission.handoffs],
        "refusals": [dataclasses.asdict(refusal) for refusal in mission.refusals],
        "closure": dataclasses.asdict(mission.closure) if mission.closure is not None else None,
        "anomalies": [dataclasses.asdict(anomaly) for anomaly in mission.anomalies],
    }


def _missing_evidence_reason(criterion: CriterionState, attached: list[EvidenceRecord], granted: set[str]) -> str:
    accepted = ", ".join(criterion.evidence_kinds) if criterion.evidence_kinds else "any kind"
    cid = criterion.criterion_id
    if not attached:
        return f"Criterion '{cid}' has no evidence attached (it accepts {accepted})."
    # Kinds, not every record: a reason is one sentence however much was attached.
    unverified = sum(1 for r in attached if r.kind == HUMAN_APPROVAL and r.evidence_event_id not in granted)
    shown = sorted({r.kind for r in attached if r.kind != HUMAN_APPROVAL or r.evidence_event_id in granted})
    if unverified:
        shown.append(f"{unverified} human_approval not citing a granted approval of this mission")
    return f"Criterion '{cid}' has no evidence of a kind it accepts ({accepted}); attached: {'; '.join(shown)}."


def _call_label(call: ToolCallState) -> str:
    if call.tool is None:
        return ""
    return f" ({call.tool} at {call.level})" if call.level else f" ({call.tool})"


# --- the projection ---------------------------------------------------------------------------------------

Handler = Callable[[Mission, Envelope, Policy], list[Decision]]


class MissionProjection(Projection[Mission]):
    """Folds mission events into `Mission` entities and answers close requests."""

    name = "mission"
    version = 1

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {
            "mission.opened": self._opened,
            "mission.criteria.set": self._criteria_set,
            "mission.step.recorded": self._step_recorded,
            "evidence.attached": self._evidence_attached,
            "tool.call.requested": self._call_requested,
            "tool.call.completed": self._call_completed,
            "tool.call.failed": self._call_failed,
            "approval.requested": self._approval_requested,
            "approval.granted": self._approval_granted,
            "approval.denied": self._approval_denied,
            "handoff.offered": self._handoff_offered,
            "handoff.accepted": self._handoff_accepted,
            "mission.close.requested": self._close_requested,
            "mission.closed": self._closed,
            "mission.close.refused": self._close_refused,
        }

    def keys(self, event: Envelope) -> Iterable[str]:
        mission_id = event.get("mission_id")
        if mission_id is None or event["type"] not in self._handlers:
            return []
        return [entity_key(event["tenant"], "mission", mission_id)]

    def apply(self, entities: dict[str, Mission], event: Envelope, policy: Policy) -> list[Decision]:
        keys = list(self.keys(event))
        if not keys or _is_echo(event):
            # Our own closed/refused decisions already changed the state when they were made.
            return []
        (key,) = keys
        mission = entities.get(key)
        if mission is None:
            # Any mission event may come first (e.g. a tool call logged before mission.opened on another partition).
            mission = entities[key] = Mission(tenant=event["tenant"], mission_id=event["mission_id"])
        decisions = self._handlers[event["type"]](mission, event, policy)
        mission.updated_at = event["recorded_at"]
        mission.last_event_id = event["event_id"]
        # Scanning every call on every event would make a long mission quadratic to replay.
        mission.status = derive_status(mission, rescan_calls=event["type"] in _APPROVAL_CHANGES)
        return decisions

    def encode(self, entity: Mission) -> dict[str, Any]:
        # What dataclasses.asdict gives, several times faster: orjson walks the dataclasses natively.
        encoded: dict[str, Any] = orjson.loads(orjson.dumps(entity))
        return encoded

    def summary(self, entity: Mission) -> dict[str, str | float | int | None]:
        return {"status": entity.status, "refusals": len(entity.refusals)}

    def decode(self, data: dict[str, Any]) -> Mission:
        values = dict(data)
        values["criteria"] = [CriterionState(**item) for item in data["criteria"]]
        values["steps"] = {key: StepState(**item) for key, item in data["steps"].items()}
        values["evidence"] = [EvidenceRecord(**item) for item in data["evidence"]]
        values["tool_calls"] = {key: ToolCallState(**item) for key, item in data["tool_calls"].items()}
        values["approvals"] = {key: ApprovalState(**item) for key, item in data["approvals"].items()}
        values["handoffs"] = [HandoffState(**item) for item in data["handoffs"]]
        values["refusals"] = [RefusalRecord(**item) for item in data["refusals"]]
        values["closure"] = ClosureRecord(**data["closure"]) if data["closure"] is not None else None
        values["anomalies"] = [AnomalyRecord(**item) for item in data["anomalies"]]
        values["labels"] = dict(data["labels"])
        return Mission(**values)

    # --- mission facts ---

    def _opened(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = MissionOpened.model_validate(event["payload"])
        if mission.opened_event_id is not None:
            _anomaly(mission, event, f"the mission was already opened by {mission.opened_event_id}")
            return []
        mission.title = payload.title
        mission.objective = payload.objective
        mission.opened_event_id = event["event_id"]
        mission.opened_at = event["recorded_at"]
        mission.parent_mission_id = payload.parent_mission_id
        mission.requested_by = payload.requested_by
        mission.due_at = payload.due_at
        mission.labels = dict(payload.labels)
        if mission.owner_agent_id is None:  # a hand-off logged earlier already decided the owner
            mission.owner_agent_id = payload.owner_agent_id
        return []

    def _criteria_set(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = MissionCriteriaSet.model_validate(event["payload"])
        # The new list replaces the old one; evidence stays attached to criterion ids and counts again if reused.
        mission.criteria = [
            CriterionState(
                criterion_id=item.criterion_id,
                description=item.description,
                requires_approval=item.requires_approval,
                evidence_kinds=list(item.evidence_kinds),
            )
            for item in payload.criteria
        ]
        mission.criteria_event_id = event["event_id"]
        return []

    def _step_recorded(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = MissionStepRecorded.model_validate(event["payload"])
        earlier = mission.steps.get(payload.step_id)
        mission.steps[payload.step_id] = StepState(
            step_id=payload.step_id,
            summary=payload.summary,
            status=payload.status,
            criterion_ids=list(payload.criterion_ids),
            first_recorded_at=earlier.first_recorded_at if earlier is not None else event["recorded_at"],
            updated_at=event["recorded_at"],
            event_id=event["event_id"],
        )
        return []

    def _evidence_attached(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = EvidenceAttached.model_validate(event["payload"])
        mission.evidence.append(
            EvidenceRecord(
                event_id=event["event_id"],
                criterion_id=payload.criterion_id,
                evidence_event_id=payload.evidence_event_id,
                kind=payload.kind,
                attached_by=event["actor"]["id"],
                attached_at=event["recorded_at"],
                note=payload.note,
            )
        )
        return []

    # --- tool calls and approvals ---

    def _call(self, mission: Mission, call_id: str, event: Envelope) -> ToolCallState:
        call = mission.tool_calls.get(call_id)
        if call is None:
            call = mission.tool_calls[call_id] = ToolCallState(call_id=call_id, first_seen_at=event["recorded_at"])
        return call

    def _call_requested(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = ToolCallRequested.model_validate(event["payload"])
        call = self._call(mission, payload.call_id, event)
        if call.requested_event_id is not None:
            _anomaly(mission, event, f"call_id '{payload.call_id}' was already requested by {call.requested_event_id}")
            return []
        call.tool = payload.tool
        call.level = payload.level
        call.agent_id = event.get("agent_id")
        call.requires_approval = payload.requires_approval
        call.requested_event_id = event["event_id"]
        call.requested_at = event["recorded_at"]
        return []

    def _result(
        self, mission: Mission, event: Envelope, call_id: str, tool: str, result: CallResult, error: str | None
    ) -> None:
        call = self._call(mission, call_id, event)
        if call.result_event_id is not None:
            _anomaly(mission, event, f"call '{call_id}' already has its result {call.result_event_id}")
            return
        call.tool = call.tool or tool
        call.result = result
        call.result_event_id = event["event_id"]
        call.result_at = event["recorded_at"]
        call.error_kind = error

    def _call_completed(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = ToolCallCompleted.model_validate(event["payload"])
        self._result(mission, event, payload.call_id, payload.tool, "completed", None)
        return []

    def _call_failed(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = ToolCallFailed.model_validate(event["payload"])
        self._result(mission, event, payload.call_id, payload.tool, "failed", payload.error_kind)
        return []

    def _approval(self, mission: Mission, approval_id: str, event: Envelope) -> ApprovalState:
        approval = mission.approvals.get(approval_id)
        if approval is None:
            approval = mission.approvals[approval_id] = ApprovalState(
                approval_id=approval_id, first_seen_at=event["recorded_at"]
            )
        return approval

    def _link_call(self, mission: Mission, approval: ApprovalState, event: Envelope, state: CallApproval) -> None:
        # The latest approval event about a call decides its approval state (a new request after a denial re-asks).
        if approval.call_id is not None:
            call = self._call(mission, approval.call_id, event)
            call.approval = state
            call.approval_id = approval.approval_id

    def _approval_requested(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = ApprovalRequested.model_validate(event["payload"])
        approval = self._approval(mission, payload.approval_id, event)
        approval.call_id = approval.call_id or payload.call_id
        approval.subject = payload.subject
        approval.requested_event_id = event["event_id"]
        if approval.answer_event_id is None:
            self._link_call(mission, approval, event, "pending")
        return []

    def _answer(
        self,
        mission: Mission,
        event: Envelope,
        approval_id: str,
        call_id: str | None,
        granted: bool,
        reason: str | None,
    ) -> None:
        approval = self._approval(mission, approval_id, event)
        approval.call_id = approval.call_id or call_id  # linked by the request's call_id or the answer's own
        approval.status = "granted" if granted else "denied"
        approval.answer_event_id = event["event_id"]
        approval.answered_by = event["actor"]["id"]
        approval.answered_at = event["recorded_at"]
        approval.reason = reason
        self._link_call(mission, approval, event, "granted" if granted else "denied")

    def _approval_granted(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = ApprovalGranted.model_validate(event["payload"])
        self._answer(mission, event, payload.approval_id, payload.call_id, True, payload.reason)
        return []

    def _approval_denied(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = ApprovalDenied.model_validate(event["payload"])
        self._answer(mission, event, payload.approval_id, payload.call_id, False, payload.reason)
        return []

    # --- ownership ---

    def _handoff_offered(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = HandoffOffered.model_validate(event["payload"])
        actor = event["actor"]
        if mission.owner_agent_id is not None and payload.from_agent_id != mission.owner_agent_id:
            _anomaly(mission, event, f"{payload.from_agent_id} offered a mission owned by {mission.owner_agent_id}")
            return []
        if actor["kind"] == "agent" and actor["id"] != payload.from_agent_id:
            _anomaly(mission, event, f"agent {actor['id']} cannot offer on behalf of {payload.from_agent_id}")
            return []
        mission.handoffs.append(
            HandoffState(
                offer_event_id=event["event_id"],
                from_agent_id=payload.from_agent_id,
                to_agent_id=payload.to_agent_id,
                reason=payload.reason,
                offered_at=event["recorded_at"],
                expires_at=payload.expires_at,
            )
        )
        return []

    def _handoff_accepted(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = HandoffAccepted.model_validate(event["payload"])
        new_owner = payload.owner_agent_id
        offer = next((h for h in mission.handoffs if h.offer_event_id == payload.offer_event_id), None)
        actor = event["actor"]
        at = event["recorded_at"]
        problem: str | None = None
        if offer is None:
            problem = f"offer {payload.offer_event_id} is not an offer of this mission"
        elif offer.status != "offered":
            problem = f"offer {payload.offer_event_id} is {offer.status}" + (
                f" by {offer.accepted_by}" if offer.accepted_by else ""
            )
        elif offer.to_agent_id is not None and offer.to_agent_id != new_owner:
            problem = f"offer {payload.offer_event_id} was made to {offer.to_agent_id}, not {new_owner}"
        elif offer.expires_at is not None and at > offer.expires_at:  # fixed-width UTC timestamps compare as text
            problem = f"offer {payload.offer_event_id} expired at {offer.expires_at}"
        elif actor["kind"] == "agent" and actor["id"] != new_owner:
            problem = f"agent {actor['id']} cannot accept on behalf of {new_owner}"
        elif mission.closure is not None:
            problem = f"the mission is closed ({mission.closure.status})"
        if problem is not None or offer is None:
            _anomaly(mission, event, problem or "unknown offer")
            return []
        offer.status = "accepted"
        offer.accepted_by = new_owner
        offer.accept_event_id = event["event_id"]
        offer.accepted_at = at
        # Ownership moved: every other open offer was made by someone who no longer owns the mission.
        for other in mission.handoffs:
            if other.status == "offered":
                other.status = "superseded"
        mission.owner_agent_id = new_owner
        return []

    # --- closure ---

    def _close_requested(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = MissionCloseRequested.model_validate(event["payload"])
        if mission.closure is None and payload.status != "completed":
            # Failing or abandoning a mission needs no evidence: it only records that the work stops.
            return self._close(mission, event, policy, payload.status, payload.summary)
        check = close_check(mission, policy.missions)
        if check.passed:
            return self._close(mission, event, policy, payload.status, payload.summary)
        refusal = MissionCloseRefused(
            request_event_id=event["event_id"],
            reasons=check.reasons,
            missing_criteria=check.missing_criteria,
            unresolved_tool_calls=check.unresolved_tool_calls,
            policy_id=policy.policy_id,
            policy_version=policy.version,
        )
        decision = self.decision(
            event, policy, MissionCloseRefused.event_type, refusal.model_dump(mode="json"), stream=event["stream"]
        )
        mission.refusals.append(
            RefusalRecord(
                request_event_id=event["event_id"],
                refusal_event_id=decision.event_id,
                refused_by=f"projection:{self.name}",
                refused_at=event["recorded_at"],
                requested_status=payload.status,
                reasons=list(check.reasons),
                missing_criteria=list(check.missing_criteria),
                unresolved_tool_calls=list(check.unresolved_tool_calls),
                policy_id=policy.policy_id,
                policy_version=policy.version,
            )
        )
        return [decision]

    def _close(self, mission: Mission, event: Envelope, policy: Policy, status: str, summary: str) -> list[Decision]:
        decisions: list[Decision] = []
        event_id: str | None = None
        if CLOSED_BY_POLICY:
            closed = {"status": status, "summary": summary, "request_event_id": event["event_id"]}
            decision = self.decision(event, policy, MissionClosed.event_type, closed, stream=event["stream"])
            decisions.append(decision)
            event_id = decision.event_id
        mission.closure = ClosureRecord(
            status=status,
            summary=summary,
            closed_by=f"projection:{self.name}",
            closed_at=event["recorded_at"],
            requested_by=event["actor"]["id"],
            event_id=event_id,
            request_event_id=event["event_id"],
        )
        return decisions

    def _closed(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        # Written by a human or the system (echoes of our own never get here): a fact, even without evidence.
        payload = MissionClosed.model_validate(event["payload"])
        if mission.closure is not None:
            _anomaly(mission, event, f"the mission was already closed as {mission.closure.status}")
            return []
        mission.closure = ClosureRecord(
            status=payload.status,
            summary=payload.summary,
            closed_by=event["actor"]["id"],
            closed_at=event["recorded_at"],
            requested_by=None,
            event_id=event["event_id"],
            request_event_id=payload.request_event_id,
        )
        return []

    def _close_refused(self, mission: Mission, event: Envelope, policy: Policy) -> list[Decision]:
        payload = MissionCloseRefused.model_validate(event["payload"])
        if any(r.request_event_id == payload.request_event_id for r in mission.refusals):
            return []  # one refusal per request
        mission.refusals.append(
            RefusalRecord(
                request_event_id=payload.request_event_id,
                refusal_event_id=event["event_id"],
                refused_by=event["actor"]["id"],
                refused_at=event["recorded_at"],
                requested_status=None,
                reasons=list(payload.reasons),
                missing_criteria=list(payload.missing_criteria),
                unresolved_tool_calls=list(payload.unresolved_tool_calls),
                policy_id=payload.policy_id,
                policy_version=payload.policy_version,
            )
        )
        return []


def _is_echo(event: Envelope) -> bool:
    """A closure answer this projection derived, coming back through the log."""
    actor = event["actor"]
    return (
        event["type"] in (MissionClosed.event_type, MissionCloseRefused.event_type)
        and actor["kind"] == "policy"
        and str(actor["id"]).startswith("projection:")
    )


def _anomaly(mission: Mission, event: Envelope, reason: str) -> None:
    mission.anomalies.append(AnomalyRecord(event_id=event["event_id"], type=event["type"], reason=reason))
