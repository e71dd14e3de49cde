"""Trust scores: the scoring model's properties, the fold over real sequenced events, and trust.changed decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pytest import approx
from support import Fold, sequence

from consumers.policy_files import default_policy
from projections.base import Envelope, entity_key
from projections.policy import Policy
from projections.scoring import (
    DecayedEvidence,
    days_between,
    decay_factor,
    prior_score,
    score,
    wilson_lower_bound,
)
from projections.trust import AgentTrust, TrustProjection
from schemas.registry import parse_payload, spec_for

POLICY = default_policy()
DIGEST = "sha256:" + "ab" * 32
counts = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False)
quantiles = st.floats(min_value=0.1, max_value=5.0)


def call_result(
    call: str, ok: bool, *, agent: str = "a-1", tenant: str = "acme", tool: str = "git.push"
) -> dict[str, Any]:
    """The tool's report of one call of `agent` (completed or failed)."""
    submission: dict[str, Any] = {
        "event_id": f"{tenant}-{agent}-{call}-result",
        "tenant": tenant,
        "stream": "mission/m-1",
        "type": "tool.call.completed" if ok else "tool.call.failed",
        "actor": {"kind": "tool", "id": f"tool:{tool}"},
        "agent_id": agent,
        "mission_id": "m-1",
        "payload": {"call_id": call, "tool": tool, "duration_ms": 120},
    }
    if ok:
        submission["payload"] |= {"output_digest": DIGEST, "output_summary": "pushed 3 commits"}
    else:
        submission["payload"] |= {"error_kind": "execution_error", "message": "remote rejected", "retryable": False}
    return submission


def evaluation(name: str, dimension: str, verdict: str, *, agent: str = "a-1") -> dict[str, Any]:
    return {
        "event_id": f"eval-{name}",
        "tenant": "acme",
        "stream": "mission/m-1",
        "type": "evaluation.recorded",
        "actor": {"kind": "model", "id": "jury:review@3"},
        "agent_id": agent,
        "mission_id": "m-1",
        "payload": {
            "evaluator": "jury:review@3",
            "subject_event_id": "acme-a-1-c1-result",
            "dimension": dimension,
            "verdict": verdict,
        },
    }


def outcome(name: str, result: str) -> dict[str, Any]:
    return {
        "event_id": f"outcome-{name}",
        "tenant": "acme",
        "stream": "mission/m-1",
        "type": "outcome.recorded",
        "actor": {"kind": "system", "id": "ci"},
        "agent_id": "a-1",
        "mission_id": "m-1",
        "payload": {"outcome": result, "summary": f"mission ended: {result}"},
    }


def approval_denied(name: str) -> dict[str, Any]:
    return {
        "event_id": f"denied-{name}",
        "tenant": "acme",
        "stream": "mission/m-1",
        "type": "approval.denied",
        "actor": {"kind": "human", "id": "ops:alice"},
        "agent_id": "a-1",
        "mission_id": "m-1",
        "payload": {"approval_id": f"ap-{name}", "reason": "force-push to main is not allowed"},
    }


def fold(events: list[Envelope], policy: Policy = POLICY) -> Fold[AgentTrust]:
    folded = Fold(TrustProjection(), policy)
    folded.apply(events)
    return folded


def agent(folded: Fold[AgentTrust], agent_id: str = "a-1", tenant: str = "acme") -> AgentTrust:
    return folded.entities[entity_key(tenant, "agent", agent_id)]


# --- the scoring model -------------------------------------------------------------------------------------------


@given(successes=counts, failures=counts, z=quantiles)
def test_wilson_lower_bound_never_exceeds_the_mean(successes: float, failures: float, z: float) -> None:
    bound = wilson_lower_bound(successes, failures, z)
    assert 0.0 <= bound <= 1.0
    if successes + failures > 0:
        assert bound <= successes / (successes + failures) + 1e-12


