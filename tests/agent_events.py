"""Builders of realistic, schema-valid submissions about agents, missions, tools and scopes, for tests.

Each returns plain submission dicts (or lists of them, in the order a real system emits them) that the real
append path accepts. Ids are drawn from one counter so that builders can be mixed freely in one log.
"""

from __future__ import annotations

import itertools
from typing import Any

DIGEST = "sha256:" + "5e" * 32
_ids = itertools.count()


def _next(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def grant(agent: str, tool: str, level: str, *, tenant: str = "acme") -> dict[str, Any]:
    """A human grants `tool` at `level`."""
    return {
        "tenant": tenant,
        "stream": f"agent/{agent}",
        "type": "scope.granted",
        "actor": {"kind": "human", "id": "ops:alice"},
        "agent_id": agent,
        "payload": {"tool": tool, "level": level, "reason": "onboarding by the platform team"},
    }


def tool_call(
    agent: str, tool: str, ok: bool, *, mission: str = "m-1", tenant: str = "acme", level: str = "sandbox"
) -> list[dict[str, Any]]:
    """An agent's call of `tool` in `mission`, and the tool's report of it (completed or failed)."""
    call_id = _next("call")
    context = {"tenant": tenant, "stream": f"mission/{mission}", "agent_id": agent, "mission_id": mission}
    result: dict[str, Any] = {"call_id": call_id, "tool": tool, "duration_ms": 700}
    if ok:
        result["output_digest"] = DIGEST
    else:
        result |= {"error_kind": "execution_error", "message": "health checks failed", "retryable": False}
    return [
        context
        | {
            "type": "tool.call.requested",
            "actor": {"kind": "agent", "id": agent},
            "payload": {"call_id": call_id, "tool": tool, "level": level, "arguments": {"target": "billing"}},
        },
        context
        | {
            "type": "tool.call.completed" if ok else "tool.call.failed",
            "actor": {"kind": "tool", "id": f"tool:{tool}"},
            "payload": result,
        },
    ]


def mission_opened(mission: str, owner: str, *, tenant: str = "acme") -> list[dict[str, Any]]:
    """A mission with one done criterion, `c-tests`, that needs tool output as evidence."""
    context = {"tenant": tenant, "stream": f"mission/{mission}", "agent_id": owner, "mission_id": mission}
    return [
        context
        | {
            "type": "mission.opened",
            "actor": {"kind": "human", "id": "ops:alice"},
            "payload": {"title": f"Fix {mission}", "objective": "Make the flaky suite pass", "owner_agent_id": owner},
        },
        context
        | {
            "type": "mission.criteria.set",
            "actor": {"kind": "human", "id": "ops:alice"},
            "payload": {
                "criteria": [
                    {"criterion_id": "c-tests", "description": "the suite passes", "evidence_kinds": ["tool_output"]}
                ]
            },
        },
    ]


def evidence(mission: str, agent: str, cited_event_id: str, *, tenant: str = "acme") -> dict[str, Any]:
    return {
        "tenant": tenant,
        "stream": f"mission/{mission}",
        "type": "evidence.attached",
        "actor": {"kind": "agent", "id": agent},
        "agent_id": agent,
        "mission_id": mission,
        "payload": {"criterion_id": "c-tests", "evidence_event_id": cited_event_id, "kind": "tool_output"},
    }


def close_requested(mission: str, agent: str, *, tenant: str = "acme", event_id: str | None = None) -> dict[str, Any]:
    submission = {
        "tenant": tenant,
        "stream": f"mission/{mission}",
        "type": "mission.close.requested",
        "actor": {"kind": "agent", "id": agent},
        "agent_id": agent,
        "mission_id": mission,
        "payload": {"status": "completed", "summary": "the suite is green"},
    }
    if event_id is not None:
        submission["event_id"] = event_id
    return submission


def memory_written(
    memory_id: str, agent: str, *, tenant: str = "acme", mission: str = "m-1", scope: str = "tenant"
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "stream": f"mission/{mission}",
        "type": "memory.written",
        "actor": {"kind": "agent", "id": agent},
        "agent_id": agent,
        "mission_id": mission,
        "payload": {"memory_id": memory_id, "key": "runbook/deploy", "content": f"{tenant} notes", "scope": scope},
    }
