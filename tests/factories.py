"""Submission factories for tests: small, valid, schema-checked events."""

from __future__ import annotations

import itertools
from typing import Any

_counter = itertools.count()


def step(tenant: str = "acme", mission: str = "m-1", **overrides: Any) -> dict[str, Any]:
    """A valid `mission.step.recorded` submission on the stream of `mission`."""
    number = next(_counter)
    submission: dict[str, Any] = {
        "tenant": tenant,
        "stream": f"mission/{mission}",
        "type": "mission.step.recorded",
        "actor": {"kind": "agent", "id": "a-1"},
        "agent_id": "a-1",
        "mission_id": mission,
        "occurred_at": "2026-11-25T12:00:00Z",
        "payload": {"step_id": f"s-{number}", "summary": f"step {number}", "status": "completed"},
    }
    submission.update(overrides)
    return submission