@given(successes=counts, failures=counts, z=quantiles, scale=st.floats(min_value=1.0, max_value=100.0))
def test_lower_bound_grows_with_evidence(successes: float, failures: float, z: float, scale: float) -> None:
    bound = wilson_lower_bound(successes, failures, z)
    assert wilson_lower_bound(successes + 1, failures, z) >= bound - 1e-12  # a success never lowers it
    assert wilson_lower_bound(successes, failures + 1, z) <= bound + 1e-12  # a failure never raises it
    # the same success rate on more evidence is more certain, so its lower bound is higher
    assert wilson_lower_bound(successes * scale, failures * scale, z) >= bound - 1e-12


@given(
    effects=st.lists(st.sampled_from(["success", "failure"]), min_size=1, max_size=40),
    weight=st.floats(min_value=0.1, max_value=10.0),
)
def test_evidence_decays_toward_the_prior(effects: list[str], weight: float) -> None:
    trust = POLICY.trust
    evidence = DecayedEvidence()
    for effect in effects:
        evidence = evidence.add(
            "success" if effect == "success" else "failure", weight, "2026-01-01T00:00:00.000000Z", trust.half_life_days
        )
    one_half_life = evidence.as_of("2026-01-31T00:00:00.000000Z", trust.half_life_days)  # 30 days later
    assert one_half_life.successes == evidence.successes / 2
    assert one_half_life.failures == evidence.failures / 2
    assert one_half_life.count == evidence.count == len(effects)  # how many events it rests on does not decay
    forgotten = evidence.as_of("2036-01-01T00:00:00.000000Z", trust.half_life_days)  # ~120 half-lives later
    assert forgotten.score(trust) == prior_score(trust)


def test_decay_uses_event_time_and_never_runs_backwards() -> None:
    assert days_between("2026-01-01T00:00:00.000000Z", "2026-01-02T12:00:00.000000Z") == 1.5
    assert days_between("2026-01-02T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z") == 0.0
    assert decay_factor(60.0, 30.0) == 0.25
    evidence = DecayedEvidence().add("success", 4.0, "2026-03-01T00:00:00.000000Z", 30.0)
    earlier = evidence.add("failure", 1.0, "2026-02-01T00:00:00.000000Z", 30.0)  # from a late partition
    assert (earlier.successes, earlier.failures, earlier.last_at) == (4.0, 1.0, "2026-03-01T00:00:00.000000Z")


def test_thin_evidence_scores_far_below_its_success_rate() -> None:
    trust = POLICY.trust
    assert prior_score(trust) < 0.2  # an unknown agent is not trusted
    assert score(1, 0, trust) < 0.3  # one success out of one is a 100% rate, and almost no evidence
    assert score(5, 0, trust) < score(50, 2, trust)  # a long record beats a short perfect one
    strict = POLICY.trust.model_copy(update={"z": 3.0})
    assert score(5, 0, strict) < score(5, 0, trust)  # a higher z is more conservative


# --- the fold ------------------------------------------------------------------------------------------------------


def test_signals_count_on_their_dimensions_with_their_weights(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [
            call_result("c1", ok=True),
            call_result("c2", ok=False),
            outcome("o1", "success"),
            outcome("o2", "partial"),  # no signal matches a partial outcome
            evaluation("e1", "safety", "fail"),
            evaluation("e2", "style", "fail"),  # not a dimension of the policy
            evaluation("e3", "correctness", "inconclusive"),
            approval_denied("d1"),  # weight 2
        ],
    )
    trust = agent(fold(events))
    evidence = {name: dimension.evidence for name, dimension in trust.dimensions.items()}
    assert set(evidence) == {"reliability", "correctness", "safety", "policy_compliance"}
    # evidence decays between the events' recorded_at, by a few milliseconds' worth here
    assert (evidence["reliability"].successes, evidence["reliability"].failures) == (approx(1.0), 1.0)
    assert (evidence["reliability"].count, evidence["correctness"].count, evidence["safety"].count) == (2, 1, 1)
    assert (evidence["correctness"].successes, evidence["safety"].failures) == (1.0, 1.0)
    assert (evidence["policy_compliance"].failures, evidence["policy_compliance"].count) == (2.0, 1)
    assert trust.dimensions["policy_compliance"].score < trust.score("safety", POLICY) < prior_score(POLICY.trust)
    assert trust.dimensions["reliability"].evidence.last_at == events[1]["recorded_at"]


