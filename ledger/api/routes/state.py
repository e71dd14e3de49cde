"""What the projections know, over HTTP: authorize a tool call, read a mission, an agent's trust and scopes, and
the context packet an agent may use.

Each route catches its projections up with the log first, so a client reads its own writes; `authorize` then
records its answer as a `policy.decision` event exactly as `agent-ledger authorize` does. Every route is scoped
to the path tenant by `auth.allow` (DESIGN guarantee 9) and never reads another tenant's entities.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from consumers.service import ProjectionService
from ledger.api.auth import allow
from ledger.api.errors import ERROR_RESPONSES, NotFound
from ledger.api.service import Service, ServiceDep
from ledger.clock import normalise_timestamp, utc_now
from schemas.envelope import EventIdStr, IdStr, Receipt
from schemas.payloads.base import Level

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["state"], responses=ERROR_RESPONSES)


@contextmanager
def caught_up(service: Service, *names: str) -> Iterator[ProjectionService]:
    """The projections `names`, caught up with the log, held for the caller's reads (and `authorize`'s append).

    The projection stores are SQLite and the Kafka reader is one consumer, so they are used under `service.lock`.
    A catch-up may append derived decisions (a scope narrowed, a close refused), and `authorize` appends its
    decision, through the embedded sequencer, which producers use under `append_lock`: so that lock is held too,
    always taken after `service.lock`."""
    with ExitStack() as held:
        held.enter_context(service.lock)
        if service.backend == "embedded":
            held.enter_context(service.append_lock)
        service.projections.catch_up(*names)
        yield service.projections


# -- models ---------------------------------------------------------------------------------------------------


class _State(BaseModel):
    # A projection may grow a field before this contract names it: pass it through rather than drop it.
    model_config = ConfigDict(extra="allow")


class AuthorizeRequest(BaseModel):
    """May `agent_id` call `tool` at `level`? The same question as `agent-ledger authorize`."""

    model_config = ConfigDict(extra="forbid")

    agent_id: IdStr = Field(description="The agent asking.")
    tool: IdStr = Field(description="The tool or capability it wants to call, e.g. deploy.service.")
    level: Level = Field(default="sandbox", description="The level of the call.")
    call_id: IdStr | None = Field(default=None, description="The tool call decided on, recorded in the decision.")
    request_event_id: EventIdStr | None = Field(
        default=None,
        description="The tool.call.requested event this answers: the decision's causation_id and request_event_id.",
    )
    at: str | None = Field(
        default=None,
        description="A past RFC 3339 time: answer 'could it have called it then?' from the grant history, and "
        "record nothing.",
    )
    dry_run: bool = Field(default=False, description="Answer now without recording the policy.decision event.")


class AuthorizeAnswer(BaseModel):
    """The answer, the rule that gave it, the grant it rests on, and the receipt of the recorded decision."""

    decision: Literal["allow", "deny", "escalate"]
    rule: str = Field(description="The policy rule that decided, e.g. scope.within_grant.")
    reason: str = Field(description="One sentence saying why.")
    tool: str
    level: Level
    at: str = Field(description="The time the answer is for (now, or the `at` asked).")
    granted_level: Level | None = Field(description="The highest level granted for the tool at that time.")
    limits: dict[str, float] = Field(description="The grant's limits.")
    expires_at: str | None = Field(description="When the grant lapses, if it does.")
    policy_id: str = Field(description="The policy in force for the tenant.")
    policy_version: int
    recorded: Receipt | None = Field(
        default=None, description="Receipt of the policy.decision event; absent with `at` or `dry_run`."
    )


class MissionState(_State):
    """The mission projection's view of one mission (`projections.missions.mission_view`)."""

    tenant: str
    mission_id: str
    title: str | None
    objective: str | None
    status: str = Field(description="e.g. open, in_progress, blocked, closed or completed.")
    owner_agent_id: str | None = Field(description="The agent that owns the mission now (after hand-offs).")
    opened_at: str | None
    updated_at: str | None
    criteria: list[dict[str, Any]] = Field(
        description="Done criteria with the evidence attached to each, whether it counts, and approval."
    )
    steps: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]] = Field(description="Each call with its result and approval state.")
    unresolved_tool_calls: list[str] = Field(description="call_ids still lacking a result or a needed approval.")
    pending_approvals: list[str] = Field(description="approval_ids requested and not yet answered.")
    handoffs: list[dict[str, Any]]
    refusals: list[dict[str, Any]] = Field(description="Close requests refused, with their reasons.")
    closure: dict[str, Any] | None
    anomalies: list[dict[str, Any]] = Field(description="Events that did not fit the mission's state machine.")


class Evidence(_State):
    """Successes and failures, decayed to `last_at`, and how many events they rest on."""

    successes: float
    failures: float
    count: int
    last_at: str | None


class TrustDimension(_State):
    score: float = Field(description="The trust score in [0, 1] as of the evidence's last_at.")
    recorded_score: float = Field(description="The score last recorded in a trust.changed event.")
    evidence: Evidence


class AgentTrust(_State):
    """The trust projection's scores of one agent, per dimension; empty until evidence about it arrives."""

    tenant: str
    agent_id: str
    dimensions: dict[str, TrustDimension]


class ToolGrant(_State):
    tool: str
    level: Level | None = Field(description="The highest level granted now; null when revoked.")
    limits: dict[str, float]
    expires_at: str | None
    changed_at: str | None
    successes: int = Field(description="Successful calls since the last change.")
    failures: int = Field(description="Failed calls (and violations) since the last change.")
    success_event_ids: list[str]
    failure_event_ids: list[str]
    history: list[dict[str, Any]] = Field(
        description="Every change of the grant: at, level, limits, expires_at, event_id (its cause), why."
    )


