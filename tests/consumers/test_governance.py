"""The governance loop on the embedded backend: decisions enter the log once, cite their cause, survive restarts
and rebuilds without repeating, and a stricter policy is rebuilt, diffed and promoted before it acts."""

from __future__ import annotations

import gc
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from agent_events import close_requested, grant, memory_written, mission_opened, tool_call
from conftest import make_settings

from consumers.generations import live_dir
from consumers.policy_files import default_policy
from consumers.promotion import promote
from consumers.rebuild import rebuild
from ledger.cli.main import main
from ledger.config import Settings
from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger
from projections.registry import all_projections

TOOL = "deploy.service"


def log_of(settings: Settings) -> list[dict[str, Any]]:
    with Ledger.open(settings, read_only=True) as ledger:
        return [record.envelope() for record in ledger.log.read(0)]


def append(settings: Settings, submissions: list[dict[str, Any]]) -> None:
    with Ledger.open(settings) as ledger:
        for submission in submissions:
            ledger.append(submission)


def catch_up(settings: Settings, state: Path) -> int:
    with Ledger.open(settings) as ledger:
        return ledger.projections(state).catch_up()


def derived(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["event_id"] for event in events if event["actor"]["id"].startswith("projection:"))


def test_a_refused_close_is_appended_once_citing_its_cause(tmp_path: Path) -> None:
    settings, state = make_settings(tmp_path), tmp_path / "state"
    unfinished = tool_call("a-1", "ci.run_tests", True)[:1]  # requested, never completed
    append(settings, [*mission_opened("m-1", "a-1"), *unfinished, close_requested("m-1", "a-1", event_id="close-1")])
    catch_up(settings, state)

    events = log_of(settings)
    refusals = [event for event in events if event["type"] == "mission.close.refused"]
    assert len(refusals) == 1
    refusal = refusals[0]
    assert refusal["causation_id"] == "close-1" and refusal["actor"] == {"kind": "policy", "id": "projection:mission"}
    assert refusal["payload"]["request_event_id"] == "close-1"
    assert refusal["payload"]["unresolved_tool_calls"] == [unfinished[0]["payload"]["call_id"]]
    assert refusal["payload"]["policy_id"] == default_policy().policy_id
    # The policy it cites entered the log first, published then activated.
    kinds = [(e["type"], e["payload"].get("policy_id")) for e in events if e["log"]["index"] < refusal["log"]["index"]]
    assert ("policy.published", default_policy().policy_id) in kinds
    assert ("policy.activated", default_policy().policy_id) in kinds
    with Ledger.open(settings) as ledger:
        mission = ledger.projections(state).mission("acme", "m-1")
    assert mission is not None and mission["status"] != "completed"
    assert [r["request_event_id"] for r in mission["refusals"]] == ["close-1"]

    # A restart, then a rebuild from zero into a fresh state dir: the log gains no decision twice.
    catch_up(settings, state)
    catch_up(settings, tmp_path / "fresh-state")
    again = log_of(settings)
    assert len(again) == len(events)
    assert all(count == 1 for count in derived(again).values())


