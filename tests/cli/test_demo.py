"""`agent-ledger demo`: the day lands in the ledger and refuses what it should, and each of the story's seven beats
is a fact of the sealed log, the projection and audit stores, or a bundle that verifies offline (and a tampered
copy that does not)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from demo_expectations import EXPECTED_REFUSALS

from consumers.audit.queries import run_saved
from consumers.audit.session import AuditSession
from consumers.policy_files import default_policy, load_policy
from consumers.projection import read_entities
from ledger.config import Settings
from ledger.demo import MARKER_FILENAME, DemoSummary, generate_scenario, run_demo
from ledger.demo.cast import TENANTS
from ledger.errors import UsageError
from ledger.keys import load_verifier
from ledger.sdk import Ledger
from projections.registry import PROJECTIONS

LEVELS = {"sandbox": 1, "canary": 2, "production": 3}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    progress: list[tuple[str, int, int | None]] = []
    summary = run_demo(data_dir, on_progress=lambda stage, done, total: progress.append((stage, done, total)))
    assert ("append the day", summary.submissions, summary.submissions) in progress
    assert list(summary.stage_seconds) == list(dict.fromkeys(stage for stage, _, _ in progress))
    return data_dir, summary


def _open(data_dir: Path) -> Ledger:
    return Ledger.open(Settings(data_dir=data_dir, keys_dir=data_dir / "keys"), create=False, read_only=True)


def _envelopes(data_dir: Path) -> list[dict[str, Any]]:
    with _open(data_dir) as ledger:
        return [record.envelope() for record in ledger.records()]


def _by_id(data_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(envelope["tenant"], envelope["event_id"]): envelope for envelope in _envelopes(data_dir)}


def _tenant_policy(tenant: str, field: str) -> Any:
    spec = next(spec for spec in TENANTS if spec.tenant == tenant)
    return spec.scope_rules[field]


# -- beat 1: the day ----------------------------------------------------------------------------------------


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
        "trust.changed",
        "scope.widened",
        "scope.narrowed",
    ):
        assert types[event_type] > 0, event_type
    assert types["agent.revised"] == 1
    for tenant in ("acme", "globex"):
        assert set(summary.missions_by_tenant[tenant]) >= {"completed", "failed", "open"}
        calls = summary.tool_calls[tenant]
        assert calls.requested == calls.completed + calls.failed + calls.denied_by_human + calls.denied_by_policy
    assert summary.beats[0].proven


def test_every_result_answers_its_request_by_causation_id(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, _ = demo
    by_id = {envelope["event_id"]: envelope for envelope in _envelopes(data_dir)}
    results = [e for e in by_id.values() if e["type"] in ("tool.call.completed", "tool.call.failed")]
    assert results
    for result in results:
        request = by_id[result["causation_id"]]
        assert request["type"] == "tool.call.requested"
        assert request["payload"]["call_id"] == result["payload"]["call_id"]
        assert result["actor"]["kind"] == "tool"


def test_missions_the_projection_closed_have_evidence_for_every_criterion(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, _ = demo
    envelopes = _envelopes(data_dir)
    by_id = {envelope["event_id"]: envelope for envelope in envelopes}
    criteria: dict[object, list[dict[str, Any]]] = {}
    evidence: dict[object, list[tuple[object, str]]] = {}
    completed = []
    for envelope in envelopes:
        payload: dict[str, Any] = envelope["payload"]
        if envelope["type"] == "mission.criteria.set":
            criteria[envelope["mission_id"]] = payload["criteria"]
        elif envelope["type"] == "evidence.attached":
            kind = str(by_id[payload["evidence_event_id"]]["type"])
            evidence.setdefault(envelope["mission_id"], []).append((payload["criterion_id"], kind))
        elif envelope["type"] == "mission.closed" and payload["status"] == "completed":
            # only the projection's closes: a human's close by hand is the audit's business (beat 5)
            completed += [envelope["mission_id"]] if envelope["actor"]["kind"] == "policy" else []
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
    assert sum(recorded.values()) == len(summary.refusals) == summary.submissions - summary.appended


def test_resend_returns_the_original_receipt(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    duplicate = summary.duplicate
    assert duplicate["duplicate"] is True
    with _open(data_dir) as ledger:
        original = ledger.receipt(duplicate["tenant"], duplicate["event_id"])
    assert original is not None
    assert (original.stream, original.seq, original.hash) == (duplicate["stream"], duplicate["seq"], duplicate["hash"])


def test_stale_handoff_accept_is_refused_and_the_mission_has_one_owner(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    race = summary.handoff_race
    with _open(data_dir) as ledger:
        stale = [r for r in ledger.rejections(1000) if r.event_id == race["loser_event_id"]]
    assert [rejection.reason_code for rejection in stale] == ["stale_expected_seq"]
    accepts = [e for e in _envelopes(data_dir) if e["type"] == "handoff.accepted" and e["stream"] == race["stream"]]
    assert len(accepts) == 1
    assert accepts[0]["payload"]["owner_agent_id"] == race["winner"]
    assert accepts[0]["seq"] == race["expected_seq"] + 1


# -- beats 2 and 3: scope earned, scope narrowed --------------------------------------------------------------


def test_an_agent_earns_production_scope_citing_its_successes(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    earned = summary.earned
    assert earned is not None and summary.beats[1].proven
    by_id = _by_id(data_dir)
    widened = by_id[(earned.tenant, earned.event_id)]
    assert widened["type"] == "scope.widened"
    assert widened["actor"] == {"kind": "policy", "id": "projection:scope"}
    assert widened["agent_id"] == earned.agent_id
    assert (widened["payload"]["previous_level"], widened["payload"]["level"]) == ("canary", "production")
    cited = [by_id[(earned.tenant, event_id)] for event_id in widened["payload"]["evidence_event_ids"]]
    assert len(cited) == _tenant_policy(earned.tenant, "successes_to_widen")
    for event in cited:
        assert event["type"] == "tool.call.completed"
        assert (event["agent_id"], event["payload"]["tool"]) == (earned.agent_id, earned.tool)
    # The day's scope store holds the widening in the grant's history, under that event id.
    day_store = summary.files["projections, end of the day"] / "scope.sqlite"
    (_, scope), *_ = read_entities(day_store, f"{earned.tenant}/agent/{earned.agent_id}")
    history = scope["tools"][earned.tool]["history"]
    assert (history[-1]["event_id"], history[-1]["level"]) == (earned.event_id, "production")
    assert summary.state_day.scopes[(earned.tenant, earned.agent_id)][earned.tool] == "production"


def test_an_agent_fails_and_is_narrowed_citing_the_failures(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    narrowed = summary.narrowed
    assert narrowed is not None and summary.beats[2].proven
    by_id = _by_id(data_dir)
    event = by_id[(narrowed.tenant, narrowed.event_id)]
    assert event["type"] == "scope.narrowed"
    assert event["actor"] == {"kind": "policy", "id": "projection:scope"}
    payload = event["payload"]
    assert LEVELS[payload["level"]] < LEVELS[payload["previous_level"]]
    cited = [by_id[(narrowed.tenant, event_id)] for event_id in payload["evidence_event_ids"]]
    assert len(cited) == _tenant_policy(narrowed.tenant, "failures_to_narrow")
    for failure in cited:
        assert failure["type"] == "tool.call.failed"
        assert (failure["agent_id"], failure["payload"]["tool"]) == (narrowed.agent_id, narrowed.tool)


# -- beats 4 and 5: the refused close, and the audit query that finds it --------------------------------------


def test_a_close_is_refused_for_missing_evidence_then_closed_by_hand(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    refused = summary.refused_close
    assert refused is not None and summary.beats[3].proven
    by_id = _by_id(data_dir)
    refusal = by_id[(refused.tenant, refused.refusal_event_id)]
    assert (refusal["type"], refusal["actor"]["id"]) == ("mission.close.refused", "projection:mission")
    request = by_id[(refused.tenant, refusal["payload"]["request_event_id"])]
    assert (request["type"], request["payload"]["status"]) == ("mission.close.requested", "completed")
    assert request["mission_id"] == refusal["mission_id"] == refused.mission_id
    missing = refusal["payload"]["missing_criteria"]
    assert missing and any(missing[0] in reason for reason in refusal["payload"]["reasons"])
    attached = [
        e
        for e in by_id.values()
        if e["type"] == "evidence.attached"
        and e["mission_id"] == refused.mission_id
        and e["tenant"] == refused.tenant
        and e["payload"]["criterion_id"] == missing[0]
    ]
    assert attached == []  # the criterion never got its evidence
    assert refused.closed_event_id is not None
    closed = by_id[(refused.tenant, refused.closed_event_id)]
    assert closed["type"] == "mission.closed" and closed["actor"]["kind"] == "human"
    assert closed["log"]["index"] > refusal["log"]["index"]  # the human closed it after reading the refusal
    with _open(data_dir) as ledger:
        mission = ledger.projections().mission(refused.tenant, refused.mission_id)
    assert mission is not None and mission["status"] == "completed"  # a human's close is a fact to the projection


def test_the_auditors_saved_query_finds_the_refused_mission(demo: tuple[Path, DemoSummary]) -> None:
    _, summary = demo
    refused, audit = summary.refused_close, summary.audit
    assert refused is not None and audit is not None and summary.beats[4].proven
    with AuditSession(audit.store.parent, source="store") as session:
        relation = run_saved(session, "missions-closed-without-evidence", {})
        rows = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
        ((stored,),) = session.execute("SELECT count(*) FROM events").fetchall()
    found = [row for row in rows if (row["tenant"], row["mission_id"]) == (refused.tenant, refused.mission_id)]
    assert [row["closed_event_id"] for row in found] == [refused.closed_event_id]
    assert found[0]["criterion_id"] in refused.missing_criteria
    assert found[0]["closed_by"] == refused.closed_by
    assert stored == summary.events  # the audit store holds the whole log, the promotion included


# -- beat 6: export and offline verification ------------------------------------------------------------------


def _agent_ledger() -> list[str]:
    script = Path(sys.executable).parent / "agent-ledger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger.cli.main"]


def _offline(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A CLI run with no ledger around: an empty working dir and no AGENT_LEDGER_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENT_LEDGER")}
    return subprocess.run([*_agent_ledger(), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_the_mission_bundle_verifies_offline_and_a_tampered_copy_does_not(
    demo: tuple[Path, DemoSummary], tmp_path: Path
) -> None:
    data_dir, summary = demo
    bundle, refused = summary.bundle, summary.refused_close
    assert bundle is not None and refused is not None and summary.beats[5].proven
    mission_events = [
        e for e in _envelopes(data_dir) if (e["tenant"], e["mission_id"]) == (refused.tenant, refused.mission_id)
    ]
    assert bundle.report.events == len(mission_events)
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "bundle.json").write_bytes(bundle.path.read_bytes())
    (offline / "ledger.pub").write_text(load_verifier(bundle.verifier_key_path).text() + "\n")
    checked = _offline(["verify-bundle", "bundle.json", "--verifier-key", "ledger.pub", "--json"], offline)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["events"] == len(mission_events)
    assert report["selection"] == {"mission": refused.mission_id, "tenant": refused.tenant}
    # Rewrite the human's close inside the signed statement: the verifier refuses the copy.
    envelope = json.loads(bundle.path.read_bytes())
    statement = base64.b64decode(envelope["payload"])
    assert b"Closed by hand" in statement
    envelope["payload"] = base64.b64encode(statement.replace(b"Closed by hand", b"Closed by bots")).decode()
    (offline / "tampered.json").write_text(json.dumps(envelope))
    tampered = _offline(["verify-bundle", "tampered.json", "--verifier-key", "ledger.pub"], offline)
    assert tampered.returncode == 1
    assert "does not verify" in tampered.stderr
    assert bundle.tampered


# -- beat 7: the stricter policy ------------------------------------------------------------------------------


def test_a_stricter_policy_is_rebuilt_diffed_and_promoted(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    change, earned = summary.policy_change, summary.earned
    assert change is not None and earned is not None and summary.beats[6].proven
    policy, default = load_policy(change.policy_path), default_policy()
    assert policy.policy_id == change.policy_id
    assert policy.scope.successes_to_widen > default.scope.successes_to_widen
    assert policy.scope.min_trust_to_widen > default.scope.min_trust_to_widen
    assert policy.trust.z > default.trust.z
    # The diff names the agent that earned production: under the stricter policy it never gets there.
    shown = [
        c
        for c in change.changes
        if (c.projection, c.tenant, c.entity, c.field)
        == ("scope", earned.tenant, f"agent/{earned.agent_id}", f"tool:{earned.tool}")
    ]
    assert len(shown) == 1 and shown[0].live == "production" and shown[0].shadow != "production"
    assert {c.projection for c in change.changes} >= {"scope", "trust"}
    # The promotion is itself an event, per tenant, and every recorded scope change cites it.
    activation = f"policy-activated:{change.rebuild.rebuild_id}"
    envelopes = _envelopes(data_dir)
    activated = [e for e in envelopes if e["type"] == "policy.activated" and e["event_id"] == activation]
    assert {e["tenant"] for e in activated} == {"acme", "globex"}
    assert all(e["payload"]["policy_id"] == change.policy_id for e in activated)
    cites = [e for e in envelopes if e["type"].startswith("scope.") and e.get("causation_id") == activation]
    assert len(cites) == len(change.changed("scope")) == change.recorded_scope_changes
    # The live stores now answer under the new policy; both answers were recorded as policy.decision events.
    tenant, agent, tool, level = change.question
    with _open(data_dir) as ledger:
        now = ledger.projections().authorize(tenant, agent, tool, level, record=False)
    assert now.policy_id == change.policy_id
    assert now.authorization.decision == change.after.decision == "deny"
    assert change.before.decision == "escalate"
    decisions = {e["event_id"]: e for e in envelopes if e["type"] == "policy.decision"}
    assert decisions[change.before.event_id]["payload"]["decision"] == "escalate"
    assert decisions[change.after.event_id]["payload"]["policy_id"] == change.policy_id
    live = read_entities(summary.files["projections, end of the day"].parent / "projections" / "scope.sqlite")
    scope = PROJECTIONS["scope"]()
    levels = {key: scope.summary(scope.decode(data)) for key, data in live}
    assert levels[f"{earned.tenant}/agent/{earned.agent_id}"][f"tool:{earned.tool}"] == shown[0].shadow
    assert summary.state_after.scopes[(earned.tenant, earned.agent_id)][earned.tool] == shown[0].shadow


# -- the end: sealed, verified, reproducible ------------------------------------------------------------------


def test_sealed_demo_verifies_after_reopening_with_the_pinned_verifier_key(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, summary = demo
    assert summary.verified
    assert [beat.number for beat in summary.beats] == [1, 2, 3, 4, 5, 6, 7]
    assert summary.verify_report.events == summary.events == summary.seals[0].tree_size
    verifier = load_verifier(data_dir / "keys" / "ledger.pub")
    assert verifier.text() == summary.verifier_key
    with _open(data_dir) as ledger:
        report = ledger.verify(verifier)
    assert report.events == summary.events
    assert report.sealed == {0: summary.events}
    assert report.unsealed == 0
    for path in summary.files.values():
        assert path.exists(), path


def test_scenario_is_reproducible_except_recorded_at(demo: tuple[Path, DemoSummary]) -> None:
    data_dir, _ = demo
    first, second = generate_scenario(), generate_scenario()
    assert [planned.raw for planned in first] == [planned.raw for planned in second]
    accepted = [p for p in first if p.expected_refusal is None]
    planned_ids = {p.raw["event_id"] for p in accepted if isinstance(p.raw, dict)}
    produced = [e for e in _envelopes(data_dir) if e["event_id"] in planned_ids]
    # the ledger's own events (decisions, the promotion, authorize answers) follow, stamped live
    assert [envelope["occurred_at"] for envelope in produced] == [p.occurred_at for p in accepted]


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
    assert [beat.title for beat in second.beats] == [beat.title for beat in first.beats]


def test_a_non_demo_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(UsageError, match="is not a demo directory; pass another --data"):
        run_demo(tmp_path)
    assert precious.read_text() == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_demo_command_tells_the_seven_beats_and_exits_zero(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    done = subprocess.run(
        [*_agent_ledger(), "demo", "--data", str(data_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for number in range(1, 8):
        assert f"\n{number}. " in out, number
    assert "✘" not in out.split("Summary", 1)[1]  # every beat in the summary is proven
    for needle in (
        "earns production scope",
        "fails and is narrowed automatically",
        "close is refused for missing evidence",
        "missions-closed-without-evidence",
        "verify-bundle",
        "rebuilt, diffed and promoted",
        "Trust per agent and dimension",
        "Scopes: end of the day",
        "Where the files are",
        "stale_expected_seq",
        f"agent-ledger verify --data {data_dir}",
    ):
        assert needle in out, needle
    refused = subprocess.run(
        [*_agent_ledger(), "demo", "--data", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"agent-ledger: error: {tmp_path} is not a demo directory; pass another --data"
    ]