def test_a_long_record_is_trusted_more_than_a_thin_one(tmp_path: Path) -> None:
    submissions = [call_result("c0", ok=True, agent="a-new")]
    submissions += [call_result(f"c{n}", ok=n != 7, agent="a-old") for n in range(15)]
    folded = fold(sequence(tmp_path, submissions))
    thin = agent(folded, "a-new").score("reliability", POLICY)
    seasoned = agent(folded, "a-old").score("reliability", POLICY)
    assert thin < 0.3 < 0.6 < seasoned < 14 / 15


def test_trust_changed_is_recorded_only_when_the_score_really_moves(tmp_path: Path) -> None:
    events = sequence(tmp_path, [call_result(f"c{n}", ok=True) for n in range(20)])
    folded = fold(events)
    decisions = folded.decisions
    assert 2 <= len(decisions) < len(events)  # early evidence moves the score a lot, later evidence less
    previous = prior_score(POLICY.trust)
    for decision in decisions:
        payload = decision.payload
        assert payload["old_score"] == previous  # measured from the last recorded score, not the last score
        assert payload["new_score"] - payload["old_score"] >= POLICY.trust.min_change
        previous = payload["new_score"]
    dimension = agent(folded).dimensions["reliability"]
    assert dimension.recorded_score == previous
    assert 0 < dimension.score - dimension.recorded_score < POLICY.trust.min_change  # a drift not yet recorded

    calm = POLICY.model_copy(update={"trust": POLICY.trust.model_copy(update={"min_change": 0.9})})
    quiet = fold(events, calm)
    assert quiet.decisions == []
    assert agent(quiet).dimensions["reliability"].score == dimension.score  # the score moved all the same


def test_trust_changed_payloads_validate_and_are_accepted_by_a_ledger(tmp_path: Path) -> None:
    events = sequence(tmp_path, [call_result("c1", ok=True), approval_denied("d1")])
    decisions = fold(events).decisions
    assert [(d.type, d.payload["dimension"]) for d in decisions] == [
        ("trust.changed", "reliability"),
        ("trust.changed", "policy_compliance"),
    ]
    first = decisions[0]
    assert first.stream == "agent/a-1" and first.agent_id == "a-1" and first.tenant == "acme"
    assert first.payload["evidence_event_ids"] == [events[0]["event_id"]]
    assert first.payload["policy_id"] == POLICY.policy_id and first.payload["policy_version"] == POLICY.version
    assert first.payload["old_score"] == prior_score(POLICY.trust) < first.payload["new_score"]
    assert decisions[1].payload["new_score"] < decisions[1].payload["old_score"]
    for decision in decisions:
        parse_payload(spec_for(decision.type), decision.payload)

    log = sequence(tmp_path, [decision.submission() for decision in decisions])
    echoes = log[len(events) :]
    assert [echo["event_id"] for echo in echoes] == [decision.event_id for decision in decisions]
    assert all(
        echo["causation_id"] == decision.cause_event_id for echo, decision in zip(echoes, decisions, strict=True)
    )
    # the echoes are this system's own decisions: folding them changes nothing and decides nothing
    again = fold(log)
    assert again.encoded() == fold(events).encoded()
    assert [d.event_id for d in again.decisions] == [d.event_id for d in decisions]


