"""`agent-ledger demo`: the demo day really lands in the ledger, refuses what it should, seals and verifies."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.demo import MARKER_FILENAME, DemoSummary, generate_scenario, run_demo
from ledger.errors import UsageError
from ledger.keys import load_verifier
from ledger.sdk import Ledger

EXPECTED_REFUSALS = {
    "duplicate_event_id",
    "malformed_json",
    "unknown_type",
    "schema_violation",
    "oversized",
    "sequencer_field",
    "wrong_tenant",
    "stale_expected_seq",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    progress: list[tuple[int, int]] = []
    summary = run_demo(data_dir, on_progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (summary.submissions, summary.submissions)
    return data_dir, summary


def _open(data_dir: Path) -> Ledger:
    return Ledger.open(Settings(data_dir=data_dir, keys_dir=data_dir / "keys"), create=False, read_only=True)


def _envelopes(data_dir: Path) -> list[dict[str, object]]:
    with _open(data_dir) as ledger:
        return [record.envelope() for record in ledger.records()]


def test_demo_appends_a_day_of_missions_for_both_tenants(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    envelopes = _envelopes(data_dir)
    assert len(envelopes) == summary.events > 2000
    assert {envelope["tenant"] for envelope in envelopes} == {"acme", "globex"}
    types = Counter(str(envelope["type"]) for envelope in envelopes)
    for event_type in (
        "agent.registered",
        "agent.revised",
        "policy.published",
        "policy.activated",
        "mission.opened",
        "mission.criteria.set",
        "mission.step.recorded",
        "tool.call.requested",
        "policy.decision",
        "approval.requested",
        "approval.granted",
        "approval.denied",
        "tool.call.completed",
        "tool.call.failed",
        "model.output.recorded",
        "memory.written",
        "memory.read",
        "evidence.attached",
        "outcome.recorded",
        "evaluation.recorded",
        "mission.close.requested",
        "mission.close.refused",
        "mission.closed",
        "handoff.offered",
        "handoff.accepted",
    ):
        assert types[event_type] > 0, event_type
    assert types["agent.revised"] == 1
    for tenant in ("acme", "globex"):
        assert set(summary.missions_by_tenant[tenant]) >= {"completed", "failed", "open"}
        calls = summary.tool_calls[tenant]
        assert calls.requested == calls.completed + calls.failed + calls.denied_by_human + calls.denied_by_policy


def test_every_result_answers_its_request_by_causation_id(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, _ = demo
    by_id = {envelope["event_id"]: envelope for envelope in _envelopes(data_dir)}
    results = [e for e in by_id.values() if e["type"] in ("tool.call.completed", "tool.call.failed")]
    assert results
    for result in results:
        request = by_id[result["causation_id"]]
        assert request["type"] == "tool.call.requested"
        assert request["payload"]["call_id"] == result["payload"]["call_id"]  # type: ignore[index]
        assert result["actor"]["kind"] == "tool"  # type: ignore[index]


def test_completed_missions_have_evidence_for_every_criterion(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, _ = demo
    envelopes = _envelopes(data_dir)
    by_id = {envelope["event_id"]: envelope for envelope in envelopes}
    criteria: dict[object, list[dict[str, object]]] = {}
    evidence: dict[object, list[tuple[object, str]]] = {}
    completed = []
    for envelope in envelopes:
        payload: dict[str, object] = envelope["payload"]  # type: ignore[assignment]
        if envelope["type"] == "mission.criteria.set":
            criteria[envelope["mission_id"]] = payload["criteria"]  # type: ignore[assignment]
        elif envelope["type"] == "evidence.attached":
            kind = str(by_id[payload["evidence_event_id"]]["type"])
            evidence.setdefault(envelope["mission_id"], []).append((payload["criterion_id"], kind))
        elif envelope["type"] == "mission.closed" and payload["status"] == "completed":
            completed.append(envelope["mission_id"])
    assert len(completed) > 100
    for mission_id in completed:
        attached = evidence[mission_id]
        for criterion in criteria[mission_id]:
            kinds = {kind for cid, kind in attached if cid == criterion["criterion_id"]}
            assert kinds, (mission_id, criterion)
            if criterion["requires_approval"]:
                assert "approval.granted" in kinds, (mission_id, criterion)


def test_every_bad_input_is_refused_and_recorded_with_its_reason(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    assert summary.surprises == []
    assert {refusal.reason for refusal in summary.refusals} == EXPECTED_REFUSALS
    with _open(data_dir) as ledger:
        recorded = Counter(rejection.reason_code for rejection in ledger.rejections(1000))
    assert set(recorded) == EXPECTED_REFUSALS
    appended = summary.events - summary.decisions  # the rest are the projections' decisions
    assert sum(recorded.values()) == len(summary.refusals) == summary.submissions - appended


def test_resend_returns_the_original_receipt(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    duplicate = summary.duplicate
    assert duplicate["duplicate"] is True
    with _open(data_dir) as ledger:
        original = ledger.receipt(duplicate["tenant"], duplicate["event_id"])
    assert original is not None
    assert (original.stream, original.seq, original.hash) == (
        duplicate["stream"],
        duplicate["seq"],
        duplicate["hash"],
    )


def test_stale_handoff_accept_is_refused_and_the_mission_has_one_owner(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    race = summary.handoff_race
    with _open(data_dir) as ledger:
        stale = [r for r in ledger.rejections(1000) if r.event_id == race["loser_event_id"]]
    assert [rejection.reason_code for rejection in stale] == ["stale_expected_seq"]
    accepts = [
        envelope
        for envelope in _envelopes(data_dir)
        if envelope["type"] == "handoff.accepted" and envelope["stream"] == race["stream"]
    ]
    assert len(accepts) == 1
    assert accepts[0]["payload"]["owner_agent_id"] == race["winner"]  # type: ignore[index]
    assert accepts[0]["seq"] == race["expected_seq"] + 1


def test_sealed_demo_verifies_after_reopening_with_the_pinned_verifier_key(
    demo: tuple[Path, DemoSummary],
) -> None:
    data_dir, summary = demo
    assert summary.verified
    assert summary.verify_report.events == summary.events == summary.checkpoint_tree_size
    verifier = load_verifier(data_dir / "keys" / "ledger.pub")
    assert verifier.text() == summary.verifier_key
    with _open(data_dir) as ledger:
        report = ledger.verify(verifier)
    assert report.events == summary.events
    assert report.sealed == {0: summary.events}
    assert report.unsealed == 0


def test_scenario_is_reproducible_except_recorded_at(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, _ = demo
    first, second = generate_scenario(), generate_scenario()
    assert [planned.raw for planned in first] == [planned.raw for planned in second]
    planned_times = [p.occurred_at for p in first if p.expected_refusal is None]
    produced = [e for e in _envelopes(data_dir) if not e["actor"]["id"].startswith("projection:")]
    assert [envelope["occurred_at"] for envelope in produced] == planned_times  # decisions follow, stamped live


def test_rerun_on_a_demo_directory_starts_fresh(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    first = run_demo(data_dir)
    (data_dir / "left-over.txt").write_text("from an earlier run")
    second = run_demo(data_dir)
    assert not (data_dir / "left-over.txt").exists()
    assert (data_dir / MARKER_FILENAME).is_file()
    assert second.events == first.events
    assert second.log_id != first.log_id
    assert second.verifier_key != first.verifier_key
    assert len(_envelopes(data_dir)) == second.events


def test_a_non_demo_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(UsageError, match="is not a demo directory; pass another --data"):
        run_demo(tmp_path)
    assert precious.read_text() == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def _agent_ledger() -> list[str]:
    script = Path(sys.executable).parent / "agent-ledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli.main"]


def test_demo_command_prints_the_story_and_exits_zero(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    done = subprocess.run(
        [*_agent_ledger(), "demo", "--data", str(data_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout
    assert "stale_expected_seq" in done.stdout
    assert f"agent-ledger verify --data {data_dir}" in done.stdout
    refused = subprocess.run(
        [*_agent_ledger(), "demo", "--data", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"agent-ledger: error: {tmp_path} is not a demo directory; pass another --data"
    ]
