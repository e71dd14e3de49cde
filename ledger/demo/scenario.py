"""The demo day as a whole: each tenant's policy and agents, the missions, one agent's revision, the bad inputs.

`generate_scenario` is pure: a fixed seed and a fixed clock, so the same seed and scale give the same
submissions byte for byte (only recorded_at, which the ledger sets, differs between runs). It never appends,
prints, reads the wall clock or touches the file system; `ledger.demo.runner` does the I/O.
"""

from __future__ import annotations

from datetime import timedelta

from ledger.canonical import digest
from ledger.demo.cast import (
    BASE_TIME,
    DEMO_SEED,
    MISSIONS_PER_TENANT,
    REVISED_AGENT,
    TENANTS,
    TenantSpec,
    policy_content,
    text_digest,
)
from ledger.demo.misbehaviour import plan_bad_inputs
from ledger.demo.missions import MissionPlanner
from ledger.demo.plan import PlannedSubmission
from ledger.errors import UsageError
from ledger.intake import Limits


class ScenarioBuilder(MissionPlanner):
    """Plans the whole demo day deterministically from a seed; `plan()` returns it in occurred_at order."""

    def __init__(self, seed: int = DEMO_SEED, scale: int = 1, *, max_payload_bytes: int | None = None) -> None:
        if scale < 1:
            raise UsageError(f"scale must be at least 1, not {scale}")
        super().__init__(seed)
        self.scale = scale
        self.max_payload_bytes = max_payload_bytes or Limits.max_payload_bytes

    def plan(self) -> list[PlannedSubmission]:
        for spec in TENANTS:
            self._set_up_tenant(spec)
        missions = MISSIONS_PER_TENANT * self.scale
        start = BASE_TIME + timedelta(minutes=30)
        for index in range(missions):
            for spec in TENANTS:
                begins = start + timedelta(seconds=index * 300 / self.scale + self.rng.uniform(0, 240))
                self._run_mission(spec, index, missions, begins)
        self._revise_agent()
        plan_bad_inputs(self, resend=self.duplicate_of, max_payload_bytes=self.max_payload_bytes)
        return self.ordered()

    def _set_up_tenant(self, spec: TenantSpec) -> None:
        tenant, admin = spec.tenant, spec.humans[0]
        at = BASE_TIME + timedelta(seconds=self.rng.uniform(0, 60))
        content = policy_content(spec)
        policy_id = digest(content)
        self._policy_ids[tenant] = policy_id
        published = self.emit(
            at,
            tenant,
            "policy/default",
            "policy.published",
            ("human", admin),
            {
                "policy_id": policy_id,
                "name": "default",
                "version": 3,
                "content": content,
                "source": f"file:///etc/agent-ledger/{tenant}/policies/default.toml",
                "changelog": "Production deploys and customer-facing writes need a human approval.",
            },
        )
        at += timedelta(minutes=2)
        self.emit(
            at,
            tenant,
            "policy/default",
            "policy.activated",
            ("human", admin),
            {
                "policy_id": policy_id,
                "name": "default",
                "version": 3,
                "reason": "Shadow rebuild reviewed: no scope or mission status changes.",
            },
            causation_id=published["event_id"],
        )
        for agent in spec.agents:
            at += timedelta(seconds=self.rng.uniform(20, 90))
            self.emit(
                at,
                tenant,
                f"agent/{agent.agent_id}",
                "agent.registered",
                ("human", admin),
                {
                    "name": agent.name,
                    "model": agent.model,
                    "prompt_digest": text_digest(f"system prompt of {agent.agent_id} v1"),
                    "tool_manifest": list(agent.tools),
                    "tool_manifest_digest": text_digest(",".join(agent.tools)),
                    "owner": agent.owner,
                    "role": agent.role,
                },
                agent_id=agent.agent_id,
            )
            for tool in agent.tools:  # onboarding: every manifest tool at canary at most; evidence widens nothing above
                at += timedelta(seconds=self.rng.uniform(1, 5))
                ceiling = spec.policy_tools.get(tool, ("sandbox", False))[0]
                self.emit(
                    at,
                    tenant,
                    f"agent/{agent.agent_id}",
                    "scope.granted",
                    ("human", admin),
                    {
                        "tool": tool,
                        "level": "sandbox" if ceiling == "sandbox" else "canary",
                        "reason": f"onboarding of {agent.name}: the tools of its manifest",
                    },
                    agent_id=agent.agent_id,
                )

    def _revise_agent(self) -> None:
        tenant, agent_id, model = REVISED_AGENT
        self.emit(
            self.revision_at,
            tenant,
            f"agent/{agent_id}",
            "agent.revised",
            ("human", "h-alice"),
            {
                "model": model,
                "prompt_digest": text_digest(f"system prompt of {agent_id} v2"),
                "reason": "Moved to claude-sonnet-4-5 after it passed the payments eval suite (412/412).",
            },
            agent_id=agent_id,
        )


def generate_scenario(
    seed: int = DEMO_SEED, scale: int = 1, *, max_payload_bytes: int | None = None
) -> list[PlannedSubmission]:
    """Every submission of the demo day, in occurred_at order; the same seed and scale give the same list."""
    return ScenarioBuilder(seed, scale, max_payload_bytes=max_payload_bytes).plan()