class AgentScopes(_State):
    """The scope projection's grants of one agent, with its tool reliability and calls awaiting a result."""

    tenant: str
    agent_id: str
    tools: dict[str, ToolGrant]
    reliability: Evidence
    open_calls: list[list[str]] = Field(description="[call_id, tool] pairs still awaiting a result.")


class MemoryItem(_State):
    """One memory item with its provenance (`projections.memory.MemoryItem`)."""

    tenant: str
    memory_id: str
    write: dict[str, Any] | None = Field(
        description="The write that counts: event_id, written_at, actor, key, scope, content (or its digest and "
        "uri), source_event_ids, expires_at."
    )
    ignored_write_event_ids: list[str]
    revocations: list[dict[str, Any]]
    reads: list[dict[str, Any]]


class ContextPacket(BaseModel):
    """The memory an agent may use now (or at `at`): in scope, not stale, revoked or superseded, newest first."""

    tenant: str
    agent_id: str
    mission_id: str | None
    at: str
    policy_id: str = Field(description="The policy whose memory rules (TTL, packet size) shaped the packet.")
    items: list[MemoryItem]


# -- routes ---------------------------------------------------------------------------------------------------


@router.post(
    "/authorize",
    dependencies=[Depends(allow("authorize"))],
    summary="May this agent call this tool? Answered from the scope grants and recorded as policy.decision",
)
def authorize(tenant: str, question: AuthorizeRequest, service: ServiceDep) -> AuthorizeAnswer:
    at = None if question.at is None else normalise_timestamp(question.at, "at")
    with caught_up(service, "scope") as projections:
        answer = projections.authorize(
            tenant,
            question.agent_id,
            question.tool,
            question.level,
            at=at,
            record=not question.dry_run,
            call_id=question.call_id,
            request_event_id=question.request_event_id,
        )
    return AuthorizeAnswer.model_validate(answer.as_json())


@router.get(
    "/missions/{mission_id}",
    dependencies=[Depends(allow("read_state"))],
    summary="A mission's state: criteria and evidence, calls, approvals, hand-offs, refusals",
)
def mission(tenant: str, mission_id: str, service: ServiceDep) -> MissionState:
    with caught_up(service, "mission") as projections:
        view = projections.mission(tenant, mission_id)
    if view is None:
        raise NotFound(f"no mission '{mission_id}' in this tenant")
    return MissionState.model_validate(view)


@router.get(
    "/agents/{agent_id}/trust",
    dependencies=[Depends(allow("read_state"))],
    summary="An agent's trust scores by dimension",
)
def trust(tenant: str, agent_id: str, service: ServiceDep) -> AgentTrust:
    with caught_up(service, "trust", "scope") as projections:
        data, scope = projections.trust(tenant, agent_id), projections.scope(tenant, agent_id)
    if data is None and scope is None:
        raise NotFound(_unknown_agent(agent_id))
    # An agent with grants but no evidence yet has no trust entity: that is no score, not an unknown agent.
    return AgentTrust.model_validate(data or {"tenant": tenant, "agent_id": agent_id, "dimensions": {}})


@router.get(
    "/agents/{agent_id}/scopes",
    dependencies=[Depends(allow("read_state"))],
    summary="An agent's scope grants: tools, levels, limits and the history of each",
)
def scopes(tenant: str, agent_id: str, service: ServiceDep) -> AgentScopes:
    with caught_up(service, "scope", "trust") as projections:
        data, trusted = projections.scope(tenant, agent_id), projections.trust(tenant, agent_id)
    if data is None and trusted is None:
        raise NotFound(_unknown_agent(agent_id))
    empty = {"tenant": tenant, "agent_id": agent_id, "tools": {}, "reliability": _NO_EVIDENCE, "open_calls": []}
    return AgentScopes.model_validate(data or empty)


@router.get(
    "/agents/{agent_id}/context",
    dependencies=[Depends(allow("context"))],
    summary="The context packet: the memory this agent may use in a mission, now or at a past time",
)
def context(
    tenant: str,
    agent_id: str,
    service: ServiceDep,
    mission_id: Annotated[str | None, Query(description="The mission the agent works on (none: no mission).")] = None,
    at: Annotated[str | None, Query(description="An RFC 3339 time: the packet as it was then (default now).")] = None,
) -> ContextPacket:
    # No 404 for an agent the log has not mentioned: tenant-wide memory applies to every agent of the tenant, so
    # a new agent's first packet is a real answer, and a harness need not special-case it.
    moment = utc_now() if at is None else normalise_timestamp(at, "at")
    with caught_up(service, "memory", "scope") as projections:  # the policy in force is read from the scope store
        items = projections.context_packet(tenant, agent_id, mission_id, moment)
        policy_id = projections.policy(tenant).policy_id
    return ContextPacket(
        tenant=tenant,
        agent_id=agent_id,
        mission_id=mission_id,
        at=moment,
        policy_id=policy_id,
        items=[MemoryItem.model_validate(item) for item in items],
    )


_NO_EVIDENCE: dict[str, Any] = {"successes": 0.0, "failures": 0.0, "count": 0, "last_at": None}


def _unknown_agent(agent_id: str) -> str:
    return f"no agent '{agent_id}' in this tenant: no grant and no trust evidence about it yet"
