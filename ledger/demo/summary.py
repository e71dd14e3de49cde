"""What the demo did, as read back from the ledger, its stores and the files it wrote: the record the CLI prints.

Every fact here comes from the sealed log, a projection or audit store, or a file the demo wrote and checked,
never from the plan; where the plan expected something the ledger does not bear out, that is a `surprise` and
the demo fails. Data only: no I/O and no printing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.promotion import Change, Promotion
from consumers.rebuild import RebuildResult
from ledger.bundle.verify import BundleReport
from ledger.verify import VerifyReport


@dataclass(frozen=True)
class RefusalSeen:
    """A deliberately bad input, what it stood for, and what the ledger answered."""

    reason: str
    label: str
    message: str


@dataclass
class ToolCallTally:
    requested: int = 0
    completed: int = 0
    failed: int = 0
    needed_approval: int = 0
    approved: int = 0
    denied_by_human: int = 0
    denied_by_policy: int = 0


@dataclass(frozen=True)
class ScopeMove:
    """A scope change the scope projection decided, as the log holds it, with the types of the events it cites."""

    tenant: str
    agent_id: str
    tool: str
    previous_level: str
    level: str
    reason: str
    event_id: str
    partition: int
    log_index: int
    evidence: dict[str, int]  # event type -> how many of the cited events have it


@dataclass(frozen=True)
class RefusedClose:
    """A `mission.close.refused` and, when it happened, the human `mission.closed` that overrode it."""

    tenant: str
    mission_id: str
    title: str
    requested_by: str
    request_event_id: str
    refusal_event_id: str
    reasons: list[str]
    missing_criteria: list[str]
    closed_by: str | None = None  # "human:<id>" of a by-hand close after the refusal
    closed_event_id: str | None = None


@dataclass(frozen=True)
class AuditFinding:
    """The saved query the auditor ran over the audit store, and what it says about the refused mission."""

    store: Path
    events: int  # events in the audit store when it was asked
    query: str
    rows: list[dict[str, Any]]  # every row of the saved query
    found: list[dict[str, Any]]  # its rows about the refused mission
    timeline: list[dict[str, Any]]  # the mission's close, refusal and by-hand close, per `mission-timeline`


@dataclass(frozen=True)
class BundleCheck:
    """The exported mission: the bundle file, the pinned key it was verified with, and what it proves."""

    path: Path
    verifier_key_path: Path
    size: int
    report: BundleReport
    tampered: str  # why a copy with one event changed was refused


@dataclass(frozen=True)
class AuthorizeAnswer:
    """One recorded `authorize` answer: the decision, its rule and reason, and the policy.decision event."""

    decision: str
    rule: str
    reason: str
    event_id: str


@dataclass(frozen=True)
class PolicyChange:
    """The stricter policy: its file, the shadow rebuild, the diff, the promotion and what `authorize` says."""

    policy_path: Path
    policy_name: str
    policy_version: int
    policy_id: str
    rebuild: RebuildResult
    shadow_dir: Path
    changes: list[Change]
    promotion: Promotion
    activations: list[str]  # event ids of the promotion's policy.activated, read from the log
    recorded_scope_changes: int  # scope events citing the activation, read from the log
    question: tuple[str, str, str, str]  # (tenant, agent, tool, level) asked before and after
    before: AuthorizeAnswer
    after: AuthorizeAnswer

    def changed(self, projection: str) -> list[Change]:
        return [change for change in self.changes if change.projection == projection]


@dataclass
class StateSnapshot:
    """Live trust scores and scope levels per (tenant, agent), as the projection stores hold them."""

    trust: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    scopes: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Beat:
    """One beat of the story: what happened, in one line, and the event (or check) that proves it."""

    number: int
    title: str
    happened: str
    proof: str
    proven: bool


@dataclass(frozen=True)
class SealSeen:
    """A partition's signed checkpoints at the end: how many, and the latest one's size and root."""

    partition: int
    checkpoints: int
    tree_size: int
    root: str


@dataclass
class DemoSummary:
    """What the demo did, read back from the ledger, its stores and its files; the CLI prints it."""

    data_dir: Path
    scale: int
    engine: str  # "embedded" or "kafka"
    ledger_location: str  # the SQLite file, or the Kafka bootstrap and topics
    kafka: str | None = None  # the bootstrap HOST:PORT on Kafka
    topic_prefix: str = ""  # the run's fresh topic namespace on Kafka
    private_key_path: Path = Path()
    verifier_key_path: Path = Path()
    submissions: int = 0
    appended: int = 0  # submissions the ledger accepted
    events: int = 0  # every event of the sealed log
    stage_seconds: dict[str, float] = field(default_factory=dict)
    decisions_by_type: Counter[str] = field(default_factory=Counter)  # events the projections appended
    first_occurred_at: str = ""
    last_occurred_at: str = ""
    events_by_tenant: dict[str, Counter[str]] = field(default_factory=dict)
    agents_by_tenant: dict[str, int] = field(default_factory=dict)
    first_policy: dict[str, str] = field(default_factory=dict)  # tenant -> "name vN: description" it started with
    missions_by_tenant: dict[str, Counter[str]] = field(default_factory=dict)
    tool_calls: dict[str, ToolCallTally] = field(default_factory=dict)
    close_refusals: int = 0
    memory_items: int = 0
    model_outputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: list[RefusalSeen] = field(default_factory=list)
    refusals_recorded: Counter[str] = field(default_factory=Counter)
    surprises: list[str] = field(default_factory=list)
    duplicate: dict[str, Any] = field(default_factory=dict)
    handoff_race: dict[str, Any] = field(default_factory=dict)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    revision: dict[str, str] = field(default_factory=dict)
    earned: ScopeMove | None = None
    narrowed: ScopeMove | None = None
    refused_close: RefusedClose | None = None
    audit: AuditFinding | None = None
    bundle: BundleCheck | None = None
    policy_change: PolicyChange | None = None
    state_day: StateSnapshot = field(default_factory=StateSnapshot)
    state_after: StateSnapshot = field(default_factory=StateSnapshot)
    beats: list[Beat] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # what the demo wrote, by what it is
    log_id: str = ""
    seals: list[SealSeen] = field(default_factory=list)
    verifier_key: str = ""
    verify_report: VerifyReport = field(default_factory=VerifyReport)

    @property
    def decisions(self) -> int:
        """Events the ledger's own components appended (projections, promotion, authorize), not the day's."""
        return self.events - self.appended

    @property
    def seconds(self) -> float:
        return sum(self.stage_seconds.values())

    @property
    def verified(self) -> bool:
        """The whole log verified, nothing surprised, and every beat is proven from the ledger."""
        return (
            self.verify_report.events == self.events
            and not self.surprises
            and len(self.beats) == 7
            and all(beat.proven for beat in self.beats)
        )