def test_an_outbox_resent_after_a_crash_appends_nothing_new(tmp_path: Path) -> None:
    settings, state = make_settings(tmp_path), tmp_path / "state"
    append(settings, [grant("a-1", TOOL, "sandbox")] + [s for _ in range(8) for s in tool_call("a-1", TOOL, True)])
    catch_up(settings, state)
    before = log_of(settings)
    assert derived(before), "the workload must produce decisions (trust.changed, scope.widened)"
    # A crash between the append and the bookkeeping leaves rows pending that the log already has.
    for name in ("trust", "scope"):
        with sqlite3.connect(live_dir(state) / f"{name}.sqlite") as db:
            assert db.execute("UPDATE outbox SET state='pending'").rowcount > 0
    catch_up(settings, state)
    after = log_of(settings)
    assert len(after) == len(before)
    for name in ("trust", "scope"):
        with sqlite3.connect(live_dir(state) / f"{name}.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM outbox WHERE state != 'appended'").fetchone()[0] == 0


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rebuild_under_a_stricter_policy_is_diffed_then_promoted_and_changes_authorize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(tmp_path / "state")]
    ask = ["--tenant", "acme", "--agent", "a-1", "--tool", TOOL]
    history = [grant("a-1", TOOL, "canary"), *tool_call("a-1", TOOL, True), *tool_call("a-1", TOOL, False)]
    append(settings, history)
    # Under the default policy one failure is not enough to narrow (it takes two): canary is allowed.
    code, out, _ = run_cli(capsys, "authorize", *store, *ask, "--level", "canary")
    assert code == 0 and json.loads(out)["decision"] == "allow"

    strict = tmp_path / "strict.toml"
    text = Path("policies/default.toml").read_text().replace("failures_to_narrow = 2", "failures_to_narrow = 1")
    strict.write_text(text.replace("version = 1", "version = 2", 1))
    code, out, _ = run_cli(capsys, "projections", "rebuild", *store, "--policy", str(strict))
    assert code == 0 and "rebuilt rb-" in out
    assert gc.isenabled(), "the rebuild paused the garbage collector and left it off"
    code, out, _ = run_cli(capsys, "projections", "diff", *store, "--json")
    changes = json.loads(out)["changes"]
    scope_changes = [c for c in changes if c["projection"] == "scope"]
    assert scope_changes == [
        {
            "projection": "scope",
            "tenant": "acme",
            "entity": "agent/a-1",
            "field": f"tool:{TOOL}",
            "live": "canary",
            "shadow": "sandbox",
        }
    ]
    code, out, _ = run_cli(capsys, "projections", "diff", *store)
    assert f"acme/agent/a-1 tool:{TOOL}: canary -> sandbox" in out

    # The live projections kept serving during the rebuild: still canary before promotion.
    code, out, _ = run_cli(capsys, "authorize", *store, *ask, "--level", "canary", "--dry-run")
    assert code == 0
    code, out, _ = run_cli(capsys, "projections", "promote", *store, "--reason", "one failure is enough")
    assert code == 0 and "1 scope changes" in out
    code, out, _ = run_cli(capsys, "authorize", *store, *ask, "--level", "canary")
    answer = json.loads(out)
    assert code == 1 and answer["decision"] == "deny" and answer["rule"] == "scope.above_grant"
    assert answer["policy_version"] == 2

    events = log_of(settings)
    activated = [e for e in events if e["type"] == "policy.activated" and e["payload"].get("rebuild_id")]
    assert len(activated) == 1 and activated[0]["payload"]["reason"] == "one failure is enough"
    narrowed = [e for e in events if e["type"] == "scope.narrowed"]
    assert len(narrowed) == 1
    assert (narrowed[0]["payload"]["previous_level"], narrowed[0]["payload"]["level"]) == ("canary", "sandbox")
    assert narrowed[0]["causation_id"] == activated[0]["event_id"]
    decisions = [e for e in events if e["type"] == "policy.decision"]
    assert [d["payload"]["decision"] for d in decisions] == ["allow", "deny"]  # the dry run recorded nothing

    # Promotion is final: nothing left to promote, and the live consumer goes on without repeating anything.
    code, _, err = run_cli(capsys, "projections", "promote", *store)
    assert code == 2 and "no rebuild" in err
    catch_up(settings, tmp_path / "state")
    assert all(count == 1 for count in derived(log_of(settings)).values())


