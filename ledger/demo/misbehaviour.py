"""The bad inputs a real deployment also receives, planned into the demo day at fixed points of it: a resent
approval, a cut-off body, a misspelt type, forgeries of actor, seq and tenant, and an oversized payload.

Each one carries the reason code the ledger must refuse it with, so the runner can tell an expected refusal
from a surprise. It plans them with `SubmissionPlan.add`, so they never move a stream's head, and it never
plans an input that the ledger should accept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from ledger.clock import format_timestamp
from ledger.demo.cast import BASE_TIME, text_digest
from ledger.demo.plan import PlannedSubmission, SubmissionPlan
from ledger.sequencer import RawSubmission


def plan_bad_inputs(plan: SubmissionPlan, *, resend: dict[str, Any] | None, max_payload_bytes: int) -> None:
    """Plan the bad inputs after the rest of the day: `resend` is a submission to send again 30 s after it."""
    span = (plan.latest_at() - BASE_TIME).total_seconds()

    def moment(fraction: float) -> datetime:
        return BASE_TIME + timedelta(seconds=span * fraction)

    if resend is not None:
        resent_at = datetime.fromisoformat(resend["occurred_at"].replace("Z", "+00:00"))
        resent_at += timedelta(seconds=30)
        plan.add(
            resent_at,
            PlannedSubmission(
                dict(resend),
                format_timestamp(resent_at),
                "duplicate_event_id",
                label="the approval UI resends a grant after a timeout (same event_id)",
            ),
        )
    acme_mission = "m-0003"
    base = {
        "tenant": "acme",
        "stream": f"mission/{acme_mission}",
        "mission_id": acme_mission,
        "agent_id": "a-coder-7",
    }

    def submission(
        fraction: float, event_type: str, actor: tuple[str, str], payload: dict[str, Any], **sequencer_fields: Any
    ) -> dict[str, Any]:
        """A submission on the acme mission's stream, with a seeded event id for its moment of the day."""
        return {
            **base,
            "event_id": plan.event_id(moment(fraction)),
            "type": event_type,
            "actor": {"kind": actor[0], "id": actor[1]},
            **sequencer_fields,
            "payload": payload,
        }

    def bad(fraction: float, reason: str, label: str, raw: RawSubmission, producer: str | None = None) -> None:
        at = moment(fraction)
        plan.add(at, PlannedSubmission(raw, format_timestamp(at), reason, producer, label))

    complete = submission(
        0.2,
        "tool.call.completed",
        ("tool", "ci-gateway"),
        {
            "call_id": "call-00009",
            "tool": "ci.run_tests",
            "output_digest": text_digest("cut off"),
            "duration_ms": 5120,
        },
    )
    bad(0.2, "malformed_json", "a tool gateway's request body is cut off mid-stream", orjson.dumps(complete)[:137])
    bad(
        0.35,
        "unknown_type",
        "a harness sends the misspelt type 'tool.call.complete'",
        {**complete, "event_id": plan.event_id(moment(0.35)), "type": "tool.call.complete"},
    )
    bad(
        0.5,
        "schema_violation",
        "an agent reports tool output itself, posing as the tool",
        {**complete, "event_id": plan.event_id(moment(0.5)), "actor": {"kind": "agent", "id": "a-coder-7"}},
    )
    bad(
        0.6,
        "schema_violation",
        "an approval UI sends a denial without the reason",
        submission(0.6, "approval.denied", ("human", "h-bob"), {"approval_id": "appr-0002"}),
    )
    blob = "x" * (max_payload_bytes + 4096)
    bad(
        0.7,
        "oversized",
        "an agent pastes a whole log file into a memory write",
        submission(
            0.7,
            "memory.written",
            ("agent", "a-coder-7"),
            {"memory_id": "mem-huge", "key": "ci log", "content": blob, "scope": "mission"},
        ),
    )
    bad(
        0.8,
        "sequencer_field",
        "a producer tries to choose its own seq and hash",
        submission(
            0.8,
            "mission.step.recorded",
            ("agent", "a-coder-7"),
            {"step_id": "s-9", "summary": "Rewrite history.", "status": "completed"},
            seq=1,
            hash="sha256:" + "0" * 64,
        ),
    )
    bad(
        0.9,
        "wrong_tenant",
        "a globex producer key writes into tenant acme",
        submission(
            0.9,
            "memory.read",
            ("agent", "a-analyst-1"),
            {"memory_ids": ["mem-00001"], "purpose": "Peek at a competitor's memory."},
        ),
        producer="globex",
    )
