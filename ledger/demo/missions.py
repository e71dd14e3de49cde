"""One mission of the demo day, from open to close: criteria, steps and their tool calls, memory, hand-offs,
then the outcome, its evaluation, the evidence and the close.

A completed mission attaches evidence for every criterion before its close is accepted; when it asks too early
the mission-state policy refuses the close, naming the criterion, and the mission attaches the rest; once, its
requester closes it by hand instead (a fact the audit finds). A hand-off is guarded by `expected_seq`. It plans on
the mission's own stream only, never on another mission's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ledger.clock import format_timestamp
from ledger.demo.cast import (
    BASE_TIME,
    CLOSE_OVERRIDE_AFTER,
    CLOSE_OVERRIDE_TENANT,
    HARNESS_ACTOR,
    REVISED_AGENT,
    TENANTS,
    MissionTemplate,
    TenantSpec,
    ToolStep,
    text_digest,
)
from ledger.demo.plan import EVENT_GAP_SECONDS, MissionInProgress
from ledger.demo.tool_calls import ToolCallPlanner


class MissionPlanner(ToolCallPlanner):
    """Plans whole missions; `handoff_race` records the hand-offs (and the race) for the demo's summary."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._lessons: dict[str, list[tuple[datetime, str]]] = {spec.tenant: [] for spec in TENANTS}
        self._mission_count = 0
        self._memory_count = 0
        self.revision_at = BASE_TIME + timedelta(hours=4)
        self.handoff_race: dict[str, Any] = {}
        self.close_override: dict[str, str] = {}  # the mission its requester closes by hand after a refusal

    def model_of(self, spec: TenantSpec, agent_id: str, at: datetime) -> str:
        if (spec.tenant, agent_id) == REVISED_AGENT[:2] and at >= self.revision_at:
            return REVISED_AGENT[2]
        return next(agent.model for agent in spec.agents if agent.agent_id == agent_id)

    def _run_mission(self, spec: TenantSpec, index: int, missions: int, begins: datetime) -> None:
        rng = self.rng
        self._mission_count += 1
        template = spec.templates[rng.randrange(len(spec.templates))]
        subject = rng.choice(template.subjects)
        mission = MissionInProgress(
            spec, f"m-{self._mission_count:04d}", template.owner, begins, f"{rng.getrandbits(128):032x}"
        )
        requester = mission.requester = rng.choice(spec.humans)
        opened = self._mission_event(
            mission,
            "mission.opened",
            ("human", requester),
            {
                "title": template.title.format(subject=subject),
                "objective": template.objective.format(subject=subject),
                "owner_agent_id": mission.owner,
                "requested_by": requester,
                "due_at": format_timestamp(begins + timedelta(days=2)),
                "labels": {"priority": rng.choice(("p1", "p2", "p3"))},
            },
            awaits_projections=index == 0,  # the projections have seen the tenants' policies before any decision
        )
        self._mission_event(
            mission,
            "mission.criteria.set",
            ("agent", mission.owner),
            {
                "criteria": [
                    {
                        "criterion_id": cid,
                        "description": text,
                        "evidence_kinds": [kind, "human_approval"] if "human approval" in text else [kind],
                        "requires_approval": "human approval" in text,
                    }
                    for cid, text, kind in template.criteria
                ]
            },
            causation_id=opened["event_id"],
        )
        self._read_lessons(mission)
        still_open = index >= missions - 2  # the last missions are still running when the day ends
        handoff = {"acme": 5, "globex": 9}.get(spec.tenant) == index
        if handoff:
            self._handoff(mission, race=spec.tenant == "acme")
        abandon_after = rng.randrange(len(template.steps)) if rng.random() < 0.05 and not handoff else None
        failure: str | None = None
        for number, step in enumerate(template.steps, start=1):
            if still_open and number == len(template.steps):
                return
            if abandon_after is not None and number > abandon_after:
                self._abandon(mission, requester)
                return
            if rng.random() < 0.04:
                self._rogue_call(mission)
            failure = self._step(mission, step, f"s-{number}")
            if failure:
                break
        self._finish(mission, template, failure)

    def _model_output(self, mission: MissionInProgress, summary: str) -> dict[str, Any]:
        model = self.model_of(mission.tenant, mission.owner, mission.clock)
        return self._mission_event(
            mission,
            "model.output.recorded",
            ("model", model),
            {
                "model": model,
                "output_digest": text_digest(f"{mission.mission_id} {summary} {self.rng.random()}"),
                "summary": summary,
                "input_digest": text_digest(f"context packet {mission.mission_id} {mission.clock}"),
                "tokens_in": self.rng.randint(2_000, 60_000),
                "tokens_out": self.rng.randint(150, 4_000),
                "latency_ms": self.rng.randint(800, 25_000),
            },
            after=(1, 20),
        )

    def _step(self, mission: MissionInProgress, step: ToolStep, step_id: str) -> str | None:
        """Run one step; return why the mission fails, or None when the step succeeded."""
        self._record_step(mission, step, step_id, "in_progress")
        if self.rng.random() < 0.6:
            self._model_output(mission, f"Plan for '{step.summary.lower()}': call {step.tool} at {step.level}.")
        result, failure = self._tool_call(mission, step)
        if result is not None and self.rng.random() < 0.5:
            self._remember(mission, step, result)
        self._record_step(mission, step, step_id, "failed" if failure else "completed")
        if result is not None and step.criterion:
            evidence = mission.evidence.setdefault(step.criterion, [])
            evidence.append((result["event_id"], "tool_output"))
            if mission.last_approval is not None:
                evidence.append((mission.last_approval, "human_approval"))
        return failure

    def _record_step(self, mission: MissionInProgress, step: ToolStep, step_id: str, status: str) -> None:
        criteria = [step.criterion] if step.criterion else []
        self._mission_event(
            mission,
            "mission.step.recorded",
            ("agent", mission.owner),
            {"step_id": step_id, "summary": step.summary, "status": status, "criterion_ids": criteria},
        )

    def _remember(self, mission: MissionInProgress, step: ToolStep, result: dict[str, Any]) -> None:
        self._memory_count += 1
        lesson = self.rng.random() < 0.3
        memory_id = f"mem-{self._memory_count:05d}"
        self._mission_event(
            mission,
            "memory.written",
            ("agent", mission.owner),
            {
                "memory_id": memory_id,
                "key": f"{step.tool} in {mission.mission_id}" if not lesson else step.tool,
                "content": (
                    f"Lesson: {step.summary.lower()} works best in small batches."
                    if lesson
                    else f"Result of '{step.summary}' is at {result['payload']['output_uri']}."
                ),
                "scope": "tenant" if lesson else "mission",
                "source_event_ids": [result["event_id"]],
                "expires_at": format_timestamp(mission.clock + timedelta(days=30)),
            },
            after=(0.5, 5),
        )
        if lesson:
            self._lessons[mission.tenant.tenant].append((mission.clock, memory_id))

    def _read_lessons(self, mission: MissionInProgress) -> None:
        known = [memory_id for at, memory_id in self._lessons[mission.tenant.tenant] if at < mission.clock]
        if known:
            self._mission_event(
                mission,
                "memory.read",
                ("agent", mission.owner),
                {"memory_ids": known[-3:], "purpose": "Lessons from earlier missions of this tenant."},
                after=(1, 10),
            )

    def _handoff(self, mission: MissionInProgress, *, race: bool) -> None:
        """Hand the mission over, guarded by expected_seq; in the race two agents accept the same offer."""
        spec, previous = mission.tenant, mission.owner
        others = [agent.agent_id for agent in spec.agents if agent.agent_id != previous]
        winner, loser = others[0], others[-1]
        offer = self._mission_event(
            mission,
            "handoff.offered",
            ("agent", previous),
            {
                "from_agent_id": previous,
                "to_agent_id": None if race else winner,
                "reason": "Pulled onto an incident; whoever is free should finish this."
                if race
                else f"{winner} owns the follow-up work; handing the rest of the mission over.",
            },
        )
        offer_seq = self.head(spec.tenant, mission.stream)
        accepted = self._accept_offer(mission, offer, offer_seq, winner, "Taking it from here.")
        self.handoff_race.setdefault("handoffs", []).append(
            {
                "tenant": spec.tenant,
                "mission_id": mission.mission_id,
                "from": previous,
                "to": winner,
                "seq": offer_seq + 1,
                "event_id": accepted["event_id"],
            }
        )
        if race:
            stale = self._accept_offer(
                mission,
                offer,
                offer_seq,
                loser,
                "I can take this.",
                after=(0.05, 0.3),
                expected_refusal="stale_expected_seq",
                label=f"{loser} accepts the hand-off {winner} already took (stale expected_seq)",
            )
            self.handoff_race.update(
                tenant=spec.tenant,
                mission_id=mission.mission_id,
                stream=mission.stream,
                offered_by=previous,
                winner=winner,
                loser=loser,
                expected_seq=offer_seq,
                loser_event_id=stale["event_id"],
            )
        mission.owner = winner

    def _accept_offer(
        self,
        mission: MissionInProgress,
        offer: dict[str, Any],
        offer_seq: int,
        agent_id: str,
        note: str,
        *,
        after: tuple[float, float] = EVENT_GAP_SECONDS,
        expected_refusal: str | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """`agent_id` accepts the hand-off `offer`, expecting the stream's head still to be the offer's seq."""
        return self._mission_event(
            mission,
            "handoff.accepted",
            ("agent", agent_id),
            {"offer_event_id": offer["event_id"], "owner_agent_id": agent_id, "note": note},
            after=after,
            causation_id=offer["event_id"],
            expected_seq=offer_seq,
            expected_refusal=expected_refusal,
            agent_id=agent_id,
            label=label,
        )

    def _abandon(self, mission: MissionInProgress, requester: str) -> None:
        self._mission_event(
            mission,
            "mission.close.requested",
            ("human", requester),
            {"status": "abandoned", "summary": "Priorities changed; the requester withdrew the mission."},
            after=(300, 3600),
        )

    def _finish(self, mission: MissionInProgress, template: MissionTemplate, failure: str | None) -> None:
        rng = self.rng
        status = "failed" if failure else "completed"
        if not failure:
            for criterion, _, kind in template.criteria:
                if kind == "model_output" and criterion not in mission.evidence:
                    output = self._model_output(mission, f"Final write-up for {mission.mission_id}.")
                    mission.evidence[criterion] = [(output["event_id"], "model_output")]
        summary = (
            f"Done: {template.title.split(' ')[0].lower()} finished with evidence for every criterion."
            if not failure
            else f"Stopped: {failure}"
        )[:2000]
        outcome = self._mission_event(
            mission,
            "outcome.recorded",
            ("system", HARNESS_ACTOR),
            {
                "outcome": "failure" if failure else "success",
                "summary": summary,
                "metrics": {
                    "tool_calls": float(rng.randint(2, 9)),
                    "cost_usd": round(rng.uniform(0.05, 4.0), 2),
                    "wall_minutes": round(rng.uniform(3, 240), 1),
                },
            },
        )
        model = self.model_of(
            mission.tenant, "a-reviewer-2" if mission.tenant.tenant == "acme" else "a-analyst-1", mission.clock
        )
        verdict = "fail" if failure else rng.choice(("pass", "pass", "pass", "inconclusive"))
        self._mission_event(
            mission,
            "evaluation.recorded",
            ("model", model),
            {
                "evaluator": "jury:mission-review@2",
                "subject_event_id": outcome["event_id"],
                "dimension": "correctness",
                "verdict": verdict,
                "score": round(rng.uniform(0.3, 1.0), 2),
                "rationale": "Compared the outcome with the criteria and the attached evidence.",
            },
            after=(5, 60),
            causation_id=outcome["event_id"],
        )
        pending = list(mission.evidence.items())
        if not failure and len(pending) >= 2 and self._override_due(mission):
            self._close_by_hand(mission, pending, summary)
            return
        held_back = pending.pop() if pending and not failure and rng.random() < 0.1 else None
        for criterion, evidence in pending:
            self._attach(mission, criterion, evidence)
        self._request_close(mission, status, summary)
        if held_back is not None:
            # Asked too early: the mission projection refuses this close (the criterion lacks evidence), the
            # agent attaches what it held back and asks again.
            criterion, evidence = held_back
            self._attach(mission, criterion, evidence)
            self._request_close(mission, status, summary)

    def _override_due(self, mission: MissionInProgress) -> bool:
        return (
            not self.close_override
            and mission.tenant.tenant == CLOSE_OVERRIDE_TENANT
            and mission.clock >= BASE_TIME + CLOSE_OVERRIDE_AFTER
        )

    def _close_by_hand(
        self, mission: MissionInProgress, pending: list[tuple[str, list[tuple[str, str]]]], summary: str
    ) -> None:
        """The agent asks to close before attaching its last criterion's evidence and is refused; its requester,
        who has read the refusal, closes the mission by hand. The ledger records that as a fact; the mission
        projection accepts a human's close, and the auditor's `missions-closed-without-evidence` finds it."""
        *attached, (missing, _) = pending
        for criterion, evidence in attached:
            self._attach(mission, criterion, evidence)
        request = self._request_close(mission, "completed", summary)
        closed = self._mission_event(
            mission,
            "mission.closed",
            ("human", mission.requester),
            {
                "status": "completed",
                "summary": "Closed by hand: the work is done, I checked it myself; no time to chase the evidence.",
                "request_event_id": request["event_id"],
            },
            after=(600, 1800),
            awaits_projections=True,
        )
        self.close_override = {
            "tenant": mission.tenant.tenant,
            "mission_id": mission.mission_id,
            "criterion_id": missing,
            "closed_by": mission.requester,
            "event_id": closed["event_id"],
        }

    def _request_close(self, mission: MissionInProgress, status: str, summary: str) -> dict[str, Any]:
        return self._mission_event(
            mission, "mission.close.requested", ("agent", mission.owner), {"status": status, "summary": summary}
        )

    def _attach(self, mission: MissionInProgress, criterion: str, evidence: list[tuple[str, str]]) -> None:
        for event_id, kind in evidence:
            self._mission_event(
                mission,
                "evidence.attached",
                ("agent", mission.owner),
                {
                    "criterion_id": criterion,
                    "evidence_event_id": event_id,
                    "kind": kind,
                    "note": f"Shows that {criterion} is met.",
                },
                after=(0.5, 5),
                causation_id=event_id,
            )