def test_authorize_answers_from_history_and_refuses_a_bad_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(tmp_path / "state")]
    ask = ["--tenant", "acme", "--agent", "a-1", "--tool", TOOL]
    append(settings, [grant("a-1", TOOL, "sandbox")])
    granted_at = log_of(settings)[-1]["recorded_at"]
    size = len(log_of(settings))

    code, out, _ = run_cli(capsys, "authorize", *store, *ask, "--at", "2020-01-01T00:00:00Z")
    assert code == 1 and json.loads(out)["rule"] == "scope.no_grant"
    code, out, _ = run_cli(capsys, "authorize", *store, *ask, "--at", granted_at)
    assert code == 0 and json.loads(out)["decision"] == "allow"
    assert len(log_of(settings)) == size  # questions about the past record nothing
    code, out, err = run_cli(capsys, "authorize", *store, *ask, "--at", "yesterday")
    assert code == 2 and out == "" and err.count("\n") == 1 and "yesterday" in err
    code, out, _ = run_cli(capsys, "authorize", *store, *ask, "--level", "production")
    assert code == 1 and json.loads(out)["decision"] == "deny"
    assert log_of(settings)[-1]["type"] == "policy.decision"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (("failures_to_narrow = 2", "failures_to_narrow = 0"), "scope.failures_to_narrow"),
        (("max_items = 50", "max_itmes = 50"), "memory.max_itmes: is not a known policy field"),
        (('max_auto_level = "canary"', 'max_auto_level = "prod"'), "scope.max_auto_level"),
        (('dimension = "reliability"', 'dimension = "speed"'), "'speed' is not one of trust.dimensions"),
        (("[scope]", "[scope"), "not valid TOML"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], named: str
) -> None:
    settings = make_settings(tmp_path)
    append(settings, [grant("a-1", TOOL, "sandbox")])
    bad = tmp_path / "bad.toml"
    bad.write_text(Path("policies/default.toml").read_text().replace(*edit))
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(tmp_path / "state")]
    code, out, err = run_cli(capsys, "projections", "rebuild", *store, "--policy", str(bad))
    assert code == 2 and out == ""
    assert named in err and err.startswith("agent-ledger: error: ") and err.count("\n") == 1
    assert not (tmp_path / "state" / "shadow").exists()


def test_memory_views_never_cross_tenants(tmp_path: Path) -> None:
    settings, state = make_settings(tmp_path), tmp_path / "state"
    append(
        settings,
        [memory_written("mem-1", "a-1", tenant="acme"), memory_written("mem-1", "a-1", tenant="globex")],
    )
    with Ledger.open(settings) as ledger:
        service = ledger.projections(state)
        service.catch_up()
        for tenant in ("acme", "globex"):
            packet = service.context_packet(tenant, "a-1", "m-1")
            assert [item["tenant"] for item in packet] == [tenant]
            assert packet[0]["write"]["content"] == f"{tenant} notes"
        assert service.context_packet("initech", "a-1", "m-1") == []


def test_consume_a_projection_then_show_its_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path)
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(tmp_path / "state")]
    append(settings, [grant("a-1", TOOL, "sandbox"), *tool_call("a-1", TOOL, False), *tool_call("a-1", TOOL, False)])
    code, out, _ = run_cli(capsys, "consume", "scope", *store, "--once")
    assert code == 0 and out.startswith("scope: applied 8 events")  # 5, then its 3 decisions coming back
    assert "lag 0" in out
    code, out, _ = run_cli(capsys, "projections", "show", "scope", *store, "--tenant", "acme", "--key", "agent/a-1")
    (shown,) = [json.loads(line) for line in out.splitlines()]
    assert shown["key"] == "acme/agent/a-1" and shown["tools"][TOOL]["level"] is None  # two failures: revoked
    assert [e["type"] for e in log_of(settings)][-3:] == ["policy.published", "policy.activated", "scope.revoked"]
    code, out, _ = run_cli(capsys, "projections", "show", "scope", *store, "--tenant", "globex")
    assert code == 0 and out == ""  # another tenant sees nothing
    code, out, err = run_cli(capsys, "consume", "scopes", *store, "--once")
    assert code == 2 and "unknown consumer 'scopes'" in err


