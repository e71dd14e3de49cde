"""The demo day's submission plan: seeded event ids, per-stream heads, and every submission in occurred_at order.

Each scenario layer emits through `SubmissionPlan`, so one seeded generator makes every random choice, in the
order the code makes them: the same seed gives the same submissions, byte for byte. It only plans: it never
opens a ledger, reads the wall clock or touches the file system.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ledger.clock import format_timestamp
from ledger.demo.cast import TenantSpec
from ledger.sequencer import RawSubmission

EVENT_GAP_SECONDS: tuple[float, float] = (2, 45)
"""How long after a mission's previous event its next one happens, unless the event says otherwise."""


@dataclass(frozen=True)
class PlannedSubmission:
    """One submission of the scenario, with what the ledger is expected to answer.

    `expected_refusal` is the reason code a deliberately bad input must be refused with; `producer_tenant`
    is the tenant the producer's key may write (None: any); `label` says, for a bad input, what it stands for.
    `awaits_projections` marks a submission the projections must have caught up before: the first mission, so they
    know each tenant's policy before any decision (on Kafka, partitions are folded batch by batch), or a human
    who reacts to a decision they made; the runner catches them up first.
    """

    raw: RawSubmission
    occurred_at: str
    expected_refusal: str | None = None
    producer_tenant: str | None = None
    label: str | None = None
    awaits_projections: bool = False


@dataclass
class MissionInProgress:
    """The moving parts of one mission while it is being generated."""

    tenant: TenantSpec
    mission_id: str
    owner: str
    clock: datetime
    trace_id: str
    requester: str = ""  # the human who opened it
    stream: str = ""
    evidence: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # criterion -> (event_id, kind)
    last_approval: str | None = None  # the approval.granted of the latest tool call, if it needed one

    def __post_init__(self) -> None:
        self.stream = f"mission/{self.mission_id}"


class SubmissionPlan:
    """The submissions planned so far, drawn from one seeded generator; `ordered()` sorts them by occurred_at."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._planned: list[tuple[datetime, int, PlannedSubmission]] = []
        self._seq: Counter[tuple[str, str]] = Counter()

    def event_id(self, at: datetime) -> str:
        """A UUIDv7 whose time is `at` and whose random bits come from the seeded generator."""
        millis = int(at.timestamp() * 1000)
        rand = self.rng.getrandbits(74)
        value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
        return str(uuid.UUID(int=value | (rand & ((1 << 62) - 1))))

    def emit(
        self,
        at: datetime,
        tenant: str,
        stream: str,
        event_type: str,
        actor: tuple[str, str],
        payload: dict[str, Any],
        *,
        agent_id: str | None = None,
        mission_id: str | None = None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        expected_seq: int | None = None,
        expected_refusal: str | None = None,
        label: str | None = None,
        awaits_projections: bool = False,
    ) -> dict[str, Any]:
        """Plan one submission; unless it is meant to be refused, the stream's head moves on by one."""
        submission: dict[str, Any] = {
            "event_id": self.event_id(at),
            "tenant": tenant,
            "stream": stream,
            "type": event_type,
            "actor": {"kind": actor[0], "id": actor[1]},
            "occurred_at": format_timestamp(at),
            "payload": payload,
        }
        optional = {
            "agent_id": agent_id,
            "mission_id": mission_id,
            "causation_id": causation_id,
            "expected_seq": expected_seq,
            "correlation": (
                {"trace_id": trace_id, "span_id": f"{self.rng.getrandbits(64):016x}"} if trace_id else None
            ),
        }
        submission.update({key: value for key, value in optional.items() if value is not None})
        planned = PlannedSubmission(
            submission, submission["occurred_at"], expected_refusal, label=label, awaits_projections=awaits_projections
        )
        self.add(at, planned)
        if expected_refusal is None:
            self._seq[(tenant, stream)] += 1
        return submission

    def add(self, at: datetime, planned: PlannedSubmission) -> None:
        """Plan a submission as it is, at `at`; no stream head moves (for inputs the ledger must refuse)."""
        self._planned.append((at, len(self._planned), planned))

    def head(self, tenant: str, stream: str) -> int:
        """The seq the stream's head will have once everything planned so far is appended."""
        return self._seq[(tenant, stream)]

    def latest_at(self) -> datetime:
        """When the last submission planned so far happens."""
        return max(at for at, _, _ in self._planned)

    def ordered(self) -> list[PlannedSubmission]:
        """Everything planned, by occurred_at; submissions at the same moment keep the order they were planned."""
        self._planned.sort(key=lambda item: (item[0], item[1]))
        return [planned for _, _, planned in self._planned]

    def _mission_event(
        self,
        mission: MissionInProgress,
        event_type: str,
        actor: tuple[str, str],
        payload: dict[str, Any],
        *,
        after: tuple[float, float] = EVENT_GAP_SECONDS,
        causation_id: str | None = None,
        expected_seq: int | None = None,
        expected_refusal: str | None = None,
        agent_id: str | None = None,
        label: str | None = None,
        awaits_projections: bool = False,
    ) -> dict[str, Any]:
        """Plan an event on the mission's stream, a seeded `after` seconds later than its previous one."""
        mission.clock += timedelta(seconds=self.rng.uniform(*after))
        return self.emit(
            mission.clock,
            mission.tenant.tenant,
            mission.stream,
            event_type,
            actor,
            payload,
            agent_id=agent_id or mission.owner,
            mission_id=mission.mission_id,
            causation_id=causation_id,
            trace_id=mission.trace_id,
            expected_seq=expected_seq,
            expected_refusal=expected_refusal,
            label=label,
            awaits_projections=awaits_projections,
        )

    def _policy_answer(
        self, mission: MissionInProgress, event_type: str, policy: str, payload: dict[str, Any], cause: dict[str, Any]
    ) -> dict[str, Any]:
        """A policy's answer to the mission event `cause`, 10 to 200 ms after the mission's previous event."""
        return self._mission_event(
            mission, event_type, ("policy", policy), payload, after=(0.01, 0.2), causation_id=cause["event_id"]
        )
