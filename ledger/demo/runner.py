"""The demo day on an open ledger: append the planned submissions in batches with the governance loop beside
them, then count what the sealed log holds.

The projections answer before any submission that reacts to their decisions, and once more at the end of the
day; their decisions go back in through the same append path. The tally counts the log, not the plan, and names
any answer the plan did not expect as a surprise. It only ever deletes a directory that carries its own marker
file, and it never prints.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ledger.demo.plan import PlannedSubmission
from ledger.demo.summary import DemoSummary, RefusalSeen, SealSeen, ToolCallTally
from ledger.errors import ConfigError, DuplicateEventId, SubmissionRefused, UsageError
from ledger.sdk import Ledger
from ledger.sequencer import Outcome

MARKER_FILENAME = ".agent-ledger-demo"
"""A file in the data dir saying the demo made it, so a rerun may wipe it (and nothing else)."""

BATCH_SIZE = 100
Progress = Callable[[int, int], None]


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
    """Consecutive runs of at most `size` submissions that share one producer tenant. A submission that awaits
    the projections starts a new run, and so does a resend: on Kafka two submissions with one event_id in flight
    at once cannot be told apart when their answers come back."""
    batch: list[PlannedSubmission] = []
    event_ids: set[object] = set()
    for planned in plan:
        event_id = planned.raw.get("event_id") if isinstance(planned.raw, dict) else None
        if batch and (
            len(batch) >= size
            or planned.producer_tenant != batch[0].producer_tenant
            or planned.awaits_projections
            or (event_id is not None and event_id in event_ids)
        ):
            yield batch
            batch, event_ids = [], set()
        batch.append(planned)
        event_ids.add(event_id)
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
        return
    summary.appended += 1
    if expected is not None:
        summary.surprises.append(f"{planned.label}: appended as seq {outcome.seq}, expected {expected}")


def append_day(
    ledger: Ledger, plan: Sequence[PlannedSubmission], summary: DemoSummary, on_progress: Progress | None = None
) -> None:
    """Append the day, batch by batch; before a submission that reacts to the projections' decisions, let them
    decide (closures, refused closes, trust and scope changes), each decision once, through the same append
    path. The caller catches them up once more at the end of the day."""
    projections = ledger.projections()  # stores under <data>/consumers, where `agent-ledger consume` looks
    done = 0
    for batch in _batches(plan, BATCH_SIZE):
        if batch[0].awaits_projections:
            projections.catch_up()
        outcomes = ledger.append_batch([planned.raw for planned in batch], tenant=batch[0].producer_tenant)
        for planned, outcome in zip(batch, outcomes, strict=True):
            _check_outcome(planned, outcome, summary)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(plan))


def expect_refusals_recorded(plan: Sequence[PlannedSubmission], summary: DemoSummary) -> None:
    """Every planned bad input must sit in the rejected log with its reason."""
    for expected in (planned for planned in plan if planned.expected_refusal):
        if summary.refusals_recorded[expected.expected_refusal or ""] == 0:
            summary.surprises.append(f"no {expected.expected_refusal} refusal was recorded for: {expected.label}")


def read_seals(ledger: Ledger) -> list[SealSeen]:
    """Each partition's signed checkpoints: how many, and the latest one's tree size and root."""
    seals = []
    for partition in range(ledger.log.partition_count):
        checkpoints = ledger.checkpoints(partition)
        if not checkpoints:
            if ledger.log.size(partition):
                raise ConfigError(f"partition {partition} of the demo ledger has events but no checkpoint")
            continue
        latest = checkpoints[-1]  # a tlog-checkpoint note: origin, tree size, root hash, then the signature
        seals.append(SealSeen(partition, len(checkpoints), latest.tree_size, latest.note.splitlines()[2]))
    return seals


def tally(ledger: Ledger, summary: DemoSummary) -> None:
    """Count what the ledger holds (not what was planned): events, missions, tool calls, agents, memory."""
    statuses: dict[tuple[str, str], str] = {}
    for partition in range(ledger.log.partition_count):
        for record in ledger.records(partition):
            _count(record.envelope(), summary, statuses)
    for (tenant, _), status in statuses.items():
        summary.missions_by_tenant.setdefault(tenant, Counter())[status] += 1


def _count(envelope: dict[str, object], summary: DemoSummary, statuses: dict[tuple[str, str], str]) -> None:
    tenant, event_type = str(envelope["tenant"]), str(envelope["type"])
    payload: dict[str, object] = envelope["payload"]  # type: ignore[assignment]
    actor: dict[str, str] = envelope["actor"]  # type: ignore[assignment]
    occurred_at = str(envelope["occurred_at"])
    summary.events += 1
    summary.first_occurred_at = min(summary.first_occurred_at or occurred_at, occurred_at)
    summary.last_occurred_at = max(summary.last_occurred_at, occurred_at)
    summary.events_by_tenant.setdefault(tenant, Counter())[event_type] += 1
    if actor["id"].startswith("projection:"):
        summary.decisions_by_type[event_type] += 1
    calls = summary.tool_calls.setdefault(tenant, ToolCallTally())
    if event_type == "agent.registered":
        summary.agents_by_tenant[tenant] = summary.agents_by_tenant.get(tenant, 0) + 1
    elif event_type == "policy.published" and tenant not in summary.first_policy:
        content: dict[str, object] = payload["content"]  # type: ignore[assignment]
        description = str(content.get("description", "")).removeprefix(f"{tenant}: ")
        summary.first_policy[tenant] = f"{payload['name']} v{payload['version']}: {description}"
    elif event_type == "mission.opened":
        statuses[(tenant, str(envelope["mission_id"]))] = "open"
    elif event_type == "mission.closed":
        statuses[(tenant, str(envelope["mission_id"]))] = str(payload["status"])
    elif event_type == "mission.close.refused":
        summary.close_refusals += 1
    elif event_type == "memory.written":
        summary.memory_items += 1
    elif event_type == "model.output.recorded":
        summary.model_outputs += 1
    elif event_type == "outcome.recorded":
        summary.outcomes[str(payload["outcome"])] += 1
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
    elif event_type == "policy.decision" and payload["decision"] == "deny" and payload.get("call_id"):
        calls.denied_by_policy += 1  # a denied call; an `authorize` question names no call
