"""`run_demo`: the whole story in stages, on the embedded default or on Kafka, read back and proven at the end.

The day is appended with the governance loop beside it (beats 1 to 4), the audit sink loads the log and a saved
query finds the refused mission (5), the mission is exported and verified offline (6), and a stricter policy is
rebuilt, diffed and promoted (7). Then the log is sealed, reopened read-only and verified with the pinned key,
and every beat is read back from the ledger. Progress goes to `on_progress(stage, done, total)`; it never prints.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from consumers.audit.segments import SEGMENTS_DIR
from consumers.audit.session import audit_dir
from consumers.audit.store import STORE_FILE
from consumers.generations import live_dir, state_root_of
from ledger.checkpoint import open_checkpoint
from ledger.clock import format_timestamp
from ledger.config import Settings
from ledger.demo.auditor import ask_auditor, load_audit_store
from ledger.demo.beats import find_day_beats, tell_beats
from ledger.demo.cast import DEMO_SEED, REVISED_AGENT, TENANTS
from ledger.demo.compliance import export_mission
from ledger.demo.engine import DemoEngine, KafkaEngine, open_engine
from ledger.demo.policy_change import change_policy
from ledger.demo.runner import append_day, expect_refusals_recorded, prepare_demo_dir, read_seals, tally
from ledger.demo.scenario import ScenarioBuilder
from ledger.demo.state import snapshot
from ledger.demo.summary import DemoSummary
from ledger.errors import UsageError
from ledger.keys import SignerKey, load_signer, load_verifier, write_key_pair
from ledger.sdk import Ledger

DEMO_KEY_NAME = "demo.agent-ledger.local"
StageProgress = Callable[[str, int, int | None], None]  # (stage, done, total or None when unknown)
Tick = Callable[[int, int | None], None]


class _Stages:
    """Times each stage into the summary and reports its progress."""

    def __init__(self, summary: DemoSummary, on_progress: StageProgress | None) -> None:
        self.summary = summary
        self.on_progress = on_progress

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Tick]:
        def tick(done: int, of: int | None = total) -> None:
            if self.on_progress is not None:
                self.on_progress(name, done, of)

        tick(0, total)
        started = time.perf_counter()
        try:
            yield tick
        finally:
            self.summary.stage_seconds[name] = time.perf_counter() - started


def run_demo(
    data_dir: Path,
    *,
    scale: int = 1,
    seed: int = DEMO_SEED,
    kafka: str | None = None,
    on_progress: StageProgress | None = None,
) -> DemoSummary:
    """Run the story into a fresh `data_dir` (on Kafka at `kafka` HOST:PORT when given) and return what the
    ledger shows. Raises UsageError for a non-demo, non-empty directory and VerificationFailed if the sealed log
    or the exported bundle does not verify."""
    if scale < 1:
        raise UsageError(f"--scale must be at least 1, not {scale}")
    data_dir = Path(data_dir)
    prepare_demo_dir(data_dir)
    settings = Settings(data_dir=data_dir, keys_dir=data_dir / "keys")
    if not settings.private_key_path.exists():
        write_key_pair(settings.key_dir, SignerKey.generate(DEMO_KEY_NAME))
    summary = DemoSummary(
        data_dir=data_dir,
        scale=scale,
        engine="kafka" if kafka else "embedded",
        ledger_location="",
        private_key_path=settings.private_key_path,
        verifier_key_path=settings.verifier_key_path,
    )
    stages = _Stages(summary, on_progress)
    with stages.stage("plan the day"):
        builder = ScenarioBuilder(seed, scale, max_payload_bytes=settings.limits.max_payload_bytes)
        plan = builder.plan()
        summary.submissions = len(plan)
    with stages.stage("start the ledger"):
        engine = open_engine(settings, kafka)
    summary.ledger_location = engine.location
    if isinstance(engine, KafkaEngine):
        summary.kafka, summary.topic_prefix = engine.bootstrap, engine.topics.prefix
    with engine:
        ledger = engine.open()
        try:
            with stages.stage("append the day", len(plan)) as tick:
                append_day(ledger, plan, summary, tick)
            _decide_and_audit(ledger, engine, settings, summary, stages)
        finally:
            with stages.stage("close the writer"):
                ledger.close()  # embedded: seals a final checkpoint
        with engine.open_reader() as reader, stages.stage("verify the whole log") as tick:
            _read_back(reader, settings, summary, tick)
        with stages.stage("stop the ledger"):
            engine.close()  # on Kafka the sequencer seals what it owns and leaves its group
    expect_refusals_recorded(plan, summary)
    _plan_notes(builder, summary)
    summary.beats = tell_beats(summary)
    return summary


def _decide_and_audit(
    ledger: Ledger, engine: DemoEngine, settings: Settings, summary: DemoSummary, stages: _Stages
) -> None:
    """Beats 2 to 7 on the open ledger: decisions, the audit, the export and the policy change."""
    state_root = state_root_of(settings.data_dir)
    with stages.stage("the projections decide"):
        ledger.projections(state_root).catch_up()
        engine.seal(ledger)  # an export proves its events against a signed checkpoint
        day = find_day_beats(ledger)
        summary.earned, summary.narrowed, summary.refused_close = day.earned, day.narrowed, day.refused_close
        summary.state_day = snapshot(state_root)
        summary.files["projections, end of the day"] = live_dir(state_root)
    events = sum(ledger.log.size(partition) for partition in range(ledger.log.partition_count))
    with stages.stage("load the audit store", events) as tick:
        load_audit_store(ledger, state_root, lambda applied: tick(applied, events))
        summary.audit = ask_auditor(state_root, summary.refused_close)
    if summary.refused_close is not None:
        with stages.stage("export and verify offline"):
            signer = load_signer(settings.private_key_path)
            export_dir = settings.data_dir / "export"
            summary.bundle = export_mission(
                ledger, state_root, summary.refused_close, signer, export_dir, settings.verifier_key_path
            )
    with stages.stage("rebuild, diff, promote") as tick:
        earned = summary.earned
        question = (
            (earned.tenant, earned.agent_id, earned.tool, "production")
            if earned is not None
            else ("acme", "a-coder-7", "ci.run_tests", "canary")
        )
        summary.policy_change = change_policy(
            ledger, state_root, settings.data_dir / "policies", question, lambda done, total: tick(done, total)
        )
        summary.state_after = snapshot(state_root)
        engine.seal(ledger)
    summary.files = _files(settings, summary)


def _read_back(reader: Ledger, settings: Settings, summary: DemoSummary, tick: Tick) -> None:
    """Verify the whole log with the pinned key, count it, and bring the audit store to its end."""
    verifier = load_verifier(settings.verifier_key_path)
    total = sum(reader.log.size(partition) for partition in range(reader.log.partition_count))
    summary.verify_report = reader.verify(verifier, on_progress=lambda done: tick(done, total))
    tally(reader, summary)
    summary.seals = read_seals(reader)
    for partition in range(reader.log.partition_count):
        checkpoints = reader.checkpoints(partition)
        if checkpoints:
            open_checkpoint(checkpoints[-1].note, verifier)  # raises unless the pinned key signed it
    summary.log_id = reader.log.log_id
    summary.verifier_key = verifier.text()
    summary.refusals_recorded = Counter(rejection.reason_code for rejection in reader.rejections(1000))
    load_audit_store(reader, state_root_of(settings.data_dir))  # the promotion's events too


def _plan_notes(builder: ScenarioBuilder, summary: DemoSummary) -> None:
    """What the plan arranged that the summary tells (the hand-off race, the revision), and a surprise where the
    ledger does not show the by-hand close the plan made."""
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
    planned, refused = builder.close_override, summary.refused_close
    if planned and (refused is None or refused.closed_event_id != planned["event_id"]):
        summary.surprises.append(
            f"the ledger does not show {planned['tenant']} {planned['mission_id']} refused, then closed by hand"
        )


def _files(settings: Settings, summary: DemoSummary) -> dict[str, Path]:
    state_root = state_root_of(settings.data_dir)
    files = {"data dir": settings.data_dir}
    if summary.engine == "embedded":
        files["event store"] = Path(summary.ledger_location)
    files |= {
        "signing key": settings.private_key_path,
        "verifier key": settings.verifier_key_path,
        **summary.files,
        "audit store": audit_dir(state_root) / STORE_FILE,
        "audit segments": audit_dir(state_root) / SEGMENTS_DIR,
    }
    if summary.bundle is not None:
        files["bundle"] = summary.bundle.path
    if summary.policy_change is not None:
        files["stricter policy"] = summary.policy_change.policy_path
        files["projections, promoted"] = summary.policy_change.shadow_dir
    if summary.engine == "kafka":
        files["sequencer replica"] = settings.data_dir / "sequencer"
    return files
