"""One tool call of the demo day, under policy: the agent's request, the policy decision, a human approval when
the policy escalates, then the tool's own report of success or failure, retried while the error is retryable.

The decision follows the tenant's policy 'default' v3 from `cast`: an unlisted tool is denied, a level above the
tool's maximum is denied, and a production call the policy marks is escalated to a human. Only the tool reports
a result, never the agent, and no result is planned for a call that was denied.
"""

from __future__ import annotations

from typing import Any

from ledger.canonical import digest
from ledger.demo.cast import DENIAL_REASONS, POLICY_ACTOR, ROGUE_TOOLS, TOOL_ACTORS, TOOL_ERRORS, ToolStep, text_digest
from ledger.demo.plan import MissionInProgress, SubmissionPlan
from schemas.payloads.base import LEVEL_ORDER


class ToolCallPlanner(SubmissionPlan):
    """Plans tool calls inside missions; the day's set-up fills `_policy_ids` before the first call."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._policy_ids: dict[str, str] = {}
        self._call_count = 0
        self._approval_count = 0
        self.duplicate_of: dict[str, Any] | None = None  # a grant the approval UI resends later (misbehaviour)

    def _decide(self, mission: MissionInProgress, tool: str, level: str) -> tuple[str, str, str]:
        """What policy default v3 says about `tool` at `level`: (decision, rule, reason)."""
        rule = mission.tenant.policy_tools.get(tool)
        if rule is None:
            return "deny", "tools.unlisted", f"{tool} is not a tool this tenant's policy allows."
        max_level, approval = rule
        if LEVEL_ORDER[level] > LEVEL_ORDER[max_level]:
            return "deny", f"tools.{tool}.max_level", f"{tool} may run at most at {max_level}, not {level}."
        if approval and level == "production":
            return (
                "escalate",
                f"tools.{tool}.requires_approval",
                f"{tool} in production needs a human approval under policy default v3.",
            )
        return "allow", f"tools.{tool}", f"{tool} is allowed at {level} under policy default v3."

    def _tool_call(
        self, mission: MissionInProgress, step: ToolStep, *, attempt: int = 1
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Request, decide, maybe approve, then complete or fail one call: (result event, failure reason)."""
        rng, tenant, agent = self.rng, mission.tenant, mission.owner
        self._call_count += 1
        mission.last_approval = None
        call_id = f"call-{self._call_count:05d}"
        arguments = {"mission": mission.mission_id, "step": step.summary, "attempt": attempt}
        decision, rule, reason = self._decide(mission, step.tool, step.level)
        request = self._mission_event(
            mission,
            "tool.call.requested",
            ("agent", agent),
            {
                "call_id": call_id,
                "tool": step.tool,
                "arguments": arguments,
                "arguments_digest": digest(arguments),
                "level": step.level,
                "requires_approval": decision == "escalate",
                "purpose": step.summary,
            },
        )
        decided = self._policy_answer(
            mission,
            "policy.decision",
            POLICY_ACTOR,
            {
                "decision": decision,
                "tool": step.tool,
                "level": step.level,
                "call_id": call_id,
                "rule": rule,
                "policy_id": self._policy_ids[tenant.tenant],
                "policy_version": 3,
                "request_event_id": request["event_id"],
                "reason": reason,
            },
            request,
        )
        if decision == "deny":
            return None, f"policy denied {step.tool} at {step.level}"
        if decision == "escalate":
            self._approval_count += 1
            approver = rng.choice(tenant.humans)
            asked = self._policy_answer(
                mission,
                "approval.requested",
                POLICY_ACTOR,
                {
                    "approval_id": f"appr-{self._approval_count:04d}",
                    "subject": f"{step.summary} ({step.tool} in production).",
                    "call_id": call_id,
                    "tool": step.tool,
                    "level": step.level,
                    "reason": f"rule {rule}",
                    "approvers": list(tenant.humans),
                },
                decided,
            )
            if rng.random() < 0.15:
                denial = rng.choice(DENIAL_REASONS)
                self._answer_approval(mission, asked, "approval.denied", approver, denial)
                return None, f"{approver} denied {step.tool} in production: {denial}"
            granted = self._answer_approval(
                mission, asked, "approval.granted", approver, "Checked the diff and the rollback plan."
            )
            mission.last_approval = granted["event_id"]
            if self.duplicate_of is None and self._approval_count >= 6:
                self.duplicate_of = granted
        duration = rng.randint(120, 90_000)
        if rng.random() < 0.09:
            error_kind, message, retryable = rng.choice(TOOL_ERRORS)
            self._tool_report(
                mission,
                request,
                "tool.call.failed",
                duration,
                {"error_kind": error_kind, "message": message, "retryable": retryable},
            )
            if retryable and attempt < 3:
                return self._tool_call(mission, step, attempt=attempt + 1)
            return None, f"{step.tool} failed: {message}"
        output = f"{call_id} output {rng.random()}"
        completed = self._tool_report(
            mission,
            request,
            "tool.call.completed",
            duration,
            {
                "output_digest": text_digest(output),
                "output_summary": f"{step.summary}: done.",
                "output_uri": f"s3://{tenant.tenant}-tool-outputs/{mission.mission_id}/{call_id}.json",
                "output_bytes": rng.randint(200, 400_000),
            },
        )
        return completed, None

    def _answer_approval(
        self, mission: MissionInProgress, asked: dict[str, Any], event_type: str, approver: str, reason: str
    ) -> dict[str, Any]:
        """`approver` grants or denies the approval.requested `asked`, one to thirty minutes later."""
        return self._mission_event(
            mission,
            event_type,
            ("human", approver),
            {
                "approval_id": asked["payload"]["approval_id"],
                "call_id": asked["payload"]["call_id"],
                "approver_role": "on-call lead",
                "reason": reason,
            },
            after=(60, 1800),
            causation_id=asked["event_id"],
        )

    def _tool_report(
        self,
        mission: MissionInProgress,
        request: dict[str, Any],
        event_type: str,
        duration_ms: int,
        details: dict[str, Any],
    ) -> dict[str, Any]:
        """The tool's own report on the tool.call.requested `request`, once the call has taken `duration_ms`."""
        tool = request["payload"]["tool"]
        return self._mission_event(
            mission,
            event_type,
            ("tool", TOOL_ACTORS[tool.split(".")[0]]),
            {"call_id": request["payload"]["call_id"], "tool": tool, **details, "duration_ms": duration_ms},
            after=(duration_ms / 1000, duration_ms / 1000 + 2),
            causation_id=request["event_id"],
        )

    def _rogue_call(self, mission: MissionInProgress) -> None:
        """An agent reaches for a tool the policy does not list; the policy denies it and the agent moves on."""
        tool = self.rng.choice(ROGUE_TOOLS)
        self._tool_call(mission, ToolStep("Try a shortcut outside the plan", tool, "production"))