def test_events_the_live_stores_had_not_folded_are_still_decided_across_a_promotion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(tmp_path / "state")]
    unfinished = tool_call("a-1", "ci.run_tests", True, mission="m-2")[:1]
    # m-1 is decided before the rebuild; m-2's close request arrives after it. No live consumer runs meanwhile.
    append(settings, [*mission_opened("m-1", "a-1"), close_requested("m-1", "a-1", event_id="close-1")])
    catch_up(settings, tmp_path / "state")
    strict = tmp_path / "strict.toml"
    strict.write_text(Path("policies/default.toml").read_text().replace("version = 1", "version = 2", 1))
    code, _, _ = run_cli(capsys, "projections", "rebuild", *store, "--policy", str(strict))
    assert code == 0
    append(settings, [*mission_opened("m-2", "a-1"), *unfinished, close_requested("m-2", "a-1", event_id="close-2")])

    code, out, _ = run_cli(capsys, "projections", "promote", *store)
    assert code == 0 and "the live stores decided" in out
    events = log_of(settings)
    refused = Counter(e["causation_id"] for e in events if e["type"] == "mission.close.refused")
    # Each close was decided once: close-2 by the live stores (under the policy they ran) just before the switch.
    assert refused == {"close-1": 1, "close-2": 1}
    (refusal,) = [e for e in events if e["causation_id"] == "close-2" and e["type"] == "mission.close.refused"]
    assert refusal["payload"]["policy_id"] == default_policy().policy_id
    # The promoted stores stopped exactly where the live ones had: going on decides nothing twice.
    catch_up(settings, tmp_path / "state")
    again = log_of(settings)
    assert all(count == 1 for count in derived(again).values())
    with Ledger.open(settings) as ledger:
        mission = ledger.projections(tmp_path / "state").mission("acme", "m-2")
    assert mission is not None and [r["request_event_id"] for r in mission["refusals"]] == ["close-2"]


def test_a_recorded_authorization_never_cites_a_policy_the_log_lacks(tmp_path: Path) -> None:
    settings, state = make_settings(tmp_path), tmp_path / "state"
    append(settings, [grant("a-1", TOOL, "canary")])
    with Ledger.open(settings) as ledger:
        answer = ledger.projections(state).authorize("acme", "a-1", TOOL, "sandbox")
        again = ledger.projections(state).authorize("acme", "a-1", TOOL, "sandbox")
        rejected = ledger.rejections()
    assert answer.receipt is not None and again.receipt is not None
    events = log_of(settings)
    kinds = [(e["type"], e["payload"].get("policy_id")) for e in events]
    decision_at = kinds.index(("policy.decision", answer.policy_id))
    assert kinds[:decision_at].count(("policy.published", answer.policy_id)) == 1
    assert kinds[:decision_at].count(("policy.activated", answer.policy_id)) == 1
    # The second answer found the policy in the log and published nothing again, not even a refused duplicate.
    assert kinds.count(("policy.published", answer.policy_id)) == 1
    assert [k for k, _ in kinds].count("policy.decision") == 2
    assert rejected == []


def test_a_rebuild_reports_progress_while_the_live_stores_keep_answering(tmp_path: Path) -> None:
    settings, state = make_settings(tmp_path), tmp_path / "state"
    calls = [s for _ in range(3) for s in tool_call("a-1", TOOL, True)]
    append(settings, [grant("a-1", TOOL, "canary"), *calls])
    catch_up(settings, state)
    with Ledger.open(settings) as ledger:
        outcomes = ledger.append_batch([mission_opened(f"m-{n}", "a-2")[0] for n in range(11_000)])
        assert not [o for o in outcomes if isinstance(o, SubmissionRefused)]
        total = ledger.log.size(0)
        assert total > 11_000
        live = ledger.projections(state)
        reports: list[tuple[int, int]] = []
        answers: list[str] = []

        def on_progress(done: int, of: int) -> None:
            reports.append((done, of))
            # Mid-replay the live stores still serve: the answer comes from the live generation.
            answers.append(live.authorize("acme", "a-1", TOOL, "canary", record=False).authorization.decision)

        result = rebuild(ledger.log, state, default_policy(), all_projections(), on_progress=on_progress)
    assert result.events == total
    assert reports[0][0] < total and reports[-1] == (total, total), "progress must be reported during the replay"
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert answers and set(answers) == {"allow"}