def test_derived_decisions_are_never_evidence_but_a_tool_calling_itself_projection_is(tmp_path: Path) -> None:
    spoofed = call_result("c1", ok=False) | {"actor": {"kind": "tool", "id": "projection:scope"}}
    derived = {
        "event_id": "derived-like",
        "tenant": "acme",
        "stream": "agent/a-1",
        "type": "policy.decision",
        "actor": {"kind": "policy", "id": "projection:scope"},
        "agent_id": "a-1",
        "payload": {
            "decision": "deny",
            "tool": "git.push",
            "rule": "scope.no_grant",
            "policy_id": POLICY.policy_id,
            "policy_version": 1,
            "reason": "no grant",
        },
    }
    events = sequence(tmp_path, [derived, spoofed])
    projection = TrustProjection()
    assert list(projection.keys(events[0])) == []
    folded = fold(events)
    assert set(agent(folded).dimensions) == {"reliability"}  # the deny of a projection counted nowhere
    assert agent(folded).dimensions["reliability"].evidence.failures == 1.0
    assert agent(folded).dimensions["reliability"].evidence.count == 1


def test_old_evidence_fades_back_toward_the_prior(tmp_path: Path) -> None:
    events = sequence(tmp_path, [call_result(f"c{n}", ok=False) for n in range(4)] + [call_result("c9", ok=True)])
    # The sequencer stamps recorded_at now; the same events recorded 90 days (three half-lives) apart:
    events[4] = dict(events[4], recorded_at="2030-04-01T00:00:00.000000Z")
    for index in range(4):
        events[index] = dict(events[index], recorded_at="2030-01-01T00:00:00.000000Z")
    reliability = agent(fold(events)).dimensions["reliability"]
    assert reliability.evidence.failures == 4.0 * decay_factor(90.0, POLICY.trust.half_life_days) == 0.5
    assert reliability.evidence.successes == 1.0
    assert reliability.evidence.count == 5
    assert reliability.score == score(1.0, 0.5, POLICY.trust) > score(1.0, 4.0, POLICY.trust)
    later = agent(fold(events)).score_at("reliability", "2031-04-01T00:00:00.000000Z", POLICY)
    assert abs(later - prior_score(POLICY.trust)) < abs(reliability.score - prior_score(POLICY.trust))


def test_entities_are_per_tenant(tmp_path: Path) -> None:
    events = sequence(
        tmp_path,
        [call_result("c1", ok=True, tenant="acme"), call_result("c1", ok=False, tenant="globex")]
        + [call_result(f"c{n}", ok=False, tenant="globex") for n in range(2, 5)],
    )
    folded = fold(events)
    assert set(folded.entities) == {"acme/agent/a-1", "globex/agent/a-1"}
    acme, globex = agent(folded, tenant="acme"), agent(folded, tenant="globex")
    assert (acme.tenant, globex.tenant) == ("acme", "globex")
    assert acme.dimensions["reliability"].evidence.failures == 0.0
    assert globex.dimensions["reliability"].evidence.failures == approx(4.0)
    assert {d.tenant for d in folded.decisions if d.cause_event_id.startswith("globex")} == {"globex"}
    # a fold of one tenant's event is handed only that tenant's entity, and touches nothing else
    projection = TrustProjection()
    assert list(projection.keys(events[1])) == ["globex/agent/a-1"]
    only_acme = {"acme/agent/a-1": acme}
    projection.apply(only_acme, events[1], POLICY)
    assert set(only_acme) == {"acme/agent/a-1", "globex/agent/a-1"}
    assert only_acme["acme/agent/a-1"] is acme and acme.dimensions["reliability"].evidence.failures == 0.0


def test_events_about_no_agent_are_not_its_business(tmp_path: Path) -> None:
    no_agent = call_result("c1", ok=True) | {"agent_id": None}
    events = sequence(tmp_path, [no_agent])
    assert list(TrustProjection().keys(events[0])) == []
    assert fold(events).entities == {}


def test_encode_decode_round_trips_exactly(tmp_path: Path) -> None:
    events = sequence(tmp_path, [call_result("c1", ok=True), outcome("o1", "failure"), approval_denied("d1")])
    projection = TrustProjection()
    folded = fold(events)
    for entity in folded.entities.values():
        encoded = projection.encode(entity)
        assert projection.decode(encoded) == entity
        assert projection.decode(json.loads(json.dumps(encoded))) == entity
        assert projection.encode(projection.decode(encoded)) == encoded
