"""Run the demo day end to end: append the planned submissions in batches on the embedded default, seal,
reopen read-only, verify with the pinned key, and summarise what the ledger itself holds.

The summary counts the sealed log, not the plan, and names any answer the plan did not expect as a surprise.
It only ever deletes a directory that carries its own marker file, and it never prints.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.checkpoint import open_checkpoint
from ledger.clock import format_timestamp
from ledger.config import Settings
from ledger.demo.cast import DEMO_SEED, REVISED_AGENT, TENANTS
from ledger.demo.plan import PlannedSubmission
from ledger.demo.scenario import ScenarioBuilder
from ledger.errors import ConfigError, DuplicateEventId, SubmissionRefused, UsageError
from ledger.keys import SignerKey, load_verifier, write_key_pair
from ledger.log.embedded import DB_FILE
from ledger.sdk import Ledger
from ledger.sequencer import Outcome
from ledger.verify import VerifyReport

MARKER_FILENAME = ".agent-ledger-demo"
"""A file in the data dir saying the demo made it, so a rerun may wipe it (and nothing else)."""

BATCH_SIZE = 100
DEMO_KEY_NAME = "demo.agent-ledger.local"


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


@dataclass
class DemoSummary:
    """What the demo did, read back from the sealed ledger; the CLI prints it."""

    data_dir: Path
    db_path: Path
    private_key_path: Path
    verifier_key_path: Path
    scale: int
    submissions: int = 0
    events: int = 0
    append_seconds: float = 0.0
    decisions: int = 0  # events the projections appended
    decisions_by_type: Counter[str] = field(default_factory=Counter)
    projection_seconds: float = 0.0
    verify_seconds: float = 0.0
    first_occurred_at: str = ""
    last_occurred_at: str = ""
    events_by_tenant: dict[str, Counter[str]] = field(default_factory=dict)
    agents_by_tenant: dict[str, int] = field(default_factory=dict)
    missions_by_tenant: dict[str, Counter[str]] = field(default_factory=dict)
    tool_calls: dict[str, ToolCallTally] = field(default_factory=dict)
    close_refusals: int = 0
    memory_items: int = 0
    refusals: list[RefusalSeen] = field(default_factory=list)
    refusals_recorded: Counter[str] = field(default_factory=Counter)
    surprises: list[str] = field(default_factory=list)
    duplicate: dict[str, Any] = field(default_factory=dict)
    handoff_race: dict[str, Any] = field(default_factory=dict)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    revision: dict[str, str] = field(default_factory=dict)
    log_id: str = ""
    checkpoints: int = 0
    checkpoint_tree_size: int = 0
    checkpoint_root: str = ""
    checkpoint_note: str = ""
    verifier_key: str = ""
    verify_report: VerifyReport = field(default_factory=VerifyReport)

    @property
    def verified(self) -> bool:
        return self.verify_report.events == self.events and not self.surprises


def prepare_demo_dir(data_dir: Path) -> None:
    """Start fresh: wipe a directory the demo made earlier, refuse any other non-empty one, leave a marker."""
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"{data_dir} is not a directory; pass another --data")
    if data_dir.exists():
        entries = list(data_dir.iterdir())
        if entries and not (data_dir / MARKER_FILENAME).is_file():
            raise UsageError(f"{data_dir} is not a demo directory; pass another --data")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER_FILENAME).write_text(
        "Made by `agent-ledger demo`; the next demo run deletes everything in this directory.\n"
    )


def _batches(plan: Sequence[PlannedSubmission], size: int) -> Iterator[list[PlannedSubmission]]:
    """Consecutive runs of at most `size` submissions that share one producer tenant."""
    batch: list[PlannedSubmission] = []
    for planned in plan:
        if batch and (len(batch) >= size or planned.producer_tenant != batch[0].producer_tenant):
            yield batch
            batch = []
        batch.append(planned)
    if batch:
        yield batch


def _check_outcome(planned: PlannedSubmission, outcome: Outcome, summary: DemoSummary) -> None:
    expected = planned.expected_refusal
    if isinstance(outcome, SubmissionRefused):
        if outcome.reason_code != expected:
            summary.surprises.append(f"refused with {outcome.reason_code}, expected {expected}: {outcome}")
            return
        summary.refusals.append(RefusalSeen(outcome.reason_code, planned.label or "", outcome.message))
        if isinstance(outcome, DuplicateEventId):
            summary.duplicate = dict(outcome.original_receipt)
    elif expected is not None:
        summary.surprises.append(f"{planned.label}: appended as seq {outcome.seq}, expected {expected}")


def run_demo(
    data_dir: Path,
    *,
    scale: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int = DEMO_SEED,
) -> DemoSummary:
    """Run the demo day into a fresh `data_dir`, seal it, verify it read-only and summarise the ledger.

    Raises UsageError for a non-demo, non-empty directory and VerificationFailed if the sealed log does not
    verify. `on_progress(done, total)` is called after every appended batch.
    """
    if scale < 1:
        raise UsageError(f"--scale must be at least 1, not {scale}")
    data_dir = Path(data_dir)
    prepare_demo_dir(data_dir)
    settings = Settings(data_dir=data_dir, keys_dir=data_dir / "keys")
    if not settings.private_key_path.exists():
        write_key_pair(settings.key_dir, SignerKey.generate(DEMO_KEY_NAME))
    builder = ScenarioBuilder(seed, scale, max_payload_bytes=settings.limits.max_payload_bytes)
    plan = builder.plan()
    summary = DemoSummary(
        data_dir=data_dir,
        db_path=data_dir / DB_FILE,
        private_key_path=settings.private_key_path,
        verifier_key_path=settings.verifier_key_path,
        scale=scale,
        submissions=len(plan),
    )

    started = time.perf_counter()
    done = 0
    with Ledger.open(settings) as ledger:
        for batch in _batches(plan, BATCH_SIZE):
            outcomes = ledger.append_batch([planned.raw for planned in batch], tenant=batch[0].producer_tenant)
            for planned, outcome in zip(batch, outcomes, strict=True):
                _check_outcome(planned, outcome, summary)
            done += len(batch)
            if on_progress is not None:
                on_progress(done, len(plan))
        summary.append_seconds = time.perf_counter() - started
        # The governance loop: the projections fold the day and append their decisions (closures and refused
        # closes, trust changes, scope narrowed or widened) through the same append path, each once.
        started = time.perf_counter()
        before = ledger.log.size(0)
        ledger.projections().catch_up()  # stores under <data>/consumers, where `agent-ledger consume` looks
        summary.decisions = ledger.log.size(0) - before
        summary.projection_seconds = time.perf_counter() - started

    started = time.perf_counter()
    with Ledger.open(settings, create=False, read_only=True) as ledger:
        verifier = load_verifier(settings.verifier_key_path)
        summary.verify_report = ledger.verify(verifier)
        _tally(ledger, summary)
        checkpoints = ledger.checkpoints(0)
        if not checkpoints:
            raise ConfigError(f"the demo ledger in {data_dir} has no checkpoint after closing")
        latest = checkpoints[-1]
        summary.log_id = ledger.log.log_id
        summary.checkpoints = len(checkpoints)
        summary.checkpoint_tree_size = latest.tree_size
        summary.checkpoint_note = latest.note
        summary.checkpoint_root = latest.note.splitlines()[2]
        open_checkpoint(latest.note, verifier)  # raises unless the pinned key signed it
        summary.verifier_key = verifier.text()
        summary.refusals_recorded = Counter(rejection.reason_code for rejection in ledger.rejections(1000))
    summary.verify_seconds = time.perf_counter() - started

    summary.handoff_race = {k: v for k, v in builder.handoff_race.items() if k != "handoffs"}
    summary.handoffs = list(builder.handoff_race.get("handoffs", []))
    tenant, agent_id, model = REVISED_AGENT
    previous = next(a.model for spec in TENANTS if spec.tenant == tenant for a in spec.agents if a.agent_id == agent_id)
    summary.revision = {
        "tenant": tenant,
        "agent_id": agent_id,
        "from": previous,
        "to": model,
        "at": format_timestamp(builder.revision_at),
    }
    for expected in (planned for planned in plan if planned.expected_refusal):
        if summary.refusals_recorded[expected.expected_refusal or ""] == 0:
            summary.surprises.append(f"no {expected.expected_refusal} refusal was recorded for: {expected.label}")
    return summary


def _tally(ledger: Ledger, summary: DemoSummary) -> None:
    """Count what the ledger holds (not what was planned): events, missions, tool calls, agents, memory."""
    statuses: dict[tuple[str, str], str] = {}
    for record in ledger.records():
        envelope = record.envelope()
        tenant, event_type, payload = envelope["tenant"], envelope["type"], envelope["payload"]
        summary.events += 1
        summary.first_occurred_at = min(summary.first_occurred_at or envelope["occurred_at"], envelope["occurred_at"])
        summary.last_occurred_at = max(summary.last_occurred_at, envelope["occurred_at"])
        summary.events_by_tenant.setdefault(tenant, Counter())[event_type] += 1
        if envelope["actor"]["id"].startswith("projection:"):
            summary.decisions_by_type[event_type] += 1
        calls = summary.tool_calls.setdefault(tenant, ToolCallTally())
        if event_type == "agent.registered":
            summary.agents_by_tenant[tenant] = summary.agents_by_tenant.get(tenant, 0) + 1
        elif event_type == "mission.opened":
            statuses[(tenant, envelope["mission_id"])] = "open"
        elif event_type == "mission.closed":
            statuses[(tenant, envelope["mission_id"])] = payload["status"]
        elif event_type == "mission.close.refused":
            summary.close_refusals += 1
        elif event_type == "memory.written":
            summary.memory_items += 1
        elif event_type == "tool.call.requested":
            calls.requested += 1
        elif event_type == "tool.call.completed":
            calls.completed += 1
        elif event_type == "tool.call.failed":
            calls.failed += 1
        elif event_type == "approval.requested":
            calls.needed_approval += 1
        elif event_type == "approval.granted":
            calls.approved += 1
        elif event_type == "approval.denied":
            calls.denied_by_human += 1
        elif event_type == "policy.decision" and payload["decision"] == "deny":
            calls.denied_by_policy += 1
    for (tenant, _), status in statuses.items():
        summary.missions_by_tenant.setdefault(tenant, Counter())[status] += 1