def test_a_policy_that_stops_gating_closure_shows_the_mission_status_it_would_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(tmp_path / "state")]
    unfinished = tool_call("a-1", "ci.run_tests", True)[:1]
    append(settings, [*mission_opened("m-1", "a-1"), *unfinished, close_requested("m-1", "a-1", event_id="close-1")])
    catch_up(settings, tmp_path / "state")
    lenient = tmp_path / "lenient.toml"
    text = Path("policies/default.toml").read_text().replace("version = 1", "version = 2", 1)
    text = text.replace("require_criteria_evidence = true", "require_criteria_evidence = false")
    lenient.write_text(text.replace("require_tool_results = true", "require_tool_results = false"))
    code, _, _ = run_cli(capsys, "projections", "rebuild", *store, "--policy", str(lenient))
    assert code == 0
    code, out, _ = run_cli(capsys, "projections", "diff", *store, "--json")
    missions = {
        c["field"]: (c["live"], c["shadow"]) for c in json.loads(out)["changes"] if c["projection"] == "mission"
    }
    live_status = missions["status"][0]
    assert live_status != "completed"
    assert missions == {"status": (live_status, "completed"), "refusals": (1, 0)}
    code, out, _ = run_cli(capsys, "projections", "diff", *store)
    assert f"acme/mission/m-1 status: {live_status} -> completed" in out


def test_a_promotion_cut_short_after_the_switch_is_recorded_by_the_next_promote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, state = make_settings(tmp_path), tmp_path / "state"
    store = ["--data", str(settings.data_dir), "--keys", str(settings.keys_dir), "--state", str(state)]
    append(settings, [grant("a-1", TOOL, "canary"), *tool_call("a-1", TOOL, True), *tool_call("a-1", TOOL, False)])
    catch_up(settings, state)
    strict = tmp_path / "strict.toml"
    text = Path("policies/default.toml").read_text().replace("failures_to_narrow = 2", "failures_to_narrow = 1")
    strict.write_text(text.replace("version = 1", "version = 2", 1))
    assert run_cli(capsys, "projections", "rebuild", *store, "--policy", str(strict))[0] == 0

    with Ledger.open(settings) as ledger:

        def crashing(submissions: list[dict[str, Any]]) -> list[object]:
            if any(s["type"] == "policy.activated" for s in submissions):
                raise ConnectionError("the ledger went away while the promotion was being recorded")
            return list(ledger.append_batch(submissions))

        with pytest.raises(ConnectionError):
            promote(ledger.log, state, all_projections(), crashing, reason="one failure is enough")
    # The stores were switched, but the log does not say so yet.
    assert "gen-rb-" in str(live_dir(state).resolve())
    assert not [e for e in log_of(settings) if e["type"] == "policy.activated" and e["payload"].get("rebuild_id")]

    code, out, _ = run_cli(capsys, "projections", "promote", *store)
    assert code == 0 and out.startswith("finished recording the promotion of rb-")
    events = log_of(settings)
    activated = [e for e in events if e["type"] == "policy.activated" and e["payload"].get("rebuild_id")]
    assert len(activated) == 1 and activated[0]["payload"]["reason"] == "one failure is enough"
    narrowed = [e for e in events if e["type"] == "scope.narrowed" and e["causation_id"] == activated[0]["event_id"]]
    assert len(narrowed) == 1
    code, _, err = run_cli(capsys, "projections", "promote", *store)
    assert code == 2 and "no rebuild" in err
    assert len(log_of(settings)) == len(events)
